/*
 * test_bulk - bulk detection: the signs message_prepare finds (Precedence,
 * List-*, List-Id), the reason table (forwarded mail by List-* only), who
 * adds the unsubscribe link, the volume table (per sender and body, case
 * of the sender, the rolling day, its cap), and bulk_copy's fields
 * (folding past 78 columns, Precedence only when missing, the token).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bulk.h"
#include "bulk_copy.h"
#include "message.h"
#include "tap.h"
#include "unsub_token.h"

/* prep - message_prepare on a header block + body */
static int
prep(const char *hdrs, struct message_info *info)
{
	struct message_params p = {
		.hostname = "relay.example.com", .helo = "client", .client_ip = "192.0.2.7",
		.protocol = "ESMTPSA", .queue_id = "0123456789AB", .now = 1900000000,
	};
	char msg[2048], err[256], *out = NULL;
	size_t outlen;
	int rc;

	snprintf(msg, sizeof(msg), "From: a@example.com\r\n%s\r\nBody\r\n", hdrs);
	rc = message_prepare(msg, strlen(msg), &p, info, &out, &outlen, err, sizeof(err));
	free(out);
	return rc;
}

static void
test_signs(void)
{
	struct message_info i;

	ok(prep("Subject: hi\r\n", &i) == 0, "plain message prepared");
	ok(i.precedence == MESSAGE_PREC_NONE && !i.has_list_header && !i.has_list_unsubscribe,
	    "no signs in a plain message");
	is_int(bulk_reason(&i, 0, 0, 0), BULK_NO, "transactional");
	prep("Precedence:  BULK \r\n", &i);
	is_int(i.precedence, MESSAGE_PREC_BULK, "Precedence: bulk, any case and blanks");
	is_int(bulk_reason(&i, 0, 0, 0), BULK_PRECEDENCE, "... is bulk");
	prep("Precedence: list\r\n", &i);
	is_int(bulk_reason(&i, 0, 0, 0), BULK_PRECEDENCE, "Precedence: list is bulk");
	prep("Precedence: junk\r\n", &i);
	is_int(i.precedence, MESSAGE_PREC_JUNK, "junk noted");
	is_int(bulk_reason(&i, 0, 0, 0), BULK_NO, "but junk alone is not bulk");
	prep("Precedence: first-class\r\n", &i);
	is_int(i.precedence, MESSAGE_PREC_OTHER, "another value: a Precedence is there");
	prep("List-Help: <mailto:help@example.com>\r\n", &i);
	ok(i.has_list_header && !i.has_list_unsubscribe, "List-Help is a List-* field");
	is_int(bulk_reason(&i, 0, 0, 0), BULK_LIST_HEADER, "... and bulk");
	prep("List-Id: News \r\n <news.example.com>\r\nList-Unsubscribe: <mailto:u@example.com>\r\n",
	    &i);
	is_str(i.list_id, "news.example.com", "List-Id's id, folded value");
	ok(i.has_list_unsubscribe, "the sender's own List-Unsubscribe");
	is_int(bulk_unsub_mode(&i, 0, 1, 1), BULK_UNSUB_SENDER, "sender's own link wins");
	prep("Listing: no\r\n", &i);
	ok(!i.has_list_header, "Listing: is not a List-* field");
	prep("Subject: x\r\n", &i);
	is_int(bulk_reason(&i, 0, 1, 0), BULK_ACCOUNT, "account option");
	is_int(bulk_reason(&i, 0, 0, 1), BULK_DOMAIN, "[domain] bulk = yes");
	is_int(bulk_reason(&i, 1, 1, 1), BULK_NO, "forwarded: configuration does not count");
	prep("List-Id: <team.example.org>\r\n", &i);
	is_int(bulk_reason(&i, 1, 0, 0), BULK_LIST_HEADER, "forwarded list mail is bulk");
	is_int(bulk_unsub_mode(&i, 1, 1, 1), BULK_UNSUB_NONE, "forwarded: never split");
	is_int(bulk_unsub_mode(&i, 0, 1, 1), BULK_UNSUB_ONE_CLICK, "ours with unsubscribe = yes");
	is_int(bulk_unsub_mode(&i, 0, 1, 0), BULK_UNSUB_NONE, "not without the key");
	is_int(bulk_unsub_mode(&i, 0, 0, 1), BULK_UNSUB_NONE, "not without unsubscribe = yes");
	is_str(bulk_reason_name(BULK_LIST_HEADER), "list-header", "reason names");
	is_str(bulk_unsub_name(BULK_UNSUB_SENDER), "sender's own", "unsubscribe names");
}

static void
test_volume(void)
{
	struct bulk *b = bulk_new(3);
	unsigned char h1[BULK_HASH_LEN], h2[BULK_HASH_LEN];
	time_t t = 1900000000;
	const char *last = NULL;

	bulk_body_hash("one\r\n", 5, h1);
	bulk_body_hash("two\r\n", 5, h2);
	ok(memcmp(h1, h2, BULK_HASH_LEN) != 0, "different bodies, different hashes");
	is_int(bulk_volume_add(b, "a@example.com", h1, 3, t), 3, "first 3");
	is_int(bulk_volume_add(b, "A@EXAMPLE.COM", h1, 3, t + 10), 6, "the same sender in"
	    " another case adds up");
	is_int(bulk_volume_add(b, "a@example.com", h2, 2, t + 20), 2, "another body apart");
	is_int(bulk_volume_add(b, "b@example.com", h1, 1, t + 30), 1, "another sender apart");
	is_int(bulk_volume_add(b, "a@example.com", h1, 1, t + 23 * 3600), 7,
	    "23 hours later the first still count");
	is_int(bulk_volume_add(b, "a@example.com", h1, 1, t + 24 * 3600 + 60), 2,
	    "after 24 hours only the last day's count (the 23 h one and this)");
	is_int(bulk_volume_size(b), 1, "pairs idle for a day are gone");
	bulk_volume_add(b, "c@example.com", h1, 1, t + 25 * 3600);
	bulk_volume_add(b, "d@example.com", h1, 1, t + 25 * 3600 + 1);
	bulk_volume_add(b, "e@example.com", h1, 1, t + 25 * 3600 + 2);
	is_int(bulk_volume_size(b), 3, "capped at 3 pairs");
	is_int(bulk_volume_add(b, "a@example.com", h1, 1, t + 25 * 3600 + 3), 1,
	    "the oldest pair went first");
	is_int(bulk_unsubless(b, &last), 0, "no bulk without unsubscribe yet");
	bulk_note_unsubless(b, "x@example.com");
	bulk_note_unsubless(b, "y@example.com");
	ok(bulk_unsubless(b, &last) == 2 && strcmp(last, "y@example.com") == 0,
	    "counted, with the last sender");
	bulk_free(b);
}

static void
test_copy(void)
{
	struct unsub_key k;
	struct bulk_copy_params p = {
		.key = &k, .url = "https://l.io/", .domain = "e.io", .list = "example.com", .sender = "news@example.com", .expires = 1900000000,
		.add_precedence = 1,
	};
	struct bulk_copy c;
	char hdr[BULK_COPY_HDR_MAX], err[256], want[512], longurl[200];
	const char *msg = "Received: x\r\nFrom: news@example.com\r\n\r\nHi\r\n";

	err[0] = '\0';

	memset(k.k, 5, sizeof(k.k));
	ok(bulk_copy_headers(&p, "aaaa", hdr, sizeof(hdr)) > 0, "fields made");
	is_str(hdr, "List-Unsubscribe: <https://l.io/u/aaaa>, <mailto:unsubscribe+aaaa@e.io>\r\n"
	    "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\nPrecedence: bulk\r\n",
	    "short: one line, the URL's trailing slash dropped, Precedence added");
	p.add_precedence = 0;
	memset(longurl, 0, sizeof(longurl));
	snprintf(longurl, sizeof(longurl), "https://%.60s.example.com",
	    "lists-lists-lists-lists-lists-lists-lists-lists-lists-lists");
	p.url = longurl;
	ok(bulk_copy_headers(&p, "bbbb", hdr, sizeof(hdr)) > 0, "long URL");
	snprintf(want, sizeof(want), "List-Unsubscribe: <%s/u/bbbb>,\r\n "
	    "<mailto:unsubscribe+bbbb@e.io>\r\n"
	    "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n", longurl);
	is_str(hdr, want, "folded after the comma past 78 columns; no Precedence when present");
	is_int(bulk_copy_headers(&p, "bbbb", hdr, 40), 0, "too small a buffer: 0");
	p.url = "https://lists.example.com";
	ok(bulk_copy_make(&p, msg, strlen(msg), "bob@example.net", &c, err, sizeof(err)) == 0,
	    "an unsigned copy: %s", err);
	is_int(unsub_token_check(&k, c.token, "news@example.com", "bob@example.net",
	    "example.com", 1800000000), UNSUB_OK, "its token is the recipient's");
	snprintf(want, sizeof(want), "List-Unsubscribe: <https://lists.example.com/u/%s>,",
	    c.token);
	ok(strncmp(c.data, want, strlen(want)) == 0, "the fields on top");
	ok(c.len > strlen(msg) && strcmp(c.data + c.len - strlen(msg), msg) == 0,
	    "the message below them unchanged");
	free(c.data);
}

int
main(void)
{
	test_signs();
	test_volume();
	test_copy();
	return done();
}
