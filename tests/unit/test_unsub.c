/*
 * test_unsub - the per-sender unsubscribe set: pairs found whatever the
 * case, scoped to their sender, idempotent, removable, bounded, grown
 * past the initial buckets; loaded from the store's table; and the
 * endpoint's check of a one-click POST body.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "loopq.h"
#include "store.h"
#include "tap.h"
#include "unsub.h"
#include "unsub_http.h"
#include "util.h"

static void
test_set(void)
{
	struct unsub *set = unsub_new(3000);
	const struct unsub_entry *e;
	char s[64], r[64];
	size_t found = 0;

	ok(unsub_find(set, "news@example.com", "bob@example.net") == NULL, "empty set");
	is_int(unsub_add(set, "News@Example.com", "Bob@Example.NET", "news", 1000), 1,
	    "added");
	e = unsub_find(set, "news@example.com", "bob@example.net");
	ok(e != NULL && e->at == 1000 && strcmp(e->list, "news") == 0,
	    "found lower-cased, with its date and list");
	ok(unsub_find(set, "NEWS@example.com", "BOB@example.net") != NULL, "any case");
	ok(unsub_find(set, "billing@example.com", "bob@example.net") == NULL,
	    "another sender may still write to the recipient");
	ok(unsub_find(set, "news@example.com", "carol@example.net") == NULL,
	    "another recipient is still written to");
	ok(unsub_find(set, "news@example.combob@example.net", "") == NULL,
	    "sender and recipient do not run together");
	is_int(unsub_add(set, "news@example.com", "bob@example.net", "other", 2000), 0,
	    "a second unsubscribe adds nothing");
	e = unsub_find(set, "news@example.com", "bob@example.net");
	ok(e != NULL && e->at == 1000 && strcmp(e->list, "news") == 0, "the first date kept");
	is_int(unsub_count(set), 1, "one pair");
	is_int(unsub_remove(set, "NEWS@example.com", "bob@example.net"), 1, "removed");
	is_int(unsub_remove(set, "news@example.com", "bob@example.net"), 0, "gone");
	ok(unsub_find(set, "news@example.com", "bob@example.net") == NULL, "not found any more");
	for (int i = 0; i < 2000; i++) {
		snprintf(s, sizeof(s), "list%d@example.com", i % 7);
		snprintf(r, sizeof(r), "user%d@example.net", i);
		unsub_add(set, s, r, "", i);
	}
	for (int i = 0; i < 2000; i++) {
		snprintf(s, sizeof(s), "LIST%d@example.com", i % 7);
		snprintf(r, sizeof(r), "user%d@example.net", i);
		e = unsub_find(set, s, r);
		found += e != NULL && e->at == i;
	}
	is_int(found, 2000, "2000 pairs found after the table grew");
	is_int(unsub_count(set), 2000, "2000 pairs counted");
	unsub_free(set);

	set = unsub_new(2);
	ok(unsub_add(set, "a@x", "b@y", "", 1) == 1 && unsub_add(set, "a@x", "c@y", "", 1) == 1,
	    "two fit");
	is_int(unsub_add(set, "a@x", "d@y", "", 1), -1, "a third is refused: bounded");
	{
		char big[ADDR_MAX + 10];

		memset(big, 'a', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		is_int(unsub_add(set, big, "b@y", "", 1), -1, "an over-long address is refused");
		ok(unsub_find(set, big, "b@y") == NULL, "and not found");
	}
	unsub_free(set);
}

static int store_done_err = -1;

static void
on_done(int err, void *arg)
{
	(void)arg;
	store_done_err = err;
}

static void
test_store(void)
{
	char dir[100], path[128], err[256];
	struct store_unsub_token tok[2] = {
		{ "", "News@Example.com", "Bob@Example.net", "news", 1900000000 },
		{ "", "news@example.com", "carol@example.net", "news", 1000 },
	};
	struct store_unsub_row row;
	struct event_base *base = event_base_new();
	struct loopq *q = loopq_new(base);
	struct store *st, *ro;
	struct unsub *set = unsub_new(100);
	const struct unsub_entry *e;

	if (tap_tmpdir(dir, sizeof(dir), "test_unsub") == NULL)
		return;
	snprintf(path, sizeof(path), "%s/queue.db", dir);
	st = store_open(path, 0, err, sizeof(err));
	ok(st != NULL && store_start(st, q) == 0, "store opens and starts");
	if (st == NULL)
		return;
	util_strlcpy(tok[0].token, "oe73gac5u5dlgtwru7emfhp324", sizeof(tok[0].token));
	util_strlcpy(tok[1].token, "aaaaaaaaaaaaaaaaaaaaaaaaaa", sizeof(tok[1].token));
	store_unsub_tokens_add(st, tok, 2, on_done, NULL);
	tok[0].sender = "changed after the call";
	store_unsub_add(st, "News@Example.com", "Bob@Example.net", "news", 5000, NULL, NULL);
	store_unsub_add(st, "news@example.com", "bob@example.net", "other", 6000, NULL, NULL);
	store_unsub_add(st, "billing@example.com", "bob@example.net", "", 7000, NULL, NULL);
	store_close(st);
	loopq_drain(q);
	is_int(store_done_err, STORE_OK, "the ledger rows are committed, done called");

	ro = store_open(path, 1, err, sizeof(err));
	ok(ro != NULL, "read-only connection");
	if (ro == NULL)
		return;
	is_int(store_unsub_token_find(ro, "oe73gac5u5dlgtwru7emfhp324", &row), 1, "token found");
	ok(strcmp(row.sender, "news@example.com") == 0 &&
	    strcmp(row.rcpt, "bob@example.net") == 0 && strcmp(row.list, "news") == 0 &&
	    row.expires == 1900000000, "its row: copied at the call, addresses lower-cased");
	is_int(store_unsub_token_find(ro, "bbbbbbbbbbbbbbbbbbbbbbbbbb", &row), 0, "unknown token");
	is_int(store_unsub_token_find(ro, "short", &row), 0, "a malformed token is not looked up");
	is_int(unsub_load(set, ro), 0, "the unsubscribes load");
	is_int(unsub_count(set), 2, "two senders' rows: the repeat added nothing");
	e = unsub_find(set, "news@example.com", "bob@example.net");
	ok(e != NULL && e->at == 5000 && strcmp(e->list, "news") == 0, "the first row kept");
	store_close(ro);

	st = store_open(path, 0, err, sizeof(err));
	is_int(store_unsub_remove(st, "NEWS@example.com", "bob@example.net"), 1,
	    "one sender's row removed");
	is_int(store_unsub_remove(st, "news@example.com", "bob@example.net"), 0, "gone");
	ok(store_start(st, q) == 0, "restarted");
	store_unsub_tokens_expire(st);
	store_close(st);
	loopq_drain(q);
	ro = store_open(path, 1, err, sizeof(err));
	is_int(store_unsub_token_find(ro, "aaaaaaaaaaaaaaaaaaaaaaaaaa", &row), 0,
	    "the expired ledger row is deleted");
	is_int(store_unsub_token_find(ro, "oe73gac5u5dlgtwru7emfhp324", &row), 1,
	    "the live one stays");
	unsub_free(set);
	set = unsub_new(100);
	unsub_load(set, ro);
	ok(unsub_count(set) == 1 && unsub_find(set, "billing@example.com", "bob@example.net"),
	    "the other sender's row remains");
	store_close(ro);
	st = store_open(path, 0, err, sizeof(err));
	is_int(store_unsub_remove(st, NULL, "bob@example.net"), 1, "every sender's row removed");
	store_close(st);
	unsub_free(set);
	loopq_free(q);
	event_base_free(base);
}

/* The POST body check (RFC 8058 3.1): urlencoded and multipart. */
static void
test_form(void)
{
	static const struct {
		const char *ctype, *body;
		int want;
	} t[] = {
		{ "application/x-www-form-urlencoded", "List-Unsubscribe=One-Click", 1 },
		{ NULL, "List-Unsubscribe=One-Click", 1 },
		{ "application/x-www-form-urlencoded; charset=utf-8",
		  "a=b&List-Unsubscribe=One-Click&c", 1 },
		{ "application/x-www-form-urlencoded", "List-Unsubscribe=One%2DClick", 1 },
		{ "application/x-www-form-urlencoded", "List%2DUnsubscribe=One-Click", 1 },
		{ "application/x-www-form-urlencoded", "List-Unsubscribe=One-Clicks", 0 },
		{ "application/x-www-form-urlencoded", "List-Unsubscribe=one-click", 0 },
		{ "application/x-www-form-urlencoded", "List-Unsubscribe=", 0 },
		{ "application/x-www-form-urlencoded", "List-Unsubscribe", 0 },
		{ "application/x-www-form-urlencoded", "List-Unsubscribe=One-Click%", 0 },
		{ "application/x-www-form-urlencoded", "List-Unsubscribe=One-Click%4", 0 },
		{ "application/x-www-form-urlencoded", "", 0 },
		{ "text/plain", "List-Unsubscribe=One-Click", 0 },
		{ "multipart/form-data; boundary=XyZ",
		  "--XyZ\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\n"
		  "One-Click\r\n--XyZ--\r\n", 1 },
		{ "multipart/form-data; boundary=\"a b\"",
		  "--a b\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\ny\r\n"
		  "--a b\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\n"
		  "One-Click\r\n--a b--\r\n", 1 },
		{ "multipart/form-data; boundary=XyZ",
		  "--XyZ\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\n"
		  "No\r\n--XyZ--\r\n", 0 },
		{ "multipart/form-data; boundary=XyZ",
		  "--XyZ\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\n"
		  "One-Click", 0 },     /* no closing delimiter */
		{ "multipart/form-data; boundary=XyZ",
		  "--XyZ\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"", 0 },
		{ "multipart/form-data", "List-Unsubscribe=One-Click", 0 },
		{ "multipart/form-data; boundary=", "--\r\n\r\n", 0 },
	};
	char big[UNSUB_HTTP_BODY_MAX + 64];

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		is_int(unsub_http_form_ok(t[i].ctype, t[i].body, strlen(t[i].body)), t[i].want,
		    "form %zu: %s", i, t[i].ctype ? t[i].ctype : "(no type)");
	memset(big, 'x', sizeof(big));
	memcpy(big, "List-Unsubscribe=One-Click&", 27);
	is_int(unsub_http_form_ok(NULL, big, sizeof(big)), 0, "a body over the bound");
	/* not NUL-terminated: the length is what counts */
	is_int(unsub_http_form_ok(NULL, "List-Unsubscribe=One-Clickzzz", 26), 1,
	    "the length bounds the body");
}

int
main(void)
{
	test_set();
	test_form();
	test_store();
	return done();
}
