/*
 * signer - the worker thread pool for CPU work and blocking calls that
 * must stay off the event loop: message checks and DKIM/ARC signing,
 * crypt(3) password checks, Maildir writes.
 *
 * signer_submit(work, done, arg): work(arg) runs on a worker thread, then
 * done(arg) runs on the loop thread (through loopq). Jobs are taken in
 * submission order; the pool is sized to the cores by default.
 */
#ifndef OUTPOST_SIGNER_H
#define OUTPOST_SIGNER_H

struct loopq;
struct signer;

typedef void (*signer_fn)(void *arg);

struct signer *signer_new(struct loopq *q, int nthreads);
/* Runs the queued jobs to the end, joins the threads. */
void signer_free(struct signer *s);
void signer_submit(struct signer *s, signer_fn work, signer_fn done, void *arg);
/* Jobs queued or running (for status and back-pressure). */
int signer_backlog(struct signer *s);

#endif
