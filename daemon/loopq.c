/*
 * loopq - worker-to-loop call queue. See loopq.h.
 *
 * A mutex-protected FIFO plus one libevent event that is activated from
 * the posting thread (event_active is thread-safe once
 * evthread_use_pthreads() was called). The loop swaps the whole list out
 * under the lock and runs it without holding the lock.
 */
#include "config.h"

#include <pthread.h>
#include <stdlib.h>

#include <event2/event.h>

#include "loopq.h"
#include "log.h"
#include "util.h"

struct loopq_item {
	loopq_fn fn;
	void *arg;
	struct loopq_item *next;
};

struct loopq {
	pthread_mutex_t lock;
	struct loopq_item *head, *tail;
	struct event *ev;
};

static void
loopq_run(struct loopq *q)
{
	struct loopq_item *it, *next;

	pthread_mutex_lock(&q->lock);
	it = q->head;
	q->head = q->tail = NULL;
	pthread_mutex_unlock(&q->lock);
	for (; it; it = next) {
		next = it->next;
		it->fn(it->arg);
		free(it);
	}
}

static void
loopq_cb(evutil_socket_t fd, short what, void *arg)
{
	loopq_run(arg);
}

struct loopq *
loopq_new(struct event_base *base)
{
	struct loopq *q = xcalloc(1, sizeof(*q));

	pthread_mutex_init(&q->lock, NULL);
	q->ev = event_new(base, -1, 0, loopq_cb, q);
	if (q->ev == NULL)
		fatalx("loopq: event_new failed");
	return q;
}

void
loopq_free(struct loopq *q)
{
	struct loopq_item *it, *next;

	if (q == NULL)
		return;
	event_free(q->ev);
	for (it = q->head; it; it = next) {
		next = it->next;
		free(it);
	}
	pthread_mutex_destroy(&q->lock);
	free(q);
}

void
loopq_post(struct loopq *q, loopq_fn fn, void *arg)
{
	struct loopq_item *it = xmalloc(sizeof(*it));

	it->fn = fn;
	it->arg = arg;
	it->next = NULL;
	pthread_mutex_lock(&q->lock);
	if (q->tail)
		q->tail->next = it;
	else
		q->head = it;
	q->tail = it;
	pthread_mutex_unlock(&q->lock);
	event_active(q->ev, 0, 0);
}

void
loopq_drain(struct loopq *q)
{
	loopq_run(q);
}
