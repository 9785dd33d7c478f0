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
 * a zero-timeout event, so callbacks never run inside dns_resolve() or
 * dns_query_*() (c-ares may answer from /etc/hosts or fail synchronously).
 * IP literals never reach c-ares. dns_free() fails everything still
 * pending with ARES_EDESTRUCTION / DNS_CANCELLED.
 *
 * TXT, MX and PTR go through ares_query(), not ares_search(): the names
 * are complete (selector._domainkey.domain, _dmarc.domain, reverse names)
 * and must never get a search domain appended.
 *
 * Input trusted: host names come from the configuration; TXT/MX names may
 * come from messages (DKIM d= and s=) and are only length-checked here,
 * c-ares rejects bad labels. Answers are parsed by c-ares and copied
 * within the DNS_*_MAX limits of dns.h.
 */
#include "config.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
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
/* "f.e.d. ... .ip6.arpa": 32 nibbles with dots, the suffix, a NUL */
#define DNS_PTRNAME_MAX 80

struct dns_sock {
	ares_socket_t fd;
	short what;                 /* EV_READ / EV_WRITE interest */
	struct event *ev;
	struct dns_sock *next;
};

enum dns_kind { DNS_Q_ADDR, DNS_Q_TXT, DNS_Q_MX, DNS_Q_PTR };

struct dns_query {
	struct dns *d;
	enum dns_kind kind;
	union {
		dns_addr_fn addr;
		dns_txt_fn txt;
		dns_mx_fn mx;
		dns_names_fn names;
	} cb;
	void *arg;
	int err;                    /* c-ares status */
	char errstr[DNS_ERRSTR_MAX];
	/* DNS_Q_ADDR */
	struct sockaddr_storage addrs[DNS_MAX_ADDRS];
	size_t naddrs;
	/* DNS_Q_TXT, _MX, _PTR: n results; strings in blob or strdup'd */
	struct dns_txt *txt;
	char *blob;
	struct dns_mx *mx;
	char **names;
	size_t n;
	/* DNS_Q_PTR: the address asked about, for ares_parse_ptr_reply */
	int family;
	unsigned char ptr_addr[16];
	struct event *ev;           /* delivers the result on the loop */
	struct dns_query *prev, *next;
};

struct dns {
	struct event_base *base;
	struct event_base *own_base;    /* dns_new_opts(NULL, ...) */
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

/* dns_status_of - the three outcomes callers act on, from a c-ares status */
static enum dns_status
dns_status_of(int err)
{
	switch (err) {
	case ARES_SUCCESS:
		return DNS_OK;
	case ARES_ENOTFOUND:        /* NXDOMAIN */
	case ARES_ENODATA:          /* NOERROR without records of the type */
	case ARES_EBADNAME:         /* nothing can be published there */
	case ARES_EBADFAMILY:       /* PTR for neither IPv4 nor IPv6 */
		return DNS_NOTFOUND;
	case ARES_EDESTRUCTION:
	case ARES_ECANCELLED:
		return DNS_CANCELLED;
	default:                    /* SERVFAIL, REFUSED, timeout, EBADRESP... */
		return DNS_TEMPFAIL;
	}
}

/* dns_query_clear - drop whatever results q holds */
static void
dns_query_clear(struct dns_query *q)
{
	size_t i;

	if (q->mx)
		for (i = 0; i < q->n; i++)
			free((char *)q->mx[i].host);
	if (q->names)
		for (i = 0; i < q->n; i++)
			free(q->names[i]);
	free(q->txt);
	free(q->blob);
	free(q->mx);
	free(q->names);
	q->txt = NULL;
	q->blob = NULL;
	q->mx = NULL;
	q->names = NULL;
	q->n = 0;
	q->naddrs = 0;
}

/* dns_query_fail - q ends with c-ares status err and no results */
static void
dns_query_fail(struct dns_query *q, int err, const char *why)
{
	dns_query_clear(q);
	q->err = err;
	util_strlcpy(q->errstr, why ? why : ares_strerror(err), sizeof(q->errstr));
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
	const char *errstr = q->err ? q->errstr : "";
	enum dns_status st = dns_status_of(q->err);

	dns_query_unlink(q);
	if (q->ev)
		event_free(q->ev);
	switch (q->kind) {
	case DNS_Q_ADDR:
		q->cb.addr(q->err, errstr, q->addrs, q->naddrs, q->arg);
		break;
	case DNS_Q_TXT:
		q->cb.txt(st, errstr, q->txt, q->n, q->arg);
		break;
	case DNS_Q_MX:
		q->cb.mx(st, errstr, q->mx, q->n, q->arg);
		break;
	case DNS_Q_PTR:
		q->cb.names(st, errstr, (const char *const *)q->names, q->n, q->arg);
		break;
	}
	dns_query_clear(q);
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

/* dns_query_done - c-ares is done with q: deliver now or on the loop */
static void
dns_query_done(struct dns_query *q)
{
	if (q->d->freeing)
		dns_query_finish(q);    /* ares_destroy: the loop may be gone */
	else
		dns_query_schedule(q);
}

/* dns_query_new - a pending query on d's list, not yet started */
static struct dns_query *
dns_query_new(struct dns *d, enum dns_kind kind, void *arg)
{
	struct dns_query *q = xcalloc(1, sizeof(*q));

	q->d = d;
	q->kind = kind;
	q->arg = arg;
	q->ev = evtimer_new(d->base, dns_deliver_cb, q);
	if (q->ev == NULL)
		fatalx("dns: evtimer_new failed");
	q->next = d->queries;
	if (d->queries)
		d->queries->prev = q;
	d->queries = q;
	return q;
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
		if (q->naddrs == 0)
			dns_query_fail(q, ARES_ENODATA, NULL);
	} else {
		dns_query_fail(q, status == ARES_SUCCESS ? ARES_ENODATA : status, NULL);
	}
	if (res)
		ares_freeaddrinfo(res);
	dns_query_done(q);
}

/* dns_copy_txt - records of a TXT answer, strings of each concatenated.
 * c-ares gives one list entry per character-string; record_start marks
 * the first string of each record. Returns a c-ares status. */
static int
dns_copy_txt(struct dns_query *q, const struct ares_txt_ext *list)
{
	const struct ares_txt_ext *t;
	size_t nrec = 0, bytes = 0, i = 0, off = 0;

	for (t = list; t; t = t->next) {
		if (t->record_start || nrec == 0)
			nrec++;
		bytes += t->length;
		if (nrec > DNS_TXT_MAX || bytes > DNS_TXT_BYTES_MAX) {
			dns_query_fail(q, ARES_EBADRESP, NULL);
			if (nrec > DNS_TXT_MAX)
				snprintf(q->errstr, sizeof(q->errstr),
				    "TXT answer has more than %d records", DNS_TXT_MAX);
			else
				snprintf(q->errstr, sizeof(q->errstr),
				    "TXT answer longer than %d bytes", DNS_TXT_BYTES_MAX);
			return q->err;
		}
	}
	if (nrec == 0)
		return ARES_ENODATA;
	q->txt = xcalloc(nrec, sizeof(*q->txt));
	q->blob = xmalloc(bytes + nrec);    /* a NUL after each record */
	for (t = list; t; t = t->next) {
		if (i == 0 || t->record_start) {
			if (i > 0)
				q->blob[off++] = '\0';
			q->txt[i++].data = q->blob + off;
		}
		if (t->length > 0)
			memcpy(q->blob + off, t->txt, t->length);
		off += t->length;
		q->txt[i - 1].len += t->length;
	}
	q->blob[off] = '\0';
	q->n = nrec;
	return ARES_SUCCESS;
}

/* dns_mx_ord - an MX record and its place in the answer */
struct dns_mx_ord {
	unsigned pref;
	size_t idx;
	const char *host;
};

/* dns_mx_cmp - by preference, then answer order (qsort is not stable) */
static int
dns_mx_cmp(const void *a, const void *b)
{
	const struct dns_mx_ord *x = a, *y = b;

	if (x->pref != y->pref)
		return x->pref < y->pref ? -1 : 1;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* dns_copy_mx - MX records sorted by preference, the first DNS_MX_MAX */
static int
dns_copy_mx(struct dns_query *q, const struct ares_mx_reply *list)
{
	const struct ares_mx_reply *m;
	struct dns_mx_ord *ord;
	size_t n = 0, i;

	for (m = list; m; m = m->next)
		n++;
	if (n == 0)
		return ARES_ENODATA;
	ord = xcalloc(n, sizeof(*ord));
	for (m = list, i = 0; m; m = m->next, i++) {
		ord[i].pref = m->priority;
		ord[i].idx = i;
		ord[i].host = m->host;
	}
	qsort(ord, n, sizeof(*ord), dns_mx_cmp);
	if (n > DNS_MX_MAX)
		n = DNS_MX_MAX;
	q->mx = xcalloc(n, sizeof(*q->mx));
	for (i = 0; i < n; i++) {
		q->mx[i].pref = ord[i].pref;
		q->mx[i].host = xstrdup(ord[i].host ? ord[i].host : "");
	}
	q->n = n;
	free(ord);
	return ARES_SUCCESS;
}

/* dns_copy_ptr - the PTR names of an answer, the first DNS_PTR_MAX */
static int
dns_copy_ptr(struct dns_query *q, const struct hostent *h)
{
	size_t n = 0, i;

	/* ares_parse_ptr_reply lists every PTR name in h_aliases, in answer
	 * order (h_name is only the last of them), following CNAMEs as
	 * RFC 2317 classless delegation uses them. */
	while (h->h_aliases && h->h_aliases[n])
		n++;
	if (n == 0)
		return ARES_ENODATA;
	if (n > DNS_PTR_MAX)
		n = DNS_PTR_MAX;
	q->names = xcalloc(n, sizeof(*q->names));
	for (i = 0; i < n; i++)
		q->names[i] = xstrdup(h->h_aliases[i]);
	q->n = n;
	return ARES_SUCCESS;
}

/* dns_parse - copy the records of one answer into q; a c-ares status */
static int
dns_parse(struct dns_query *q, const unsigned char *abuf, int alen)
{
	struct ares_txt_ext *txt = NULL;
	struct ares_mx_reply *mx = NULL;
	struct hostent *h = NULL;
	int r = ARES_EBADRESP;

	switch (q->kind) {
	case DNS_Q_TXT:
		if ((r = ares_parse_txt_reply_ext(abuf, alen, &txt)) == ARES_SUCCESS)
			r = dns_copy_txt(q, txt);
		if (txt)
			ares_free_data(txt);
		break;
	case DNS_Q_MX:
		if ((r = ares_parse_mx_reply(abuf, alen, &mx)) == ARES_SUCCESS)
			r = dns_copy_mx(q, mx);
		if (mx)
			ares_free_data(mx);
		break;
	case DNS_Q_PTR:
		r = ares_parse_ptr_reply(abuf, alen, q->ptr_addr,
		    q->family == AF_INET ? 4 : 16, q->family, &h);
		if (r == ARES_SUCCESS)
			r = dns_copy_ptr(q, h);
		if (h)
			ares_free_hostent(h);
		break;
	case DNS_Q_ADDR:
		break;
	}
	return r;
}

/* dns_query_cb - c-ares finished an ares_query: copy the records */
static void
dns_query_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct dns_query *q = arg;

	if (status == ARES_SUCCESS)
		status = abuf ? dns_parse(q, abuf, alen) : ARES_EBADRESP;
	if (status != ARES_SUCCESS && q->err == 0)
		dns_query_fail(q, status, NULL);
	dns_query_done(q);
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
	struct dns_opts o = { .server = server };

	return dns_new_opts(base, &o, err, errlen);
}

/* dns_new_opts - dns_new with timeouts; base NULL for a private loop */
struct dns *
dns_new_opts(struct event_base *base, const struct dns_opts *o,
    char *err, size_t errlen)
{
	static const struct dns_opts defaults;
	struct dns *d;
	struct ares_options opts;
	int r;

	if (o == NULL)
		o = &defaults;
	if ((r = ares_library_init(ARES_LIB_INIT_ALL)) != ARES_SUCCESS) {
		util_seterr(err, errlen, "c-ares init: %s", ares_strerror(r));
		return NULL;
	}
	d = xcalloc(1, sizeof(*d));
	if (base == NULL) {
		if ((d->own_base = event_base_new()) == NULL)
			fatalx("dns: event_base_new failed");
		base = d->own_base;
	}
	d->base = base;
	d->timer = evtimer_new(base, dns_timer_cb, d);
	if (d->timer == NULL)
		fatalx("dns: evtimer_new failed");
	memset(&opts, 0, sizeof(opts));
	opts.sock_state_cb = dns_sock_state;
	opts.sock_state_cb_data = d;
	opts.timeout = o->timeout_ms > 0 ? o->timeout_ms : DNS_TIMEOUT_MS;
	opts.tries = o->tries > 0 ? o->tries : DNS_TRIES;
	r = ares_init_options(&d->ch, &opts,
	    ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES);
	if (r != ARES_SUCCESS) {
		util_seterr(err, errlen, "c-ares: %s", ares_strerror(r));
		goto fail;
	}
	d->ch_ok = 1;
	/* "ip", "ip:port", "[v6]:port" are what ares_set_servers_ports_csv
	 * itself accepts. */
	if (o->server && *o->server) {
		r = ares_set_servers_ports_csv(d->ch, o->server);
		if (r != ARES_SUCCESS) {
			util_seterr(err, errlen, "dns_server %s: %s", o->server,
			    ares_strerror(r));
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
	/* Fails every query inside c-ares through its callback at once. */
	if (d->ch_ok)
		ares_destroy(d->ch);
	d->ch_ok = 0;
	/* Results not yet delivered (literals, finished lookups, lookups
	 * started by the callbacks above): cancelled. */
	while ((q = d->queries) != NULL) {
		dns_query_fail(q, ARES_EDESTRUCTION, NULL);
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
	if (d->own_base)
		event_base_free(d->own_base);
	free(d);
	ares_library_cleanup();
}

/* dns_resolve - A and AAAA for host; literals without a query */
void
dns_resolve(struct dns *d, const char *host, int port, dns_addr_fn cb, void *arg)
{
	struct dns_query *q = dns_query_new(d, DNS_Q_ADDR, arg);
	struct ares_addrinfo_hints hints;
	char service[8];

	q->cb.addr = cb;
	if (d->freeing)
		return;                 /* dns_free() cancels it */
	if (dns_literal(q, host, port)) {
		dns_query_schedule(q);
		return;
	}
	if (*host == '\0' || strlen(host) >= HOST_MAX) {
		dns_query_fail(q, ARES_EBADNAME, NULL);
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

/* dns_query_start - ares_query for name and type, or fail q on the loop */
static void
dns_query_start(struct dns_query *q, const char *name, int type)
{
	struct dns *d = q->d;

	if (d->freeing)
		return;                 /* dns_free() cancels it */
	if (*name == '\0' || strlen(name) >= HOST_MAX) {
		dns_query_fail(q, ARES_EBADNAME, NULL);
		dns_query_schedule(q);
		return;
	}
	/* ares_query, not ares_search: no search domain appended. It may
	 * call dns_query_cb at once (bad name); that only schedules. */
	ares_query(d->ch, name, ns_c_in, type, dns_query_cb, q);
	dns_rearm(d);
}

/* dns_query_txt - TXT records of name */
void
dns_query_txt(struct dns *d, const char *name, dns_txt_fn cb, void *arg)
{
	struct dns_query *q = dns_query_new(d, DNS_Q_TXT, arg);

	q->cb.txt = cb;
	dns_query_start(q, name, ns_t_txt);
}

/* dns_query_mx - MX records of domain */
void
dns_query_mx(struct dns *d, const char *domain, dns_mx_fn cb, void *arg)
{
	struct dns_query *q = dns_query_new(d, DNS_Q_MX, arg);

	q->cb.mx = cb;
	dns_query_start(q, domain, ns_t_mx);
}

/* dns_ptr_name - the in-addr.arpa / ip6.arpa name of q's address
 * (RFC 1035 3.5, RFC 3596 2.5) */
static void
dns_ptr_name(const struct dns_query *q, char *buf, size_t len)
{
	const unsigned char *a = q->ptr_addr;
	size_t off = 0;
	int i;

	if (q->family == AF_INET) {
		snprintf(buf, len, "%u.%u.%u.%u.in-addr.arpa", a[3], a[2], a[1], a[0]);
		return;
	}
	for (i = 15; i >= 0 && off + 4 < len; i--) {
		buf[off++] = "0123456789abcdef"[a[i] & 0xf];
		buf[off++] = '.';
		buf[off++] = "0123456789abcdef"[a[i] >> 4];
		buf[off++] = '.';
	}
	buf[off] = '\0';
	util_strlcat(buf, "ip6.arpa", len);
}

/* dns_query_ptr - PTR names of an IPv4 or IPv6 address */
void
dns_query_ptr(struct dns *d, const struct sockaddr_storage *addr,
    dns_names_fn cb, void *arg)
{
	static const unsigned char v4mapped[12] = { [10] = 0xff, [11] = 0xff };
	struct dns_query *q = dns_query_new(d, DNS_Q_PTR, arg);
	const struct sockaddr_in *sin = (const struct sockaddr_in *)addr;
	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)addr;
	char name[DNS_PTRNAME_MAX];

	q->cb.names = cb;
	if (addr->ss_family == AF_INET) {
		q->family = AF_INET;
		memcpy(q->ptr_addr, &sin->sin_addr, 4);
	} else if (addr->ss_family == AF_INET6 &&
	    memcmp(&sin6->sin6_addr, v4mapped, sizeof(v4mapped)) == 0) {
		/* a v4 client on a dual-stack socket: ::ffff:192.0.2.1 */
		q->family = AF_INET;
		memcpy(q->ptr_addr, (const unsigned char *)&sin6->sin6_addr + 12, 4);
	} else if (addr->ss_family == AF_INET6) {
		q->family = AF_INET6;
		memcpy(q->ptr_addr, &sin6->sin6_addr, 16);
	} else {
		if (!d->freeing) {
			dns_query_fail(q, ARES_EBADFAMILY, NULL);
			dns_query_schedule(q);
		}
		return;
	}
	dns_ptr_name(q, name, sizeof(name));
	dns_query_start(q, name, ns_t_ptr);
}

/* dns_wait_cb - dns_wait's deadline: only wakes the loop */
static void
dns_wait_cb(evutil_socket_t fd, short what, void *arg)
{
}

/* dns_wait - drive a private loop until nothing is pending or timeout */
int
dns_wait(struct dns *d, int timeout_ms)
{
	int64_t deadline;
	struct timeval tv;
	struct event *ev;

	if (timeout_ms < 0)
		timeout_ms = 0;
	deadline = util_mono_ms() + timeout_ms;
	/* Running the daemon's loop from here would re-enter its callbacks. */
	if (d->own_base == NULL)
		return -1;
	if ((ev = evtimer_new(d->base, dns_wait_cb, NULL)) == NULL)
		fatalx("dns: evtimer_new failed");
	tv.tv_sec = timeout_ms / 1000;
	tv.tv_usec = (timeout_ms % 1000) * 1000;
	evtimer_add(ev, &tv);
	/* Each round runs at least one event, the deadline's at the latest. */
	while (d->queries && util_mono_ms() < deadline)
		event_base_loop(d->base, EVLOOP_ONCE);
	event_free(ev);
	return d->queries ? -1 : 0;
}
