/*
 * store_lists - the address lists kept in queue.db beside the queue: the
 * suppression list (suppressions) and the soft failures counted toward
 * it (soft_failures). See store.h for the API.
 *
 * Writes go through the store thread like the queue's (store_int.h):
 * the *_add / *_put functions copy their arguments and queue an item,
 * and store_lists_apply runs it inside the thread's next transaction.
 * The synchronous functions (outpostctl, loading at start) use the
 * connection they are given and must not run beside the thread on it.
 *
 * Trust: addresses and replies hold client and upstream text; they reach
 * SQL only as bound parameters.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "store_int.h"
#include "util.h"

/* store_bind_suppress - the upsert's parameters; addr already lower-cased */
static int
store_bind_suppress(sqlite3_stmt *st, const char *addr, const char *reason,
    const char *reply, time_t at, time_t expires_at)
{
	int rc;

	if ((rc = sqlite3_bind_text(st, 1, addr, -1, SQLITE_STATIC)) != SQLITE_OK ||
	    (rc = sqlite3_bind_text(st, 2, reason, -1, SQLITE_STATIC)) != SQLITE_OK ||
	    (rc = sqlite3_bind_text(st, 3, reply, -1, SQLITE_STATIC)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 4, (sqlite3_int64)at)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 5, (sqlite3_int64)expires_at)) != SQLITE_OK)
		return rc;
	return SQLITE_OK;
}

/* store_apply_suppress - insert or refresh one suppressed address */
static int
store_apply_suppress(struct store *s, struct store_item *it)
{
	sqlite3_stmt *st = s->st[SQL_PUT_SUPPRESS];

	sqlite3_reset(st);
	STORE_TRY(s, store_bind_suppress(st, it->name, it->reason, it->reply,
	    it->at, it->expires_at), "bind");
	STORE_TRY(s, sqlite3_step(st), "save suppression");
	sqlite3_reset(st);
	return SQLITE_OK;
}

/* store_apply_soft - replace or delete one soft_failures row */
static int
store_apply_soft(struct store *s, struct store_item *it)
{
	sqlite3_stmt *st = s->st[it->count ? SQL_PUT_SOFT : SQL_DEL_SOFT];

	sqlite3_reset(st);
	STORE_TRY(s, sqlite3_bind_text(st, 1, it->name, -1, SQLITE_STATIC), "bind");
	if (it->count) {
		STORE_TRY(s, sqlite3_bind_int64(st, 2, (sqlite3_int64)it->count), "bind");
		STORE_TRY(s, sqlite3_bind_int64(st, 3, (sqlite3_int64)it->at), "bind");
		STORE_TRY(s, sqlite3_bind_int64(st, 4, (sqlite3_int64)it->expires_at), "bind");
		STORE_TRY(s, sqlite3_bind_text(st, 5, it->reply ? it->reply : "", -1,
		    SQLITE_STATIC), "bind");
	}
	STORE_TRY(s, sqlite3_step(st), "save soft failure");
	sqlite3_reset(st);
	return SQLITE_OK;
}

/* store_suppress_addr - the address as the table keys it: lower-cased,
 * NULL if it does not fit */
static char *
store_suppress_addr(const char *addr)
{
	if (strlen(addr) > ADDR_MAX)
		return NULL;
	return util_strlower(xstrdup(addr));
}

/* store_suppress_add - copy now, upsert with the next batch */
void
store_suppress_add(struct store *s, const char *addr, const char *reason,
    const char *reply, time_t expires_at)
{
	struct store_item *it;
	char *key = store_suppress_addr(addr);

	if (key == NULL)
		return;
	it = xcalloc(1, sizeof(*it));
	it->op = STORE_OP_SUPPRESS;
	it->name = key;
	it->reason = xstrdup(reason);
	it->reply = store_dup(reply);
	it->at = util_now();
	it->expires_at = expires_at;
	store_enqueue(s, it);
}

/* store_soft_put - copy now, replace or delete with the next batch */
void
store_soft_put(struct store *s, const char *addr, unsigned count,
    time_t first_seen, time_t last_seen, const char *reply)
{
	struct store_item *it;
	char *key = store_suppress_addr(addr);

	if (key == NULL)
		return;
	it = xcalloc(1, sizeof(*it));
	it->op = STORE_OP_SOFT;
	it->name = key;
	it->reply = count ? store_dup(reply) : NULL;
	it->count = count;
	it->at = first_seen;
	it->expires_at = last_seen;
	store_enqueue(s, it);
}

/* store_suppress_put - the same upsert, synchronously (outpostctl) */
int
store_suppress_put(struct store *s, const char *addr, const char *reason,
    const char *reply, time_t expires_at)
{
	sqlite3_stmt *st;
	char *key = store_suppress_addr(addr);
	int rc;

	if (key == NULL)
		return -1;
	if (sqlite3_prepare_v2(s->db, STORE_SQL_SUPPRESS, -1, &st, NULL) != SQLITE_OK) {
		log_err("store: suppress: %s", sqlite3_errmsg(s->db));
		free(key);
		return -1;
	}
	rc = store_bind_suppress(st, key, reason, reply, util_now(), expires_at);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		log_err("store: suppress: %s", sqlite3_errmsg(s->db));
	sqlite3_finalize(st);
	free(key);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* store_suppress_remove - delete one address, synchronously */
int
store_suppress_remove(struct store *s, const char *addr)
{
	sqlite3_stmt *st;
	char *key = store_suppress_addr(addr);
	int rc;

	if (key == NULL)
		return 0;
	if (sqlite3_prepare_v2(s->db, "DELETE FROM suppressions WHERE address = ?",
	    -1, &st, NULL) != SQLITE_OK) {
		log_err("store: unsuppress: %s", sqlite3_errmsg(s->db));
		free(key);
		return -1;
	}
	rc = sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		log_err("store: unsuppress: %s", sqlite3_errmsg(s->db));
	sqlite3_finalize(st);
	free(key);
	if (rc != SQLITE_DONE)
		return -1;
	return sqlite3_changes(s->db) > 0 ? 1 : 0;
}

/* store_load_suppressions - every unexpired row, synchronously; a
 * queue.db that never met a suppressing outpost has none */
int
store_load_suppressions(struct store *s, store_suppress_fn cb, void *arg)
{
	struct store_suppression e;
	sqlite3_stmt *st;
	int rc, has;

	if ((has = store_has_column(s->db, "suppressions", "address")) <= 0)
		return has;
	if (sqlite3_prepare_v2(s->db, "SELECT address, reason, reply, first_seen,"
	    " last_seen, expires_at FROM suppressions"
	    " WHERE expires_at = 0 OR expires_at > ? ORDER BY address",
	    -1, &st, NULL) != SQLITE_OK) {
		log_err("store: load suppressions: %s", sqlite3_errmsg(s->db));
		return -1;
	}
	rc = sqlite3_bind_int64(st, 1, (sqlite3_int64)util_now());
	while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		const unsigned char *reply = sqlite3_column_text(st, 2);
		const unsigned char *reason = sqlite3_column_text(st, 1);

		e.address = (const char *)sqlite3_column_text(st, 0);
		if (e.address == NULL) {
			rc = SQLITE_OK;
			continue;
		}
		e.reason = reason ? (const char *)reason : "";
		e.reply = reply ? (const char *)reply : "";
		e.first_seen = (time_t)sqlite3_column_int64(st, 3);
		e.last_seen = (time_t)sqlite3_column_int64(st, 4);
		e.expires_at = (time_t)sqlite3_column_int64(st, 5);
		cb(&e, arg);
		rc = SQLITE_OK;
	}
	if (rc != SQLITE_DONE)
		log_err("store: load suppressions: %s", sqlite3_errmsg(s->db));
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* store_load_soft_failures - every soft_failures row, synchronously */
int
store_load_soft_failures(struct store *s, store_suppress_fn cb, void *arg)
{
	struct store_suppression e;
	sqlite3_stmt *st;
	int rc, has;

	if ((has = store_has_column(s->db, "soft_failures", "address")) <= 0)
		return has;
	if (sqlite3_prepare_v2(s->db, "SELECT address, count, first_seen, last_seen,"
	    " reply FROM soft_failures ORDER BY address", -1, &st, NULL) != SQLITE_OK) {
		log_err("store: load soft failures: %s", sqlite3_errmsg(s->db));
		return -1;
	}
	memset(&e, 0, sizeof(e));
	e.reason = "soft-bounce";
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const unsigned char *reply = sqlite3_column_text(st, 4);

		e.address = (const char *)sqlite3_column_text(st, 0);
		if (e.address == NULL)
			continue;
		e.count = (unsigned)sqlite3_column_int64(st, 1);
		e.first_seen = (time_t)sqlite3_column_int64(st, 2);
		e.last_seen = (time_t)sqlite3_column_int64(st, 3);
		e.reply = reply ? (const char *)reply : "";
		cb(&e, arg);
	}
	if (rc != SQLITE_DONE)
		log_err("store: load soft failures: %s", sqlite3_errmsg(s->db));
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* store_lists_apply - one list item inside the thread's transaction */
int
store_lists_apply(struct store *s, struct store_item *it)
{
	switch (it->op) {
	case STORE_OP_SUPPRESS:
		return store_apply_suppress(s, it);
	case STORE_OP_SOFT:
		return store_apply_soft(s, it);
	default:
		log_err("store: unknown list operation %d", (int)it->op);
		return SQLITE_MISUSE;
	}
}
