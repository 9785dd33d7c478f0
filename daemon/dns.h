/*
 * dns - one asynchronous resolver (c-ares) driven by the event loop.
 *
 * `[server] dns_server = ip[:port]` replaces the system resolver, so tests
 * can answer from a local DNS server on loopback. IP literals are answered
 * without a query. Callbacks always run later on the loop, never from
 * inside dns_resolve() or dns_query_*().
 *
 * dns_query_txt/mx/ptr ask for exactly the name given (no search-domain
 * appending) and report one of three outcomes, because DKIM, DMARC and SPF
 * tell a permanent "nothing published" (permerror, none) from a temporary
 * failure (temperror).
 *
 * Results handed to a callback belong to dns.c and are valid only until
 * the callback returns: copy what you keep.
 *
 * dns_free() with lookups pending runs each pending callback once, from
 * inside dns_free(), with DNS_CANCELLED (dns_resolve: ARES_EDESTRUCTION)
 * and no results. Lookups started from such a callback are cancelled too.
 */
#ifndef OUTPOST_DNS_H
#define OUTPOST_DNS_H

#include <stddef.h>
#include <sys/socket.h>

struct event_base;
struct dns;

#define DNS_MAX_ADDRS 8
/* A TXT answer beyond these fails with DNS_TEMPFAIL rather than being cut
 * short: dropping records could hide a second SPF record (RFC 7208 4.5). */
#define DNS_TXT_MAX 64              /* records in one answer */
#define DNS_TXT_BYTES_MAX 16384     /* all records' text together */
/* MX hosts kept (the lowest preferences) and PTR names kept (the first
 * ones; RFC 7208 5.5 itself looks at no more than 10). */
#define DNS_MX_MAX 32
#define DNS_PTR_MAX 10

enum dns_status {
	DNS_OK = 0,
	DNS_NOTFOUND,   /* NXDOMAIN, no records of the type, invalid name */
	DNS_TEMPFAIL,   /* SERVFAIL, REFUSED, timeout, bad or oversized answer */
	DNS_CANCELLED,  /* dns_free() with the lookup pending */
};

/* One TXT record: its character-strings concatenated (RFC 6376 3.6.2.2,
 * RFC 7208 3.3). data[len] is a NUL for convenience, but data may hold
 * NULs itself: use len. */
struct dns_txt {
	const char *data;
	size_t len;
};

/* One MX record. host is "" for a null MX (RFC 7505, target "."). */
struct dns_mx {
	unsigned pref;
	const char *host;
};

/* err 0 on success, else a c-ares status; errstr is readable text. */
typedef void (*dns_addr_fn)(int err, const char *errstr,
    const struct sockaddr_storage *addrs, size_t naddrs, void *arg);
/* st != DNS_OK: n is 0 and errstr says why; else errstr is "". */
typedef void (*dns_txt_fn)(enum dns_status st, const char *errstr,
    const struct dns_txt *txt, size_t n, void *arg);
/* Sorted by preference; equal preferences keep the answer's order. */
typedef void (*dns_mx_fn)(enum dns_status st, const char *errstr,
    const struct dns_mx *mx, size_t n, void *arg);
typedef void (*dns_names_fn)(enum dns_status st, const char *errstr,
    const char *const *names, size_t n, void *arg);

struct dns_opts {
	const char *server;     /* "ip[:port]"; NULL or "" for the system's */
	int timeout_ms;         /* first try, doubled per round; 0: 3000 */
	int tries;              /* 0: 3 */
};

struct dns *dns_new(struct event_base *base, const char *server, char *err, size_t errlen);
/* base NULL: a private loop, driven only by dns_wait() (command-line
 * tools). o NULL: the defaults. */
struct dns *dns_new_opts(struct event_base *base, const struct dns_opts *o,
    char *err, size_t errlen);
void dns_free(struct dns *d);

/* A and AAAA for host, with port filled in. */
void dns_resolve(struct dns *d, const char *host, int port, dns_addr_fn cb, void *arg);
/* TXT records of name, e.g. "sel._domainkey.example.com". */
void dns_query_txt(struct dns *d, const char *name, dns_txt_fn cb, void *arg);
/* MX records of domain. */
void dns_query_mx(struct dns *d, const char *domain, dns_mx_fn cb, void *arg);
/* PTR names of an AF_INET or AF_INET6 address (v4-mapped v6 is asked as
 * IPv4); the port is ignored. */
void dns_query_ptr(struct dns *d, const struct sockaddr_storage *addr,
    dns_names_fn cb, void *arg);

/* Only for a dns made with base NULL: run its loop until no lookup is
 * pending (0) or timeout_ms has passed (-1; the rest stay pending, and
 * dns_free() cancels them). Callbacks run inside dns_wait() and must not
 * dns_free() d there.
 *
 *   d = dns_new_opts(NULL, NULL, err, sizeof(err));
 *   dns_query_txt(d, "_dmarc.example.com", cb, &res);
 *   dns_wait(d, 10000);
 *   dns_free(d);
 */
int dns_wait(struct dns *d, int timeout_ms);

#endif
