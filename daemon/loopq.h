/*
 * loopq - hand a function call from a worker thread back to the event loop.
 *
 * The signer pool and the store thread finish work off the loop; their
 * completion callbacks must run on the loop thread, where all session and
 * delivery state lives. loopq_post() is thread-safe and wakes the loop
 * through a libevent event (evthread_use_pthreads() must have been called).
 * Callbacks run in posting order.
 */
#ifndef OUTPOST_LOOPQ_H
#define OUTPOST_LOOPQ_H

struct event_base;
struct loopq;

typedef void (*loopq_fn)(void *arg);

struct loopq *loopq_new(struct event_base *base);
void loopq_free(struct loopq *q);           /* runs nothing still queued */
void loopq_post(struct loopq *q, loopq_fn fn, void *arg);
/* Run everything queued now, on the calling (loop) thread. For shutdown. */
void loopq_drain(struct loopq *q);

#endif
