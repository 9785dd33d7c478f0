/*
 * inject - queue a message that outpost itself writes (DSNs, postmaster
 * alerts) exactly as a submitted one is queued: a queue id, a Received:
 * header, DKIM signatures from the signer pool, store_commit, then
 * scheduler_add. The loop never blocks: signing runs in the signer
 * threads, the commit in the store thread.
 *
 * The caller builds a complete RFC 5322 message (bounce_build,
 * bounce_alert_build): CRLF line ends, a header with exactly the one
 * From: mailbox whose domain picks the DKIM keys, Date: and Message-ID:
 * already there (nothing is added but Received:), a blank line, the body.
 * No From: is a caller bug: refused with INJECT_EMSG. A From: domain with
 * no DKIM key, or a signing failure, sends the message unsigned with a
 * warning: a DSN must go out even then.
 *
 * The message is committed also while the server is stopping (after
 * SIGTERM): it is durable and delivered after the restart. main.c must
 * not leave the loop while inject_inflight() > 0, or a job whose commit
 * is still pending is lost with the loop queue.
 */
#ifndef OUTPOST_INJECT_H
#define OUTPOST_INJECT_H

#include <stddef.h>

struct server;

/* Errors given to the done callback besides the STORE_* codes. */
#define INJECT_EMSG 16          /* the message has no usable From: */

/* For the log line only (origin=alert; the default with STORE_FLAG_DSN is
 * origin=dsn, otherwise origin=local); never stored. */
#define INJECT_ORIGIN_ALERT 0x10000

typedef void (*inject_done_fn)(int err, const char *queue_id, void *arg);

/* Queue data (taken: freed by inject) from sender ("" for <>) to rcpts
 * (copied). flags: STORE_FLAG_* bits, plus INJECT_ORIGIN_ALERT. done (may
 * be NULL) runs later on the loop thread with STORE_OK, a STORE_E* code
 * or INJECT_EMSG, and the queue id given to the message. */
void inject_message(struct server *srv, const char *sender, const char *const *rcpts,
    size_t nrcpt, char *data, size_t len, int flags, inject_done_fn done, void *arg);

/* Injections not yet answered (signing or committing). */
size_t inject_inflight(void);

#endif
