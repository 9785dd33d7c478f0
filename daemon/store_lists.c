/*
 * store_lists - the address lists kept in queue.db beside the queue: the
 * suppression list (suppressions) and the soft failures counted toward
 * it (soft_failures), and one-click unsubscribe's token ledger
 * (unsub_tokens) and unsubscribes (issue 10). See store.h for the API.
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

/* ---- one-click unsubscribe (issue 10) ---- */

/* store_unsub_key - an address as the unsubscribe tables key it:
 * lower-cased into buf; -1 if it does not fit */
static int
store_unsub_key(const char *addr, char *buf, size_t len)
{
	if (addr == NULL || strlen(addr) >= len)
		return -1;
	util_strlcpy(buf, addr, len);
	util_strlower(buf);
	return 0;
}

/* store_unsub_tokens_add - copy the rows into one allocation now, insert
 * them with the next batch */
void
store_unsub_tokens_add(struct store *s, const struct store_unsub_token *rows, size_t n,
    void (*done)(int err, void *arg), void *arg)
{
	struct store_item *it = xcalloc(1, sizeof(*it));
	struct store_unsub_token *copy;
	size_t need = 0, off;
	char *p;

	for (size_t i = 0; i < n; i++)
		need += strlen(rows[i].sender) + strlen(rows[i].rcpt) +
		    strlen(rows[i].list) + 3;
	copy = xcalloc(1, n * sizeof(*copy) + need + 1);
	p = (char *)(copy + n);
	off = 0;
	for (size_t i = 0; i < n; i++) {
		const char *f[3] = { rows[i].sender, rows[i].rcpt, rows[i].list };
		const char **to[3] = { &copy[i].sender, &copy[i].rcpt, &copy[i].list };

		memcpy(copy[i].token, rows[i].token, sizeof(copy[i].token));
		copy[i].token[UNSUB_TOKEN_LEN] = '\0';
		copy[i].expires = rows[i].expires;
		for (int k = 0; k < 3; k++) {
			size_t l = strlen(f[k]) + 1;

			memcpy(p + off, f[k], l);
			*to[k] = p + off;
			off += l;
		}
		/* The addresses as the ledger keeps them: lower-cased. */
		util_strlower(p + (copy[i].sender - p));
		util_strlower(p + (copy[i].rcpt - p));
	}
	it->op = STORE_OP_UNSUB_TOKENS;
	it->blob = copy;
	it->bloblen = n;
	it->at = util_now();
	it->done = done;
	it->arg = arg;
	store_enqueue(s, it);
}

/* store_unsub_tokens_expire - delete the expired ledger rows, next batch */
void
store_unsub_tokens_expire(struct store *s)
{
	struct store_item *it = xcalloc(1, sizeof(*it));

	it->op = STORE_OP_UNSUB_EXPIRE;
	it->at = util_now();
	store_enqueue(s, it);
}

/* store_unsub_add - copy now, insert with the next batch */
void
store_unsub_add(struct store *s, const char *sender, const char *rcpt,
    const char *list, time_t at, store_done_fn done, void *arg)
{
	struct store_item *it = xcalloc(1, sizeof(*it));

	it->op = STORE_OP_UNSUB;
	it->name = util_strlower(xstrdup(rcpt));
	it->reason = util_strlower(xstrdup(sender));
	it->reply = xstrdup(list ? list : "");
	it->at = at;
	it->done = done;
	it->arg = arg;
	store_enqueue(s, it);
}

/* store_lists_exec - prepare, bind text and integer parameters in
 * order (texts first), step once; an SQLite result code */
static int
store_lists_exec(struct store *s, const char *sql, const char *const *text, int ntext,
    const sqlite3_int64 *num, int nnum)
{
	sqlite3_stmt *st;
	int rc;

	if ((rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL)) != SQLITE_OK) {
		log_err("store: prepare: %s", sqlite3_errmsg(s->db));
		return rc;
	}
	for (int i = 0; i < ntext && rc == SQLITE_OK; i++)
		rc = sqlite3_bind_text(st, i + 1, text[i], -1, SQLITE_STATIC);
	for (int i = 0; i < nnum && rc == SQLITE_OK; i++)
		rc = sqlite3_bind_int64(st, ntext + i + 1, num[i]);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		log_err("store: unsubscribe: %s", sqlite3_errmsg(s->db));
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* store_apply_unsub_tokens - insert one batch of ledger rows */
static int
store_apply_unsub_tokens(struct store *s, struct store_item *it)
{
	const struct store_unsub_token *t = it->blob;
	int rc = SQLITE_OK;

	for (size_t i = 0; i < it->bloblen && rc == SQLITE_OK; i++) {
		const char *text[] = { t[i].token, t[i].sender, t[i].rcpt, t[i].list };
		sqlite3_int64 num[] = { (sqlite3_int64)t[i].expires, (sqlite3_int64)it->at };

		rc = store_lists_exec(s, "INSERT OR IGNORE INTO unsub_tokens(token, sender,"
		    " rcpt, list, expires, created) VALUES (?, ?, ?, ?, ?, ?)",
		    text, 4, num, 2);
	}
	return rc;
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
	case STORE_OP_UNSUB_TOKENS:
		return store_apply_unsub_tokens(s, it);
	case STORE_OP_UNSUB_EXPIRE: {
		sqlite3_int64 now = (sqlite3_int64)it->at;

		return store_lists_exec(s, "DELETE FROM unsub_tokens WHERE expires < ?",
		    NULL, 0, &now, 1);
	}
	case STORE_OP_UNSUB: {
		const char *text[] = { it->reason, it->name, it->reply };
		sqlite3_int64 at = (sqlite3_int64)it->at;

		return store_lists_exec(s, "INSERT OR IGNORE INTO unsubscribes(sender,"
		    " rcpt, list, at) VALUES (?, ?, ?, ?)", text, 3, &at, 1);
	}
	default:
		log_err("store: unknown list operation %d", (int)it->op);
		return SQLITE_MISUSE;
	}
}

/* store_unsub_col - a text column into buf (truncated: the writers
 * never store longer ones) */
static void
store_unsub_col(sqlite3_stmt *st, int col, char *buf, size_t len)
{
	const unsigned char *v = sqlite3_column_text(st, col);

	util_strlcpy(buf, v ? (const char *)v : "", len);
}

/* store_unsub_token_find - the ledger row of token, synchronously */
int
store_unsub_token_find(struct store *ro, const char *token, struct store_unsub_row *out)
{
	sqlite3_stmt *st;
	int rc, has;

	if (strlen(token) != UNSUB_TOKEN_LEN)
		return 0;
	if ((has = store_has_column(ro->db, "unsub_tokens", "token")) <= 0)
		return has;
	if (sqlite3_prepare_v2(ro->db, "SELECT sender, rcpt, list, expires FROM unsub_tokens"
	    " WHERE token = ?", -1, &st, NULL) != SQLITE_OK) {
		log_err("store: unsubscribe token: %s", sqlite3_errmsg(ro->db));
		return -1;
	}
	rc = sqlite3_bind_text(st, 1, token, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		memset(out, 0, sizeof(*out));
		store_unsub_col(st, 0, out->sender, sizeof(out->sender));
		store_unsub_col(st, 1, out->rcpt, sizeof(out->rcpt));
		store_unsub_col(st, 2, out->list, sizeof(out->list));
		out->expires = (time_t)sqlite3_column_int64(st, 3);
	} else if (rc != SQLITE_DONE) {
		log_err("store: unsubscribe token: %s", sqlite3_errmsg(ro->db));
	}
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

/* store_unsub_remove - delete sender's row for rcpt (every sender's if
 * sender is NULL), synchronously */
int
store_unsub_remove(struct store *s, const char *sender, const char *rcpt)
{
	char lrcpt[UNSUB_FIELD_MAX], lsender[UNSUB_FIELD_MAX];
	const char *text[] = { lrcpt, lsender };
	int has;

	if (store_unsub_key(rcpt, lrcpt, sizeof(lrcpt)) < 0 ||
	    (sender != NULL && store_unsub_key(sender, lsender, sizeof(lsender)) < 0))
		return 0;
	if ((has = store_has_column(s->db, "unsubscribes", "rcpt")) <= 0)
		return has;
	if (store_lists_exec(s, sender ? "DELETE FROM unsubscribes WHERE rcpt = ?"
	    " AND sender = ?" : "DELETE FROM unsubscribes WHERE rcpt = ?",
	    text, sender ? 2 : 1, NULL, 0) != SQLITE_OK)
		return -1;
	return sqlite3_changes(s->db);
}

/* store_load_unsubs - every unsubscribes row, synchronously; a queue.db
 * from before issue 10 opened read-only has none */
int
store_load_unsubs(struct store *s, store_unsub_fn cb, void *arg)
{
	struct store_unsub_row r;
	sqlite3_stmt *st;
	int rc, has;

	if ((has = store_has_column(s->db, "unsubscribes", "rcpt")) <= 0)
		return has;
	if (sqlite3_prepare_v2(s->db, "SELECT sender, rcpt, list, at FROM unsubscribes"
	    " ORDER BY rcpt, sender", -1, &st, NULL) != SQLITE_OK) {
		log_err("store: load unsubscribes: %s", sqlite3_errmsg(s->db));
		return -1;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		memset(&r, 0, sizeof(r));
		store_unsub_col(st, 0, r.sender, sizeof(r.sender));
		store_unsub_col(st, 1, r.rcpt, sizeof(r.rcpt));
		store_unsub_col(st, 2, r.list, sizeof(r.list));
		r.at = (time_t)sqlite3_column_int64(st, 3);
		cb(&r, arg);
	}
	if (rc != SQLITE_DONE)
		log_err("store: load unsubscribes: %s", sqlite3_errmsg(s->db));
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : -1;
}
