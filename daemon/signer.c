/*
 * signer - worker thread pool. See signer.h.
 *
 * A FIFO of jobs under one mutex and condition variable; N threads take
 * jobs, run work(arg), and post done(arg) to the loop through loopq. At
 * shutdown the queue is drained before the threads exit, so every job's
 * done callback is posted exactly once.
 */
#include "config.h"

#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "log.h"
#include "loopq.h"
#include "signer.h"
#include "util.h"

#define SIGNER_THREADS_MAX 64

struct signer_job {
	signer_fn work;
	signer_fn done;
	void *arg;
	struct signer_job *next;
};

struct signer {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct signer_job *head, *tail;
	int backlog;                /* queued + running */
	int stopping;
	struct loopq *loopq;
	pthread_t threads[SIGNER_THREADS_MAX];
	int nthreads;
};

/* signer_thread - take jobs until stopping and the queue is empty */
static void *
signer_thread(void *arg)
{
	struct signer *s = arg;
	struct signer_job *j;

	for (;;) {
		pthread_mutex_lock(&s->lock);
		while (s->head == NULL && !s->stopping)
			pthread_cond_wait(&s->cond, &s->lock);
		j = s->head;
		if (j == NULL) {
			pthread_mutex_unlock(&s->lock);
			return NULL;
		}
		s->head = j->next;
		if (s->head == NULL)
			s->tail = NULL;
		pthread_mutex_unlock(&s->lock);

		j->work(j->arg);
		if (j->done)
			loopq_post(s->loopq, j->done, j->arg);

		pthread_mutex_lock(&s->lock);
		s->backlog--;
		pthread_mutex_unlock(&s->lock);
		free(j);
	}
}

struct signer *
signer_new(struct loopq *q, int nthreads)
{
	struct signer *s = xcalloc(1, sizeof(*s));

	if (nthreads <= 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		nthreads = n > 0 ? (int)n : 2;
	}
	if (nthreads > SIGNER_THREADS_MAX)
		nthreads = SIGNER_THREADS_MAX;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	s->loopq = q;
	for (int i = 0; i < nthreads; i++) {
		if (pthread_create(&s->threads[i], NULL, signer_thread, s) != 0)
			fatal("signer: pthread_create");
		s->nthreads++;
	}
	return s;
}

void
signer_free(struct signer *s)
{
	if (s == NULL)
		return;
	pthread_mutex_lock(&s->lock);
	s->stopping = 1;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	for (int i = 0; i < s->nthreads; i++)
		pthread_join(s->threads[i], NULL);
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

void
signer_submit(struct signer *s, signer_fn work, signer_fn done, void *arg)
{
	struct signer_job *j = xmalloc(sizeof(*j));

	j->work = work;
	j->done = done;
	j->arg = arg;
	j->next = NULL;
	pthread_mutex_lock(&s->lock);
	if (s->tail)
		s->tail->next = j;
	else
		s->head = j;
	s->tail = j;
	s->backlog++;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

int
signer_backlog(struct signer *s)
{
	int n;

	pthread_mutex_lock(&s->lock);
	n = s->backlog;
	pthread_mutex_unlock(&s->lock);
	return n;
}
