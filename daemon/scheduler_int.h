/*
 * scheduler_int - internal to scheduler.c, sched_notify.c and
 * sched_admin.c; not for other modules (they use scheduler.h).
 *
 * scheduler.c owns the heap, routing, the tick and its gating, the
 * attempts and their outcomes, the day counters and the lifecycle.
 * sched_notify.c tells the sender and the admin what an outcome means
 * (DSNs, double-bounce and policy alerts, suppression, soft bounces).
 * sched_admin.c carries out the queue tools (outpostctl queue
 * hold|release|delete|retry). The structures are defined here because
 * all three work on them; everything runs on the loop thread.
 */
#ifndef OUTPOST_SCHEDULER_INT_H
#define OUTPOST_SCHEDULER_INT_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "bounce.h"
#include "classify.h"
#include "scheduler.h"
#include "upstream.h"
#include "util.h"

#define SCHED_DSN_MAX 16
/* Bodies kept in memory from the commit to the first attempt, so a fresh
 * message goes out without reading it back from SQLite: at most this
 * much in all, and only messages up to SCHED_CACHE_ONE each. */
#define SCHED_CACHE_MAX (64u << 20)
#define SCHED_CACHE_ONE (1u << 20)
/* sched_msg.hidx of a message that is not in the heap */
#define SCHED_NOT_IN_HEAP ((size_t)-1)

struct event;
struct server;
struct conf;
struct conf_upstream;
struct suppress;
struct throttle;

struct sched_rcpt {
	int64_t id;
	char *addr;
	int attempts;
	time_t next_attempt;
	int notify;                 /* SMTP_NOTIFY_* */
	char *orcpt;                /* "rfc822;addr" or NULL */
	int delay_notified;
};

struct sched_up;

struct sched_msg {
	int64_t id;
	char queue_id[QUEUE_ID_LEN + 1];
	char *sender;
	time_t received_at;
	size_t size;
	int body_8bit;
	int smtputf8;
	int ret;                    /* SMTP_RET_* */
	char *envid;                /* or NULL */
	struct sched_rcpt *rcpts;   /* pending only */
	size_t nrcpt;
	double due;                 /* heap key: earliest next_attempt, or
	                             * when its domain's pacing lets it go */
	size_t hidx;                /* its index in the heap, or SCHED_NOT_IN_HEAP */
	int in_flight;
	struct sched_up *up;
	struct sched_msg *bnext;    /* blocked FIFO link */
	int held;                   /* outpostctl queue hold: not scheduled */
	char *data;                 /* body kept from the commit for the first
	                             * attempt (counted in cache_bytes), or NULL */
	size_t len;
	struct sched_msg *aprev, *anext;    /* every message in memory */
};

/* One upstream and the messages due for it that had to wait. */
struct sched_up {
	struct scheduler *s;
	struct upstream *u;
	const struct conf_upstream *cu;
	int loading;                /* store reads under way */
	struct sched_msg *bhead, *btail;
	time_t down_until;          /* unreachable: avoid until then */
	long down_wait;             /* current avoidance, doubled on repeats */
	struct throttle *thr;       /* pacing toward this upstream */
	double thr_until;           /* FIFO head held by throttling until then */
	int thr_dirty;              /* day counters changed since saved */
	char last_error[UPSTREAM_REPLY_MAX];    /* latest non-2xx answer */
	time_t last_error_at;       /* 0: none since start */
	unsigned long sent, failed; /* recipients since start: 2xx, other */
};

/* One attempt: the job handed to the upstream and what it points at. */
struct sched_job {
	struct upstream_job job;
	struct scheduler *s;
	struct sched_msg *m;
	char *data;
	size_t *ridx;               /* job recipient -> index in m->rcpts */
};

struct scheduler {
	struct server *srv;
	const struct conf *conf;
	struct sched_up *ups;
	size_t nups;
	struct sched_msg **heap;
	size_t nheap, capheap;
	size_t nmsgs;               /* all messages in memory */
	size_t inflight;            /* loading or at an upstream */
	struct event *timer;
	time_t saved_at;            /* last save of the day counters */
	uint64_t rng;               /* xorshift64 state for retry jitter */
	struct suppress *soft;      /* recipients failing temporarily */
	struct sched_msg *all;      /* every message in memory (queue tools) */
	size_t cache_bytes;         /* sum of the kept bodies (SCHED_CACHE_MAX) */
	int stopping;
	int freeing;
};

/* One recipient's outcome that a DSN or an alert reports. */
struct sched_note {
	size_t ri;                  /* index in m->rcpts */
	const char *reply;          /* the job's reply line */
	char status[SCHED_DSN_MAX]; /* RFC 3463 code */
	enum classify_class cls;
};

/* scheduler.c */
int scheduler_less(const struct sched_msg *a, const struct sched_msg *b);
void scheduler_forget(struct scheduler *s, struct sched_msg *m);
void scheduler_requeue(struct scheduler *s, struct sched_msg *m);
/* Restore heap order around index i after its entry changed. */
void scheduler_heap_fix(struct scheduler *s, size_t i);
/* Take m out of the heap in O(log n) (it must be in it). */
void scheduler_heap_remove(struct scheduler *s, struct sched_msg *m);
/* Rebuild the heap from its array in O(n), after many keys changed. */
void scheduler_heap_build(struct scheduler *s);
void scheduler_arm(struct scheduler *s);
void scheduler_dsn(const char *reply, int cls, char *dsn, size_t len);

/* sched_notify.c: after an outcome, for the sender and the admin */
int sched_notify_wants_dsn(int notify, enum bounce_kind kind);
void sched_notify_send_dsn(struct scheduler *s, const struct sched_msg *m,
    const struct sched_job *sj, const struct sched_note *notes, size_t n,
    enum bounce_kind kind, time_t now);
void sched_notify_double_bounce(struct scheduler *s, const struct sched_msg *m,
    const struct sched_note *notes, size_t n);
void sched_notify_policy_alerts(struct scheduler *s, const struct sched_msg *m,
    const struct sched_note *notes, size_t n);
void sched_notify_suppress(struct scheduler *s, struct sched_msg *m,
    const struct sched_note *notes, size_t n, time_t now);
int sched_notify_is_soft(const struct upstream_rcpt *ur);
void sched_notify_soft(struct scheduler *s, const struct sched_msg *m, const char *addr,
    const char *reply, time_t now);
void sched_notify_soft_clear(struct scheduler *s, const char *addr);

/* sched_admin.c: scheduler_admin() and scheduler_retry_all() of scheduler.h */

#endif
