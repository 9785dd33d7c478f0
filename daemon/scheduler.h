/*
 * scheduler - decides what is delivered when.
 *
 * Keeps an in-memory index of every message with pending recipients
 * (loaded from the store at start, added on each commit), ordered by the
 * next attempt time. A timer wakes it; due messages have their data read
 * through the store thread and go to their upstream (chosen from the
 * sender domain's [domain] upstream list, else [server] default_upstream).
 * Outcomes are recorded in the store and logged Postfix-style:
 *   3F2A1B09C4D7: to=<b@y>, relay=host[ip]:587, delay=0.41, dsn=2.0.0,
 *   status=sent (250 2.0.0 Ok)
 * 4xx reschedules by [queue] retry; once max_lifetime has passed, or on
 * 5xx, the recipient is bounced and the sender gets a DSN (RFC 3464).
 */
#ifndef OUTPOST_SCHEDULER_H
#define OUTPOST_SCHEDULER_H

#include <stddef.h>
#include <time.h>

#include "throttle.h"

struct server;
struct store_qmsg;
struct scheduler;

/* Builds one upstream per [upstream] section. NULL with err. */
struct scheduler *scheduler_new(struct server *srv, char *err, size_t errlen);
/* Load the queue from the store (synchronous; before the loop runs).
 * Returns the number of messages loaded or -1. */
long scheduler_load(struct scheduler *s);
/* A message just committed; the scheduler copies what it needs. */
void scheduler_add(struct scheduler *s, const struct store_qmsg *m);
/* Messages with pending recipients, and jobs at upstreams now. */
size_t scheduler_pending(const struct scheduler *s);
size_t scheduler_inflight(const struct scheduler *s);
/* What `outpostctl status` shows of one upstream. */
struct scheduler_up_status {
	const struct conf_upstream *cu;
	time_t down_until;          /* unreachable: avoided until; 0 = up */
	size_t jobs;                /* at the upstream (connections busy) */
	size_t waiting;             /* due, held by its throttle or pool */
	struct throttle_status thr;
	const char *last_error;     /* latest non-2xx answer (upstream text,
	                             * untrusted), "" if none */
	time_t last_error_at;
	unsigned long sent, failed; /* recipients since start */
};
/* The queue in memory: messages with pending recipients. */
struct scheduler_queue_status {
	size_t msgs, rcpts;
	size_t deferred;            /* recipients tried at least once */
	size_t inflight;            /* messages being read or delivered */
	size_t held;                /* outpostctl queue hold */
	time_t oldest;              /* received_at of the oldest; 0 = none */
};
size_t scheduler_nupstreams(const struct scheduler *s);
void scheduler_upstream_status(struct scheduler *s, size_t i,
    struct scheduler_up_status *st);
void scheduler_queue_status(const struct scheduler *s,
    struct scheduler_queue_status *q);
/* Every message in memory, for the metrics' queue gauges (O(queue)). */
struct scheduler_msg_view {
	time_t received_at;
	int held, in_flight;
	int tried;                  /* a pending recipient was attempted */
};
void scheduler_queue_each(const struct scheduler *s,
    void (*fn)(const struct scheduler_msg_view *v, void *arg), void *arg);
/* outpostctl queue hold|release|delete|retry ID: 0, or -1 with why
 * ("not in the queue", "already held", "being delivered right now").
 * A held message stays in memory and in the store (flag HELD) but is not
 * scheduled; delete removes it from both without a DSN. */
enum scheduler_admin_op { SCHED_ADMIN_HOLD, SCHED_ADMIN_RELEASE, SCHED_ADMIN_DELETE,
	SCHED_ADMIN_RETRY };
int scheduler_admin(struct scheduler *s, enum scheduler_admin_op op, const char *queue_id,
    char *why, size_t len);
/* queue retry --all: every message not held is due now; returns how many */
size_t scheduler_retry_all(struct scheduler *s);
/* Stop starting new deliveries (shutdown); in-flight ones finish. */
void scheduler_stop(struct scheduler *s);
void scheduler_free(struct scheduler *s);

#endif
