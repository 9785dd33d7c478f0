/*
 * test_util - sizes, durations, host:port, base64, bounded strings,
 * queue ids, log escaping.
 */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "tap.h"
#include "util.h"

static void
test_sizes(void)
{
	static const struct { const char *in; int rc; size_t want; } t[] = {
		{ "25M", 0, 25u * 1024 * 1024 }, { "512k", 0, 512 * 1024 },
		{ "1048576", 0, 1048576 }, { "2G", 0, 2ull * 1024 * 1024 * 1024 },
		{ " 10 ", 0, 10 }, { "10b", 0, 10 }, { "", -1, 0 }, { "M", -1, 0 },
		{ "10x", -1, 0 }, { "-1", -1, 0 }, { "1 2", -1, 0 },
		{ "99999999999999999999999", -1, 0 }, { "18446744073709551615G", -1, 0 },
	};
	for (size_t i = 0; i < ARRAY_LEN(t); i++) {
		size_t v = 0;
		int rc = util_parse_size(t[i].in, &v);
		is_int(rc, t[i].rc, "parse_size('%s') rc", t[i].in);
		if (t[i].rc == 0)
			is_int((long long)v, (long long)t[i].want, "parse_size('%s') value", t[i].in);
	}
}

static void
test_durations(void)
{
	static const struct { const char *in; int rc; long want; } t[] = {
		{ "30s", 0, 30 }, { "5m", 0, 300 }, { "1h", 0, 3600 }, { "5d", 0, 432000 },
		{ "90", 0, 90 }, { "2w", 0, 1209600 }, { "1y", -1, 0 }, { "m5", -1, 0 },
		{ "", -1, 0 }, { "1.5h", -1, 0 },
	};
	for (size_t i = 0; i < ARRAY_LEN(t); i++) {
		long v = 0;
		int rc = util_parse_duration(t[i].in, &v);
		is_int(rc, t[i].rc, "parse_duration('%s') rc", t[i].in);
		if (t[i].rc == 0)
			is_int(v, t[i].want, "parse_duration('%s') value", t[i].in);
	}
}

static void
test_hostport(void)
{
	static const struct { const char *in; int rc; const char *host; int port; } t[] = {
		{ "127.0.0.1:2587", 0, "127.0.0.1", 2587 },
		{ "[::1]:587", 0, "::1", 587 },
		{ "smtp.example.com:25", 0, "smtp.example.com", 25 },
		{ "*:587", 0, "*", 587 },
		{ ":587", 0, "", 587 },
		{ "::1:587", -1, NULL, 0 },        /* v6 must be bracketed */
		{ "host", -1, NULL, 0 },
		{ "host:0", -1, NULL, 0 },
		{ "host:65536", -1, NULL, 0 },
		{ "host:25x", -1, NULL, 0 },
		{ "[::1]587", -1, NULL, 0 },
		{ "host:", -1, NULL, 0 },
	};
	for (size_t i = 0; i < ARRAY_LEN(t); i++) {
		char host[HOST_MAX];
		int port = 0;
		int rc = util_parse_hostport(t[i].in, host, sizeof(host), &port);
		is_int(rc, t[i].rc, "parse_hostport('%s') rc", t[i].in);
		if (t[i].rc == 0) {
			is_str(host, t[i].host, "parse_hostport('%s') host", t[i].in);
			is_int(port, t[i].port, "parse_hostport('%s') port", t[i].in);
		}
	}
	{
		char small[4];
		int port;
		is_int(util_parse_hostport("longhost:25", small, sizeof(small), &port), -1,
		    "parse_hostport refuses a host that does not fit");
	}
}

static void
test_b64(void)
{
	unsigned char out[64];
	char *e;
	int n;

	e = util_b64_encode((const unsigned char *)"\0alice\0secret", 13);
	is_str(e, "AGFsaWNlAHNlY3JldA==", "b64 encode with NULs");
	n = util_b64_decode(e, out, sizeof(out));
	is_int(n, 13, "b64 decode length");
	ok(n == 13 && memcmp(out, "\0alice\0secret", 13) == 0, "b64 round trip");
	free(e);
	is_int(util_b64_decode("", out, sizeof(out)), 0, "empty decodes to nothing");
	is_int(util_b64_decode("abc", out, sizeof(out)), -1, "length not a multiple of 4");
	is_int(util_b64_decode("ab=c", out, sizeof(out)), -1, "padding in the middle");
	is_int(util_b64_decode("a===", out, sizeof(out)), -1, "three padding characters");
	is_int(util_b64_decode("ab c", out, sizeof(out)), -1, "space inside");
	is_int(util_b64_decode("ab\r\n", out, sizeof(out)), -1, "CRLF inside");
	is_int(util_b64_decode("YWJjZGVm", out, 5), -1, "output too small");
	is_int(util_b64_decode("YQ==", out, sizeof(out)), 1, "one byte");
}

static void
test_strings(void)
{
	char buf[8];
	char t[] = "  \tpadded \r\n";

	is_int((long long)util_strlcpy(buf, "0123456789", sizeof(buf)), 10, "strlcpy returns source length");
	is_str(buf, "0123456", "strlcpy truncates and terminates");
	util_strlcpy(buf, "ab", sizeof(buf));
	util_strlcat(buf, "cdefghij", sizeof(buf));
	is_str(buf, "abcdefg", "strlcat truncates");
	is_str(util_strtrim(t), "padded", "strtrim");
	ok(util_strcaseeq("Example.COM", "example.com"), "strcaseeq ignores case");
	ok(!util_strcaseeq("example.co", "example.com"), "strcaseeq needs equal length");
	ok(util_strncaseprefix("AUTH PLAIN", "auth "), "strncaseprefix");
	ok(!util_strncaseprefix("AU", "auth"), "strncaseprefix on a short string");
	is_str(util_addr_domain("a@b@example.org"), "example.org", "domain after the last @");
	is_str(util_addr_domain("postmaster"), "", "no domain");
}

static void
test_queue_id(void)
{
	char a[QUEUE_ID_LEN + 1], b[QUEUE_ID_LEN + 1];

	util_queue_id(a);
	util_queue_id(b);
	is_int((long long)strlen(a), QUEUE_ID_LEN, "queue id length");
	ok(strspn(a, "0123456789ABCDEF") == QUEUE_ID_LEN, "queue id is upper-case hex");
	ok(strcmp(a, b) != 0, "two queue ids differ");
}

static void
test_log_esc(void)
{
	char buf[64];

	is_str(log_esc("ok text", buf, sizeof(buf)), "ok text", "printable kept");
	is_str(log_esc("a\r\nX:1", buf, sizeof(buf)), "a\\x0d\\x0aX:1", "CR LF escaped");
	is_str(log_escn("a\0b", 3, buf, sizeof(buf)), "a\\x00b", "NUL escaped");
	is_str(log_esc("back\\slash", buf, sizeof(buf)), "back\\x5cslash", "backslash escaped");
	is_str(log_esc("\x01\x02\x03\x04", buf, 9), "\\x01\\x02", "truncation never splits an escape");
}

static void
test_sockaddr(void)
{
	struct sockaddr_in6 s6;
	char ip[IP_STR_MAX];

	memset(&s6, 0, sizeof(s6));
	s6.sin6_family = AF_INET6;
	s6.sin6_port = htons(2587);
	inet_pton(AF_INET6, "::ffff:192.0.2.7", &s6.sin6_addr);
	is_str(util_sockaddr_ip((struct sockaddr *)&s6, ip, sizeof(ip)), "192.0.2.7",
	    "v4-mapped shown as v4");
	is_int(util_sockaddr_port((struct sockaddr *)&s6), 2587, "port");
	inet_pton(AF_INET6, "2001:db8::1", &s6.sin6_addr);
	is_str(util_sockaddr_ip((struct sockaddr *)&s6, ip, sizeof(ip)), "2001:db8::1", "v6");
}

int
main(void)
{
	test_sizes();
	test_durations();
	test_hostport();
	test_b64();
	test_strings();
	test_queue_id();
	test_log_esc();
	test_sockaddr();
	return done();
}
