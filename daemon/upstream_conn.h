/*
 * upstream_conn - private to the upstream module: the interface between
 * upstream.c (the pool of one [upstream]: job FIFO, dispatch, done queue,
 * the Maildir writer) and upstream_conn.c (the SMTP client connection and
 * its state machine). Other modules use upstream.h only.
 *
 * struct upstream is defined here because both halves work on it:
 * upstream.c owns the FIFOs and counters, upstream_conn.c the lists of
 * live and dead connections. A connection (struct up_conn) stays opaque
 * to upstream.c.
 */
#ifndef OUTPOST_UPSTREAM_CONN_H
#define OUTPOST_UPSTREAM_CONN_H

#include <stddef.h>
#include <openssl/ssl.h>
#include "upstream.h"

struct event;
struct up_conn;
struct up_item;

struct up_fifo {
	struct up_item *head, *tail;
	size_t n;
};

struct upstream {
	struct server *srv;
	const struct conf_upstream *cu;
	const char *hostname;       /* [server] hostname of the config the
	                             * upstream was made from (read in the pool) */
	SSL_CTX *ssl_ctx;
	struct up_conn *conns;      /* live */
	struct up_conn *dead;       /* closed, waiting for their free event */
	int nconns;
	int next_id;
	struct up_fifo waitq;
	struct up_fifo doneq;
	struct event *done_ev;
	struct event *ready_ev;     /* runs ready_fn after a connection freed */
	void (*ready_fn)(void *);
	void *ready_arg;
	size_t njobs;               /* submitted, done not yet called */
	int md_running;             /* Maildir jobs on the signer pool */
	int freeing;
};

/* In upstream.c, for the connections. */
/* Every recipient without an answer gets code and text. */
void upstream_job_settle(struct upstream_job *job, int code, const char *text);
/* The job has all its answers: its done callback runs from a fresh event. */
void upstream_job_done(struct upstream *u, struct upstream_job *job);
/* Start waiting jobs while there is room (a connection became free). */
void upstream_dispatch(struct upstream *u);
/* Settle every waiting job with code and text (failed login: the same
 * credentials would fail for them too). */
void upstream_defer_waiting(struct upstream *u, const char *relay, int code,
    const char *text);

/* In upstream_conn.c, for the pool. */
/* Open a connection that owns job from the start. */
void upstream_conn_new(struct upstream *u, struct upstream_job *job);
/* A live connection that is idle without a job, or NULL. */
struct up_conn *upstream_conn_idle(const struct upstream *u);
/* Start job's transaction on an idle connection. */
void upstream_conn_assign(struct up_conn *c, struct upstream_job *job);
/* QUIT idle connections; the others after their current job. */
void upstream_conn_quit_idle(struct upstream *u);
/* upstream_free: settle every live connection's job with text and close. */
void upstream_conn_abort_all(struct upstream *u, const char *text);
/* upstream_free: free closed connections (or orphan those DNS holds). */
void upstream_conn_release_dead(struct upstream *u);

#endif
