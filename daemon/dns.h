/*
 * dns - one asynchronous resolver (c-ares) driven by the event loop.
 *
 * `[server] dns_server = ip[:port]` replaces the system resolver, so tests
 * can answer from a local DNS server on loopback. IP literals are answered
 * without a query. Callbacks always run later on the loop, never from
 * inside dns_resolve().
 */
#ifndef OUTPOST_DNS_H
#define OUTPOST_DNS_H

#include <stddef.h>
#include <sys/socket.h>

struct event_base;
struct dns;

#define DNS_MAX_ADDRS 8

/* err 0 on success, else a c-ares status; errstr is readable text. */
typedef void (*dns_addr_fn)(int err, const char *errstr,
    const struct sockaddr_storage *addrs, size_t naddrs, void *arg);

struct dns *dns_new(struct event_base *base, const char *server, char *err, size_t errlen);
void dns_free(struct dns *d);
/* A and AAAA for host, with port filled in. */
void dns_resolve(struct dns *d, const char *host, int port, dns_addr_fn cb, void *arg);

#endif
