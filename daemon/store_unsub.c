/*
 * store_unsub - the all-or-nothing commit of bulk mail's per-recipient
 * copies with their rows in the unsubscribe token ledger (the table and
 * its other writes are store_lists.c's).
 *
 * API: store_commit_batch (store.h, "token ledger"). It runs on the store
 * thread through store_exec, inside its group transaction: a batch whose
 * ledger rows or copies fail leaves
 * nothing behind, so a client that retries after 451 does not get its
 * mail sent twice.
 *
 * Trust: sender, recipient and list are client text; they reach SQL only
 * as bound parameters.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "log.h"
#include "store.h"
#include "util.h"

/* A token already there is the same (sender, recipient, list, expiry):
 * the MAC says so; REPLACE keeps a retried message's rows to one. */
static const char store_unsub_insert[] =
    "INSERT OR REPLACE INTO unsub_tokens(token, sender, rcpt, list, expires,"
    " created) VALUES (?, ?, ?, ?, ?, ?)";

struct store_unsub_job {
	/* ledger rows and messages: borrowed until done */
	const struct store_unsub_token *rows;
	size_t nrows;
	struct store_msg *const *msgs;
	size_t nmsgs;
	store_done_fn done;
	void *arg;
};

/* store_unsub_rows - insert the ledger rows; an SQLite result code */
static int
store_unsub_rows(sqlite3 *db, const struct store_unsub_token *rows, size_t n)
{
	sqlite3_stmt *st = NULL;
	time_t now = util_now();
	int rc;

	if (n == 0)
		return SQLITE_OK;
	if ((rc = sqlite3_prepare_v2(db, store_unsub_insert, -1, &st, NULL)) != SQLITE_OK) {
		log_err("store: unsub_tokens: %s", sqlite3_errmsg(db));
		return rc;
	}
	for (size_t i = 0; i < n; i++) {
		sqlite3_reset(st);
		sqlite3_bind_text(st, 1, rows[i].token, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, rows[i].sender, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, rows[i].rcpt, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 4, rows[i].list, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 5, (sqlite3_int64)rows[i].expires);
		sqlite3_bind_int64(st, 6, (sqlite3_int64)now);
		if ((rc = sqlite3_step(st)) != SQLITE_DONE) {
			log_err("store: unsub_tokens insert: %s", sqlite3_errmsg(db));
			sqlite3_finalize(st);
			return rc;
		}
	}
	sqlite3_finalize(st);
	return SQLITE_OK;
}

/* store_unsub_exec - on the store thread, in the transaction: the ledger
 * rows, then every message */
static int
store_unsub_exec(struct store *s, struct sqlite3 *db, void *arg)
{
	struct store_unsub_job *j = arg;
	int rc = store_unsub_rows(db, j->rows, j->nrows);

	for (size_t i = 0; rc == SQLITE_OK && i < j->nmsgs; i++)
		rc = store_apply_commit(s, j->msgs[i]);
	return rc;
}

/* store_unsub_done - on the loop: the caller's callback, then our copies */
static void
store_unsub_done(int err, void *arg)
{
	struct store_unsub_job *j = arg;

	if (err != STORE_OK)
		for (size_t i = 0; i < j->nmsgs; i++)
			j->msgs[i]->id = 0;
	if (j->done)
		j->done(err, j->arg);
	free(j);
}

/* store_commit_batch - messages and ledger rows in one transaction */
void
store_commit_batch(struct store *s, struct store_msg *const *msgs, size_t n,
    const struct store_unsub_token *rows, size_t nrows, store_done_fn cb, void *arg)
{
	struct store_unsub_job *j = xcalloc(1, sizeof(*j));

	j->msgs = msgs;
	j->nmsgs = n;
	j->rows = rows;
	j->nrows = nrows;
	j->done = cb;
	j->arg = arg;
	store_exec(s, store_unsub_exec, store_unsub_done, j);
}
