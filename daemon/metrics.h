/*
 * metrics - Prometheus text exposition on [server] metrics_listen
 * (libevent evhttp on the daemon's loop, GET /metrics; docs/METRICS.md).
 *
 * Two halves. The counting calls below are what other modules make, one
 * line each where something happens; they work whether or not the HTTP
 * side runs (metrics_listen = no). The HTTP side (metrics_start) renders
 * those counters and, at scrape time, the gauges other modules already
 * keep (scheduler queue and upstream status, open sessions).
 *
 * Threads: the plain counters (metrics_inc, metrics_rejected,
 * metrics_dkim_signed) are C11 atomics and may be called from any thread
 * (DKIM and ARC sign in the signer pool). The labelled ones
 * (metrics_received, metrics_delivered, metrics_tls, metrics_commit) are
 * loop-thread only.
 *
 * Label values are bounded sets: names from the config (listeners,
 * upstreams), the fixed tables of this module, never client text.
 */
#ifndef OUTPOST_METRICS_H
#define OUTPOST_METRICS_H

#include <stddef.h>

struct server;
struct metrics;
struct evbuffer;
struct ssl_st;

/* Unlabelled counters. */
enum metrics_counter {
	METRICS_CONN_REFUSED,       /* 421 at accept: max_connections (per IP) */
	METRICS_AUTH_FAILURES,      /* AUTH with bad credentials */
	METRICS_AUTH_SUCCESSES,
	METRICS_ARC_SEALS,          /* ARC sets added to forwarded mail */
	METRICS_COUNTERS
};

/* Why a MAIL, RCPT or message was refused (outpost_messages_rejected_total
 * {reason}); one per refusal. */
enum metrics_reject {
	METRICS_REJ_AUTH_REQUIRED,      /* 530: no AUTH, not trusted (no relay) */
	METRICS_REJ_SENDER_NOT_OWNED,   /* 553 5.7.1: MAIL FROM or From: */
	METRICS_REJ_MESSAGE_TOO_BIG,    /* 552 5.3.4: SIZE= or DATA */
	METRICS_REJ_TOO_MANY_RCPTS,     /* 452 4.5.3 */
	METRICS_REJ_SUPPRESSED,         /* 550 5.1.1 suppressed recipient */
	METRICS_REJ_RATE_LIMITED,       /* 451 4.7.1 user_rate/user_daily_limit */
	METRICS_REJ_SYNTAX,             /* MAIL/RCPT that does not parse */
	METRICS_REJ_BARE_LINE_END,      /* 550 5.5.2 bare CR/LF in DATA */
	METRICS_REJ_NUL,                /* 550 5.6.0 */
	METRICS_REJ_INVALID_MESSAGE,    /* RFC 5322 checks (message_prepare) */
	METRICS_REJ_FORWARD,            /* forwarding refused (forward_prepare) */
	METRICS_REJ_UNSIGNED,           /* 550 5.7.1 no DKIM key, unsigned = reject */
	METRICS_REJ_DOMAIN_CHECK,       /* refuse_when_failing: DNS self-check */
	METRICS_REJ_LOCAL_ERROR,        /* signing, sealing or queue write failed */
	METRICS_REJ_SHUTDOWN,           /* 421 at the final dot while stopping */
	METRICS_REJ_UNSUBSCRIBED,       /* 550 5.7.1: the recipient unsubscribed
	                                 * from this sender (issue 10) */
	METRICS_REJ_UNSUBSCRIBE_INVALID, /* 550 5.1.1: unsubscribe+TOKEN@DOMAIN
	                                 * with a TOKEN that is not valid */
	METRICS_REJ_BULK_UNSUB,         /* 550 5.7.1 bulk without unsubscribe */
	METRICS_REJECTS
};

/* Listen on srv->conf->server.metrics_listen. NULL with err[0] == '\0'
 * when it is "no"; NULL with a message in err when it cannot listen. */
struct metrics *metrics_start(struct server *srv, char *err, size_t errlen);
/* Close the port and free the listener (the counters stay). */
void metrics_stop(struct metrics *m);

/* Counting, any thread. */
void metrics_inc(enum metrics_counter c);
void metrics_rejected(enum metrics_reject why);
/* One DKIM-Signature made with algorithm alg ("rsa-sha256", ...). */
void metrics_dkim_signed(const char *alg);
/* One bulk message (outpost_messages_bulk_total{unsubscribe}), by how its
 * recipients can unsubscribe: "one-click", "sender" or "none". */
void metrics_bulk(const char *unsubscribe);

/* Counting, loop thread. */
/* A connection accepted on listener (its [listen] name). */
void metrics_connection(const char *listener);
/* A message committed from listener, secs after its final dot. */
void metrics_received(const char *listener, double secs);
/* One recipient's attempt at upstream: status "sent", "deferred" or
 * "bounced" (the scheduler's log word). */
void metrics_delivered(const char *upstream, const char *status);
/* A TLS handshake completed: out = 0 client side, 1 toward upstreams. */
void metrics_tls(int out, const struct ssl_st *ssl);

/* The exposition (loop thread): what GET /metrics answers. srv->sched
 * may be NULL (unit tests): then no queue or upstream families. */
void metrics_render(struct server *srv, struct evbuffer *out);
/* Exposition-format label value escaping (\\, \", \n); truncates. */
const char *metrics_escape(const char *in, char *out, size_t len);

#endif
