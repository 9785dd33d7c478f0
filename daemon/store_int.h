/*
 * store_int - what store.c (the queue and the store thread) and
 * store_lists.c (suppressions, soft failures, the unsubscribe ledger
 * and unsubscribes) share: the store and its work items, and the entry
 * points of the thread's queue. Private to those two files.
 */
#ifndef OUTPOST_STORE_INT_H
#define OUTPOST_STORE_INT_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

#include <sqlite3.h>

#include "log.h"
#include "store.h"

/* Upsert of one suppression: a repeat keeps first_seen and refreshes
 * the rest. Shared by the store thread and store_suppress_put. */
#define STORE_SQL_SUPPRESS "INSERT INTO suppressions(address, reason, reply," \
	" first_seen, last_seen, expires_at) VALUES (?1, ?2, ?3, ?4, ?4, ?5)" \
	" ON CONFLICT(address) DO UPDATE SET reason = excluded.reason," \
	" reply = excluded.reply, last_seen = excluded.last_seen," \
	" expires_at = excluded.expires_at"

/* The statements the store thread keeps prepared for its whole life. */
enum store_sql {
	SQL_BEGIN, SQL_COMMIT, SQL_ROLLBACK,
	SQL_INS_MSG, SQL_INS_RCPT, SQL_UPD_RCPT, SQL_INS_EVENT,
	SQL_SEL_DATA, SQL_MSG_DONE, SQL_PUT_COUNTERS, SQL_PUT_SUPPRESS,
	SQL_PUT_SOFT, SQL_DEL_SOFT,
	SQL_COUNT
};

/* What a work item asks of the store thread. From STORE_OP_SUPPRESS on,
 * the lists' operations: store_lists_apply does them. */
enum store_op { STORE_OP_COMMIT, STORE_OP_RECORD, STORE_OP_LOAD,
	STORE_OP_COUNTERS, STORE_OP_ADMIN,
	STORE_OP_EXEC,              /* exec: fn in the group transaction */
	STORE_OP_SUPPRESS, STORE_OP_SOFT,
	STORE_OP_UNSUB_TOKENS,      /* blob: struct store_unsub_token[bloblen]
	                             * with their strings, one allocation */
	STORE_OP_UNSUB_EXPIRE,      /* at: now */
	STORE_OP_UNSUB };           /* name: rcpt, reason: sender, reply:
	                             * list, at: when */

struct store_item {
	enum store_op op;
	int err;
	int injected;               /* failed by store_fail_next: skip the DB */
	store_done_fn done;
	store_data_fn data_cb;
	void *arg;
	/* commit */
	struct store_msg *msg;
	/* record, load */
	int64_t msg_id;
	struct store_result *res;   /* our own copies, strings included */
	size_t nres;
	int msg_done;
	/* counters, suppress: our own copies (name is the address) */
	char *name;
	void *blob;
	size_t bloblen;
	char *reason, *reply;
	time_t at, expires_at;      /* soft: first_seen, last_seen */
	unsigned count;             /* soft: 0 deletes the row */
	int flags_set, flags_clear; /* admin: messages.flags changes */
	int remove;                 /* admin: delete the message */
	store_exec_fn exec;         /* exec: fn(arg) in the transaction */
	/* load result, owned by data_cb once delivered */
	char *data;
	size_t len;
	struct store_item *next;
};

struct store {
	sqlite3 *db;
	struct loopq *q;
	sqlite3_stmt *st[SQL_COUNT];
	pthread_t thread;
	int running;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct store_item *head, *tail;
	int stopping;
	int fail_n, fail_err;
	uint64_t txns, commits;
};

/* A statement step failed inside a write: rc with the reason logged. */
#define STORE_TRY(s, call, what) do {                                   \
	int rc_ = (call);                                               \
	if (rc_ != SQLITE_OK && rc_ != SQLITE_DONE && rc_ != SQLITE_ROW) { \
		log_err("store: %s: %s", (what), sqlite3_errmsg((s)->db)); \
		return rc_;                                             \
	}                                                               \
} while (0)

/* store.c: queue an item for the store thread (it frees the item after
 * the callback); strdup that keeps NULL; 1 if table has column, 0 if
 * not, -1 on error. */
void store_enqueue(struct store *s, struct store_item *it);
char *store_dup(const char *v);
int store_has_column(sqlite3 *db, const char *table, const char *column);

/* store_lists.c: one list operation (op >= STORE_OP_SUPPRESS) inside the
 * store thread's open transaction; an SQLite result code. */
int store_lists_apply(struct store *s, struct store_item *it);

#endif
