/*
 * inject - messages outpost writes itself (DSNs, alerts) into the queue,
 * the way smtp_session.c queues a submitted one (see inject.h):
 *
 *   inject_message (loop)  -> queue id, hold the DKIM keys
 *   inject_work (pool)     -> Received: prepended, From: domain, DKIM
 *   inject_signed (loop)   -> store_commit
 *   inject_committed (loop)-> scheduler_add, log line, caller's done
 *
 * The Received: header goes in before signing so that what is queued is
 * exactly what is sent (a retry never re-signs); it is not a signed
 * header field, so the signature stays in front of it.
 *
 * Trusts its callers: the message bytes come from bounce.c, whose
 * untrusted parts are already cleaned. Runs on the loop thread except
 * inject_work.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dkim_key.h"
#include "dkim_sign.h"
#include "inject.h"
#include "log.h"
#include "message.h"
#include "scheduler.h"
#include "server.h"
#include "signer.h"
#include "store.h"
#include "util.h"
#include "conf.h"

#define INJECT_RECEIVED_MAX (HOST_MAX + QUEUE_ID_LEN + 128)
#define INJECT_ERR_MAX 640
#define INJECT_STORE_FLAGS (STORE_FLAG_HELD | STORE_FLAG_BULK | STORE_FLAG_FORWARDED | \
	STORE_FLAG_DSN)

struct inject_job {
	struct server *srv;
	struct server_dkim *dkim;   /* held from submission to completion */
	char qid[QUEUE_ID_LEN + 1];
	char hostname[HOST_MAX];
	char *sender;
	char **rcpts;
	size_t nrcpt;
	int flags;                  /* store flags only */
	const char *origin;         /* "dsn", "alert", "local" */
	time_t now;
	char *data;                 /* as given, then freed by the worker */
	size_t len;
	char *out;                  /* Received: + data, signed when possible */
	size_t outlen;
	/* filled by inject_work */
	int rc;                     /* 0 or INJECT_EMSG */
	int signed_ok;
	char from_domain[HOST_MAX];
	char dkim_log[DKIM_SIGN_LOG_MAX];
	char err[INJECT_ERR_MAX];
	/* the commit */
	struct store_msg sm;
	int64_t *rcpt_ids;
	inject_done_fn done;
	void *arg;
};

static size_t inject_count;     /* jobs between submission and done */

/* inject_header_value - the value of the first `name:` field in the
 * header section of msg, unfolded into buf; -1 if absent or too long */
static int
inject_header_value(const char *msg, size_t len, const char *name, char *buf, size_t buflen)
{
	size_t nlen = strlen(name), i = 0, o = 0;

	while (i < len) {
		size_t eol = i;

		while (eol < len && msg[eol] != '\n')
			eol++;
		if (eol == i || (eol == i + 1 && msg[i] == '\r'))
			return -1;      /* the blank line: end of the header */
		if (eol - i > nlen && msg[i + nlen] == ':' &&
		    strncasecmp(msg + i, name, nlen) == 0) {
			size_t p = i + nlen + 1;

			for (;;) {
				for (; p < eol; p++) {
					if (msg[p] == '\r')
						continue;
					if (o + 1 >= buflen)
						return -1;
					buf[o++] = msg[p];
				}
				/* RFC 5322 2.2.3: a line starting with WSP continues */
				if (eol + 1 < len && (msg[eol + 1] == ' ' || msg[eol + 1] == '\t')) {
					p = eol + 1;
					for (eol = p; eol < len && msg[eol] != '\n'; eol++)
						;
					continue;
				}
				break;
			}
			buf[o] = '\0';
			return 0;
		}
		i = eol + 1;
	}
	return -1;
}

/* inject_from_domain - domain of the header From: mailbox, lower case */
static int
inject_from_domain(const char *msg, size_t len, char *dom, size_t domlen)
{
	char value[1024], addr[ADDR_MAX + 1];
	const char *d;

	if (inject_header_value(msg, len, "From", value, sizeof(value)) != 0)
		return -1;
	if (message_parse_mailbox(value, strlen(value), addr, sizeof(addr)) != 1)
		return -1;
	d = util_addr_domain(addr);
	if (*d == '\0' || util_strlcpy(dom, d, domlen) >= domlen)
		return -1;
	util_strlower(dom);
	return 0;
}

/* inject_noop - in the pool: nothing (a refused job still answers on a
 * later loop turn, never inside inject_message) */
static void
inject_noop(void *arg)
{
	(void)arg;
}

/* inject_work - in the pool: Received:, the From: domain, DKIM */
static void
inject_work(void *arg)
{
	struct inject_job *j = arg;
	const struct dkim_domain *d = NULL;
	char date[64], rcvd[INJECT_RECEIVED_MAX], err[256], *sig = NULL;
	size_t siglen;
	int n;

	if (inject_from_domain(j->data, j->len, j->from_domain, sizeof(j->from_domain)) != 0) {
		j->rc = INJECT_EMSG;
		snprintf(j->err, sizeof(j->err), "no From: mailbox in the header");
		free(j->data);
		j->data = NULL;
		return;
	}
	util_rfc5322_date(j->now, date, sizeof(date));
	n = snprintf(rcvd, sizeof(rcvd), "Received: by %s (outpost) id %s; %s\r\n",
	    j->hostname, j->qid, date);
	if (n < 0 || (size_t)n >= sizeof(rcvd))
		fatalx("inject: Received: header does not fit");
	j->outlen = (size_t)n + j->len;
	j->out = xmalloc(j->outlen + 1);
	memcpy(j->out, rcvd, (size_t)n);
	memcpy(j->out + n, j->data, j->len);
	j->out[j->outlen] = '\0';
	free(j->data);
	j->data = NULL;

	if (j->dkim)
		d = dkim_key_find(dkim_sign_keys(j->dkim->signer), j->from_domain);
	if (d == NULL) {
		snprintf(j->err, sizeof(j->err), "no DKIM key for %s", j->from_domain);
		return;
	}
	if (dkim_sign_message(j->dkim->signer, d, j->qid, j->out, j->outlen, &sig, &siglen,
	    j->dkim_log, sizeof(j->dkim_log), err, sizeof(err)) < 0) {
		snprintf(j->err, sizeof(j->err), "DKIM signing for %s failed: %s",
		    j->from_domain, err);
		return;
	}
	free(j->out);
	j->out = sig;
	j->outlen = siglen;
	j->signed_ok = 1;
}

/* inject_job_free - the job and its hold on the keys */
static void
inject_job_free(struct inject_job *j)
{
	if (j->dkim)
		server_dkim_release(j->srv, j->dkim);
	for (size_t i = 0; i < j->nrcpt; i++)
		free(j->rcpts[i]);
	free(j->rcpts);
	free(j->sender);
	free(j->data);
	free(j->out);
	free(j->rcpt_ids);
	free(j);
}

/* inject_finish - answer the caller, then forget the job */
static void
inject_finish(struct inject_job *j, int err)
{
	inject_done_fn done = j->done;
	void *arg = j->arg;
	char qid[QUEUE_ID_LEN + 1];

	util_strlcpy(qid, j->qid, sizeof(qid));
	inject_job_free(j);
	inject_count--;
	if (done)
		done(err, qid, arg);
}

/* inject_committed - on disk (or not): to the scheduler, log, answer */
static void
inject_committed(int err, void *arg)
{
	struct inject_job *j = arg;
	struct store_qrcpt *qr;
	struct store_qmsg qm;
	char esc[ADDR_MAX * 4];

	if (err != STORE_OK) {
		log_err("%s: queue commit of a %s message failed (%s); it is not sent",
		    j->qid, j->origin, err == STORE_EFULL ? "storage full" :
		    err == STORE_EBUSY ? "database locked" : "I/O error");
		inject_finish(j, err);
		return;
	}
	qr = xcalloc(j->nrcpt, sizeof(*qr));
	qm = (struct store_qmsg){
		.id = j->sm.id, .queue_id = j->qid, .sender = j->sender,
		.auth_user = NULL, .received_at = j->sm.received_at,
		.size = j->outlen, .flags = j->flags, .body_8bit = 0,
		.smtputf8 = 0, .rcpts = qr, .nrcpt = j->nrcpt,
		.data = j->out, .len = j->outlen,
	};
	for (size_t i = 0; i < j->nrcpt; i++) {
		qr[i].id = j->rcpt_ids[i];
		qr[i].addr = j->rcpts[i];
		qr[i].attempts = 0;
		qr[i].next_attempt = j->sm.received_at;
	}
	log_info("%s: from=<%s>, size=%zu, nrcpt=%zu, origin=%s", j->qid,
	    log_esc(j->sender, esc, sizeof(esc)), j->outlen, j->nrcpt, j->origin);
	dkim_sign_log(j->qid, j->dkim_log);
	if (j->srv->sched)
		scheduler_add(j->srv->sched, &qm);
	free(qr);
	inject_finish(j, STORE_OK);
}

/* inject_signed - on the loop: commit what the worker made */
static void
inject_signed(void *arg)
{
	struct inject_job *j = arg;

	if (j->rc != 0) {
		log_err("%s: %s message refused: %s", j->qid, j->origin, j->err);
		inject_finish(j, j->rc);
		return;
	}
	if (!j->signed_ok)
		log_warn("%s: %s; %s message queued unsigned", j->qid, j->err, j->origin);
	/* The keys are no longer needed; a reload may retire them now. */
	if (j->dkim) {
		server_dkim_release(j->srv, j->dkim);
		j->dkim = NULL;
	}
	j->rcpt_ids = xcalloc(j->nrcpt, sizeof(*j->rcpt_ids));
	memset(&j->sm, 0, sizeof(j->sm));
	util_strlcpy(j->sm.queue_id, j->qid, sizeof(j->sm.queue_id));
	j->sm.sender = j->sender;
	j->sm.auth_user = NULL;
	j->sm.client = "127.0.0.1";
	j->sm.helo = j->hostname;
	j->sm.received_at = j->now;
	j->sm.flags = j->flags;
	j->sm.data = j->out;
	j->sm.len = j->outlen;
	j->sm.rcpts = (const char *const *)j->rcpts;
	j->sm.nrcpt = j->nrcpt;
	j->sm.rcpt_ids = j->rcpt_ids;
	store_commit(j->srv->store, &j->sm, inject_committed, j);
}

/* inject_message - see inject.h */
void
inject_message(struct server *srv, const char *sender, const char *const *rcpts,
    size_t nrcpt, char *data, size_t len, int flags, inject_done_fn done, void *arg)
{
	struct inject_job *j = xcalloc(1, sizeof(*j));

	j->srv = srv;
	util_queue_id(j->qid);
	util_strlcpy(j->hostname, srv->conf->server.hostname, sizeof(j->hostname));
	j->sender = xstrdup(sender ? sender : "");
	j->rcpts = xcalloc(nrcpt ? nrcpt : 1, sizeof(*j->rcpts));
	for (size_t i = 0; i < nrcpt; i++)
		j->rcpts[i] = xstrdup(rcpts[i]);
	j->nrcpt = nrcpt;
	j->flags = flags & INJECT_STORE_FLAGS;
	j->origin = (flags & INJECT_ORIGIN_ALERT) ? "alert" :
	    (flags & STORE_FLAG_DSN) ? "dsn" : "local";
	j->now = util_now();
	j->data = data;
	j->len = len;
	j->done = done;
	j->arg = arg;
	if (srv->dkim)
		j->dkim = server_dkim_hold(srv);
	inject_count++;
	if (nrcpt == 0) {
		j->rc = INJECT_EMSG;
		snprintf(j->err, sizeof(j->err), "no recipients");
		/* Answer on a later loop turn, never inside the caller. */
		signer_submit(srv->signer, inject_noop, inject_signed, j);
		return;
	}
	signer_submit(srv->signer, inject_work, inject_signed, j);
}

/* inject_inflight - see inject.h */
size_t
inject_inflight(void)
{
	return inject_count;
}
