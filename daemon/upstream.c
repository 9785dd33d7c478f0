/*
 * upstream - one [upstream NAME]: the pool of SMTP client connections,
 * the FIFO of waiting jobs, their dispatch, and the embedded Maildir
 * writer. See upstream.h for the API.
 *
 * A submitted job waits in the FIFO until it can start: on an idle
 * pooled connection, on a new connection while there are fewer than
 * max_connections, or (maildir:) on the signer pool, at most
 * max_connections writes at once. The SMTP conversation itself, one
 * state machine per connection, is upstream_conn.c; upstream_conn.h is
 * the private interface between the two files (struct upstream is
 * defined there).
 *
 * Finished jobs go to a done FIFO drained by a zero timer, so done()
 * runs exactly once per job, always from a fresh event (never inside
 * upstream_submit nor inside a connection's callback). upstream_free
 * lets Maildir writes already running finish with their real outcome
 * and settles everything else with a 451.
 *
 * Input trusted: the jobs (built by the scheduler from our own store)
 * and the [upstream] section; nothing from the network is read here.
 */
#include "config.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/ssl.h>

#include "conf.h"
#include "log.h"
#include "loopq.h"
#include "maildir.h"
#include "server.h"
#include "signer.h"
#include "tls.h"
#include "upstream.h"
#include "upstream_conn.h"
#include "util.h"

#define UP_TEXT_MAX UPSTREAM_REPLY_MAX

struct up_item {
	struct upstream_job *job;
	struct up_item *next;
};

struct up_md {
	struct upstream *u;
	struct upstream_job *job;
	int err;
	char name[256];
};

/* up_fifo_push - append a job */
static void
up_fifo_push(struct up_fifo *f, struct upstream_job *job)
{
	struct up_item *it = xmalloc(sizeof(*it));

	it->job = job;
	it->next = NULL;
	if (f->tail)
		f->tail->next = it;
	else
		f->head = it;
	f->tail = it;
	f->n++;
}

/* up_fifo_pop - take the first job, or NULL */
static struct upstream_job *
up_fifo_pop(struct up_fifo *f)
{
	struct up_item *it = f->head;
	struct upstream_job *job;

	if (it == NULL)
		return NULL;
	f->head = it->next;
	if (f->head == NULL)
		f->tail = NULL;
	f->n--;
	job = it->job;
	free(it);
	return job;
}

/* upstream_job_settle - every recipient without an answer gets code and text */
void
upstream_job_settle(struct upstream_job *job, int code, const char *text)
{
	for (size_t i = 0; i < job->nrcpt; i++) {
		if (job->rcpts[i].code != 0)
			continue;
		job->rcpts[i].code = code;
		util_strlcpy(job->rcpts[i].reply, text, sizeof(job->rcpts[i].reply));
	}
}

/* up_done_cb - hand finished jobs back, each from a fresh event */
static void
up_done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct upstream *u = arg;
	struct upstream_job *job;

	while ((job = up_fifo_pop(&u->doneq)) != NULL) {
		u->njobs--;
		job->done(job, job->arg);
	}
}

/* upstream_job_done - a job has all its answers: queue its done callback */
void
upstream_job_done(struct upstream *u, struct upstream_job *job)
{
	struct timeval zero = { 0, 0 };

	upstream_job_settle(job, 451, "451 4.3.0 no reply recorded for this recipient");
	up_fifo_push(&u->doneq, job);
	if (!u->freeing)
		evtimer_add(u->done_ev, &zero);
}

/* upstream_defer_waiting - every waiting job gets code and text now */
void
upstream_defer_waiting(struct upstream *u, const char *relay, int code,
    const char *text)
{
	struct upstream_job *job;

	while ((job = up_fifo_pop(&u->waitq)) != NULL) {
		util_strlcpy(job->relay, relay, sizeof(job->relay));
		upstream_job_settle(job, code, text);
		upstream_job_done(u, job);
	}
}

/* up_md_work - worker thread: write the file */
static void
up_md_work(void *arg)
{
	struct up_md *m = arg;
	const struct conf_upstream *cu = m->u->cu;

	m->err = 0;
	if (maildir_deliver(cu->maildir, m->u->hostname,
	    m->job->queue_id, m->job->data, m->job->len, m->name, sizeof(m->name)) != 0)
		m->err = errno ? errno : EIO;
}

/* up_md_done - loop thread: every recipient gets the same outcome */
static void
up_md_done(void *arg)
{
	struct up_md *m = arg;
	struct upstream *u = m->u;
	struct upstream_job *job = m->job;
	char text[UP_TEXT_MAX];

	if (m->err == 0)
		snprintf(text, sizeof(text), "250 2.0.0 Ok: delivered to maildir as %s", m->name);
	else {
		util_strlcpy(text, "451 4.3.0 maildir ", sizeof(text));
		util_strlcat(text, u->cu->maildir, sizeof(text));
		util_strlcat(text, ": ", sizeof(text));
		util_strlcat(text, strerror(m->err), sizeof(text));
	}
	upstream_job_settle(job, m->err ? 451 : 250, text);
	free(m);
	u->md_running--;
	upstream_job_done(u, job);
	upstream_dispatch(u);
}

/* up_ready_cb - tell the scheduler there is room again */
static void
up_ready_cb(evutil_socket_t fd, short what, void *arg)
{
	struct upstream *u = arg;

	if (u->ready_fn && !u->freeing)
		u->ready_fn(u->ready_arg);
}

/* upstream_set_ready_cb - who to tell when a connection is free */
void
upstream_set_ready_cb(struct upstream *u, void (*fn)(void *), void *arg)
{
	u->ready_fn = fn;
	u->ready_arg = arg;
}

/* upstream_dispatch - start waiting jobs while there is room; with room
 * left and nothing waiting, the scheduler hears of it (a connection went
 * idle or closed, a Maildir write finished) */
void
upstream_dispatch(struct upstream *u)
{
	struct up_conn *c;
	struct timeval zero = { 0, 0 };

	while (u->waitq.head && !u->freeing) {
		if (u->cu->is_maildir) {
			if (u->md_running >= u->cu->max_connections)
				return;
			struct up_md *m = xcalloc(1, sizeof(*m));
			m->u = u;
			m->job = up_fifo_pop(&u->waitq);
			util_strlcpy(m->job->relay, "maildir:", sizeof(m->job->relay));
			util_strlcat(m->job->relay, u->cu->maildir, sizeof(m->job->relay));
			u->md_running++;
			signer_submit(u->srv->signer, up_md_work, up_md_done, m);
			continue;
		}
		if ((c = upstream_conn_idle(u)) != NULL) {
			upstream_conn_assign(c, up_fifo_pop(&u->waitq));
			continue;
		}
		if (u->nconns >= u->cu->max_connections)
			return;
		upstream_conn_new(u, up_fifo_pop(&u->waitq));
	}
	if (u->ready_fn && !u->freeing && upstream_ready(u))
		evtimer_add(u->ready_ev, &zero);
}

/* upstream_new - one [upstream]; its TLS client context is built here */
struct upstream *
upstream_new(struct server *srv, const struct conf_upstream *cu, char *err, size_t errlen)
{
	struct upstream *u = xcalloc(1, sizeof(*u));

	u->srv = srv;
	u->cu = cu;
	u->hostname = srv->conf->server.hostname;
	u->done_ev = evtimer_new(srv->base, up_done_cb, u);
	u->ready_ev = evtimer_new(srv->base, up_ready_cb, u);
	if (u->done_ev == NULL || u->ready_ev == NULL)
		fatalx("upstream: evtimer_new failed");
	if (!cu->is_maildir && cu->tls != CONF_TLS_NONE) {
		u->ssl_ctx = tls_client_ctx(cu->tls_verify, cu->ca_file, err, errlen);
		if (u->ssl_ctx == NULL) {
			event_free(u->done_ev);
			event_free(u->ready_ev);
			free(u);
			return NULL;
		}
	}
	return u;
}

/* upstream_free - abort what is left (done still runs once per job) */
void
upstream_free(struct upstream *u)
{
	struct upstream_job *job;
	char text[UP_TEXT_MAX];

	if (u == NULL)
		return;
	u->freeing = 1;
	/* Maildir writes already on a worker thread finish (one fsync each)
	 * and report their real outcome. */
	while (u->md_running > 0) {
		loopq_drain(u->srv->loopq);
		if (u->md_running > 0)
			usleep(1000);
	}
	snprintf(text, sizeof(text), "451 4.3.2 upstream %s shutting down", u->cu->name);
	upstream_conn_abort_all(u, text);
	while ((job = up_fifo_pop(&u->waitq)) != NULL) {
		upstream_job_settle(job, 451, text);
		upstream_job_done(u, job);
	}
	up_done_cb(-1, 0, u);
	upstream_conn_release_dead(u);
	event_free(u->done_ev);
	event_free(u->ready_ev);
	if (u->ssl_ctx)
		SSL_CTX_free(u->ssl_ctx);
	free(u);
}

/* upstream_name - the section name, for logs and the store */
const char *
upstream_name(const struct upstream *u)
{
	return u->cu->name;
}

/* upstream_ready - would a job submitted now start at once */
int
upstream_ready(const struct upstream *u)
{
	if (u->freeing || u->waitq.head)
		return 0;
	if (u->cu->is_maildir)
		return u->md_running < u->cu->max_connections;
	if (u->nconns < u->cu->max_connections)
		return 1;
	return upstream_conn_idle(u) != NULL;
}

/* upstream_submit - queue a job; done comes later, from the loop */
void
upstream_submit(struct upstream *u, struct upstream_job *job)
{
	for (size_t i = 0; i < job->nrcpt; i++) {
		job->rcpts[i].code = 0;
		job->rcpts[i].reply[0] = '\0';
	}
	job->relay[0] = '\0';
	job->possible_duplicate = 0;
	u->njobs++;
	if (job->nrcpt == 0 || u->freeing) {
		upstream_job_settle(job, 451, "451 4.3.2 upstream shutting down");
		upstream_job_done(u, job);
		return;
	}
	up_fifo_push(&u->waitq, job);
	upstream_dispatch(u);
}

/* upstream_close_idle - QUIT idle connections, the rest after their job */
void
upstream_close_idle(struct upstream *u)
{
	upstream_conn_quit_idle(u);
}

/* upstream_inflight - jobs whose done has not run yet */
size_t
upstream_inflight(const struct upstream *u)
{
	return u->njobs;
}
