/*
 * smtp_submit - the final dot: from the client's CRLF.CRLF to the 250.
 *
 * API: smtp_submit_data_end(), called by smtp_session when the DATA
 * scanner finds the end of the data (smtp_session_int.h).
 *
 * First the scanner's verdict: a message too big, with a bare CR or LF
 * (SMTP smuggling, CVE-2023-51764) or with a NUL is refused here and the
 * session goes on. Otherwise the message goes to the signer pool, where
 * message_prepare() does the RFC 5322 checks and fixes and the header
 * From: must belong to the user, unless the mail is forwarded
 * (forward_prepare: envelope rewrite, List-Id). Forwarded mail that is
 * sealed first fetches its DNS keys on the loop (forward_fetch), then
 * gets its ARC set in the pool (RFC 8617); DKIM signs for the From:
 * domain, or for the forwarder's. Back on the loop bulk mail is
 * recognised (bulk.h) and, for a domain with unsubscribe = yes, becomes
 * one signed copy per recipient with its own one-click List-Unsubscribe
 * (a second pool job); the store thread commits the message (or all the
 * copies) and the scheduler takes it; only then is 250 sent (RFC 5321
 * 6.1: with the 250 we take responsibility for the message).
 *
 * Trust: the message is the client's, untrusted; the session is busy
 * while the job runs, so what the job reads of it (user, envelope) does
 * not change under it, and if the client goes away the session is freed
 * when the job comes back (smtp_session_finish).
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "bulk.h"
#include "bulk_copy.h"
#include "conf.h"
#include "dkim_key.h"
#include "dkim_sign.h"
#include "domcheck.h"
#include "forward.h"
#include "log.h"
#include "message.h"
#include "metrics.h"
#include "scheduler.h"
#include "server.h"
#include "signer.h"
#include "smtp_data.h"
#include "smtp_session_int.h"
#include "store.h"
#include "util.h"

/* Log at most this many copy IDs on the "split into" line. */
#define SUBMIT_SPLIT_LOG_IDS 8

/* One recipient's copy of a bulk message with its own one-click link. */
struct submit_copy {
	char qid[QUEUE_ID_LEN + 1];
	struct bulk_copy c;
	struct store_msg sm;
	int64_t rcpt_id;
};

/* A message on its way from the final dot to the 250. */
struct submit_job {
	struct session *s;
	/* inputs, owned by the job */
	char *raw;
	size_t rawlen;
	struct message_params params;
	char helo_esc[HOST_MAX];
	char hostname[HOST_MAX];
	char tls_desc[128];
	char protocol[16];
	char rcpt_for[ADDR_MAX + 1];
	struct server_dkim *dkim;   /* held from submission to completion */
	int unsigned_policy;
	/* outputs */
	int rc;
	enum metrics_reject why;    /* with rc < 0: for the metrics */
	char err[SMTP_ERR_MAX];
	int unsigned_relayed;       /* no key; unsigned = relay let it pass */
	char dkim_log[DKIM_SIGN_LOG_MAX];
	struct message_info info;
	char *out;
	size_t outlen;
	struct forward_plan fwd;    /* forwarded mail and its ARC set */
	int need_fetch;             /* DNS first, then forward_seal */
	char arc_log[FORWARD_LOG_MAX];
	/* commit */
	struct store_msg sm;
	int64_t *rcpt_ids;
	int64_t started_ms;
	/* bulk mail (bulk.h) */
	unsigned char body_hash[BULK_HASH_LEN];
	char *plain;                /* the message before DKIM, kept for copies */
	size_t plainlen;
	time_t token_expires;
	struct submit_copy *copies; /* one per recipient, or NULL */
	struct store_msg **copy_msgs;
	struct store_unsub_token *rows;
	int bulk;                   /* the original, committed as it is, is bulk */
};

static void smtp_submit_commit_done(int err, void *arg);
static void smtp_submit_commit_failed(struct submit_job *j, int err);
static int smtp_submit_bulk(struct submit_job *j);

/* smtp_submit_job_free - release the job and its hold on the DKIM keys */
static void
smtp_submit_job_free(struct submit_job *j)
{
	if (j->dkim)
		server_dkim_release(j->s->srv, j->dkim);
	forward_plan_clear(&j->fwd);
	free(j->raw);
	free(j->out);
	free(j->rcpt_ids);
	free(j->plain);
	for (size_t i = 0; j->copies != NULL && i < j->s->nrcpt; i++)
		free(j->copies[i].c.data);
	free(j->copies);
	free(j->copy_msgs);
	free(j->rows);
	free(j);
}

/* smtp_submit_job_sign - DKIM for the From: domain, or for the forwarder's
 * domain when the mail is forwarded or sealed. With sign = 0 only the
 * key is looked for (unsigned = reject|relay): the message never leaves
 * as it is, its per-recipient copies are signed instead. */
static void
smtp_submit_job_sign(struct submit_job *j, int sign)
{
	const struct dkim_domain *d;
	const char *dom = j->fwd.seal || j->fwd.forwarded ? j->fwd.domain : j->info.from_domain;
	char esc[ADDR_MAX * 4], *sig = NULL;
	size_t siglen;

	d = dkim_key_find(dkim_sign_keys(j->dkim->signer), dom);
	if (d == NULL) {
		if (j->unsigned_policy == CONF_UNSIGNED_RELAY) {
			j->unsigned_relayed = 1;
			return;
		}
		j->rc = -1;
		j->why = METRICS_REJ_UNSIGNED;
		snprintf(j->err, sizeof(j->err), "550 5.7.1 no DKIM key for %s; the message "
		    "would fail DMARC", log_esc(dom, esc, sizeof(esc)));
		return;
	}
	if (!sign)
		return;
	if (dkim_sign_message(j->dkim->signer, d, j->params.queue_id, j->out, j->outlen,
	    &sig, &siglen, j->dkim_log, sizeof(j->dkim_log), esc, sizeof(esc)) < 0) {
		/* A local fault, not the client's: it may retry. */
		j->rc = -1;
		j->why = METRICS_REJ_LOCAL_ERROR;
		log_err("%s: DKIM signing for %s failed: %s", j->params.queue_id, dom, esc);
		snprintf(j->err, sizeof(j->err), "451 4.3.0 DKIM signing failed; try again later");
		return;
	}
	free(j->out);
	j->out = sig;
	j->outlen = siglen;
}

/* smtp_submit_keep_plain - keep the unsigned message when it may become
 * per-recipient copies (bulk with our one-click link). Returns 1 when it
 * certainly will (bulk by its header or the account's or domain's
 * setting): then the original is not kept, nor signed. Whether the
 * volume rule makes it bulk is only known on the loop, where the volume
 * table is: then both are kept. */
static int
smtp_submit_keep_plain(struct submit_job *j)
{
	const struct conf_domain *cd = conf_domain_find(j->s->conf, j->info.from_domain);
	int account;

	if (j->fwd.forwarded || j->fwd.seal || j->info.has_list_unsubscribe || cd == NULL ||
	    !cd->unsubscribe || j->s->srv->unsub_key == NULL)
		return 0;
	j->plain = xmalloc(j->outlen + 1);
	memcpy(j->plain, j->out, j->outlen);
	j->plain[j->outlen] = '\0';
	j->plainlen = j->outlen;
	account = j->s->auth_user != NULL && auth_user_option(j->s->auth_user, "bulk", NULL);
	if (bulk_reason(&j->info, 0, account, cd->bulk) == BULK_NO)
		return 0;
	free(j->out);
	j->out = NULL;
	j->outlen = 0;
	return 1;
}

/* smtp_submit_job_work - in the pool: RFC 5322 checks and fixes, the header
 * From: ownership check (or forwarded mail), then DKIM. The session is
 * busy meanwhile, so what the job reads of it (user, mail) does not
 * change under it. */
static void
smtp_submit_job_work(void *arg)
{
	struct submit_job *j = arg;
	struct server *srv = j->s->srv;
	char esc[ADDR_MAX * 4];
	int owned;

	j->why = METRICS_REJ_INVALID_MESSAGE;
	j->rc = message_prepare(j->raw, j->rawlen, &j->params, &j->info, &j->out,
	    &j->outlen, j->err, sizeof(j->err));
	free(j->raw);
	j->raw = NULL;
	if (j->rc < 0)
		return;
	/* The body as received: message_prepare leaves it as it was. */
	bulk_body_hash(j->out + j->info.header_len, j->outlen - j->info.header_len,
	    j->body_hash);
	owned = smtp_session_sender_ok(j->s, j->info.from_addr);
	j->why = METRICS_REJ_FORWARD;
	if ((j->rc = forward_prepare(&j->fwd, j->s->conf, j->s->auth_user, j->s->cl->forward,
	    srv->psl, j->info.from_domain, owned, &j->out, &j->outlen, j->err,
	    sizeof(j->err))) < 0)
		return;
	/* Header From: must be the user's too, unless forwarded: it is what
	 * DMARC aligns on and what the recipient sees. */
	if (!owned && !j->fwd.forwarded) {
		j->rc = -1;
		j->why = METRICS_REJ_SENDER_NOT_OWNED;
		/* Bounded pieces: a reply line stays under 512 octets. */
		snprintf(j->err, sizeof(j->err), "553 5.7.1 From: address <%.150s> not owned by %.64s",
		    log_esc(j->info.from_addr, esc, sizeof(esc)),
		    j->s->user[0] ? j->s->user : "this client");
		return;
	}
	/* A forwarding account may give a foreign MAIL FROM only because
	 * forwarded mail leaves with its own envelope; its own mail keeps the
	 * rule (for everybody else this is the check MAIL already passed). */
	if (!j->fwd.forwarded && !smtp_session_sender_ok(j->s, j->s->mail.addr)) {
		j->rc = -1;
		j->why = METRICS_REJ_SENDER_NOT_OWNED;
		snprintf(j->err, sizeof(j->err), "553 5.7.1 Sender address <%.100s> not owned by"
		    " %.40s; only forwarded mail keeps a foreign envelope",
		    log_esc(j->s->mail.addr, esc, sizeof(esc)),
		    j->s->user[0] ? j->s->user : "this client");
		return;
	}
	if (j->fwd.seal && srv->verifier != NULL && srv->vdns != NULL) {
		j->need_fetch = 1;      /* the keys first, on the loop */
		return;
	}
	smtp_submit_job_sign(j, !smtp_submit_keep_plain(j));
}

/* smtp_submit_seal_work - in the pool, the DNS answers in hand: ARC, DKIM */
static void
smtp_submit_seal_work(void *arg)
{
	struct submit_job *j = arg;
	struct server *srv = j->s->srv;
	const struct dkim_domain *d = dkim_key_find(dkim_sign_keys(j->dkim->signer),
	    j->fwd.domain);
	char err[256];

	if (forward_seal(&j->fwd, srv->verifier, srv->psl, d, j->hostname, j->params.now,
	    &j->out, &j->outlen, j->arc_log, sizeof(j->arc_log), err, sizeof(err)) < 0) {
		j->rc = -1;
		j->why = METRICS_REJ_LOCAL_ERROR;
		log_err("%s: ARC sealing for %s failed: %s", j->params.queue_id, j->fwd.domain,
		    err);
		snprintf(j->err, sizeof(j->err), "451 4.3.0 ARC sealing failed; try again later");
		return;
	}
	smtp_submit_job_sign(j, 1);
}

static void smtp_submit_job_done(void *arg);

/* smtp_submit_fwd_fetched - the DNS answers are in: seal in the pool */
static void
smtp_submit_fwd_fetched(void *arg)
{
	struct submit_job *j = arg;

	if (j->fwd.cancelled) {
		j->rc = -1;
		j->why = METRICS_REJ_SHUTDOWN;
		snprintf(j->err, sizeof(j->err), "421 4.3.2 Service shutting down");
		smtp_submit_job_done(j);
		return;
	}
	signer_submit(j->s->srv->signer, smtp_submit_seal_work, smtp_submit_job_done, j);
}


/* smtp_submit_job_done - on the loop: ownership check, then commit */
static void
smtp_submit_job_done(void *arg)
{
	struct submit_job *j = arg;
	struct session *s = j->s;
	char esc[ADDR_MAX * 4];

	if (s->dead) {
		smtp_submit_job_free(j);
		smtp_session_finish(s);
		return;
	}
	if (j->rc < 0) {
		metrics_rejected(j->why);
		log_info("%s: reject: %s; from=<%s> user=%s client=[%s]", s->qid, j->err,
		    log_esc(s->mail.addr, esc, sizeof(esc)), s->user[0] ? s->user :
		    "(trusted network)", s->ip);
		smtp_session_reply(s, "%s", j->err);
		smtp_submit_job_free(j);
		smtp_session_finish(s);
		return;
	}
	if (j->need_fetch) {
		j->need_fetch = 0;
		forward_fetch(&j->fwd, s->srv->vdns, smtp_submit_fwd_fetched, j);
		return;
	}
	if (domcheck_refuses(s->srv->domcheck, j->info.from_domain, j->err, sizeof(j->err))) {
		metrics_rejected(METRICS_REJ_DOMAIN_CHECK);
		log_info("%s: reject: %s; from=<%s> user=%s", s->qid, j->err,
		    log_esc(s->mail.addr, esc, sizeof(esc)), s->user[0] ? s->user : "-");
		smtp_session_reply(s, "%s", j->err);
		smtp_submit_job_free(j);
		smtp_session_finish(s);
		return;
	}
	if (j->fwd.forwarded) {
		log_info("%s: forwarded (%s): envelope from=<%s> rewritten to <%s>", s->qid,
		    j->fwd.via, log_esc(s->mail.addr, esc, sizeof(esc)), j->fwd.envelope);
		util_strlcpy(s->mail.addr, j->fwd.envelope, sizeof(s->mail.addr));
	}
	if (j->arc_log[0]) {
		char aesc[FORWARD_LOG_MAX * 4];

		log_info("%s: %s", s->qid, log_esc(j->arc_log, aesc, sizeof(aesc)));
	}
	if (j->unsigned_relayed)
		log_warn("%s: no DKIM key for %s; relayed unsigned (unsigned = relay): "
		    "receivers applying DMARC may reject it", s->qid,
		    log_esc(j->info.from_domain, esc, sizeof(esc)));
	if (smtp_submit_bulk(j))
		return;                 /* refused, or copies on their way */
	memset(&j->sm, 0, sizeof(j->sm));
	util_strlcpy(j->sm.queue_id, s->qid, sizeof(j->sm.queue_id));
	j->sm.sender = s->mail.addr;
	j->sm.auth_user = s->user[0] ? s->user : NULL;
	j->sm.client = s->ip;
	j->sm.helo = s->helo;
	j->sm.received_at = util_now();
	j->sm.flags = (j->fwd.forwarded ? STORE_FLAG_FORWARDED : 0) |
	    (j->bulk ? STORE_FLAG_BULK : 0);
	j->sm.body_8bit = s->mail.body == SMTP_BODY_8BITMIME;
	j->sm.smtputf8 = s->mail.smtputf8;
	j->sm.data = j->out;
	j->sm.len = j->outlen;
	j->sm.ret = (int)s->mail.ret;
	j->sm.envid = s->mail.envid[0] ? s->mail.envid : NULL;
	j->sm.rcpts = (const char *const *)s->rcpts;
	j->sm.notify = s->rcpt_notify;
	j->sm.orcpt = (const char *const *)s->rcpt_orcpt;
	j->sm.nrcpt = s->nrcpt;
	j->rcpt_ids = xcalloc(s->nrcpt, sizeof(*j->rcpt_ids));
	j->sm.rcpt_ids = j->rcpt_ids;
	store_commit(s->srv->store, &j->sm, smtp_submit_commit_done, j);
}

/* smtp_submit_commit_done - the message is on disk (or not): now reply */
static void
smtp_submit_commit_done(int err, void *arg)
{
	struct submit_job *j = arg;
	struct session *s = j->s;
	char esc[ADDR_MAX * 4];

	if (err == STORE_OK) {
		struct store_qrcpt *qr = xcalloc(s->nrcpt, sizeof(*qr));
		struct store_qmsg qm = {
			.id = j->sm.id, .queue_id = s->qid, .sender = s->mail.addr,
			.auth_user = j->sm.auth_user, .received_at = j->sm.received_at,
			.size = j->outlen, .flags = j->sm.flags, .body_8bit = j->sm.body_8bit,
			.smtputf8 = j->sm.smtputf8, .ret = j->sm.ret,
			.envid = j->sm.envid, .rcpts = qr, .nrcpt = s->nrcpt,
			.data = j->out, .len = j->outlen,
		};
		for (size_t i = 0; i < s->nrcpt; i++) {
			qr[i].id = j->rcpt_ids[i];
			qr[i].addr = s->rcpts[i];
			qr[i].attempts = 0;
			qr[i].next_attempt = j->sm.received_at;
			qr[i].notify = s->rcpt_notify[i];
			qr[i].orcpt = s->rcpt_orcpt[i];
		}
		log_info("%s: from=<%s>, size=%zu, nrcpt=%zu, user=%s, client=[%s], msgid=%s",
		    s->qid, log_esc(s->mail.addr, esc, sizeof(esc)), j->outlen, s->nrcpt,
		    s->user[0] ? s->user : "-", s->ip, j->info.message_id);
		dkim_sign_log(s->qid, j->dkim_log);
		metrics_received(s->cl->name, (double)(util_mono_ms() - j->started_ms) / 1000.0);
		scheduler_add(s->srv->sched, &qm);
		free(qr);
		if (!s->dead)
			smtp_session_reply(s, "250 2.0.0 Ok: queued as %s", s->qid);
	} else {
		smtp_submit_commit_failed(j, err);
	}
	smtp_submit_job_free(j);
	smtp_session_finish(s);
}

/* smtp_submit_commit_failed - nothing was queued: the client retries */
static void
smtp_submit_commit_failed(struct submit_job *j, int err)
{
	struct session *s = j->s;

	log_err("%s: queue commit failed (%s); client=[%s] told to retry", s->qid,
	    err == STORE_EFULL ? "storage full" : err == STORE_EBUSY ?
	    "database locked" : "I/O error", s->ip);
	metrics_rejected(METRICS_REJ_LOCAL_ERROR);
	if (!s->dead) {
		if (err == STORE_EFULL)
			smtp_session_reply(s, "452 4.3.1 Insufficient system storage; try again later");
		else
			smtp_session_reply(s, "451 4.3.0 Queue write failed; try again later");
	}
}

/*
 * Bulk mail. Decided on the loop, where the volume table is: the signs
 * and the configuration (bulk_reason), then this body's recipients from
 * this sender over the last day. With a one-click link to add, a second
 * pool job makes and signs one copy per recipient (smtp_submit_copy_work:
 * one RSA signature each, ~1 ms), and the store commits the copies with
 * their ledger rows in one transaction (store_commit_batch): all of them
 * or, on a failure, none, so the client's retry after 451 cannot send
 * anybody a second copy. The client's 250 carries the original's ID.
 */

/* smtp_submit_copy_work - in the pool: every recipient's copy */
static void
smtp_submit_copy_work(void *arg)
{
	struct submit_job *j = arg;
	struct session *s = j->s;
	const char *list = j->info.list_id[0] ? j->info.list_id : j->info.from_domain;
	struct bulk_copy_params p = {
		.key = s->srv->unsub_key, .url = s->conf->unsub.url,
		.domain = j->info.from_domain, .list = list, .sender = s->mail.addr,
		.expires = j->token_expires,
		.add_precedence = j->info.precedence == MESSAGE_PREC_NONE,
		.signer = j->dkim->signer,
		.dkim = dkim_key_find(dkim_sign_keys(j->dkim->signer), j->info.from_domain),
	};
	char why[256];

	for (size_t i = 0; i < s->nrcpt; i++) {
		if (bulk_copy_make(&p, j->plain, j->plainlen, s->rcpts[i], &j->copies[i].c,
		    why, sizeof(why)) < 0) {
			j->rc = -1;
			j->why = METRICS_REJ_LOCAL_ERROR;
			log_err("%s: one-click copy for a recipient failed: %s", j->params.queue_id,
			    why);
			snprintf(j->err, sizeof(j->err), "451 4.3.0 Bulk copy failed; try again later");
			return;
		}
	}
}

static void smtp_submit_copies_committed(int err, void *arg);

/* smtp_submit_copies_made - on the loop: commit copies and ledger rows */
static void
smtp_submit_copies_made(void *arg)
{
	struct submit_job *j = arg;
	struct session *s = j->s;
	const char *list = j->info.list_id[0] ? j->info.list_id : j->info.from_domain;
	time_t now = util_now();

	if (s->dead || j->rc < 0) {
		if (!s->dead) {
			char esc[ADDR_MAX * 4];

			metrics_rejected(j->why);
			log_info("%s: reject: %s; from=<%s>", s->qid, j->err,
			    log_esc(s->mail.addr, esc, sizeof(esc)));
			smtp_session_reply(s, "%s", j->err);
		}
		smtp_submit_job_free(j);
		smtp_session_finish(s);
		return;
	}
	j->copy_msgs = xcalloc(s->nrcpt, sizeof(*j->copy_msgs));
	j->rows = xcalloc(s->nrcpt, sizeof(*j->rows));
	for (size_t i = 0; i < s->nrcpt; i++) {
		struct submit_copy *c = &j->copies[i];
		struct store_msg *m = &c->sm;

		util_strlcpy(m->queue_id, c->qid, sizeof(m->queue_id));
		m->sender = s->mail.addr;
		m->auth_user = s->user[0] ? s->user : NULL;
		m->client = s->ip;
		m->helo = s->helo;
		m->received_at = now;
		m->flags = STORE_FLAG_BULK;
		m->body_8bit = s->mail.body == SMTP_BODY_8BITMIME;
		m->smtputf8 = s->mail.smtputf8;
		m->data = c->c.data;
		m->len = c->c.len;
		m->ret = (int)s->mail.ret;
		m->envid = s->mail.envid[0] ? s->mail.envid : NULL;
		m->rcpts = (const char *const *)&s->rcpts[i];
		m->notify = s->rcpt_notify ? &s->rcpt_notify[i] : NULL;
		m->orcpt = s->rcpt_orcpt ? (const char *const *)&s->rcpt_orcpt[i] : NULL;
		m->nrcpt = 1;
		m->rcpt_ids = &c->rcpt_id;
		j->copy_msgs[i] = m;
		util_strlcpy(j->rows[i].token, c->c.token, sizeof(j->rows[i].token));
		j->rows[i].sender = s->mail.addr;
		j->rows[i].rcpt = s->rcpts[i];
		j->rows[i].list = list;
		j->rows[i].expires = j->token_expires;
	}
	store_commit_batch(s->srv->store, j->copy_msgs, s->nrcpt, j->rows, s->nrcpt,
	    smtp_submit_copies_committed, j);
}

/* smtp_submit_copies_committed - every copy is on disk (or none): log,
 * schedule each copy as a message of its own, reply */
static void
smtp_submit_copies_committed(int err, void *arg)
{
	struct submit_job *j = arg;
	struct session *s = j->s;
	char esc[ADDR_MAX * 4], ids[SUBMIT_SPLIT_LOG_IDS * (QUEUE_ID_LEN + 1) + 8];

	if (err != STORE_OK) {
		smtp_submit_commit_failed(j, err);
		smtp_submit_job_free(j);
		smtp_session_finish(s);
		return;
	}
	ids[0] = '\0';
	for (size_t i = 0; i < s->nrcpt && i < SUBMIT_SPLIT_LOG_IDS; i++) {
		util_strlcat(ids, " ", sizeof(ids));
		util_strlcat(ids, j->copies[i].qid, sizeof(ids));
	}
	log_info("%s: split into %zu copies for one-click unsubscribe:%s%s", s->qid, s->nrcpt,
	    ids, s->nrcpt > SUBMIT_SPLIT_LOG_IDS ? " ..." : "");
	for (size_t i = 0; i < s->nrcpt; i++) {
		struct submit_copy *c = &j->copies[i];
		struct store_qrcpt qr = {
			.id = c->rcpt_id, .addr = s->rcpts[i], .next_attempt = c->sm.received_at,
			.notify = s->rcpt_notify ? s->rcpt_notify[i] : 0,
			.orcpt = s->rcpt_orcpt ? s->rcpt_orcpt[i] : NULL,
		};
		struct store_qmsg qm = {
			.id = c->sm.id, .queue_id = c->qid, .sender = s->mail.addr,
			.auth_user = c->sm.auth_user, .received_at = c->sm.received_at,
			.size = c->c.len, .flags = c->sm.flags, .body_8bit = c->sm.body_8bit,
			.smtputf8 = c->sm.smtputf8, .ret = c->sm.ret, .envid = c->sm.envid,
			.rcpts = &qr, .nrcpt = 1, .data = c->c.data, .len = c->c.len,
		};

		log_info("%s: from=<%s>, size=%zu, nrcpt=1, user=%s, client=[%s], msgid=%s,"
		    " original=%s", c->qid, log_esc(s->mail.addr, esc, sizeof(esc)), c->c.len,
		    s->user[0] ? s->user : "-", s->ip, j->info.message_id, s->qid);
		dkim_sign_log(c->qid, c->c.dkim_log);
		scheduler_add(s->srv->sched, &qm);
	}
	metrics_received(s->cl->name, (double)(util_mono_ms() - j->started_ms) / 1000.0);
	if (!s->dead)
		smtp_session_reply(s, "250 2.0.0 Ok: queued as %s", s->qid);
	smtp_submit_job_free(j);
	smtp_session_finish(s);
}

/* smtp_submit_bulk - is it bulk, and what then? 0: commit the message as
 * it is (j->bulk says whether it is bulk); 1: refused here, or its
 * per-recipient copies are on their way (the job is theirs now). */
static int
smtp_submit_bulk(struct submit_job *j)
{
	struct session *s = j->s;
	const struct conf *c = s->conf;
	const struct conf_domain *cd = conf_domain_find(c, j->info.from_domain);
	int account = s->auth_user != NULL && auth_user_option(s->auth_user, "bulk", NULL);
	enum bulk_reason r = bulk_reason(&j->info, j->fwd.forwarded, account, cd && cd->bulk);
	enum bulk_unsub u;
	unsigned long volume = 0;
	char why[64], esc[ADDR_MAX * 4], desc[HOST_MAX * 4];

	if (!j->fwd.forwarded && s->srv->bulk != NULL && c->server.bulk_threshold > 0) {
		volume = bulk_volume_add(s->srv->bulk, s->mail.addr, j->body_hash, s->nrcpt,
		    util_now());
		if (r == BULK_NO && volume > (unsigned long)c->server.bulk_threshold)
			r = BULK_VOLUME;
	}
	if (r == BULK_NO)
		return 0;
	u = bulk_unsub_mode(&j->info, j->fwd.forwarded, cd && cd->unsubscribe,
	    s->srv->unsub_key != NULL && j->plain != NULL);
	if (r == BULK_VOLUME)
		snprintf(why, sizeof(why), "volume %lu recipients/24h", volume);
	else
		util_strlcpy(why, bulk_reason_name(r), sizeof(why));
	log_info("%s: bulk (reason: %s), unsubscribe: %s", s->qid, why, bulk_unsub_name(u));
	log_esc(s->mail.addr, esc, sizeof(esc));
	/* Forwarded mail is passed on as it is, with or without a link. */
	if (u == BULK_UNSUB_NONE && !j->fwd.forwarded &&
	    c->server.bulk_without_unsubscribe == CONF_BULK_REJECT) {
		metrics_rejected(METRICS_REJ_BULK_UNSUB);
		snprintf(j->err, sizeof(j->err), "550 5.7.1 bulk mail without one-click "
		    "unsubscribe (List-Unsubscribe); set [domain %.100s] unsubscribe = yes or "
		    "add the header", log_esc(j->info.from_domain, desc, sizeof(desc)));
		log_info("%s: reject: %s; from=<%s> user=%s", s->qid, j->err, esc,
		    s->user[0] ? s->user : "-");
		smtp_session_reply(s, "%s", j->err);
		smtp_submit_job_free(j);
		smtp_session_finish(s);
		return 1;
	}
	metrics_bulk(u == BULK_UNSUB_ONE_CLICK ? "one-click" : u == BULK_UNSUB_SENDER ?
	    "sender" : "none");
	j->bulk = 1;
	if (u == BULK_UNSUB_NONE && !j->fwd.forwarded) {
		log_warn("%s: warning: bulk mail from <%s> without List-Unsubscribe; Gmail and "
		    "Yahoo require one-click unsubscribe for bulk senders (set [domain] "
		    "unsubscribe = yes)", s->qid, esc);
		if (s->srv->bulk != NULL)
			bulk_note_unsubless(s->srv->bulk, s->mail.addr);
	}
	if (u != BULK_UNSUB_ONE_CLICK)
		return 0;
	j->copies = xcalloc(s->nrcpt, sizeof(*j->copies));
	for (size_t i = 0; i < s->nrcpt; i++)
		util_queue_id(j->copies[i].qid);
	j->token_expires = util_now() + c->unsub.token_lifetime;
	signer_submit(s->srv->signer, smtp_submit_copy_work, smtp_submit_copies_made, j);
	return 1;
}

/* smtp_submit_data_end - the client sent CRLF.CRLF */
void
smtp_submit_data_end(struct session *s)
{
	const struct conf *c = s->conf;
	struct submit_job *j;

	if (s->data.bare || s->data.big || s->data.nul) {
		metrics_rejected(s->data.big ? METRICS_REJ_MESSAGE_TOO_BIG : s->data.bare ?
		    METRICS_REJ_BARE_LINE_END : METRICS_REJ_NUL);
		if (s->data.big)
			smtp_session_reply(s, "552 5.3.4 Message size exceeds fixed maximum message size (%zu)",
			    c->server.max_message_size);
		else if (s->data.bare)
			smtp_session_reply(s, "550 5.5.2 Message contains bare CR or LF; only CRLF line endings are accepted");
		else
			smtp_session_reply(s, "550 5.6.0 Message contains NUL characters");
		log_info("%s: reject: %s in DATA; client=[%s]", s->qid, s->data.big ?
		    "message too big" : s->data.bare ? "bare CR/LF" : "NUL", s->ip);
		smtp_session_reset(s);
		smtp_session_deadline(s, c->server.timeout_command);
		return;
	}
	if (s->nrcpt == 0) {
		/* Only mailto: unsubscribes, each already on disk before its
		 * 250 (smtp_session.c): the message itself goes nowhere. */
		log_info("%s: message to %zu unsubscribe address%s discarded; client=[%s]",
		    s->qid, s->nunsub, s->nunsub == 1 ? "" : "es", s->ip);
		smtp_session_reply(s, "250 2.0.0 Ok: unsubscribe recorded, message discarded");
		smtp_session_reset(s);
		smtp_session_deadline(s, c->server.timeout_command);
		return;
	}
	j = xcalloc(1, sizeof(*j));
	j->s = s;
	j->raw = smtp_data_take(&s->data, &j->rawlen);
	util_strlcpy(j->hostname, c->server.hostname, sizeof(j->hostname));
	log_esc(s->helo, j->helo_esc, sizeof(j->helo_esc));
	snprintf(j->protocol, sizeof(j->protocol), "%s%s%s", s->esmtp ? "ESMTP" : "SMTP",
	    s->tls ? "S" : "", s->user[0] ? "A" : "");
	util_strlcpy(j->tls_desc, s->tls_desc, sizeof(j->tls_desc));
	if (s->nrcpt == 1)
		util_strlcpy(j->rcpt_for, s->rcpts[0], sizeof(j->rcpt_for));
	j->params.hostname = j->hostname;
	j->params.helo = j->helo_esc;
	j->params.client_ip = s->ip;
	j->params.protocol = j->protocol;
	j->params.tls = s->tls ? j->tls_desc : NULL;
	j->params.queue_id = s->qid;
	j->params.rcpt_for = s->nrcpt == 1 ? j->rcpt_for : NULL;
	j->params.now = util_now();
	j->params.max_header_size = c->server.max_header_size;
	j->started_ms = util_mono_ms();
	j->dkim = server_dkim_hold(s->srv);
	j->unsigned_policy = c->server.unsigned_policy;
	s->busy = 1;
	smtp_session_deadline(s, 0);
	smtp_session_set_state(s, ST_READY);
	signer_submit(s->srv->signer, smtp_submit_job_work, smtp_submit_job_done, j);
}
