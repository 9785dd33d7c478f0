/*
 * sched_notify - what the sender and the admin learn of an outcome.
 *
 * API (scheduler_int.h): sched_done() in scheduler.c notes the failed
 * and the delayed recipients of an attempt and hands them here.
 *
 * DSNs (RFC 3464) go to the envelope sender through inject_message, one
 * per attempt for all its failed recipients (NOTIFY unset or FAILURE:
 * RFC 3461 4.1's default), and one per recipient and message for a delay
 * once [queue] delay_warning has passed, but only when NOTIFY=DELAY was
 * asked for explicitly. A null-sender message never gets a DSN (RFC 3464
 * 2): its failure is a postmaster alert ("double-bounce"). SPF/DKIM/DMARC
 * and blocklist refusals raise an alert for the admin. A bad mailbox
 * (RFC 3463 X.1.1 and friends) is suppressed: refused at RCPT from then
 * on; so is an address that failed temporarily soft_bounce_limit times
 * across soft_bounce_period with no delivery in between.
 *
 * Input trusted: the scheduler's own records; upstream replies were made
 * printable by smtp_reply_feed(); addresses are escaped for logs.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "alert.h"
#include "bounce.h"
#include "classify.h"
#include "conf.h"
#include "inject.h"
#include "log.h"
#include "scheduler_int.h"
#include "server.h"
#include "smtp_parse.h"
#include "store.h"
#include "suppress.h"
#include "upstream.h"
#include "util.h"

/* A DSN being queued: for the log line once it has its queue id. */
struct sched_dsn_job {
	char qid[QUEUE_ID_LEN + 1];
	enum bounce_kind kind;
};

/* sched_notify_dsn_queued - inject's answer: one Postfix-worded line */
static void
sched_notify_dsn_queued(int err, const char *queue_id, void *arg)
{
	struct sched_dsn_job *dj = arg;
	const char *what = dj->kind == BOUNCE_DELAYED ? "delay" : "non-delivery";

	if (err == STORE_OK)
		log_info("%s: sender %s notification: %s", dj->qid, what, queue_id);
	else
		log_err("%s: sender %s notification not queued (error %d)", dj->qid,
		    what, err);
	free(dj);
}

/* sched_notify_remote_mta - the upstream's host name out of "host[ip]:port";
 * "" for the maildir upstream or no connection */
static void
sched_notify_remote_mta(const char *relay, char *host, size_t len)
{
	size_t n = strcspn(relay, "[");

	host[0] = '\0';
	if (strncmp(relay, "maildir:", 8) == 0 || relay[n] != '[' || n == 0 || n >= len)
		return;
	memcpy(host, relay, n);
	host[n] = '\0';
}

/* sched_notify_wants_dsn - RFC 3461 4.1: NOTIFY=NEVER never; no NOTIFY means
 * FAILURE (and, by our choice, no delay notices); otherwise as listed */
int
sched_notify_wants_dsn(int notify, enum bounce_kind kind)
{
	if (notify & SMTP_NOTIFY_NEVER)
		return 0;
	if (kind == BOUNCE_DELAYED)
		return (notify & SMTP_NOTIFY_DELAY) != 0;
	return notify == 0 || (notify & SMTP_NOTIFY_FAILURE) != 0;
}

/* sched_notify_send_dsn - one DSN of this kind for the noted recipients that
 * asked for it, to the original sender, from <> */
void
sched_notify_send_dsn(struct scheduler *s, const struct sched_msg *m, const struct sched_job *sj,
    const struct sched_note *notes, size_t n, enum bounce_kind kind, time_t now)
{
	const struct conf *c = s->conf;
	struct bounce_rcpt *br;
	struct bounce_params p;
	struct sched_dsn_job *dj;
	char host[UPSTREAM_RELAY_MAX], err[BOUNCE_ERR_MAX], **diag;
	const char *rcpt[1] = { m->sender };
	char *out = NULL;
	size_t outlen = 0, k = 0;

	if (n == 0 || s->srv->signer == NULL)   /* no signer: unit tests */
		return;
	br = xcalloc(n, sizeof(*br));
	diag = xcalloc(n, sizeof(*diag));
	sched_notify_remote_mta(sj->job.relay, host, sizeof(host));
	for (size_t i = 0; i < n && k < BOUNCE_RCPTS_MAX; i++) {
		const struct sched_rcpt *r = &m->rcpts[notes[i].ri];

		if (!sched_notify_wants_dsn(r->notify, kind))
			continue;
		br[k].final_rcpt = r->addr;
		/* ORCPT is kept as "rfc822;addr"; bounce wants the address */
		if (r->orcpt != NULL && strncasecmp(r->orcpt, "rfc822;", 7) == 0)
			br[k].orcpt = r->orcpt + 7;
		br[k].status = notes[i].status;
		br[k].remote_mta = host[0] ? host : NULL;
		diag[k] = xasprintf("smtp; %s", notes[i].reply);
		br[k].diagnostic = diag[k];
		br[k].last_attempt = now;
		if (kind == BOUNCE_DELAYED)
			br[k].will_retry_until = m->received_at + c->queue.max_lifetime;
		k++;
	}
	if (k > 0) {
		memset(&p, 0, sizeof(p));
		p.hostname = c->server.hostname;
		p.sender = m->sender;
		p.orig = sj->data;
		p.orig_len = sj->job.len;
		p.ret = m->ret == SMTP_RET_FULL ? BOUNCE_RET_FULL :
		    m->ret == SMTP_RET_HDRS ? BOUNCE_RET_HDRS : BOUNCE_RET_UNSET;
		p.envid = m->envid;
		p.arrival = m->received_at;
		p.queue_id = m->queue_id;
		p.kind = kind;
		p.rcpts = br;
		p.nrcpts = k;
		p.now = now;
		if (bounce_build(&p, &out, &outlen, err, sizeof(err)) == -1) {
			log_err("%s: cannot build the DSN: %s", m->queue_id, err);
		} else {
			dj = xcalloc(1, sizeof(*dj));
			util_strlcpy(dj->qid, m->queue_id, sizeof(dj->qid));
			dj->kind = kind;
			inject_message(s->srv, "", rcpt, 1, out, outlen, STORE_FLAG_DSN,
			    sched_notify_dsn_queued, dj);
		}
	}
	for (size_t i = 0; i < k; i++)
		free(diag[i]);
	free(diag);
	free(br);
}

/* sched_notify_double_bounce - a null-sender message failed: no DSN about a
 * DSN (RFC 3464 2, RELIABILITY D2), postmaster hears of it instead */
void
sched_notify_double_bounce(struct scheduler *s, const struct sched_msg *m,
    const struct sched_note *notes, size_t n)
{
	char *details = xasprintf("queue id %s", m->queue_id), *more;

	for (size_t i = 0; i < n; i++) {
		more = xasprintf("%s\nrecipient <%s>: %s", details, m->rcpts[notes[i].ri].addr,
		    notes[i].reply);
		free(details);
		details = more;
	}
	alert_raise(s->srv->alert, "double-bounce",
	    "a null-sender message could not be delivered", details, NULL);
	free(details);
}

/* sched_notify_policy_alerts - SPF/DKIM/DMARC and blocklist refusals are the
 * admin's to fix (DNS, reputation): one alert cause per recipient
 * domain or per upstream, rate-limited by alert.c */
void
sched_notify_policy_alerts(struct scheduler *s, const struct sched_msg *m,
    const struct sched_note *notes, size_t n)
{
	const char *from_dom = util_addr_domain(m->sender);
	char advice[CLASSIFY_ADVICE_MAX];

	for (size_t i = 0; i < n; i++) {
		enum classify_class cls = notes[i].cls;
		const char *to_dom = util_addr_domain(m->rcpts[notes[i].ri].addr);
		char *cause, *summary, *details;

		if (!classify_alerts(cls))
			continue;
		classify_advice(cls, from_dom, advice, sizeof(advice));
		if (cls == CLASSIFY_POLICY_AUTH)
			cause = xasprintf("policy:%s", to_dom);
		else
			cause = xasprintf("blocklist:%s", upstream_name(m->up->u));
		summary = xasprintf("mail from %s to %s refused: %s",
		    *from_dom ? from_dom : "<>", to_dom, advice);
		details = xasprintf("queue id %s, recipient <%s>: %s", m->queue_id,
		    m->rcpts[notes[i].ri].addr, notes[i].reply);
		alert_raise(s->srv->alert, cause, summary, details, advice);
		free(cause);
		free(summary);
		free(details);
	}
}

/* sched_notify_suppress_addr - refuse addr at RCPT from now on: in memory for
 * the next RCPT, in queue.db for the next start */
static void
sched_notify_suppress_addr(struct scheduler *s, const struct sched_msg *m, const char *addr,
    const char *reason, const char *reply, time_t now)
{
	long ttl = s->conf->queue.suppress_expiry;
	time_t expires = ttl > 0 ? now + ttl : 0;
	char esc[ADDR_MAX * 4 + 1], resc[SUPPRESS_REPLY_MAX * 4 + 1];

	store_suppress_add(s->srv->store, addr, reason, reply, expires);
	if (s->srv->suppress != NULL)
		suppress_add(s->srv->suppress, addr, reason, reply, now, expires);
	log_info("%s: to=<%s> suppressed (%s: %s)", m->queue_id,
	    log_esc(addr, esc, sizeof(esc)), reason, log_esc(reply, resc, sizeof(resc)));
}

/* sched_notify_suppress - a bad mailbox (RFC 3463 X.1.1 and friends) is not
 * worth another try. Policy and blocklist refusals are the sender's
 * problem and never suppress. */
void
sched_notify_suppress(struct scheduler *s, struct sched_msg *m,
    const struct sched_note *notes, size_t n, time_t now)
{
	for (size_t i = 0; i < n; i++)
		if (classify_suppresses(notes[i].cls))
			sched_notify_suppress_addr(s, m, m->rcpts[notes[i].ri].addr,
			    classify_name(notes[i].cls), notes[i].reply, now);
}

/* sched_notify_is_soft - a temporary failure of the mailbox itself: RFC 3463
 * X.1.x (address) or X.2.x (mailbox full, disabled for now), or a bare
 * 450 "mailbox unavailable" (RFC 5321 4.2.3). The local 4.4.x of a
 * failed connection and throttling are not the recipient's doing. */
int
sched_notify_is_soft(const struct upstream_rcpt *ur)
{
	char dsn[SCHED_DSN_MAX];

	if (ur->code / 100 != 4)
		return 0;
	scheduler_dsn(ur->reply, 4, dsn, sizeof(dsn));
	if ((dsn[2] == '1' || dsn[2] == '2') && dsn[3] == '.')
		return 1;
	return ur->code == 450 && strcmp(dsn, "4.0.0") == 0 &&
	    strncmp(ur->reply, "450 4.0.0", 9) != 0;
}

/* sched_notify_soft - one more soft failure of addr: soft_bounce_limit of them
 * across at least soft_bounce_period, with no delivery in between, make
 * the address as dead for the receivers as a 5.1.1 does */
void
sched_notify_soft(struct scheduler *s, const struct sched_msg *m, const char *addr,
    const char *reply, time_t now)
{
	const struct conf_queue *q = &s->conf->queue;
	const struct suppress_entry *e;
	char esc[ADDR_MAX * 4 + 1];

	if (q->soft_bounce_limit <= 0 ||
	    (e = suppress_soft_note(s->soft, addr, reply, now, q->soft_bounce_period)) == NULL)
		return;
	if (e->count < (unsigned)q->soft_bounce_limit ||
	    now - e->first_seen < q->soft_bounce_period) {
		store_soft_put(s->srv->store, addr, e->count, e->first_seen, e->last_seen,
		    reply);
		return;
	}
	log_info("%s: to=<%s> failed temporarily %u times in %lds", m->queue_id,
	    log_esc(addr, esc, sizeof(esc)), e->count, (long)(now - e->first_seen));
	sched_notify_suppress_addr(s, m, addr, "soft-bounce", reply, now);
	suppress_remove(s->soft, addr);
	store_soft_put(s->srv->store, addr, 0, 0, 0, NULL);
}

/* sched_notify_soft_clear - a delivery ends addr's run of soft failures */
void
sched_notify_soft_clear(struct scheduler *s, const char *addr)
{
	if (suppress_count(s->soft) > 0 && suppress_remove(s->soft, addr))
		store_soft_put(s->srv->store, addr, 0, 0, 0, NULL);
}
