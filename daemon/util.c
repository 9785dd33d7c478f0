/*
 * util - allocation wrappers, bounded strings, small parsers, queue ids.
 * See util.h. Allocation failure is fatal: a relay that cannot allocate a
 * few bytes cannot do anything useful, and callers stay simple.
 */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "log.h"
#include "util.h"

void *
xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (p == NULL)
		fatal("malloc %zu", n);
	return p;
}

void *
xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (p == NULL)
		fatal("calloc %zu*%zu", n, size);
	return p;
}

void *
xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (q == NULL)
		fatal("realloc %zu", n);
	return q;
}

void *
xreallocarray(void *p, size_t n, size_t size)
{
	if (size && n > SIZE_MAX / size)
		fatalx("reallocarray overflow %zu*%zu", n, size);
	return xrealloc(p, n * size);
}

char *
xstrdup(const char *s)
{
	char *p = strdup(s);
	if (p == NULL)
		fatal("strdup");
	return p;
}

char *
xstrndup(const char *s, size_t n)
{
	char *p = strndup(s, n);
	if (p == NULL)
		fatal("strndup");
	return p;
}

char *
xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *p;
	int r;

	va_start(ap, fmt);
	r = vasprintf(&p, fmt, ap);
	va_end(ap);
	if (r < 0)
		fatal("asprintf");
	return p;
}

size_t
util_strlcpy(char *dst, const char *src, size_t size)
{
	size_t n = strlen(src);

	if (size > 0) {
		size_t c = n < size - 1 ? n : size - 1;
		memcpy(dst, src, c);
		dst[c] = '\0';
	}
	return n;
}

size_t
util_strlcat(char *dst, const char *src, size_t size)
{
	size_t d = strnlen(dst, size);

	if (d == size)
		return size + strlen(src);
	return d + util_strlcpy(dst + d, src, size - d);
}

char *
util_strlower(char *s)
{
	for (char *p = s; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	return s;
}

char *
util_strtrim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n'))
		*--e = '\0';
	return s;
}

static int
lower(int c)
{
	return (c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c;
}

int
util_strcaseeq(const char *a, const char *b)
{
	while (*a && *b && lower((unsigned char)*a) == lower((unsigned char)*b))
		a++, b++;
	return *a == '\0' && *b == '\0';
}

int
util_strncaseprefix(const char *s, const char *prefix)
{
	while (*prefix) {
		if (lower((unsigned char)*s) != lower((unsigned char)*prefix))
			return 0;
		s++, prefix++;
	}
	return 1;
}

/* Parse an unsigned decimal with an optional one-letter unit. */
static int
parse_unit(const char *s, unsigned long long *num, char *unit)
{
	unsigned long long v = 0;
	const char *p = s;

	while (*p == ' ' || *p == '\t')
		p++;
	if (!isdigit((unsigned char)*p))
		return -1;
	for (; isdigit((unsigned char)*p); p++) {
		if (v > (ULLONG_MAX - 9) / 10)
			return -1;
		v = v * 10 + (unsigned long long)(*p - '0');
	}
	*unit = '\0';
	if (*p && *p != ' ' && *p != '\t')
		*unit = (char)lower((unsigned char)*p++);
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p)
		return -1;
	*num = v;
	return 0;
}

int
util_parse_size(const char *s, size_t *out)
{
	unsigned long long v, mul;
	char unit;

	if (parse_unit(s, &v, &unit) < 0)
		return -1;
	switch (unit) {
	case '\0': case 'b': mul = 1; break;
	case 'k': mul = 1024ULL; break;
	case 'm': mul = 1024ULL * 1024; break;
	case 'g': mul = 1024ULL * 1024 * 1024; break;
	default: return -1;
	}
	if (v > SIZE_MAX / mul)
		return -1;
	*out = (size_t)(v * mul);
	return 0;
}

/* util_json_str - s quoted for JSON, bounded */
char *
util_json_str(const char *s, char *out, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	out[o++] = '"';
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		size_t need = (ch == '"' || ch == '\\') ? 2 : (ch < 0x20 || ch == 0x7f) ? 6 : 1;

		if (o + need + 2 > len)
			break;
		if (need == 2) {
			out[o++] = '\\';
			out[o++] = (char)ch;
		} else if (need == 6) {
			memcpy(out + o, "\\u00", 4);
			out[o + 4] = hex[ch >> 4];
			out[o + 5] = hex[ch & 15];
			o += 6;
		} else {
			out[o++] = (char)ch;
		}
	}
	out[o++] = '"';
	out[o] = '\0';
	return out;
}

int
util_parse_duration(const char *s, long *out)
{
	unsigned long long v, mul;
	char unit;

	if (parse_unit(s, &v, &unit) < 0)
		return -1;
	switch (unit) {
	case '\0': case 's': mul = 1; break;
	case 'm': mul = 60; break;
	case 'h': mul = 3600; break;
	case 'd': mul = 86400; break;
	case 'w': mul = 7 * 86400; break;
	default: return -1;
	}
	if (v > (unsigned long long)LONG_MAX / mul)
		return -1;
	*out = (long)(v * mul);
	return 0;
}

int
util_parse_hostport(const char *s, char *host, size_t hostlen, int *port)
{
	const char *colon, *h, *he;
	char *end;
	long p;

	if (s[0] == '[') {
		he = strchr(s, ']');
		if (he == NULL || he[1] != ':')
			return -1;
		h = s + 1;
		colon = he + 1;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL)
			return -1;
		if (memchr(s, ':', (size_t)(colon - s)) != NULL)
			return -1;      /* bare v6 must be bracketed */
		h = s;
		he = colon;
	}
	if ((size_t)(he - h) >= hostlen)
		return -1;
	errno = 0;
	p = strtol(colon + 1, &end, 10);
	if (colon[1] == '\0' || *end != '\0' || errno || p < 1 || p > 65535)
		return -1;
	memcpy(host, h, (size_t)(he - h));
	host[he - h] = '\0';
	*port = (int)p;
	return 0;
}

const char *
util_sockaddr_ip(const struct sockaddr *sa, char *buf, size_t len)
{
	const void *a;

	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
		/* Show v4-mapped peers as plain v4, as trusted_networks does. */
		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr))
			a = &s6->sin6_addr.s6_addr[12];
		else
			a = &s6->sin6_addr;
		if (inet_ntop(a == &s6->sin6_addr ? AF_INET6 : AF_INET, a, buf, (socklen_t)len) == NULL)
			util_strlcpy(buf, "?", len);
	} else if (sa->sa_family == AF_INET) {
		a = &((const struct sockaddr_in *)sa)->sin_addr;
		if (inet_ntop(AF_INET, a, buf, (socklen_t)len) == NULL)
			util_strlcpy(buf, "?", len);
	} else if (sa->sa_family == AF_UNIX) {
		util_strlcpy(buf, "local", len);
	} else {
		util_strlcpy(buf, "?", len);
	}
	return buf;
}

int
util_sockaddr_port(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
	if (sa->sa_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)sa)->sin_port);
	return 0;
}

const char *
util_addr_domain(const char *addr)
{
	const char *at = strrchr(addr, '@');
	return at ? at + 1 : "";
}

void
util_queue_id(char *buf)
{
	static const char hex[] = "0123456789ABCDEF";
	unsigned char r[QUEUE_ID_LEN / 2];

	if (RAND_bytes(r, sizeof(r)) != 1)
		fatalx("RAND_bytes failed");
	for (size_t i = 0; i < sizeof(r); i++) {
		buf[2 * i] = hex[r[i] >> 4];
		buf[2 * i + 1] = hex[r[i] & 15];
	}
	buf[QUEUE_ID_LEN] = '\0';
}

/* util_queue_id_valid - QUEUE_ID_LEN hex digits */
int
util_queue_id_valid(const char *s)
{
	size_t n = 0;

	for (; s[n]; n++)
		if (!isxdigit((unsigned char)s[n]))
			return 0;
	return n == QUEUE_ID_LEN;
}

time_t
util_now(void)
{
	struct timespec ts;

	/* Not time(): on Linux it reads the coarse clock, which can lag the
	 * precise one by a tick, so a message due at second N by the
	 * scheduler's clock_gettime() would still look early by time(). */
	clock_gettime(CLOCK_REALTIME, &ts);
	return ts.tv_sec;
}

int64_t
util_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
util_rfc5322_date(time_t t, char *buf, size_t len)
{
	struct tm tm;
	static const char *days[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
	static const char *mons[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
	    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	long off;
	char sign;

	/* Names by hand: strftime's %a/%b follow the locale, RFC 5322 does not. */
	localtime_r(&t, &tm);
	off = tm.tm_gmtoff / 60;
	sign = off < 0 ? '-' : '+';
	if (off < 0)
		off = -off;
	snprintf(buf, len, "%s, %d %s %04d %02d:%02d:%02d %c%02ld%02ld",
	    days[tm.tm_wday % 7], tm.tm_mday, mons[tm.tm_mon % 12], tm.tm_year + 1900,
	    tm.tm_hour, tm.tm_min, tm.tm_sec, sign, off / 60, off % 60);
}

char *
util_read_file(const char *path, size_t max, size_t *lenp)
{
	int fd;
	char *buf;
	size_t len = 0;
	ssize_t n;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return NULL;
	buf = xmalloc(max + 1);
	while ((n = read(fd, buf + len, max - len)) > 0) {
		len += (size_t)n;
		if (len == max)
			break;
	}
	if (n < 0 || (len == max && read(fd, &(char){0}, 1) > 0)) {
		int e = n < 0 ? errno : EFBIG;
		close(fd);
		util_wipe(buf, max + 1);
		free(buf);
		errno = e;
		return NULL;
	}
	close(fd);
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
		len--;
	buf[len] = '\0';
	if (lenp)
		*lenp = len;
	return buf;
}

char *
util_b64_encode(const unsigned char *in, size_t len)
{
	char *out = xmalloc(4 * ((len + 2) / 3) + 1);

	EVP_EncodeBlock((unsigned char *)out, in, (int)len);
	return out;
}

int
util_b64_decode(const char *in, unsigned char *out, size_t outlen)
{
	size_t n = strlen(in), pad = 0;
	int r;
	unsigned char *tmp;

	/* EVP_DecodeBlock is lax about padding and white space; check the
	 * alphabet and shape ourselves so malformed SASL gets 501. */
	if (n % 4 != 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)in[i];
		if (c == '=') {
			if (i < n - 2)
				return -1;
			pad++;
		} else if (pad || !(isalnum(c) || c == '+' || c == '/')) {
			return -1;
		}
	}
	if (n / 4 * 3 - pad > outlen)
		return -1;
	if (n == 0)
		return 0;
	tmp = xmalloc(n / 4 * 3 + 1);
	r = EVP_DecodeBlock(tmp, (const unsigned char *)in, (int)n);
	if (r < 0) {
		free(tmp);
		return -1;
	}
	r -= (int)pad;
	memcpy(out, tmp, (size_t)r);
	util_wipe(tmp, n / 4 * 3 + 1);
	free(tmp);
	return r;
}

void
util_seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

void
util_wipe(void *p, size_t n)
{
	OPENSSL_cleanse(p, n);
}
