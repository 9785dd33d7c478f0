/*
 * dns - c-ares on the libevent loop. See dns.h.
 *
 * c-ares tells us which sockets it wants watched through its socket-state
 * callback; each gets one persistent libevent event whose read/write
 * interest follows what c-ares asks for. One timer, re-armed from
 * ares_timeout() after every call into c-ares, drives retransmissions.
 *
 * Every lookup is a dns_query, kept in a list until its callback has run.
 * Results are copied out of c-ares at once and handed to the caller from
 * a zero-timeout event, so callbacks never run inside dns_resolve() (c-ares
 * may answer from /etc/hosts or fail synchronously). IP literals never
 * reach c-ares. dns_free() fails everything still pending with
 * ARES_EDESTRUCTION.
 *
 * Input trusted: host names come from the configuration; answers from the
 * resolver are only copied as socket addresses.
 */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ares.h>
#include <event2/event.h>

#include "dns.h"
#include "log.h"
#include "util.h"

#define DNS_ERRSTR_MAX 128
#define DNS_TIMEOUT_MS 3000     /* per try; c-ares doubles it per round */
#define DNS_TRIES 3

struct dns_sock {
	ares_socket_t fd;
	short what;                 /* EV_READ / EV_WRITE interest */
	struct event *ev;
	struct dns_sock *next;
};

struct dns_query {
	struct dns *d;
	dns_addr_fn cb;
	void *arg;
	int err;
	char errstr[DNS_ERRSTR_MAX];
	struct sockaddr_storage addrs[DNS_MAX_ADDRS];
	size_t naddrs;
	struct event *ev;           /* delivers the result on the loop */
	struct dns_query *prev, *next;
};

struct dns {
	struct event_base *base;
	ares_channel ch;
	int ch_ok;
	struct event *timer;
	struct dns_sock *socks;
	struct dns_query *queries;
	int freeing;
};

/* dns_rearm - set the retransmission timer from c-ares' next deadline */
static void
dns_rearm(struct dns *d)
{
	struct timeval tv, *tvp;

	if (d->freeing || !d->ch_ok)
		return;
	tvp = ares_timeout(d->ch, NULL, &tv);
	if (tvp)
		evtimer_add(d->timer, tvp);
	else
		evtimer_del(d->timer);
}

/* dns_timer_cb - let c-ares retransmit or time out queries */
static void
dns_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dns *d = arg;

	ares_process_fd(d->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	dns_rearm(d);
}

/* dns_sock_cb - a resolver socket became readable or writable */
static void
dns_sock_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dns *d = arg;

	ares_process_fd(d->ch, (what & EV_READ) ? fd : ARES_SOCKET_BAD,
	    (what & EV_WRITE) ? fd : ARES_SOCKET_BAD);
	dns_rearm(d);
}

/* dns_sock_state - c-ares opened, changed or closed a socket */
static void
dns_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
	struct dns *d = data;
	struct dns_sock **pp, *s;
	short what = (short)((readable ? EV_READ : 0) | (writable ? EV_WRITE : 0));

	for (pp = &d->socks; *pp && (*pp)->fd != fd; pp = &(*pp)->next)
		;
	s = *pp;
	if (s && s->ev) {
		event_free(s->ev);
		s->ev = NULL;
	}
	if (what == 0) {
		if (s) {
			*pp = s->next;
			free(s);
		}
		return;
	}
	if (s == NULL) {
		s = xcalloc(1, sizeof(*s));
		s->fd = fd;
		s->next = d->socks;
		d->socks = s;
	}
	s->what = what;
	s->ev = event_new(d->base, fd, (short)(what | EV_PERSIST), dns_sock_cb, d);
	if (s->ev == NULL || event_add(s->ev, NULL) != 0)
		fatalx("dns: cannot watch resolver socket %d", (int)fd);
}

/* dns_query_unlink - take a query off the pending list */
static void
dns_query_unlink(struct dns_query *q)
{
	struct dns *d = q->d;

	if (q->prev)
		q->prev->next = q->next;
	else
		d->queries = q->next;
	if (q->next)
		q->next->prev = q->prev;
	q->prev = q->next = NULL;
}

/* dns_query_finish - run the caller's callback once and free the query */
static void
dns_query_finish(struct dns_query *q)
{
	dns_query_unlink(q);
	if (q->ev)
		event_free(q->ev);
	q->cb(q->err, q->err ? q->errstr : "", q->addrs, q->naddrs, q->arg);
	free(q);
}

/* dns_deliver_cb - zero-timeout event: hand the result to the caller */
static void
dns_deliver_cb(evutil_socket_t fd, short what, void *arg)
{
	dns_query_finish(arg);
}

/* dns_query_schedule - deliver on the next loop iteration */
static void
dns_query_schedule(struct dns_query *q)
{
	struct timeval zero = { 0, 0 };

	evtimer_add(q->ev, &zero);
}

/* dns_ares_cb - c-ares finished a getaddrinfo: copy the addresses */
static void
dns_ares_cb(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
	struct dns_query *q = arg;
	struct ares_addrinfo_node *n;

	if (status == ARES_SUCCESS && res) {
		for (n = res->nodes; n && q->naddrs < DNS_MAX_ADDRS; n = n->ai_next) {
			if ((n->ai_family != AF_INET && n->ai_family != AF_INET6) ||
			    (size_t)n->ai_addrlen > sizeof(q->addrs[0]))
				continue;
			memcpy(&q->addrs[q->naddrs++], n->ai_addr, (size_t)n->ai_addrlen);
		}
		if (q->naddrs == 0) {
			q->err = ARES_ENODATA;
			util_strlcpy(q->errstr, ares_strerror(ARES_ENODATA), sizeof(q->errstr));
		}
	} else {
		q->err = status == ARES_SUCCESS ? ARES_ENODATA : status;
		util_strlcpy(q->errstr, ares_strerror(q->err), sizeof(q->errstr));
	}
	if (res)
		ares_freeaddrinfo(res);
	if (q->d->freeing)
		dns_query_finish(q);    /* ares_destroy: the loop may be gone */
	else
		dns_query_schedule(q);
}

/* dns_literal - fill q from an IP literal; returns 1 if host was one */
static int
dns_literal(struct dns_query *q, const char *host, int port)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)&q->addrs[0];
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&q->addrs[0];
	char buf[HOST_MAX];
	size_t len = strlen(host);

	/* "[::1]" as well as "::1" */
	if (len >= 2 && host[0] == '[' && host[len - 1] == ']' && len - 2 < sizeof(buf)) {
		memcpy(buf, host + 1, len - 2);
		buf[len - 2] = '\0';
	} else if (util_strlcpy(buf, host, sizeof(buf)) >= sizeof(buf)) {
		return 0;
	}
	memset(&q->addrs[0], 0, sizeof(q->addrs[0]));
	if (inet_pton(AF_INET, buf, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
	} else if (inet_pton(AF_INET6, buf, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
	} else {
		return 0;
	}
	q->naddrs = 1;
	return 1;
}

/* dns_new - a c-ares channel on the loop, optionally with our own server */
struct dns *
dns_new(struct event_base *base, const char *server, char *err, size_t errlen)
{
	struct dns *d;
	struct ares_options opts;
	int r;

	if ((r = ares_library_init(ARES_LIB_INIT_ALL)) != ARES_SUCCESS) {
		snprintf(err, errlen, "c-ares init: %s", ares_strerror(r));
		return NULL;
	}
	d = xcalloc(1, sizeof(*d));
	d->base = base;
	d->timer = evtimer_new(base, dns_timer_cb, d);
	if (d->timer == NULL)
		fatalx("dns: evtimer_new failed");
	memset(&opts, 0, sizeof(opts));
	opts.sock_state_cb = dns_sock_state;
	opts.sock_state_cb_data = d;
	opts.timeout = DNS_TIMEOUT_MS;
	opts.tries = DNS_TRIES;
	r = ares_init_options(&d->ch, &opts,
	    ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES);
	if (r != ARES_SUCCESS) {
		snprintf(err, errlen, "c-ares: %s", ares_strerror(r));
		goto fail;
	}
	d->ch_ok = 1;
	/* "ip", "ip:port", "[v6]:port" are what ares_set_servers_ports_csv
	 * itself accepts. */
	if (server && *server) {
		r = ares_set_servers_ports_csv(d->ch, server);
		if (r != ARES_SUCCESS) {
			snprintf(err, errlen, "dns_server %s: %s", server, ares_strerror(r));
			goto fail;
		}
	}
	return d;
fail:
	dns_free(d);
	return NULL;
}

/* dns_free - fail pending lookups (callbacks run now), release all */
void
dns_free(struct dns *d)
{
	struct dns_query *q;
	struct dns_sock *s;

	if (d == NULL)
		return;
	d->freeing = 1;
	/* Fails every query inside c-ares through dns_ares_cb at once. */
	if (d->ch_ok)
		ares_destroy(d->ch);
	d->ch_ok = 0;
	/* Results not yet delivered (literals, finished lookups): cancelled. */
	while ((q = d->queries) != NULL) {
		q->err = ARES_EDESTRUCTION;
		q->naddrs = 0;
		util_strlcpy(q->errstr, ares_strerror(ARES_EDESTRUCTION), sizeof(q->errstr));
		dns_query_finish(q);
	}
	while ((s = d->socks) != NULL) {
		d->socks = s->next;
		if (s->ev)
			event_free(s->ev);
		free(s);
	}
	if (d->timer)
		event_free(d->timer);
	free(d);
	ares_library_cleanup();
}

/* dns_resolve - A and AAAA for host; literals without a query */
void
dns_resolve(struct dns *d, const char *host, int port, dns_addr_fn cb, void *arg)
{
	struct dns_query *q = xcalloc(1, sizeof(*q));
	struct ares_addrinfo_hints hints;
	char service[8];

	q->d = d;
	q->cb = cb;
	q->arg = arg;
	q->ev = evtimer_new(d->base, dns_deliver_cb, q);
	if (q->ev == NULL)
		fatalx("dns: evtimer_new failed");
	q->next = d->queries;
	if (d->queries)
		d->queries->prev = q;
	d->queries = q;

	if (dns_literal(q, host, port)) {
		dns_query_schedule(q);
		return;
	}
	if (*host == '\0' || strlen(host) >= HOST_MAX) {
		q->err = ARES_EBADNAME;
		util_strlcpy(q->errstr, ares_strerror(ARES_EBADNAME), sizeof(q->errstr));
		dns_query_schedule(q);
		return;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = ARES_AI_NUMERICSERV;
	snprintf(service, sizeof(service), "%d", port);
	ares_getaddrinfo(d->ch, host, service, &hints, dns_ares_cb, q);
	dns_rearm(d);
}
