/*
 * upstream - the client side: delivers queued messages to one
 * [upstream NAME], either a real SMTP server (pooled connections, TLS,
 * AUTH PLAIN/LOGIN, PIPELINING, connection reuse, RFC 5321 4.5.3.2
 * timeouts) or the embedded Maildir writer.
 *
 * The scheduler hands it jobs; upstream never touches the store. Each job
 * comes back through its done callback (always later, on the loop) with a
 * reply per recipient: code 2xx sent, 4xx retry, 5xx permanent. A failure
 * that is not the server's answer (connect, TLS, timeout, lost connection)
 * is reported as a 4xx the upstream module writes itself, e.g.
 * "451 4.4.1 connect to host[ip]:587: Connection refused" or
 * "454 4.7.0 TLS required but STARTTLS not offered"; nothing is ever sent
 * in clear when tls = starttls or implicit.
 */
#ifndef OUTPOST_UPSTREAM_H
#define OUTPOST_UPSTREAM_H

#include <stddef.h>
#include <stdint.h>
#include "smtp_parse.h"
#include "util.h"

struct server;
struct conf_upstream;
struct upstream;

#define UPSTREAM_REPLY_MAX (SMTP_REPLY_TEXT_MAX + 32)
#define UPSTREAM_RELAY_MAX (HOST_MAX + IP_STR_MAX + 16)

struct upstream_rcpt {
	int64_t id;                 /* in: recipients row id */
	const char *addr;           /* in */
	int notify;                 /* in: SMTP_NOTIFY_* for DSN later */
	int code;                   /* out: 250, 451, 550 ... */
	char reply[UPSTREAM_REPLY_MAX]; /* out: "250 2.1.5 Ok" / local reason */
};

struct upstream_job;
typedef void (*upstream_done_fn)(struct upstream_job *job, void *arg);

struct upstream_job {
	int64_t msg_id;
	const char *queue_id;
	const char *sender;         /* "" for <> */
	int body_8bit;
	int smtputf8;
	const char *data;           /* final bytes, CRLF, not dot-stuffed */
	size_t len;
	struct upstream_rcpt *rcpts;
	size_t nrcpt;
	char relay[UPSTREAM_RELAY_MAX]; /* out: "host[ip]:port" or "maildir:DIR" */
	int possible_duplicate;     /* out: lost after the dot was sent */
	int unreachable;            /* out: failed before a transaction could
	                             * start (DNS, connect, TLS, greeting, EHLO):
	                             * the upstream is down, not the message */
	upstream_done_fn done;
	void *arg;
};

struct upstream *upstream_new(struct server *srv, const struct conf_upstream *cu,
    char *err, size_t errlen);
void upstream_free(struct upstream *u);
const char *upstream_name(const struct upstream *u);
/* 1 when a job submitted now would start at once (a free connection or
 * room to open one); the scheduler uses it to pace itself. */
int upstream_ready(const struct upstream *u);
/* Start the job now or queue it inside the upstream; done is called once. */
void upstream_submit(struct upstream *u, struct upstream_job *job);
/* fn(arg) runs, from a fresh event, when a connection became free and
 * no job waits (the scheduler then starts what it held back). */
void upstream_set_ready_cb(struct upstream *u, void (*fn)(void *), void *arg);
/* Close idle connections (QUIT); used at shutdown. */
void upstream_close_idle(struct upstream *u);
/* Jobs in progress or waiting in this upstream. */
size_t upstream_inflight(const struct upstream *u);

#endif
