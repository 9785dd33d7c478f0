/*
 * scheduler - what is delivered when. See scheduler.h.
 *
 * Every message with pending recipients is one sched_msg in memory (no
 * body), kept in a binary min-heap on its earliest next attempt, so a
 * tick costs O(log n) per due message and nothing per waiting one; the
 * queue may hold 10^6 messages. A timer is re-armed to the heap's next
 * due time, and fires at least every [queue] scan_interval.
 *
 * A due message goes to its upstream (chosen once, from the sender
 * domain's [domain] upstream list, else [server] default_upstream) when
 * that upstream has room: at most max_connections of its jobs loading or
 * in flight, so bodies are read from the store only when they can go out.
 * Otherwise it waits in the upstream's FIFO of blocked messages, which is
 * drained whenever one of its jobs completes (and on every tick).
 *
 * Throttling (throttle.h): each upstream has a pacing controller. Before
 * a message starts, throttle_when() is asked with its recipients' domains.
 * An upstream-wide wait (rate, daily limit, spike guard, suspension)
 * stops the upstream's FIFO at its head and the timer is armed for the
 * moment it lifts; a wait for one recipient domain only sends that
 * message back into the heap with due = that moment (the heap key is a
 * double for this), so other domains keep flowing. Waiting mail is never
 * bounced; it is not even an attempt. Replies are classified
 * (classify.h): a throttling one (421, 4.7.x rate texts, 5xx sending
 * quotas) halves the rate and suspends the upstream, and its recipients
 * are deferred to the end of the suspension; successes recover the rate.
 * The rolling-day counters go to the store's counters table every
 * SCHED_SAVE_EVERY seconds when changed, and at shutdown.
 *
 * Outcomes (RFC 5321 4.2.1 reply classes): 2xx sent, 5xx bounced (unless
 * it is a sending quota: deferred), 4xx deferred by [queue] retry
 * (exponential with jitter past the listed steps), or bounced once
 * max_lifetime has passed.
 * Each is logged Postfix-style and recorded through store_record();
 * DSNs (RFC 3464) go to the envelope sender through inject_message,
 * one per attempt for all its failed recipients (NOTIFY unset or
 * FAILURE: RFC 3461 4.1's default), and one per recipient and message
 * for a delay once [queue] delay_warning has passed, but only when
 * NOTIFY=DELAY was asked for explicitly (RFC 3461 4.1 lets the MTA
 * choose; Postfix also sends none by default). A null-sender message
 * never gets a DSN (RFC 3464 2): its failure is a postmaster alert
 * ("double-bounce"). Policy and blocklist refusals alert too.
 * sched_notify.c writes the DSNs and alerts and keeps the suppression
 * and soft-bounce records; sched_admin.c carries out the queue tools;
 * scheduler_int.h has what the three files share.
 * The store learns nothing of a delivery before its reply came back, so
 * a crash in between sends the message again (RELIABILITY Q3).
 *
 * Input trusted: queue rows from our own store; upstream replies were
 * made printable by smtp_reply_feed(); addresses are escaped for logs.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <openssl/rand.h>

#include "bounce.h"
#include "classify.h"
#include "conf.h"
#include "log.h"
#include "metrics.h"
#include "scheduler.h"
#include "scheduler_int.h"
#include "server.h"
#include "store.h"
#include "suppress.h"
#include "throttle.h"
#include "upstream.h"
#include "util.h"

#define SCHED_DOWN_MAX 600      /* longest an unreachable upstream is avoided */
#define SCHED_ROUTE_MAX 8       /* upstreams tried in turn for one domain */
#define SCHED_SAVE_EVERY 10     /* seconds between saves of changed counters */
#define SCHED_DOMAINS_STACK 16  /* recipient domains without a malloc */
#define SCHED_COUNTERS_MAGIC "outpost-counters 1"

/* scheduler_less - heap order: due time, then id (stable, oldest first) */
int
scheduler_less(const struct sched_msg *a, const struct sched_msg *b)
{
	return a->due < b->due || (a->due == b->due && a->id < b->id);
}

/* sched_heap_set - put m at index i, and tell m where it is (the queue
 * tools take a message out of the middle of the heap by that index) */
static inline void
sched_heap_set(struct scheduler *s, size_t i, struct sched_msg *m)
{
	s->heap[i] = m;
	m->hidx = i;
}

/* sched_heap_push - insert and sift up */
static void
sched_heap_push(struct scheduler *s, struct sched_msg *m)
{
	size_t i;

	if (s->nheap == s->capheap) {
		s->capheap = s->capheap ? s->capheap * 2 : 64;
		s->heap = xreallocarray(s->heap, s->capheap, sizeof(*s->heap));
	}
	i = s->nheap++;
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (!scheduler_less(m, s->heap[p]))
			break;
		sched_heap_set(s, i, s->heap[p]);
		i = p;
	}
	sched_heap_set(s, i, m);
}

/* sched_heap_down - sift the entry at i down to its place */
static void
sched_heap_down(struct scheduler *s, size_t i)
{
	struct sched_msg *m = s->heap[i];

	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, min = i;
		const struct sched_msg *cur = m;

		if (l < s->nheap && scheduler_less(s->heap[l], cur)) {
			min = l;
			cur = s->heap[l];
		}
		if (r < s->nheap && scheduler_less(s->heap[r], cur))
			min = r;
		if (min == i)
			break;
		sched_heap_set(s, i, s->heap[min]);
		i = min;
	}
	sched_heap_set(s, i, m);
}

/* scheduler_heap_fix - restore heap order around index i (sift up,
 * then down) */
void
scheduler_heap_fix(struct scheduler *s, size_t i)
{
	struct sched_msg *m = s->heap[i];

	while (i > 0 && scheduler_less(m, s->heap[(i - 1) / 2])) {
		sched_heap_set(s, i, s->heap[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
	sched_heap_set(s, i, m);
	sched_heap_down(s, i);
}

/* sched_heap_pop - remove the earliest: the last goes to the top and
 * sinks to its place */
static struct sched_msg *
sched_heap_pop(struct scheduler *s)
{
	struct sched_msg *top;

	if (s->nheap == 0)
		return NULL;
	top = s->heap[0];
	top->hidx = SCHED_NOT_IN_HEAP;
	if (--s->nheap > 0) {
		sched_heap_set(s, 0, s->heap[s->nheap]);
		sched_heap_down(s, 0);
	}
	return top;
}

/* scheduler_heap_remove - take m out wherever it is: the last entry
 * takes its place and moves up or down from there */
void
scheduler_heap_remove(struct scheduler *s, struct sched_msg *m)
{
	size_t i = m->hidx;

	if (i >= s->nheap || s->heap[i] != m)
		fatalx("scheduler: %s is not in the heap", m->queue_id);
	m->hidx = SCHED_NOT_IN_HEAP;
	if (i == --s->nheap)
		return;
	sched_heap_set(s, i, s->heap[s->nheap]);
	scheduler_heap_fix(s, i);
}

/* scheduler_heap_build - heap order over the whole array, bottom up
 * (Floyd): O(n), where n pushes would be O(n log n) */
void
scheduler_heap_build(struct scheduler *s)
{
	for (size_t i = 0; i < s->nheap; i++)
		s->heap[i]->hidx = i;
	for (size_t i = s->nheap / 2; i-- > 0;)
		sched_heap_down(s, i);
}

/* sched_cache_drop - let go of the kept body (it is read again later) */
static void
sched_cache_drop(struct scheduler *s, struct sched_msg *m)
{
	if (m->data == NULL)
		return;
	s->cache_bytes -= m->len;
	free(m->data);
	m->data = NULL;
	m->len = 0;
}

/* sched_msg_free - forget a message */
static void
sched_msg_free(struct scheduler *s, struct sched_msg *m)
{
	sched_cache_drop(s, m);
	for (size_t i = 0; i < m->nrcpt; i++) {
		free(m->rcpts[i].addr);
		free(m->rcpts[i].orcpt);
	}
	free(m->rcpts);
	free(m->sender);
	free(m->envid);
	free(m);
}

/* sched_due - earliest next attempt of the pending recipients */
static time_t
sched_due(const struct sched_msg *m)
{
	time_t due = m->rcpts[0].next_attempt;

	for (size_t i = 1; i < m->nrcpt; i++)
		if (m->rcpts[i].next_attempt < due)
			due = m->rcpts[i].next_attempt;
	return due;
}

/* sched_candidates - the sender domain's upstreams in failover order,
 * else the default one; returns how many */
static size_t
sched_candidates(struct scheduler *s, const char *sender, struct sched_up **out)
{
	const struct conf *c = s->conf;
	const struct conf_upstream *cu;
	const struct conf_domain *d;
	const char *dom = util_addr_domain(sender);
	size_t n = 0;

	if (*dom && (d = conf_domain_find(c, dom)) != NULL)
		for (size_t i = 0; i < d->nupstreams && n < SCHED_ROUTE_MAX; i++)
			if ((cu = conf_upstream_find(c, d->upstreams[i])) != NULL)
				out[n++] = &s->ups[cu - c->upstreams];
	if (n == 0 && (cu = conf_upstream_find(c, c->server.default_upstream)) != NULL)
		out[n++] = &s->ups[cu - c->upstreams];
	if (n == 0 && s->nups)
		out[n++] = &s->ups[0];
	return n;
}

/* sched_route - the first candidate that is not down; if all are down,
 * the one back soonest (it is tried, and the attempt deferred) */
static struct sched_up *
sched_route(struct scheduler *s, const char *sender)
{
	struct sched_up *cand[SCHED_ROUTE_MAX], *best = NULL;
	size_t n = sched_candidates(s, sender, cand);
	time_t now = util_now();

	for (size_t i = 0; i < n; i++) {
		if (cand[i]->down_until <= now)
			return cand[i];
		if (best == NULL || cand[i]->down_until < best->down_until)
			best = cand[i];
	}
	return best;
}

/* sched_up_result - an upstream answered (or not): keep its health */
static void
sched_up_result(struct sched_up *up, const struct upstream_job *job)
{
	time_t now = util_now();
	long base = up->cu->down_time > 0 ? up->cu->down_time : 30;

	if (!job->unreachable) {
		if (up->down_wait > 0)
			log_info("upstream %s: reachable again; mail routes through it",
			    up->cu->name);
		up->down_until = 0;
		up->down_wait = 0;
		return;
	}
	up->down_wait = up->down_wait ? up->down_wait * 2 : base;
	if (up->down_wait > SCHED_DOWN_MAX)
		up->down_wait = SCHED_DOWN_MAX > base ? SCHED_DOWN_MAX : base;
	up->down_until = now + up->down_wait;
	log_warn("upstream %s: down (%s); avoided for %lds, its mail goes to the next "
	    "upstream of each domain", up->cu->name, job->nrcpt ? job->rcpts[0].reply :
	    "unreachable", up->down_wait);
}

/* sched_up_outcome - counts and the latest error, for status */
static void
sched_up_outcome(struct sched_up *up, const struct upstream_job *job, time_t now)
{
	for (size_t i = 0; i < job->nrcpt; i++) {
		if (job->rcpts[i].code / 100 == 2) {
			up->sent++;
			continue;
		}
		up->failed++;
		util_strlcpy(up->last_error, job->rcpts[i].reply, sizeof(up->last_error));
		up->last_error_at = now;
	}
}

/* sched_can_start - the upstream would take a job now */
static int
sched_can_start(struct sched_up *up)
{
	int max = up->cu->max_connections > 0 ? up->cu->max_connections : 1;

	return !up->s->stopping && upstream_ready(up->u) &&
	    (size_t)up->loading + upstream_inflight(up->u) < (size_t)max;
}

static void sched_data_cb(int err, char *data, size_t len, void *arg);

/* sched_now_real - wall clock with fractions: throttling and delay= */
static double
sched_now_real(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* sched_jitter - uniform in [0, 1) from a xorshift64 seeded at start;
 * retry jitter needs spread, not secrecy */
static double
sched_jitter(struct scheduler *s)
{
	uint64_t x = s->rng;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	s->rng = x;
	return (double)(x >> 11) / 9007199254740992.0;  /* 2^53 */
}

/* sched_domains - the domains of the recipients due at `now` into dom
 * (cap entries, else a malloc'd array in *heap); returns how many */
static size_t
sched_domains(const struct sched_msg *m, time_t now, const char **dom, size_t cap,
    const char ***heap)
{
	size_t n = 0;

	*heap = NULL;
	if (m->nrcpt > cap) {
		*heap = xcalloc(m->nrcpt, sizeof(**heap));
		dom = *heap;
	}
	for (size_t i = 0; i < m->nrcpt; i++)
		if (m->rcpts[i].next_attempt <= now)
			dom[n++] = util_addr_domain(m->rcpts[i].addr);
	return n;
}

enum sched_gate { GATE_GO, GATE_UPSTREAM, GATE_DOMAIN };

/* sched_gate - may m start on up now? GATE_GO has been committed to the
 * throttle already; GATE_UPSTREAM sets up->thr_until (the whole upstream
 * waits); GATE_DOMAIN sets m->due (only this message's domains wait) */
static enum sched_gate
sched_gate(struct sched_up *up, struct sched_msg *m)
{
	const char *stackdom[SCHED_DOMAINS_STACK], **heapdom, **dom;
	double now = sched_now_real(), when;
	size_t n;
	enum sched_gate g = GATE_GO;

	n = sched_domains(m, (time_t)now, stackdom, ARRAY_LEN(stackdom), &heapdom);
	dom = heapdom ? heapdom : stackdom;
	if (n == 0) {
		/* a clock step: sched_data_cb sorts it out */
		dom = NULL;
		n = 1;
	}
	if ((when = throttle_when(up->thr, NULL, n, now)) > 0) {
		up->thr_until = when;
		g = GATE_UPSTREAM;
	} else if ((when = throttle_when(up->thr, dom, n, now)) > 0) {
		m->due = when;
		g = GATE_DOMAIN;
	} else {
		up->thr_until = 0;
		throttle_commit(up->thr, dom, n, now);
		up->thr_dirty = 1;
	}
	free(heapdom);
	return g;
}

/* sched_start - deliver: with the body kept from the commit at once,
 * else after reading it through the store thread */
static void
sched_start(struct scheduler *s, struct sched_msg *m)
{
	m->in_flight = 1;
	m->up->loading++;
	s->inflight++;
	if (m->data != NULL) {
		char *data = m->data;
		size_t len = m->len;

		s->cache_bytes -= len;
		m->data = NULL;
		m->len = 0;
		sched_data_cb(0, data, len, m);
		return;
	}
	store_load_data(s->srv->store, m->id, sched_data_cb, m);
}

/* scheduler_forget - a message leaves memory: unlink, count, free */
void
scheduler_forget(struct scheduler *s, struct sched_msg *m)
{
	if (m->aprev)
		m->aprev->anext = m->anext;
	else
		s->all = m->anext;
	if (m->anext)
		m->anext->aprev = m->aprev;
	s->nmsgs--;
	sched_msg_free(s, m);
}

/* scheduler_requeue - back into the heap (not in flight any more) */
void
scheduler_requeue(struct scheduler *s, struct sched_msg *m)
{
	if (m->held)
		return;         /* stays in memory, off the schedule */
	m->due = sched_due(m);
	sched_heap_push(s, m);
}

/* sched_drain_blocked - start waiting messages while the upstream has
 * room and its throttle allows; stops at a head the throttle holds */
static void
sched_drain_blocked(struct sched_up *up)
{
	struct sched_msg *m;
	enum sched_gate g = GATE_GO;

	while ((m = up->bhead) != NULL) {
		int down = up->down_until > util_now() && !up->s->stopping;

		if (!down && !sched_can_start(up))
			break;
		if (!down && (g = sched_gate(up, m)) == GATE_UPSTREAM)
			break;
		up->bhead = m->bnext;
		if (up->bhead == NULL)
			up->btail = NULL;
		m->bnext = NULL;
		if (down) {
			/* its upstream went down while it waited: route again */
			scheduler_requeue(up->s, m);
		} else if (g == GATE_DOMAIN) {
			sched_heap_push(up->s, m);      /* due = its domain's turn */
		} else {
			sched_start(up->s, m);
		}
	}
}

/* sched_up_ready - the upstream has a free connection again */
static void
sched_up_ready(void *arg)
{
	struct sched_up *up = arg;

	if (up->s->stopping || up->s->freeing)
		return;
	sched_drain_blocked(up);
	scheduler_arm(up->s);
}

/* sched_block - due, but its upstream is busy */
static void
sched_block(struct sched_up *up, struct sched_msg *m)
{
	m->bnext = NULL;
	if (up->btail)
		up->btail->bnext = m;
	else
		up->bhead = m;
	up->btail = m;
}

/* sched_tick - start what is due */
static void sched_save_counters(struct scheduler *s, int force);

static void
sched_tick(evutil_socket_t fd, short what, void *arg)
{
	struct scheduler *s = arg;
	double now = sched_now_real();

	if (s->stopping)
		return;
	sched_save_counters(s, 0);
	for (size_t i = 0; i < s->nups; i++)
		sched_drain_blocked(&s->ups[i]);
	while (s->nheap > 0 && s->heap[0]->due <= now) {
		struct sched_msg *m = sched_heap_pop(s);
		/* Routed when due, so failover follows the upstreams' health. */
		m->up = sched_route(s, m->sender);
		if (m->up == NULL) {
			log_err("%s: no upstream to deliver to", m->queue_id);
			m->due = now + (s->conf->queue.scan_interval > 0 ?
			    s->conf->queue.scan_interval : 1);
			sched_heap_push(s, m);
			continue;
		}
		if (m->up->bhead != NULL || !sched_can_start(m->up)) {
			sched_block(m->up, m);
			continue;
		}
		switch (sched_gate(m->up, m)) {
		case GATE_GO:
			sched_start(s, m);
			break;
		case GATE_UPSTREAM:
			sched_block(m->up, m);
			break;
		case GATE_DOMAIN:
			sched_heap_push(s, m);  /* due > now: not popped again */
			break;
		}
	}
	scheduler_arm(s);
}

/* scheduler_arm - wake at the next due time, at least every scan_interval */
void
scheduler_arm(struct scheduler *s)
{
	long interval = s->conf->queue.scan_interval > 0 ? s->conf->queue.scan_interval : 1;
	struct timeval tv;
	double now = sched_now_real(), d = (double)interval;

	if (s->stopping || s->freeing)
		return;
	if (s->nheap > 0 && s->heap[0]->due - now < d)
		d = s->heap[0]->due - now;
	/* a FIFO held by its throttle wakes when the throttle lets it go */
	for (size_t i = 0; i < s->nups; i++)
		if (s->ups[i].bhead != NULL && s->ups[i].thr_until > 0 &&
		    s->ups[i].thr_until - now < d)
			d = s->ups[i].thr_until - now;
	if (d < 0)
		d = 0;
	tv.tv_sec = (long)d;
	tv.tv_usec = (long)((d - (double)tv.tv_sec) * 1e6) + 1000;
	if (tv.tv_usec >= 1000000) {
		tv.tv_sec++;
		tv.tv_usec -= 1000000;
	}
	evtimer_add(s->timer, &tv);
}

/* scheduler_dsn - enhanced status for the log: the reply's own, with the
 * class of the outcome (RFC 3463 2), else class.0.0 */
void
scheduler_dsn(const char *reply, int cls, char *dsn, size_t len)
{
	const char *p = reply;
	size_t n = 0;

	if (strlen(p) > 4 && p[3] == ' ')
		p += 4;
	else
		p = "";
	if ((p[0] == '2' || p[0] == '4' || p[0] == '5') && p[1] == '.') {
		n = 2;
		while (p[n] >= '0' && p[n] <= '9')
			n++;
		if (p[n] == '.' && n > 2) {
			size_t m = n + 1;
			while (p[m] >= '0' && p[m] <= '9')
				m++;
			n = (m > n + 1 && (p[m] == ' ' || p[m] == '\0')) ? m : 0;
		} else {
			n = 0;
		}
	}
	if (n == 0 || n >= len) {
		snprintf(dsn, len, "%d.0.0", cls);
		return;
	}
	memcpy(dsn, p, n);
	dsn[n] = '\0';
	dsn[0] = (char)('0' + cls);
}

/* sched_job_free - release one attempt's memory */
static void
sched_job_free(struct sched_job *sj)
{
	free(sj->data);
	free(sj->job.rcpts);
	free(sj->ridx);
	free(sj);
}

/* sched_too_many_rcpts - 452 4.5.3: the upstream's per-transaction
 * recipient limit, not a problem of the recipient */
static int
sched_too_many_rcpts(const struct upstream_rcpt *ur)
{
	return ur->code == 452 && strncmp(ur->reply, "452 4.5.3", 9) == 0;
}

/* sched_classify - classify.h's verdict on one reply line as kept by
 * the upstream module: "421 4.7.0 Too many messages" */
static enum classify_class
sched_classify(const struct upstream_rcpt *ur)
{
	const char *p = ur->reply, *text;
	char enh[SCHED_DSN_MAX] = "";
	size_t n = 0;

	if (strlen(p) >= 3)
		p += 3;
	if (*p == ' ' || *p == '-')
		p++;
	while (p[n] != '\0' && p[n] != ' ' && n < sizeof(enh) - 1 &&
	    ((p[n] >= '0' && p[n] <= '9') || p[n] == '.'))
		n++;
	if (n > 0 && (p[n] == ' ' || p[n] == '\0') && strchr(p, '.') != NULL &&
	    strchr(p, '.') < p + n) {
		memcpy(enh, p, n);
		enh[n] = '\0';
		text = p + n;
		while (*text == ' ')
			text++;
	} else {
		text = p;
	}
	return classify_reply(ur->code, enh, text, strlen(text));
}

/* sched_rate_str - "5/s", or "unlimited" for no rate */
static const char *
sched_rate_str(double r, char *buf, size_t len)
{
	if (r <= 0)
		snprintf(buf, len, "unlimited");
	else
		snprintf(buf, len, "%.3g/s", r);
	return buf;
}

/* sched_throttled - a throttling reply: slow the upstream down and log
 * it once per suspension; returns when its recipients may be retried */
static time_t
sched_throttled(struct sched_up *up, const char *reply)
{
	struct throttle_status before, after;
	double now = sched_now_real(), until;
	char r1[32], r2[32];

	throttle_state(up->thr, now, &before);
	until = throttle_on_throttled(up->thr, reply, now);
	throttle_state(up->thr, now, &after);
	if (after.suspended_until != before.suspended_until ||
	    after.rate_current != before.rate_current)
		log_warn("upstream %s: throttled (%s); rate %s -> %s, suspended for %.0fs",
		    up->cu->name, reply, sched_rate_str(before.rate_current, r1, sizeof(r1)),
		    sched_rate_str(after.rate_current, r2, sizeof(r2)), until - now);
	else
		log_debug("upstream %s: throttled again while suspended (%s)",
		    up->cu->name, reply);
	return (time_t)until + (until > (double)(time_t)until ? 1 : 0);
}

/* sched_succeeded - a delivered message: the rate recovers step by step */
static void
sched_succeeded(struct sched_up *up)
{
	struct throttle_status before, after;
	double now = sched_now_real();
	char r1[32], r2[32];

	throttle_state(up->thr, now, &before);
	throttle_on_success(up->thr, now);
	throttle_state(up->thr, now, &after);
	if (after.rate_current != before.rate_current)
		log_info("upstream %s: rate %s -> %s (recovering)", up->cu->name,
		    sched_rate_str(before.rate_current, r1, sizeof(r1)),
		    sched_rate_str(after.rate_current, r2, sizeof(r2)));
}

/* sched_done - the upstream answered for every recipient of the job */
static void
sched_done(struct upstream_job *job, void *arg)
{
	struct sched_job *sj = arg;
	struct scheduler *s = sj->s;
	struct sched_msg *m = sj->m;
	const struct conf_queue *q = &s->conf->queue;
	struct store_result *res;
	time_t now = util_now();
	double delay = sched_now_real() - (double)m->received_at;
	size_t keep = 0;
	unsigned char *gone;
	struct sched_up *alt;
	int failover, split, sent = 0;
	time_t thr_retry = 0;
	struct sched_note *failed, *delayed;
	size_t nfailed = 0, ndelayed = 0;

	s->inflight--;
	m->in_flight = 0;
	if (s->freeing) {
		/* shutdown: the store keeps the old state; retried at start */
		sched_job_free(sj);
		scheduler_forget(s, m);
		return;
	}
	sched_up_result(m->up, job);
	sched_up_outcome(m->up, job, now);
	/* Straight to another upstream only if one is up: with all of them
	 * down, the retry schedule paces the attempts. */
	alt = job->unreachable ? sched_route(s, m->sender) : NULL;
	failover = alt != NULL && alt != m->up && alt->down_until <= now;
	/* 452 4.5.3 splits only if the upstream took some recipients; one
	 * that refuses them all is deferred like any 4xx. */
	split = 0;
	for (size_t i = 0; i < job->nrcpt; i++)
		if (!sched_too_many_rcpts(&job->rcpts[i]))
			split = 1;
	/* One throttling answer slows the whole upstream down, once per job;
	 * a failed connection is the upstream being down, not throttling. */
	for (size_t i = 0; i < job->nrcpt && !job->unreachable; i++) {
		if (sched_classify(&job->rcpts[i]) == CLASSIFY_THROTTLE) {
			thr_retry = sched_throttled(m->up, job->rcpts[i].reply);
			break;
		}
	}
	res = xcalloc(job->nrcpt, sizeof(*res));
	gone = xcalloc(m->nrcpt, 1);
	failed = xcalloc(job->nrcpt, sizeof(*failed));
	delayed = xcalloc(job->nrcpt, sizeof(*delayed));
	if (delay < 0)
		delay = 0;
	for (size_t i = 0; i < job->nrcpt; i++) {
		struct upstream_rcpt *ur = &job->rcpts[i];
		struct sched_rcpt *r = &m->rcpts[sj->ridx[i]];
		int cls = ur->code / 100;
		const char *status;
		char dsn[SCHED_DSN_MAX], esc[ADDR_MAX * 4 + 1];

		if (cls != 2 && cls != 5)
			cls = 4;                /* anything odd is retried */
		/* A sending quota answered as 5xx is throttling: deferred. */
		int throttled = thr_retry != 0 && sched_classify(ur) == CLASSIFY_THROTTLE;
		if (throttled)
			cls = 4;
		if (cls == 2) {
			sent = 1;
			sched_notify_soft_clear(s, r->addr);
		} else if (cls == 4 && !throttled && !failover && !job->unreachable &&
		    sched_notify_is_soft(ur)) {
			sched_notify_soft(s, m, r->addr, ur->reply, now);
		}
		/* Every answer is an attempt, whatever its class: the store's
		 * attempts is the total, also for 'sent' and 'bounced'. */
		r->attempts++;
		if (cls == 4 && (failover || (split && sched_too_many_rcpts(ur)))) {
			/* Not this recipient's fault: another upstream takes it
			 * now, or (452 4.5.3, RFC 5321 4.5.3.1.10) the rest of
			 * the recipients go in a new transaction right away. */
			status = "deferred";
			r->next_attempt = now;
		} else if (cls == 2) {
			status = "sent";
		} else if (cls == 5) {
			status = "bounced";
		} else {
			if (now - m->received_at >= q->max_lifetime) {
				status = "bounced";
			} else if (throttled) {
				/* after the suspension, when the upstream listens again */
				status = "deferred";
				r->next_attempt = thr_retry > now ? thr_retry : now;
			} else {
				long wait = throttle_retry_delay(q->retry, q->nretry,
				    r->attempts - 1, sched_jitter(s));
				status = "deferred";
				r->next_attempt = now + wait;
			}
		}
		if (cls == 4 && strcmp(status, "bounced") == 0)
			util_strlcpy(dsn, "4.4.7", sizeof(dsn));  /* delivery time expired */
		else
			scheduler_dsn(ur->reply, cls, dsn, sizeof(dsn));
		log_info("%s: to=<%s>, relay=%s, delay=%.2f, dsn=%s, status=%s (%s)%s",
		    m->queue_id, log_esc(r->addr, esc, sizeof(esc)),
		    job->relay[0] ? job->relay : "none", delay, dsn, status,
		    ur->reply, job->possible_duplicate && cls == 4 ?
		    ", possible duplicate" : "");
		metrics_delivered(m->up->cu->name, status);
		res[i].rcpt_id = r->id;
		res[i].status = status;
		res[i].attempts = r->attempts;
		res[i].next_attempt = strcmp(status, "deferred") == 0 ? r->next_attempt : 0;
		res[i].reply = ur->reply;
		res[i].upstream = upstream_name(m->up->u);
		res[i].relay = job->relay;
		if (strcmp(status, "deferred") != 0)
			gone[sj->ridx[i]] = 1;
		if (strcmp(status, "bounced") == 0) {
			struct sched_note *nt = &failed[nfailed++];

			nt->ri = sj->ridx[i];
			nt->reply = ur->reply;
			util_strlcpy(nt->status, dsn, sizeof(nt->status));
			nt->cls = cls == 5 ? sched_classify(ur) : CLASSIFY_TEMPORARY;
		} else if (strcmp(status, "deferred") == 0 && !r->delay_notified &&
		    now - m->received_at >= q->delay_warning && m->sender[0] != '\0' &&
		    sched_notify_wants_dsn(r->notify, BOUNCE_DELAYED)) {
			/* RELIABILITY D3: one delay notice per recipient, ever */
			struct sched_note *nt = &delayed[ndelayed++];

			nt->ri = sj->ridx[i];
			nt->reply = ur->reply;
			util_strlcpy(nt->status, dsn, sizeof(nt->status));
			nt->cls = CLASSIFY_TEMPORARY;
			r->delay_notified = 1;
			res[i].delay_notified = 1;
		}
	}
	if (nfailed > 0 && m->sender[0] == '\0') {
		sched_notify_double_bounce(s, m, failed, nfailed);
	} else {
		sched_notify_send_dsn(s, m, sj, failed, nfailed, BOUNCE_FAILED, now);
		sched_notify_send_dsn(s, m, sj, delayed, ndelayed, BOUNCE_DELAYED, now);
	}
	sched_notify_policy_alerts(s, m, failed, nfailed);
	sched_notify_suppress(s, m, failed, nfailed, now);
	free(failed);
	free(delayed);
	/* keep only the recipients still pending */
	for (size_t i = 0; i < m->nrcpt; i++) {
		if (gone[i]) {
			free(m->rcpts[i].addr);
			free(m->rcpts[i].orcpt);
			continue;
		}
		m->rcpts[keep++] = m->rcpts[i];
	}
	m->nrcpt = keep;
	if (sent)
		sched_succeeded(m->up);
	store_record(s->srv->store, m->id, res, job->nrcpt, keep == 0, NULL, NULL);
	free(res);
	free(gone);
	sched_job_free(sj);
	if (keep == 0) {
		scheduler_forget(s, m);
	} else {
		scheduler_requeue(s, m);
	}
	for (size_t i = 0; i < s->nups; i++)
		sched_drain_blocked(&s->ups[i]);
	scheduler_arm(s);
}

/* sched_data_cb - the body is here: build the job with the due recipients */
static void
sched_data_cb(int err, char *data, size_t len, void *arg)
{
	struct sched_msg *m = arg;
	struct sched_up *up = m->up;
	struct scheduler *s = up->s;
	struct sched_job *sj;
	time_t now = util_now();
	size_t n = 0;

	up->loading--;
	if (s->freeing || s->stopping || err || data == NULL) {
		free(data);
		m->in_flight = 0;
		s->inflight--;
		if (s->freeing) {
			scheduler_forget(s, m);
			return;
		}
		if (err || data == NULL) {
			/* No attempt counted: the upstream never saw it. */
			long wait = s->conf->queue.nretry ? s->conf->queue.retry[0] :
			    THROTTLE_RETRY_BASE;
			log_err("%s: cannot read the message from the queue (store error %d); "
			    "retry in %lds", m->queue_id, err, wait);
			for (size_t i = 0; i < m->nrcpt; i++)
				if (m->rcpts[i].next_attempt < now + wait)
					m->rcpts[i].next_attempt = now + wait;
		}
		scheduler_requeue(s, m);
		scheduler_arm(s);
		return;
	}
	sj = xcalloc(1, sizeof(*sj));
	sj->s = s;
	sj->m = m;
	sj->data = data;
	sj->job.rcpts = xcalloc(m->nrcpt, sizeof(*sj->job.rcpts));
	sj->ridx = xcalloc(m->nrcpt, sizeof(*sj->ridx));
	for (size_t i = 0; i < m->nrcpt; i++) {
		if (m->rcpts[i].next_attempt > now)
			continue;
		sj->job.rcpts[n].id = m->rcpts[i].id;
		sj->job.rcpts[n].addr = m->rcpts[i].addr;
		sj->ridx[n++] = i;
	}
	if (n == 0) {
		/* a clock step backwards; try again when they are due */
		m->in_flight = 0;
		s->inflight--;
		sched_job_free(sj);
		scheduler_requeue(s, m);
		scheduler_arm(s);
		return;
	}
	sj->job.nrcpt = n;
	sj->job.msg_id = m->id;
	sj->job.queue_id = m->queue_id;
	sj->job.sender = m->sender;
	sj->job.body_8bit = m->body_8bit;
	sj->job.smtputf8 = m->smtputf8;
	sj->job.data = data;
	sj->job.len = len;
	sj->job.done = sched_done;
	sj->job.arg = sj;
	upstream_submit(up->u, &sj->job);
}

/* sched_add_msg - copy a queued message into memory */
static void
sched_add_msg(struct scheduler *s, const struct store_qmsg *qm)
{
	struct sched_msg *m;

	if (qm->nrcpt == 0)
		return;
	m = xcalloc(1, sizeof(*m));
	m->hidx = SCHED_NOT_IN_HEAP;
	m->held = (qm->flags & STORE_FLAG_HELD) != 0;
	m->anext = s->all;
	if (s->all)
		s->all->aprev = m;
	s->all = m;
	m->id = qm->id;
	util_strlcpy(m->queue_id, qm->queue_id ? qm->queue_id : "", sizeof(m->queue_id));
	m->sender = xstrdup(qm->sender ? qm->sender : "");
	m->received_at = qm->received_at;
	m->size = qm->size;
	m->body_8bit = qm->body_8bit;
	m->smtputf8 = qm->smtputf8;
	m->ret = qm->ret;
	m->envid = qm->envid ? xstrdup(qm->envid) : NULL;
	m->rcpts = xcalloc(qm->nrcpt, sizeof(*m->rcpts));
	m->nrcpt = qm->nrcpt;
	for (size_t i = 0; i < qm->nrcpt; i++) {
		m->rcpts[i].id = qm->rcpts[i].id;
		m->rcpts[i].addr = xstrdup(qm->rcpts[i].addr ? qm->rcpts[i].addr : "");
		m->rcpts[i].attempts = qm->rcpts[i].attempts;
		m->rcpts[i].next_attempt = qm->rcpts[i].next_attempt;
		m->rcpts[i].notify = qm->rcpts[i].notify;
		m->rcpts[i].orcpt = qm->rcpts[i].orcpt ? xstrdup(qm->rcpts[i].orcpt) : NULL;
		m->rcpts[i].delay_notified = qm->rcpts[i].delay_notified;
	}
	if (qm->data != NULL && qm->len <= SCHED_CACHE_ONE &&
	    s->cache_bytes + qm->len <= SCHED_CACHE_MAX) {
		m->data = xmalloc(qm->len + 1);
		memcpy(m->data, qm->data, qm->len);
		m->data[qm->len] = '\0';
		m->len = qm->len;
		s->cache_bytes += qm->len;
	}
	m->up = sched_route(s, m->sender);
	s->nmsgs++;
	scheduler_requeue(s, m);
}

/* sched_counters_encode - the day counters as text lines, for the store:
 *   outpost-counters 1 / first FIRST_DAY / day DAY MSGS... /
 *   slot START MSGS RCPTS...
 * Text keeps the blob readable with the sqlite3 shell and independent of
 * the machine's integer sizes. Returns a malloc'd string. */
static char *
sched_counters_encode(const struct throttle_daily *d, size_t *len)
{
	size_t cap = 64 + (d->ndays + d->nslots) * 80, n;
	char *buf = xmalloc(cap);

	n = (size_t)snprintf(buf, cap, "%s\nfirst %lld\n", SCHED_COUNTERS_MAGIC,
	    (long long)d->first_day);
	for (size_t i = 0; i < d->ndays && n < cap; i++)
		n += (size_t)snprintf(buf + n, cap - n, "day %lld %lu\n",
		    (long long)d->days[i].day, d->days[i].msgs);
	for (size_t i = 0; i < d->nslots && n < cap; i++)
		n += (size_t)snprintf(buf + n, cap - n, "slot %lld %lu %lu\n",
		    (long long)d->slots[i].start, d->slots[i].msgs, d->slots[i].rcpts);
	if (n >= cap)
		fatalx("scheduler: counters encoding overflow");
	*len = n;
	return buf;
}

/* sched_counters_decode - parse what sched_counters_encode wrote (it is
 * our own data, but a damaged row must not crash or overflow: every line
 * is checked and the counts are bounded). Returns 0 or -1. */
static int
sched_counters_decode(const char *text, struct throttle_daily *d)
{
	const char *p = text, *nl;
	char line[128];
	long long a;
	unsigned long b, c;
	int first = 1;

	memset(d, 0, sizeof(*d));
	d->first_day = -1;
	for (; *p; p = nl + 1) {
		size_t n;
		int end;

		if ((nl = strchr(p, '\n')) == NULL)
			return -1;
		n = (size_t)(nl - p);
		if (n >= sizeof(line))
			return -1;
		memcpy(line, p, n);
		line[n] = '\0';
		end = -1;
		if (first) {
			if (strcmp(line, SCHED_COUNTERS_MAGIC) != 0)
				return -1;
			first = 0;
		} else if (sscanf(line, "first %lld%n", &a, &end) == 1 &&
		    (size_t)end == n) {
			d->first_day = a;
		} else if (sscanf(line, "day %lld %lu%n", &a, &b, &end) == 2 &&
		    (size_t)end == n) {
			if (d->ndays == ARRAY_LEN(d->days))
				return -1;
			d->days[d->ndays].day = a;
			d->days[d->ndays++].msgs = b;
		} else if (sscanf(line, "slot %lld %lu %lu%n", &a, &b, &c, &end) == 3 &&
		    (size_t)end == n) {
			if (d->nslots == ARRAY_LEN(d->slots))
				return -1;
			d->slots[d->nslots].start = a;
			d->slots[d->nslots].msgs = b;
			d->slots[d->nslots++].rcpts = c;
		} else {
			return -1;
		}
	}
	return first ? -1 : 0;
}

/* sched_save_counters - changed day counters to the store, at most every
 * SCHED_SAVE_EVERY seconds unless forced (shutdown) */
static void
sched_save_counters(struct scheduler *s, int force)
{
	time_t now = util_now();
	struct throttle_daily *d;

	if (!force && now - s->saved_at < SCHED_SAVE_EVERY)
		return;
	s->saved_at = now;
	d = xmalloc(sizeof(*d));
	for (size_t i = 0; i < s->nups; i++) {
		struct sched_up *up = &s->ups[i];
		char *blob;
		size_t len;

		if (!up->thr_dirty)
			continue;
		throttle_daily_export(up->thr, sched_now_real(), d);
		blob = sched_counters_encode(d, &len);
		store_save_counters(s->srv->store, up->cu->name, blob, len, NULL, NULL);
		free(blob);
		up->thr_dirty = 0;
	}
	free(d);
}

/* sched_load_counters - the saved day counters back into each throttle */
static void
sched_load_counters(struct scheduler *s)
{
	struct throttle_daily *d = xmalloc(sizeof(*d));

	for (size_t i = 0; i < s->nups; i++) {
		struct sched_up *up = &s->ups[i];
		void *blob;
		size_t len;
		int r = store_load_counters(s->srv->store, up->cu->name, &blob, &len);

		if (r == 1 && sched_counters_decode(blob, d) == 0)
			throttle_daily_import(up->thr, d, sched_now_real());
		else if (r == 1)
			log_warn("upstream %s: saved day counters unreadable; starting "
			    "from zero", up->cu->name);
		free(blob);
	}
	free(d);
}

/* sched_throttle_config - an [upstream] section's limits for throttle_new */
static void
sched_throttle_config(const struct conf_upstream *cu, struct throttle_config *tc)
{
	memset(tc, 0, sizeof(*tc));
	tc->rate = cu->rate;
	tc->recipient_rate = cu->recipient_rate;
	tc->daily_limit = cu->daily_limit;
	tc->daily_rcpt_limit = cu->daily_rcpt_limit;
	tc->domain_rates = cu->domain_rates;
	tc->ndomain_rates = cu->ndomain_rates;
	tc->max_daily_growth = cu->max_daily_growth;
	tc->growth_seed = cu->growth_seed;
	throttle_params_default(&tc->params);
	if (cu->throttle_cooldown > 0)
		tc->params.cooldown_initial = (double)cu->throttle_cooldown;
	if (cu->recover_after > 0)
		tc->params.success_streak = (unsigned)cu->recover_after;
	if (tc->params.cooldown_max < tc->params.cooldown_initial)
		tc->params.cooldown_max = tc->params.cooldown_initial;
}

/* scheduler_new - one upstream per [upstream] section */
struct scheduler *
scheduler_new(struct server *srv, char *err, size_t errlen)
{
	struct scheduler *s = xcalloc(1, sizeof(*s));
	const struct conf *c = srv->conf;

	s->srv = srv;
	s->conf = c;
	s->saved_at = util_now();
	if (RAND_bytes((unsigned char *)&s->rng, sizeof(s->rng)) != 1)
		fatalx("scheduler: RAND_bytes failed");
	if (s->rng == 0)
		s->rng = 0x9e3779b97f4a7c15ULL;     /* xorshift must not start at 0 */
	s->timer = evtimer_new(srv->base, sched_tick, s);
	if (s->timer == NULL)
		fatalx("scheduler: evtimer_new failed");
	s->ups = xcalloc(c->nupstreams ? c->nupstreams : 1, sizeof(*s->ups));
	for (size_t i = 0; i < c->nupstreams; i++) {
		char uerr[256];
		struct sched_up *up = &s->ups[i];
		struct throttle_config tc;
		up->s = s;
		up->cu = &c->upstreams[i];
		up->u = upstream_new(srv, up->cu, uerr, sizeof(uerr));
		if (up->u == NULL) {
			snprintf(err, errlen, "%s:%d: [upstream %s]: %s", c->path,
			    up->cu->line, up->cu->name, uerr);
			scheduler_free(s);
			return NULL;
		}
		upstream_set_ready_cb(up->u, sched_up_ready, up);
		sched_throttle_config(up->cu, &tc);
		up->thr = throttle_new(&tc, sched_now_real());
		s->nups++;
	}
	s->soft = suppress_new(SUPPRESS_MAX_DEFAULT);
	return s;
}

struct sched_load {
	struct scheduler *s;
	long n;
};

/* sched_load_cb - one message from store_load_queue (its strings are
 * temporaries: sched_add_msg copies them) */
static void
sched_load_cb(const struct store_qmsg *m, void *arg)
{
	struct sched_load *l = arg;

	sched_add_msg(l->s, m);
	l->n++;
}

/* scheduler_load - the queue from the store, before the loop runs */
long
scheduler_load(struct scheduler *s)
{
	struct sched_load l = { s, 0 };

	sched_load_counters(s);
	if (suppress_soft_load(s->soft, s->srv->store) != 0)
		return -1;
	if (store_load_queue(s->srv->store, sched_load_cb, &l) != 0)
		return -1;
	scheduler_arm(s);
	return l.n;
}

/* scheduler_add - a message just committed */
void
scheduler_add(struct scheduler *s, const struct store_qmsg *m)
{
	if (s->freeing)
		return;
	sched_add_msg(s, m);
	scheduler_arm(s);
}

/* scheduler_pending - messages in memory */
size_t
scheduler_pending(const struct scheduler *s)
{
	return s->nmsgs;
}

/* scheduler_inflight - messages being read or delivered */
size_t
scheduler_inflight(const struct scheduler *s)
{
	return s->inflight;
}

/* scheduler_nupstreams - one per [upstream] section */
size_t
scheduler_nupstreams(const struct scheduler *s)
{
	return s->nups;
}

/* scheduler_upstream_status - upstream i as it is now */
void
scheduler_upstream_status(struct scheduler *s, size_t i,
    struct scheduler_up_status *st)
{
	struct sched_up *up = &s->ups[i];
	const struct sched_msg *m;

	memset(st, 0, sizeof(*st));
	st->cu = up->cu;
	st->down_until = up->down_until > util_now() ? up->down_until : 0;
	st->jobs = upstream_inflight(up->u);
	for (m = up->bhead; m; m = m->bnext)
		st->waiting++;
	throttle_state(up->thr, sched_now_real(), &st->thr);
	st->last_error = up->last_error;
	st->last_error_at = up->last_error_at;
	st->sent = up->sent;
	st->failed = up->failed;
}

/* sched_count_msg - one message into the queue counts */
static void
sched_count_msg(const struct sched_msg *m, struct scheduler_queue_status *q)
{
	q->msgs++;
	q->rcpts += m->nrcpt;
	for (size_t i = 0; i < m->nrcpt; i++)
		if (m->rcpts[i].attempts > 0)
			q->deferred++;
	if (q->oldest == 0 || m->received_at < q->oldest)
		q->oldest = m->received_at;
}

/* scheduler_queue_status - count what waits (O(queue): for status only) */
void
scheduler_queue_status(const struct scheduler *s, struct scheduler_queue_status *q)
{
	memset(q, 0, sizeof(*q));
	for (const struct sched_msg *m = s->all; m; m = m->anext) {
		sched_count_msg(m, q);
		if (m->held)
			q->held++;
	}
	q->inflight = s->inflight;
}

/* scheduler_queue_each - see scheduler.h */
void
scheduler_queue_each(const struct scheduler *s,
    void (*fn)(const struct scheduler_msg_view *v, void *arg), void *arg)
{
	struct scheduler_msg_view v;

	for (const struct sched_msg *m = s->all; m; m = m->anext) {
		v.received_at = m->received_at;
		v.held = m->held;
		v.in_flight = m->in_flight;
		v.tried = 0;
		for (size_t i = 0; i < m->nrcpt && !v.tried; i++)
			v.tried = m->rcpts[i].attempts > 0;
		fn(&v, arg);
	}
}

/* scheduler_stop - start nothing new; close idle connections */
void
scheduler_stop(struct scheduler *s)
{
	s->stopping = 1;
	evtimer_del(s->timer);
	sched_save_counters(s, 1);
	for (size_t i = 0; i < s->nups; i++)
		upstream_close_idle(s->ups[i].u);
}

/* scheduler_free - abort the upstreams, forget the queue */
void
scheduler_free(struct scheduler *s)
{
	struct sched_msg *m;

	if (s == NULL)
		return;
	if (!s->stopping)
		sched_save_counters(s, 1);
	s->freeing = 1;
	s->stopping = 1;
	evtimer_del(s->timer);
	/* Jobs still at an upstream come back aborted (sched_done sees
	 * freeing and records nothing: the store's state stands). */
	for (size_t i = 0; i < s->nups; i++)
		upstream_free(s->ups[i].u);
	/* Everything waiting, in the heap, a FIFO or held, is on the list of
	 * all messages: forget them in one walk of it (popping the heap one
	 * by one took seconds with 10^6 messages). In-flight ones are in
	 * neither heap nor FIFO and are left to the exit. */
	s->nheap = 0;
	for (size_t i = 0; i < s->nups; i++)
		s->ups[i].bhead = s->ups[i].btail = NULL;
	m = s->all;
	while (m != NULL) {
		struct sched_msg *next = m->anext;

		if (!m->in_flight)
			scheduler_forget(s, m);
		m = next;
	}
	/* Messages whose body read is still queued at the store are left
	 * to the process exit: their callback may never run. */
	for (size_t i = 0; i < s->nups; i++)
		throttle_free(s->ups[i].thr);
	suppress_free(s->soft);
	free(s->heap);
	free(s->ups);
	event_free(s->timer);
	free(s);
}
