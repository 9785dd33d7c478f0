/*
 * sched_admin - the queue tools: outpostctl queue hold|release|delete|retry.
 *
 * API (scheduler.h): scheduler_admin() acts on one message found by its
 * queue id, scheduler_retry_all() makes every waiting message due now.
 * A held message stays in memory (and in queue.db, flagged HELD, so it
 * survives a restart) but is off the schedule: in neither the heap nor
 * an upstream's FIFO. A message in flight is only flagged; it finds its
 * place when its attempt ends. Finding a message by its queue id is a
 * linear walk (the tools are rare); taking it out of the heap is
 * O(log n), and a flush of the whole queue O(n).
 *
 * Input trusted: the queue id comes from the control socket (outpostctl);
 * it is only compared, never logged as given.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "log.h"
#include "scheduler_int.h"
#include "server.h"
#include "store.h"
#include "util.h"

/* sched_admin_detach - take a waiting message out of the heap (by its
 * index: O(log n)) or out of its upstream's FIFO (a linear walk of that
 * FIFO, which holds only messages already due) */
static void
sched_admin_detach(struct scheduler *s, struct sched_msg *m)
{
	if (m->hidx != SCHED_NOT_IN_HEAP) {
		scheduler_heap_remove(s, m);
		return;
	}
	for (size_t k = 0; k < s->nups; k++) {
		struct sched_up *up = &s->ups[k];
		struct sched_msg *prev = NULL;

		for (struct sched_msg *b = up->bhead; b; prev = b, b = b->bnext) {
			if (b != m)
				continue;
			if (prev)
				prev->bnext = b->bnext;
			else
				up->bhead = b->bnext;
			if (up->btail == b)
				up->btail = prev;
			b->bnext = NULL;
			return;
		}
	}
}

/* sched_admin_find - the message with this queue id (case ignored), or NULL */
static struct sched_msg *
sched_admin_find(const struct scheduler *s, const char *queue_id)
{
	for (struct sched_msg *m = s->all; m; m = m->anext)
		if (strcasecmp(m->queue_id, queue_id) == 0)
			return m;
	return NULL;
}

/* sched_admin_retry_now - every pending recipient due now, and the
 * message back in the heap in its new place unless it is at an upstream */
static void
sched_admin_retry_now(struct scheduler *s, struct sched_msg *m, time_t now)
{
	for (size_t i = 0; i < m->nrcpt; i++)
		m->rcpts[i].next_attempt = now;
	if (!m->in_flight) {
		sched_admin_detach(s, m);
		scheduler_requeue(s, m);
	}
}

/* scheduler_admin - one queue tool action on one message */
int
scheduler_admin(struct scheduler *s, enum scheduler_admin_op op, const char *queue_id,
    char *why, size_t len)
{
	static const char *const names[] = { "held", "released", "deleted", "retried" };
	struct sched_msg *m = sched_admin_find(s, queue_id);

	if (m == NULL) {
		snprintf(why, len, "not in the queue (delivered, bounced or never queued)");
		return -1;
	}
	switch (op) {
	case SCHED_ADMIN_HOLD:
		if (m->held) {
			snprintf(why, len, "already held");
			return -1;
		}
		m->held = 1;
		if (!m->in_flight)
			sched_admin_detach(s, m);
		store_admin(s->srv->store, m->id, STORE_FLAG_HELD, 0, 0);
		break;
	case SCHED_ADMIN_RELEASE:
		if (!m->held) {
			snprintf(why, len, "not held");
			return -1;
		}
		m->held = 0;
		store_admin(s->srv->store, m->id, 0, STORE_FLAG_HELD, 0);
		if (!m->in_flight)
			scheduler_requeue(s, m);
		break;
	case SCHED_ADMIN_RETRY:
		if (m->held) {
			snprintf(why, len, "held; release it first");
			return -1;
		}
		sched_admin_retry_now(s, m, util_now());
		break;
	case SCHED_ADMIN_DELETE:
		if (m->in_flight) {
			snprintf(why, len, "being delivered right now; try again in a moment");
			return -1;
		}
		if (!m->held)
			sched_admin_detach(s, m);
		store_admin(s->srv->store, m->id, 0, 0, 1);
		break;
	}
	log_info("%s: %s by outpostctl", m->queue_id,
	    (size_t)op < ARRAY_LEN(names) ? names[op] : "changed");
	if (op == SCHED_ADMIN_DELETE)
		scheduler_forget(s, m);
	scheduler_arm(s);
	return 0;
}

/* scheduler_retry_all - every waiting message due now (a flush). The
 * keys of the heap all change, so it is rebuilt once, in O(n); messages
 * in an upstream's FIFO are due already and keep their place. */
size_t
scheduler_retry_all(struct scheduler *s)
{
	time_t now = util_now();
	size_t n = 0;

	for (struct sched_msg *m = s->all; m; m = m->anext) {
		if (m->held)
			continue;
		for (size_t i = 0; i < m->nrcpt; i++)
			m->rcpts[i].next_attempt = now;
		if (m->hidx != SCHED_NOT_IN_HEAP)
			m->due = (double)now;
		n++;
	}
	scheduler_heap_build(s);
	log_info("queue flushed by outpostctl: %zu messages due now", n);
	scheduler_arm(s);
	return n;
}
