/*
 * store - the durable queue in SQLite.
 *
 * One database file (state_dir/queue.db) in WAL mode with
 * synchronous=FULL, both checked on every open: a message that got 250 is
 * on disk. All writes during operation go through one store thread that
 * takes every commit waiting at that moment and writes them in a single
 * transaction (group commit), so one fsync serves many sessions. Reads of
 * message bodies for delivery also go through that thread, so the event
 * loop never blocks on SQLite. Completion callbacks run on the loop
 * (through loopq). Only bound parameters are used in SQL.
 *
 * Schema (version 1):
 *   messages(id, queue_id, sender, auth_user, client, helo, received_at,
 *            size, flags, body_8bit, smtputf8, data BLOB, done_at,
 *            ret, envid)
 *   recipients(id, message_id, address, status, attempts,
 *              next_attempt_at, last_reply, upstream, notify, orcpt,
 *              delay_notified)
 *     ret: the MAIL RET= (SMTP_RET_*: 0 unset, 1 FULL, 2 HDRS); envid:
 *     ENVID xtext-decoded or NULL; notify: SMTP_NOTIFY_* bits; orcpt:
 *     "type;addr" decoded or NULL; delay_notified: a delay DSN went out.
 *     ret, envid and delay_notified came after the first version 1
 *     files: store_open adds them (ALTER TABLE) to a file without them.
 *     status: 'queued' | 'deferred' | 'sent' | 'bounced' | 'suppressed'
 *   events(id, message_id, recipient_id, at, upstream, relay, status, reply)
 *   counters(upstream, data BLOB, saved_at)   -- throttling's rolling-day
 *            counters per upstream, in the scheduler's own encoding
 *   suppressions(address, reason, reply, first_seen, last_seen,
 *            expires_at)   -- addresses refused at RCPT; address is
 *            lower-cased, expires_at 0 = never
 *   soft_failures(address, count, first_seen, last_seen, reply)
 *   unsub_tokens(token, sender, rcpt, list, expires, created)
 *            -- what each one-click unsubscribe token stands for (the
 *            token names nothing, unsub_token.h); expired rows go
 *   unsubscribes(sender, rcpt, list, at)   -- recipients who unsubscribed
 *            from one sender (both lower-cased), refused at RCPT of that
 *            sender only
 *   meta(key, value)   -- schema_version
 * Once every recipient of a message is final, its data is dropped
 * (data = NULL, done_at set); the rows stay as history. Besides the
 * lookup indexes, two partial ones hold just the pending queue
 * (recipients_pending, messages_pending): store_load_queue and outpostctl
 * queue summary read them instead of the message rows with the bodies.
 *
 * Startup functions (store_open, store_load_queue) run before the loop
 * starts and are synchronous.
 */
#ifndef OUTPOST_STORE_H
#define OUTPOST_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include "unsub_token.h"
#include "util.h"

struct event_base;
struct loopq;
struct store;

/* Error classes for callbacks; the session maps them to replies. */
#define STORE_OK     0
#define STORE_EFULL  1  /* disk full, quota: 452 4.3.1 */
#define STORE_EBUSY  2  /* locked database: 451 4.3.0 */
#define STORE_EIO    3  /* anything else: 451 4.3.0 */

#define STORE_FLAG_HELD      0x1
#define STORE_FLAG_BULK      0x2
#define STORE_FLAG_FORWARDED 0x4
#define STORE_FLAG_DSN       0x8

/* A message as the session commits it. The store copies nothing out of it
 * before the callback: keep it alive until then. */
struct store_msg {
	char queue_id[QUEUE_ID_LEN + 1];
	const char *sender;         /* "" for <> */
	const char *auth_user;      /* NULL if none */
	const char *client;         /* "192.0.2.7" */
	const char *helo;
	time_t received_at;
	int flags;
	int body_8bit;
	int smtputf8;
	const char *data;           /* final bytes, CRLF line endings */
	size_t len;
	int ret;                    /* SMTP_RET_* of MAIL RET=, 0 if absent */
	const char *envid;          /* ENVID decoded, or NULL */
	const char *const *rcpts;
	const int *notify;          /* per recipient SMTP_NOTIFY_* bits, or NULL */
	const char *const *orcpt;   /* per recipient, or NULL */
	size_t nrcpt;
	/* filled by the store before the callback on success: */
	int64_t id;
	int64_t *rcpt_ids;          /* caller-provided array of nrcpt */
};

/* A queued message with its pending recipients, as loaded at start or
 * just committed: what the scheduler keeps in memory (no body). */
struct store_qrcpt {
	int64_t id;
	const char *addr;
	int attempts;
	time_t next_attempt;
	int notify;                 /* SMTP_NOTIFY_* bits, 0 if none given */
	const char *orcpt;          /* "rfc822;addr" decoded, or NULL */
	int delay_notified;         /* a delay DSN was sent for it */
};
struct store_qmsg {
	int64_t id;
	const char *queue_id;
	const char *sender;
	const char *auth_user;
	time_t received_at;
	size_t size;
	int flags;
	int body_8bit;
	int smtputf8;
	int ret;                    /* SMTP_RET_* */
	const char *envid;          /* or NULL */
	const struct store_qrcpt *rcpts;
	size_t nrcpt;
	const char *data;           /* the committed bytes while the committer
	                             * still holds them (borrowed), or NULL:
	                             * lets the first attempt skip a read */
	size_t len;
};

/* One recipient's outcome of a delivery attempt. */
struct store_result {
	int64_t rcpt_id;
	const char *status;         /* "sent" | "deferred" | "bounced" */
	int attempts;               /* new total */
	time_t next_attempt;        /* for deferred */
	const char *reply;          /* upstream reply or local reason */
	const char *upstream;       /* upstream name */
	const char *relay;          /* "host[ip]:port" */
	int delay_notified;         /* 1: a delay DSN went out (kept once set) */
};

typedef void (*store_done_fn)(int err, void *arg);
typedef void (*store_data_fn)(int err, char *data, size_t len, void *arg);
typedef void (*store_qmsg_fn)(const struct store_qmsg *m, void *arg);

/* Open (creating the schema) and verify journal_mode=wal and
 * synchronous=FULL. readonly for outpostctl listings. NULL with err. */
struct store *store_open(const char *path, int readonly, char *err, size_t errlen);
/* Start the store thread; callbacks go through q onto the loop. */
int store_start(struct store *s, struct loopq *q);
/* Finish queued work, stop the thread, close the database. */
void store_close(struct store *s);

/* Group-committed insert of a message and its recipients. */
void store_commit(struct store *s, struct store_msg *m, store_done_fn cb, void *arg);
/* Read a message's data off the loop; data is malloc'd and owned by cb. */
void store_load_data(struct store *s, int64_t msg_id, store_data_fn cb, void *arg);
/* Record attempt outcomes (copied before return) and an events row each;
 * msg_done: every recipient of msg_id is now final, drop its data.
 * cb may be NULL. */
void store_record(struct store *s, int64_t msg_id, const struct store_result *res,
    size_t n, int msg_done, store_done_fn cb, void *arg);

/* Synchronous, before the loop runs: call cb for every message that has
 * recipients in 'queued' or 'deferred'. Returns 0 or -1. */
int store_load_queue(struct store *s, store_qmsg_fn cb, void *arg);

/* For tests and fault injection: make the next n commits fail with err. */
void store_fail_next(struct store *s, int n, int err);

/* ---- Added with the store implementation (not in the original API) ---- */
/* Note: store_close posts the callbacks of the work it finishes; run
 * loopq_drain() afterwards so they are delivered. */
/* Synchronous PRAGMA integrity_check (RELIABILITY Q1): 0 if SQLite answers
 * "ok", else -1 with the problems logged. Only while the store thread is
 * not running (before store_start), e.g. at startup or from outpostctl. */
int store_integrity_check(struct store *s);
/* Counters since store_open: write transactions committed, and messages
 * committed by store_commit; commits / txns is the group-commit factor.
 * Thread-safe. */
void store_stats(struct store *s, uint64_t *txns, uint64_t *commits);
/* Throttling's day counters survive a restart (issue 4). The blob is
 * opaque here (the scheduler encodes it). Saving is copied at once and
 * written with the store thread's next batch; cb may be NULL. Loading is
 * synchronous, before store_start like store_load_queue: returns 1 with
 * *blob malloc'd (NUL-terminated, *len bytes before it; free() it), 0 if
 * nothing was saved for that upstream, -1 on error. */
void store_save_counters(struct store *s, const char *upstream, const void *blob,
    size_t len, store_done_fn cb, void *arg);
int store_load_counters(struct store *s, const char *upstream, void **blob,
    size_t *len);
/* The suppression list (issue 4). store_suppress_add copies its
 * arguments and upserts with the next batch (first_seen kept, the rest
 * refreshed); the address is lower-cased. store_suppress_put (same upsert)
 * and store_suppress_remove (1 removed, 0 absent, -1 error) are
 * synchronous for outpostctl; store_load_suppressions is synchronous
 * (before store_start, or on a connection of its own) and skips expired
 * rows: 0 or -1. */
struct store_suppression {
	const char *address;
	const char *reason;         /* "bad-mailbox", "manual" ... */
	const char *reply;          /* the upstream reply, "" if none */
	time_t first_seen, last_seen;
	time_t expires_at;          /* 0: never */
	unsigned count;             /* soft_failures rows only */
};
typedef void (*store_suppress_fn)(const struct store_suppression *e, void *arg);
void store_suppress_add(struct store *s, const char *addr, const char *reason,
    const char *reply, time_t expires_at);
int store_suppress_put(struct store *s, const char *addr, const char *reason,
    const char *reply, time_t expires_at);
int store_suppress_remove(struct store *s, const char *addr);
int store_load_suppressions(struct store *s, store_suppress_fn cb, void *arg);
/* Soft failures (4.1.x/4.2.x, counted toward a suppression):
 * store_soft_put copies and, with the next batch, replaces addr's row,
 * or deletes it when count is 0; store_load_soft_failures is synchronous
 * like store_load_suppressions (reason "soft-bounce"). */
/* outpostctl queue hold/release/delete, with the next batch: set and
 * clear bits of messages.flags, or (remove) delete the message with its
 * recipients and history. */
void store_admin(struct store *s, int64_t msg_id, int flags_set, int flags_clear,
    int remove);
void store_soft_put(struct store *s, const char *addr, unsigned count,
    time_t first_seen, time_t last_seen, const char *reply);
int store_load_soft_failures(struct store *s, store_suppress_fn cb, void *arg);
/* One-click unsubscribe (issue 10), in store_lists.c.
 * The token ledger: store_unsub_tokens_add copies the rows (strings
 * included) before it returns and inserts them with the next batch;
 * done (may be NULL) gets STORE_OK or a STORE_E* class on the loop.
 * A token already recorded is kept as it is. store_unsub_tokens_expire
 * deletes the expired rows with the next batch. store_unsub_token_find
 * is synchronous on a connection of the caller's own (read-only is
 * enough): 1 with *out filled, 0 if the ledger has no such token, -1 on
 * error. */
struct store_unsub_token {
	char token[UNSUB_TOKEN_LEN + 1];
	const char *sender, *rcpt, *list;
	time_t expires;
};
struct store_unsub_row {
	char sender[UNSUB_FIELD_MAX], rcpt[UNSUB_FIELD_MAX], list[UNSUB_FIELD_MAX];
	time_t expires;             /* the ledger: the token's expiry */
	time_t at;                  /* unsubscribes: when */
};
void store_unsub_tokens_add(struct store *s, const struct store_unsub_token *rows, size_t n,
    void (*done)(int err, void *arg), void *arg);
void store_unsub_tokens_expire(struct store *s);
int store_unsub_token_find(struct store *ro, const char *token, struct store_unsub_row *out);
/* The unsubscribes: store_unsub_add copies and inserts with the next
 * batch (a repeat keeps the first row: idempotent), then done (may be
 * NULL) on the loop. store_unsub_remove is synchronous (outpostctl):
 * sender's row for rcpt, or every sender's when sender is NULL; the
 * number of rows removed, or -1. store_load_unsubs is synchronous like
 * store_load_suppressions: every row in (rcpt, sender) order, 0 or -1. */
typedef void (*store_unsub_fn)(const struct store_unsub_row *r, void *arg);
void store_unsub_add(struct store *s, const char *sender, const char *rcpt,
    const char *list, time_t at, store_done_fn done, void *arg);
int store_unsub_remove(struct store *s, const char *sender, const char *rcpt);
int store_load_unsubs(struct store *s, store_unsub_fn cb, void *arg);
/* ---- end of additions ---- */

/* ---- token ledger (issue 10) ---- */
/* Write hooks for store_unsub.c: store_exec runs fn on the store thread
 * inside the next group transaction (fn's SQLite error code rolls the
 * transaction back and is cb's error class, like a failed commit), then
 * cb(err, arg) on the loop. store_apply_commit is store_commit's insert,
 * for such a fn only (store thread). */
struct sqlite3;
typedef int (*store_exec_fn)(struct store *s, struct sqlite3 *db, void *arg);
void store_exec(struct store *s, store_exec_fn fn, store_done_fn cb, void *arg);
int store_apply_commit(struct store *s, struct store_msg *m);
/* store_commit_batch commits the messages msgs[0..n) and their rows in
 * the unsubscribe token ledger (unsub_tokens, above) together, all or
 * nothing (bulk mail's per-recipient copies); like store_commit it
 * borrows msgs and rows until cb, and fills each message's id and
 * rcpt_ids. */
void store_commit_batch(struct store *s, struct store_msg *const *msgs, size_t n,
    const struct store_unsub_token *rows, size_t nrows, store_done_fn cb, void *arg);
/* ---- end of token ledger ---- */

#endif
