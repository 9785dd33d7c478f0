/*
 * test_dns - TXT, MX and PTR lookups against a tiny DNS server on
 * loopback: concatenated TXT strings, the three outcomes (found, not
 * found, temporary), the size limits, truncation to TCP, MX order,
 * reverse names, dns_free() with lookups in flight, dns_wait().
 *
 * The server runs in its own thread with poll(), answering UDP and TCP on
 * one port from the table below; it records the last question it got.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "dns.h"
#include "tap.h"
#include "util.h"

#define T_A 1
#define T_CNAME 5
#define T_PTR 12
#define T_MX 15
#define T_TXT 16

#define RCODE_NOERROR 0
#define RCODE_SERVFAIL 2
#define RCODE_NXDOMAIN 3

#define SRV_RR_MAX 80
#define SRV_UDP_MAX 512             /* no EDNS: larger answers go by TCP */
#define SRV_MSG_MAX 65535
#define SRV_CONN_MAX 4
#define WAIT_MS 3000                /* longest any one lookup may take */

/* One record: TXT "str|str" (one record, its character-strings), MX
 * "pref host", PTR and CNAME "host"; or raw rdata. owner NULL: the
 * question's name. */
struct srv_rr {
	int type;
	const char *owner;
	const char *text;
	const char *raw;
	size_t rawlen;
};

struct srv_zone {
	const char *name;
	int type;
	int rcode;
	int drop;                   /* never answer */
	size_t nrr;
	struct srv_rr rr[SRV_RR_MAX];
};

static char long_txt[400];          /* 255 + 45 bytes in two strings */
static char big_txt[700];           /* a 4096-bit DKIM key's size */
static char fat_txt[520];           /* 40 of these pass DNS_TXT_BYTES_MAX */

static struct srv_zone zones[] = {
	{ "sel._domainkey.example.com", T_TXT, 0, 0, 1,
	    { { T_TXT, NULL, "v=DKIM1; k=rsa; p=MIGfMA0", NULL, 0 } } },
	{ "multi.example.com", T_TXT, 0, 0, 1,
	    { { T_TXT, NULL, "v=spf1 |ip4:192.0.2.0/24 |-all", NULL, 0 } } },
	{ "two.example.com", T_TXT, 0, 0, 2,
	    { { T_TXT, NULL, "first", NULL, 0 }, { T_TXT, NULL, "sec|ond", NULL, 0 } } },
	{ "long.example.com", T_TXT, 0, 0, 1, { { T_TXT, NULL, long_txt, NULL, 0 } } },
	{ "big.example.com", T_TXT, 0, 0, 1, { { T_TXT, NULL, big_txt, NULL, 0 } } },
	{ "nul.example.com", T_TXT, 0, 0, 1,
	    { { T_TXT, NULL, NULL, "\003a\000b\002cd", 7 } } },
	/* a string's length runs past the record's end */
	{ "bad.example.com", T_TXT, 0, 0, 1,
	    { { T_TXT, NULL, NULL, "\003a\000b\002cd", 6 } } },
	{ "empty.example.com", T_TXT, 0, 0, 1, { { T_TXT, NULL, NULL, "\000", 1 } } },
	{ "nodata.example.com", T_TXT, 0, 0, 0, { { 0 } } },
	{ "aonly.example.com", T_TXT, 0, 0, 1, { { T_A, NULL, NULL, "\300\000\002\001", 4 } } },
	{ "servfail.example.com", T_TXT, RCODE_SERVFAIL, 0, 0, { { 0 } } },
	{ "silent.example.com", T_TXT, 0, 1, 0, { { 0 } } },
	{ "many.example.com", T_TXT, 0, 0, 0, { { 0 } } },   /* filled in main */
	{ "fat.example.com", T_TXT, 0, 0, 0, { { 0 } } },    /* filled in main */
	{ "example.com", T_MX, 0, 0, 4, {
	    { T_MX, NULL, "20 mx-b.example.com", NULL, 0 },
	    { T_MX, NULL, "10 mx-a.example.com", NULL, 0 },
	    { T_MX, NULL, "20 mx-c.example.com", NULL, 0 },
	    { T_MX, NULL, "5 mx-0.example.com", NULL, 0 } } },
	{ "nullmx.example.com", T_MX, 0, 0, 1, { { T_MX, NULL, "0 .", NULL, 0 } } },
	{ "1.2.0.192.in-addr.arpa", T_PTR, 0, 0, 2, {
	    { T_PTR, NULL, "mail.example.com", NULL, 0 },
	    { T_PTR, NULL, "alias.example.com", NULL, 0 } } },
	{ "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa",
	    T_PTR, 0, 0, 1, { { T_PTR, NULL, "v6.example.com", NULL, 0 } } },
	/* RFC 2317 classless delegation: a CNAME, then the PTR */
	{ "65.2.0.192.in-addr.arpa", T_PTR, 0, 0, 2, {
	    { T_CNAME, NULL, "65.64-26.2.0.192.in-addr.arpa", NULL, 0 },
	    { T_PTR, "65.64-26.2.0.192.in-addr.arpa", "classless.example.net", NULL, 0 } } },
};

static struct {
	pthread_mutex_t mu;
	char qname[HOST_MAX];
	int qtype;
	int queries;
	int tcp_queries;
} seen = { PTHREAD_MUTEX_INITIALIZER, "", 0, 0, 0 };

static int srv_udp = -1, srv_tcp = -1, srv_port;
static atomic_int srv_stop;

/* put - append n bytes if they fit */
static int
put(unsigned char *b, size_t cap, size_t *off, const void *p, size_t n)
{
	if (*off + n > cap)
		return -1;
	memcpy(b + *off, p, n);
	*off += n;
	return 0;
}

static int
put16(unsigned char *b, size_t cap, size_t *off, unsigned v)
{
	unsigned char x[2] = { (unsigned char)(v >> 8), (unsigned char)v };

	return put(b, cap, off, x, 2);
}

/* put_name - a dotted name as labels, no compression */
static int
put_name(unsigned char *b, size_t cap, size_t *off, const char *name)
{
	const char *p = name, *dot;
	unsigned char len;

	while (*p && strcmp(p, ".") != 0) {
		dot = strchr(p, '.');
		len = (unsigned char)(dot ? (size_t)(dot - p) : strlen(p));
		if (put(b, cap, off, &len, 1) || put(b, cap, off, p, len))
			return -1;
		p += len + (dot ? 1 : 0);
	}
	return put(b, cap, off, "", 1);
}

/* put_rdata - rdata of one record from its text form */
static int
put_rdata(unsigned char *b, size_t cap, size_t *off, const struct srv_rr *rr)
{
	const char *p, *bar;
	unsigned char len;
	char *end;
	unsigned long pref;

	if (rr->raw)
		return put(b, cap, off, rr->raw, rr->rawlen);
	switch (rr->type) {
	case T_TXT:
		for (p = rr->text;; p = bar + 1) {
			bar = strchr(p, '|');
			len = (unsigned char)(bar ? (size_t)(bar - p) : strlen(p));
			if (put(b, cap, off, &len, 1) || put(b, cap, off, p, len))
				return -1;
			if (bar == NULL)
				return 0;
		}
	case T_MX:
		pref = strtoul(rr->text, &end, 10);
		return put16(b, cap, off, (unsigned)pref) || put_name(b, cap, off, end + 1);
	default:
		return put_name(b, cap, off, rr->text);
	}
}

/* srv_answer - reply to one query into out; 0 none, -1 drop */
static size_t
srv_answer(const unsigned char *q, size_t qlen, unsigned char *out, size_t cap)
{
	char name[HOST_MAX];
	size_t off = 12, nlen = 0, qend, o = 0, i, rdlen_at;
	int qtype;
	const struct srv_zone *z = NULL;

	if (qlen < 12 || q[4] != 0 || q[5] != 1)
		return 0;
	while (off < qlen && q[off] != 0) {
		size_t l = q[off];

		if (l > 63 || off + 1 + l > qlen || nlen + l + 1 >= sizeof(name))
			return 0;
		if (nlen)
			name[nlen++] = '.';
		memcpy(name + nlen, q + off + 1, l);
		nlen += l;
		off += 1 + l;
	}
	name[nlen] = '\0';
	if (off + 5 > qlen)
		return 0;
	qtype = q[off + 1] << 8 | q[off + 2];
	qend = off + 5;
	pthread_mutex_lock(&seen.mu);
	util_strlcpy(seen.qname, name, sizeof(seen.qname));
	seen.qtype = qtype;
	seen.queries++;
	pthread_mutex_unlock(&seen.mu);

	for (i = 0; i < ARRAY_LEN(zones); i++)
		if (strcasecmp(zones[i].name, name) == 0 &&
		    (zones[i].type == qtype || zones[i].rr[0].type == T_CNAME))
			z = &zones[i];
	if (z && z->drop)
		return 0;
	if (put(out, cap, &o, q, 2) ||
	    put16(out, cap, &o, 0x8000 | (q[2] & 1) << 8 | 0x80 |
	    (z ? (unsigned)z->rcode : RCODE_NXDOMAIN)) ||
	    put16(out, cap, &o, 1) || put16(out, cap, &o, z ? (unsigned)z->nrr : 0) ||
	    put16(out, cap, &o, 0) || put16(out, cap, &o, 0) ||
	    put(out, cap, &o, q + 12, qend - 12))
		return 0;
	for (i = 0; z && i < z->nrr; i++) {
		const struct srv_rr *rr = &z->rr[i];

		if ((rr->owner ? put_name(out, cap, &o, rr->owner) : put16(out, cap, &o, 0xc00c)) ||
		    put16(out, cap, &o, (unsigned)rr->type) || put16(out, cap, &o, 1) ||
		    put16(out, cap, &o, 0) || put16(out, cap, &o, 300))
			return 0;
		rdlen_at = o;
		if (put16(out, cap, &o, 0) || put_rdata(out, cap, &o, rr))
			return 0;
		out[rdlen_at] = (unsigned char)((o - rdlen_at - 2) >> 8);
		out[rdlen_at + 1] = (unsigned char)(o - rdlen_at - 2);
	}
	return o;
}

/* srv_udp_read - one datagram; answers too long for UDP are cut to the
 * question with TC set, so the client asks again over TCP */
static void
srv_udp_read(void)
{
	unsigned char q[SRV_UDP_MAX], *a = malloc(SRV_MSG_MAX);
	struct sockaddr_storage from;
	socklen_t fromlen = sizeof(from);
	ssize_t n;
	size_t alen;

	n = recvfrom(srv_udp, q, sizeof(q), 0, (struct sockaddr *)&from, &fromlen);
	if (n > 0 && a && (alen = srv_answer(q, (size_t)n, a, SRV_MSG_MAX)) > 0) {
		if (alen > SRV_UDP_MAX) {
			size_t qend = 12;

			while (qend < alen && a[qend] != 0)
				qend += 1u + a[qend];
			alen = qend + 5;
			a[2] |= 0x02;                   /* TC */
			a[6] = a[7] = 0;                /* ANCOUNT 0 */
		}
		(void)sendto(srv_udp, a, alen, 0, (struct sockaddr *)&from, fromlen);
	}
	free(a);
}

/* srv_tcp_serve - length-prefixed queries on one connection until EOF */
static void
srv_tcp_serve(int fd)
{
	unsigned char q[2 + SRV_UDP_MAX], *a = malloc(2 + SRV_MSG_MAX);
	size_t have = 0, need, alen;
	ssize_t n;
	struct pollfd p = { fd, POLLIN, 0 };

	while (a && !atomic_load(&srv_stop) && poll(&p, 1, WAIT_MS) == 1) {
		n = read(fd, q + have, sizeof(q) - have);
		if (n <= 0)
			break;
		have += (size_t)n;
		if (have < 2 || have < 2 + (need = (size_t)(q[0] << 8 | q[1])))
			continue;
		pthread_mutex_lock(&seen.mu);
		seen.tcp_queries++;
		pthread_mutex_unlock(&seen.mu);
		alen = srv_answer(q + 2, need, a + 2, SRV_MSG_MAX);
		if (alen == 0)
			break;
		a[0] = (unsigned char)(alen >> 8);
		a[1] = (unsigned char)alen;
		if (write(fd, a, alen + 2) != (ssize_t)(alen + 2))
			break;
		have = 0;
	}
	free(a);
}

/* srv_main - the server thread: poll UDP and the TCP listener */
static void *
srv_main(void *arg)
{
	struct pollfd p[2] = { { srv_udp, POLLIN, 0 }, { srv_tcp, POLLIN, 0 } };
	int fd;

	while (!atomic_load(&srv_stop)) {
		if (poll(p, 2, 50) <= 0)
			continue;
		if (p[0].revents & POLLIN)
			srv_udp_read();
		if ((p[1].revents & POLLIN) && (fd = accept(srv_tcp, NULL, NULL)) >= 0) {
			srv_tcp_serve(fd);          /* one at a time is enough here */
			close(fd);
		}
	}
	return NULL;
}

/* srv_start - UDP and TCP on one loopback port, as c-ares uses both */
static int
srv_start(pthread_t *th)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	int i, one = 1;

	for (i = 0; i < 20; i++) {
		memset(&sin, 0, sizeof(sin));
		sin.sin_family = AF_INET;
		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		srv_udp = socket(AF_INET, SOCK_DGRAM, 0);
		srv_tcp = socket(AF_INET, SOCK_STREAM, 0);
		if (srv_udp < 0 || srv_tcp < 0)
			return -1;
		setsockopt(srv_tcp, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(srv_udp, (struct sockaddr *)&sin, sizeof(sin)) == 0 &&
		    getsockname(srv_udp, (struct sockaddr *)&sin, &len) == 0 &&
		    bind(srv_tcp, (struct sockaddr *)&sin, sizeof(sin)) == 0 &&
		    listen(srv_tcp, 4) == 0) {
			srv_port = ntohs(sin.sin_port);
			return pthread_create(th, NULL, srv_main, NULL) == 0 ? 0 : -1;
		}
		close(srv_udp);
		close(srv_tcp);
	}
	return -1;
}

/* seen_q - the last question's name and type, and how many came */
static int
seen_q(char *name, size_t len, int *type)
{
	int n;

	pthread_mutex_lock(&seen.mu);
	util_strlcpy(name, seen.qname, len);
	*type = seen.qtype;
	n = seen.queries;
	pthread_mutex_unlock(&seen.mu);
	return n;
}

/* What a callback got, copied. */
#define RES_MAX 8
struct res {
	int called;
	int inside;                 /* set while dns_query_* runs */
	int reentered;
	enum dns_status st;
	char errstr[128];
	size_t n;
	char data[RES_MAX][DNS_TXT_BYTES_MAX / 16];
	size_t len[RES_MAX];
	unsigned pref[RES_MAX];
};

static void
res_txt(enum dns_status st, const char *errstr, const struct dns_txt *txt,
    size_t n, void *arg)
{
	struct res *r = arg;

	r->called++;
	r->reentered |= r->inside;
	r->st = st;
	util_strlcpy(r->errstr, errstr, sizeof(r->errstr));
	r->n = n;
	for (size_t i = 0; i < n && i < RES_MAX; i++) {
		r->len[i] = txt[i].len;
		memcpy(r->data[i], txt[i].data,
		    txt[i].len < sizeof(r->data[i]) ? txt[i].len + 1 : sizeof(r->data[i]));
	}
}

static void
res_mx(enum dns_status st, const char *errstr, const struct dns_mx *mx,
    size_t n, void *arg)
{
	struct res *r = arg;

	r->called++;
	r->reentered |= r->inside;
	r->st = st;
	util_strlcpy(r->errstr, errstr, sizeof(r->errstr));
	r->n = n;
	for (size_t i = 0; i < n && i < RES_MAX; i++) {
		r->pref[i] = mx[i].pref;
		util_strlcpy(r->data[i], mx[i].host, sizeof(r->data[i]));
	}
}

static void
res_names(enum dns_status st, const char *errstr, const char *const *names,
    size_t n, void *arg)
{
	struct res *r = arg;

	r->called++;
	r->reentered |= r->inside;
	r->st = st;
	util_strlcpy(r->errstr, errstr, sizeof(r->errstr));
	r->n = n;
	for (size_t i = 0; i < n && i < RES_MAX; i++)
		util_strlcpy(r->data[i], names[i], sizeof(r->data[i]));
}

static void
wake_cb(evutil_socket_t fd, short what, void *arg)
{
}

/* run_until - the loop until *flag, at most ms; returns the ms taken */
static int64_t
run_until(struct event_base *base, const int *flag, int ms)
{
	int64_t start = util_mono_ms();
	struct event *wake = evtimer_new(base, wake_cb, NULL);
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	int rounds = 0;

	evtimer_add(wake, &tv);
	while (!*flag && util_mono_ms() - start < ms && rounds++ < 10000)
		event_base_loop(base, EVLOOP_ONCE);
	event_free(wake);
	return util_mono_ms() - start;
}

static struct event_base *base;
static struct dns *dns;

/* txt - one TXT lookup, run to its callback */
static void
txt(const char *name, struct res *r)
{
	memset(r, 0, sizeof(*r));
	r->inside = 1;
	dns_query_txt(dns, name, res_txt, r);
	r->inside = 0;
	ok(r->called == 0, "%s: no callback inside dns_query_txt", name);
	run_until(base, &r->called, WAIT_MS);
	ok(r->called == 1 && !r->reentered, "%s: one callback, on the loop", name);
}

static void
test_txt(void)
{
	struct res r;
	char q[HOST_MAX];
	int type;

	txt("sel._domainkey.example.com", &r);
	is_int(r.st, DNS_OK, "single string: ok");
	is_str(r.errstr, "", "single string: no error text");
	is_int(r.n, 1, "single string: one record");
	is_str(r.data[0], "v=DKIM1; k=rsa; p=MIGfMA0", "single string: text");
	is_int(r.len[0], 25, "single string: len");
	seen_q(q, sizeof(q), &type);
	is_str(q, "sel._domainkey.example.com", "asked for the name as given, no search domain");
	is_int(type, T_TXT, "asked for TXT");

	txt("multi.example.com", &r);
	is_int(r.st, DNS_OK, "multi-string: ok");
	is_int(r.n, 1, "multi-string: one record");
	is_str(r.data[0], "v=spf1 ip4:192.0.2.0/24 -all", "multi-string: concatenated, nothing between");

	txt("two.example.com", &r);
	is_int(r.st, DNS_OK, "two records: ok");
	is_int(r.n, 2, "two records: two");
	is_str(r.data[0], "first", "two records: first");
	is_str(r.data[1], "second", "two records: second, its strings joined");

	txt("long.example.com", &r);
	is_int(r.st, DNS_OK, "300 bytes: ok");
	is_int(r.n, 1, "300 bytes: one record");
	is_int(r.len[0], 300, "300 bytes: 255 + 45 joined");
	ok(memcmp(r.data[0], long_txt, 255) == 0 &&
	    memcmp(r.data[0] + 255, long_txt + 256, 45) == 0, "300 bytes: content");

	txt("big.example.com", &r);
	is_int(r.st, DNS_OK, "truncated UDP answer: ok over TCP");
	is_int(r.len[0], 600, "truncated UDP answer: 600 bytes");
	pthread_mutex_lock(&seen.mu);
	ok(seen.tcp_queries > 0, "truncated UDP answer: asked again over TCP");
	pthread_mutex_unlock(&seen.mu);

	txt("nul.example.com", &r);
	is_int(r.st, DNS_OK, "NUL inside: ok");
	is_int(r.len[0], 5, "NUL inside: len counts past it");
	ok(memcmp(r.data[0], "a\0bcd", 6) == 0, "NUL inside: bytes and final NUL");

	txt("empty.example.com", &r);
	is_int(r.st, DNS_OK, "one empty string: ok");
	is_int(r.n, 1, "one empty string: one record");
	is_int(r.len[0], 0, "one empty string: len 0");
}

static void
test_txt_fail(void)
{
	struct res r;
	int64_t ms;
	char label[80];

	txt("nxdomain.example.com", &r);
	is_int(r.st, DNS_NOTFOUND, "NXDOMAIN: not found");
	ok(r.errstr[0] != '\0', "NXDOMAIN: error text (%s)", r.errstr);
	is_int(r.n, 0, "NXDOMAIN: no records");

	txt("nodata.example.com", &r);
	is_int(r.st, DNS_NOTFOUND, "NOERROR, no answer: not found");

	txt("aonly.example.com", &r);
	is_int(r.st, DNS_NOTFOUND, "NOERROR, only an A record: not found");

	txt("bad.example.com", &r);
	is_int(r.st, DNS_TEMPFAIL, "malformed TXT rdata: temporary");
	is_int(r.n, 0, "malformed TXT rdata: no records");

	txt("servfail.example.com", &r);
	is_int(r.st, DNS_TEMPFAIL, "SERVFAIL: temporary");

	memset(&r, 0, sizeof(r));
	dns_query_txt(dns, "silent.example.com", res_txt, &r);
	ms = run_until(base, &r.called, WAIT_MS);
	is_int(r.called, 1, "no reply: callback");
	is_int(r.st, DNS_TEMPFAIL, "no reply: temporary");
	ok(ms >= 250 && ms < 2000, "no reply: after the short timeouts (%lld ms)", (long long)ms);

	txt("many.example.com", &r);
	is_int(r.st, DNS_TEMPFAIL, "more than DNS_TXT_MAX records: temporary, not cut short");
	is_int(r.n, 0, "more than DNS_TXT_MAX records: none handed out");
	ok(strstr(r.errstr, "records") != NULL, "more than DNS_TXT_MAX records: says so (%s)", r.errstr);

	txt("fat.example.com", &r);
	is_int(r.st, DNS_TEMPFAIL, "more than DNS_TXT_BYTES_MAX: temporary");
	ok(strstr(r.errstr, "bytes") != NULL, "more than DNS_TXT_BYTES_MAX: says so (%s)", r.errstr);

	txt("", &r);
	is_int(r.st, DNS_NOTFOUND, "empty name: not found, later");
	memset(label, 'x', 70);
	memcpy(label + 70, ".test", 6);
	txt(label, &r);
	is_int(r.st, DNS_NOTFOUND, "70-byte label: not found, later");
}

static void
test_mx(void)
{
	struct res r;
	char q[HOST_MAX];
	int type;

	memset(&r, 0, sizeof(r));
	r.inside = 1;
	dns_query_mx(dns, "example.com", res_mx, &r);
	r.inside = 0;
	run_until(base, &r.called, WAIT_MS);
	ok(r.called == 1 && !r.reentered, "mx: one callback, on the loop");
	is_int(r.st, DNS_OK, "mx: ok");
	seen_q(q, sizeof(q), &type);
	is_int(type, T_MX, "mx: asked for MX");
	is_int(r.n, 4, "mx: four");
	is_int(r.pref[0], 5, "mx: 5 first");
	is_str(r.data[0], "mx-0.example.com", "mx: its host");
	is_int(r.pref[1], 10, "mx: then 10");
	is_str(r.data[1], "mx-a.example.com", "mx: its host");
	is_str(r.data[2], "mx-b.example.com", "mx: equal preferences keep the answer's order");
	is_str(r.data[3], "mx-c.example.com", "mx: ... both of them");

	memset(&r, 0, sizeof(r));
	dns_query_mx(dns, "nullmx.example.com", res_mx, &r);
	run_until(base, &r.called, WAIT_MS);
	is_int(r.st, DNS_OK, "null MX: ok");
	ok(r.n == 1 && r.pref[0] == 0 && r.data[0][0] == '\0', "null MX: preference 0, host \"\"");

	memset(&r, 0, sizeof(r));
	dns_query_mx(dns, "nomx.example.com", res_mx, &r);
	run_until(base, &r.called, WAIT_MS);
	is_int(r.st, DNS_NOTFOUND, "mx of NXDOMAIN: not found");
}

/* ptr - a PTR lookup for ip; checks the question's name */
static void
ptr(const char *ip, const char *rev, struct res *r)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	char q[HOST_MAX];
	int type;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, ip, &sin->sin_addr) == 1)
		ss.ss_family = AF_INET;
	else if (inet_pton(AF_INET6, ip, &sin6->sin6_addr) == 1)
		ss.ss_family = AF_INET6;
	memset(r, 0, sizeof(*r));
	r->inside = 1;
	dns_query_ptr(dns, &ss, res_names, r);
	r->inside = 0;
	run_until(base, &r->called, WAIT_MS);
	ok(r->called == 1 && !r->reentered, "ptr %s: one callback, on the loop", ip);
	seen_q(q, sizeof(q), &type);
	is_str(q, rev, "ptr %s: the reverse name asked", ip);
	is_int(type, T_PTR, "ptr %s: asked for PTR", ip);
}

static void
test_ptr(void)
{
	struct res r;
	struct sockaddr_storage ss;

	ptr("192.0.2.1", "1.2.0.192.in-addr.arpa", &r);
	is_int(r.st, DNS_OK, "ptr v4: ok");
	is_int(r.n, 2, "ptr v4: both names");
	is_str(r.data[0], "mail.example.com", "ptr v4: first, in answer order");
	is_str(r.data[1], "alias.example.com", "ptr v4: second");

	ptr("2001:db8::1",
	    "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa", &r);
	is_int(r.st, DNS_OK, "ptr v6: ok");
	is_int(r.n, 1, "ptr v6: one name");
	is_str(r.data[0], "v6.example.com", "ptr v6: the name");

	ptr("::ffff:192.0.2.1", "1.2.0.192.in-addr.arpa", &r);
	is_int(r.st, DNS_OK, "ptr v4-mapped: asked as IPv4");

	ptr("192.0.2.65", "65.2.0.192.in-addr.arpa", &r);
	is_int(r.st, DNS_OK, "ptr via CNAME (RFC 2317): ok");
	is_str(r.data[0], "classless.example.net", "ptr via CNAME: the name");

	ptr("192.0.2.99", "99.2.0.192.in-addr.arpa", &r);
	is_int(r.st, DNS_NOTFOUND, "ptr NXDOMAIN: not found");

	memset(&ss, 0, sizeof(ss));
	ss.ss_family = AF_UNIX;
	memset(&r, 0, sizeof(r));
	dns_query_ptr(dns, &ss, res_names, &r);
	ok(r.called == 0, "ptr AF_UNIX: no callback inside the call");
	run_until(base, &r.called, WAIT_MS);
	is_int(r.st, DNS_NOTFOUND, "ptr AF_UNIX: not found");
}

/* A callback that starts another lookup from inside dns_free(). */
struct res_again {
	struct res r;
	struct dns *d;
};
static struct res again;

static void
res_txt_again(enum dns_status st, const char *errstr, const struct dns_txt *t,
    size_t n, void *arg)
{
	struct res_again *ra = arg;

	res_txt(st, errstr, t, n, &ra->r);
	dns_query_txt(ra->d, "sel._domainkey.example.com", res_txt, &again);
}

static void
test_free_in_flight(void)
{
	struct res_again inflight;
	struct res sched, mx;
	struct dns_opts o = { .timeout_ms = 2000, .tries = 1 };
	char srv[32], err[128];
	char q[HOST_MAX];
	int type, before, flag = 0;

	snprintf(srv, sizeof(srv), "127.0.0.1:%d", srv_port);
	o.server = srv;
	inflight.d = dns_new_opts(base, &o, err, sizeof(err));
	ok(inflight.d != NULL, "free: second resolver (%s)", inflight.d ? "" : err);
	if (inflight.d == NULL)
		return;
	memset(&inflight.r, 0, sizeof(inflight.r));
	memset(&sched, 0, sizeof(sched));
	memset(&mx, 0, sizeof(mx));
	memset(&again, 0, sizeof(again));
	before = seen_q(q, sizeof(q), &type);
	dns_query_txt(inflight.d, "silent.example.com", res_txt_again, &inflight);
	dns_query_mx(inflight.d, "example.com", res_mx, &mx);
	/* let both questions reach the server */
	for (int i = 0; i < 100 && seen_q(q, sizeof(q), &type) < before + 2; i++)
		run_until(base, &flag, 10);
	dns_query_txt(inflight.d, "", res_txt, &sched);    /* failed, not delivered */
	dns_free(inflight.d);
	is_int(inflight.r.called, 1, "free: the silent lookup's callback ran once");
	is_int(inflight.r.st, DNS_CANCELLED, "free: ... cancelled");
	is_int(inflight.r.n, 0, "free: ... no records");
	is_int(sched.called, 1, "free: the undelivered failure's callback ran once");
	is_int(sched.st, DNS_CANCELLED, "free: ... cancelled");
	ok(mx.called == 1 && (mx.st == DNS_CANCELLED || mx.st == DNS_OK),
	    "free: the answered-or-not MX lookup's callback ran once");
	is_int(again.called, 1, "free: a lookup started from a cancelled callback is cancelled too");
	is_int(again.st, DNS_CANCELLED, "free: ... with DNS_CANCELLED");
	run_until(base, &flag, 50);
	ok(inflight.r.called == 1 && sched.called == 1 && mx.called == 1 && again.called == 1,
	    "free: nothing runs later on the loop");
}

static void
test_wait(void)
{
	struct dns_opts o = { .timeout_ms = 2000, .tries = 1 };
	char srv[32], err[128];
	struct dns *d;
	struct res r, r2;
	int64_t start;

	snprintf(srv, sizeof(srv), "127.0.0.1:%d", srv_port);
	o.server = srv;
	d = dns_new_opts(NULL, &o, err, sizeof(err));
	ok(d != NULL, "wait: private loop (%s)", d ? "" : err);
	if (d == NULL)
		return;
	memset(&r, 0, sizeof(r));
	memset(&r2, 0, sizeof(r2));
	dns_query_txt(d, "two.example.com", res_txt, &r);
	dns_query_mx(d, "example.com", res_mx, &r2);
	is_int(dns_wait(d, WAIT_MS), 0, "wait: both answered");
	ok(r.called == 1 && r.st == DNS_OK && r.n == 2, "wait: TXT");
	ok(r2.called == 1 && r2.st == DNS_OK && r2.n == 4, "wait: MX");

	memset(&r, 0, sizeof(r));
	dns_query_txt(d, "silent.example.com", res_txt, &r);
	start = util_mono_ms();
	is_int(dns_wait(d, 200), -1, "wait: deadline before the answer");
	ok(util_mono_ms() - start < 1000, "wait: returns at the deadline");
	is_int(r.called, 0, "wait: lookup still pending");
	dns_free(d);
	is_int(r.called, 1, "wait: dns_free cancels it");
	is_int(r.st, DNS_CANCELLED, "wait: ... DNS_CANCELLED");

	is_int(dns_wait(dns, 10), -1, "wait: refused on a shared loop");
}

/* zones_fill - the records built at run time */
static void
zones_fill(void)
{
	static char strs[70][24];
	struct srv_zone *many = NULL, *fat = NULL;
	size_t i;

	memset(long_txt, 'a', 255);
	long_txt[255] = '|';
	memset(long_txt + 256, 'b', 45);
	for (i = 0; i < 600; i++)
		big_txt[i + i / 200] = (char)('A' + i % 26);
	big_txt[200] = big_txt[401] = '|';
	memset(fat_txt, 'f', 500);
	fat_txt[250] = '|';
	for (i = 0; i < ARRAY_LEN(zones); i++) {
		if (strcmp(zones[i].name, "many.example.com") == 0)
			many = &zones[i];
		if (strcmp(zones[i].name, "fat.example.com") == 0)
			fat = &zones[i];
	}
	many->nrr = DNS_TXT_MAX + 1;
	for (i = 0; i < many->nrr; i++) {
		snprintf(strs[i], sizeof(strs[i]), "r%zu", i);
		many->rr[i] = (struct srv_rr){ T_TXT, NULL, strs[i], NULL, 0 };
	}
	fat->nrr = DNS_TXT_BYTES_MAX / 499 + 1;
	for (i = 0; i < fat->nrr; i++)
		fat->rr[i] = (struct srv_rr){ T_TXT, NULL, fat_txt, NULL, 0 };
}

int
main(void)
{
	pthread_t th;
	struct dns_opts o = { .timeout_ms = 100, .tries = 2 };
	char srv[32], err[128];
	int64_t start = util_mono_ms();

	zones_fill();
	if (srv_start(&th) != 0) {
		ok(0, "test DNS server on loopback");
		return done();
	}
	snprintf(srv, sizeof(srv), "127.0.0.1:%d", srv_port);
	o.server = srv;
	base = event_base_new();
	dns = dns_new_opts(base, &o, err, sizeof(err));
	ok(dns != NULL, "dns_new_opts %s (%s)", srv, dns ? "" : err);
	if (dns) {
		test_txt();
		test_txt_fail();
		test_mx();
		test_ptr();
		test_free_in_flight();
		test_wait();
		dns_free(dns);
	}
	event_base_free(base);
	atomic_store(&srv_stop, 1);
	pthread_join(th, NULL);
	close(srv_udp);
	close(srv_tcp);
	ok(util_mono_ms() - start < 10000, "all under 10 s (%lld ms)",
	    (long long)(util_mono_ms() - start));
	return done();
}
