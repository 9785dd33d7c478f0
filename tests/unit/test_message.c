/*
 * test_message - table-driven tests of daemon/message.c: the mailbox-list
 * parser (valid, invalid and hostile values) and message_prepare's
 * checks, in their documented order, and fixes (Received: first, Bcc:
 * removed, Date:/Message-ID: added, body byte-exact).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "message.h"
#include "tap.h"

#define NOW 1700000000  /* Tue, 14 Nov 2023 22:13:20 +0000 */
#define DATE "Tue, 14 Nov 2023 22:13:20 +0000"
#define RCVD_PLAIN "Received: from client.example (192.0.2.7)\r\n" \
	"\tby relay.example.com (outpost) with ESMTPSA id 3F2A1B09C4D7\r\n" \
	"\tfor <b@y.example>; " DATE "\r\n"

static struct message_params
params(void)
{
	struct message_params p = {
		.hostname = "relay.example.com",
		.helo = "client.example",
		.client_ip = "192.0.2.7",
		.protocol = "ESMTPSA",
		.tls = NULL,
		.queue_id = "3F2A1B09C4D7",
		.rcpt_for = "b@y.example",
		.now = NOW,
		.max_header_size = 65536,
	};
	return p;
}

/* prep - run message_prepare on a C string; *out is NUL-terminated for
 * convenience (the message itself may hold NULs: see test_body) */
static int
prep(const char *in, const struct message_params *p, struct message_info *info,
    char **out, size_t *outlen, char *err, size_t errlen)
{
	int rc;

	err[0] = '\0';
	rc = message_prepare(in, strlen(in), p, info, out, outlen, err, errlen);
	if (rc == 0) {
		*out = realloc(*out, *outlen + 1);
		(*out)[*outlen] = '\0';
	}
	return rc;
}

static void
test_mailbox(void)
{
	static const struct {
		const char *value;
		int count;
		const char *addr;
	} t[] = {
		{ "a@b.example", 1, "a@b.example" },
		{ " a@b.example\r\n", 1, "a@b.example" },
		{ "Alice <a@b.example>", 1, "a@b.example" },
		{ "<a@b.example>", 1, "a@b.example" },
		{ "\"Alice, Q\" <a@b.example>", 1, "a@b.example" },
		{ "\"Al\\\"ice <x@y>\" <a@b.example>", 1, "a@b.example" },
		{ "a@b.example (Alice)", 1, "a@b.example" },
		{ "(c) a@b.example (nested (comment) here)", 1, "a@b.example" },
		{ "(a \\) b) a@b.example", 1, "a@b.example" },
		{ "Alice <a@b.example> (work)", 1, "a@b.example" },
		{ "Alice\r\n <a@b.example>", 1, "a@b.example" },
		{ "Alice <a@b.example>, bob@c.example", 2, "a@b.example" },
		{ "a@b.example,c@d.example,e@f.example", 3, "a@b.example" },
		{ "undisclosed-recipients:;", 0, "" },
		{ "undisclosed-recipients: ;", 0, "" },
		{ "Team: a@b.example, Carl <c@d.example>;", 2, "a@b.example" },
		{ "Team: a@b.example;, x@y.example", 2, "a@b.example" },
		{ "Empty:;, x@y.example", 1, "x@y.example" },
		{ "=?UTF-8?B?w6lsaXNl?= <a@b.example>", 1, "a@b.example" },
		{ "John Q. Public <jqp@x.example>", 1, "jqp@x.example" },
		{ "J\xc3\xb6rg <j@x.example>", 1, "j@x.example" },
		{ "<@r.example:a@b.example>", 1, "a@b.example" },
		{ "<@r.example,@s.example:a@b.example>", 1, "a@b.example" },
		{ "\"odd@local\"@b.example", 1, "\"odd@local\"@b.example" },
		{ "Odd <\"x y\"@b.example>", 1, "\"x y\"@b.example" },
		{ "a@[192.0.2.1]", 1, "a@[192.0.2.1]" },
		{ "A <a@[IPv6:2001:db8::1]>", 1, "a@[IPv6:2001:db8::1]" },
		{ "a . b @ c . example", 1, "a.b@c.example" },
		{ "first.last@Example.COM", 1, "first.last@Example.COM" },
	};
	static const char *const bad[] = {
		"", "   ", "\r\n", "(only a comment)", "Alice", "Alice Smith", "<a@b.example",
		"a@b.example>", "\"Alice <a@b.example>", "(Alice <a@b.example>",
		"Alice) <a@b.example>", "a@b.example,, c@d.example", "a@b.example,",
		",a@b.example", "Alice a@b.example", "a@b@c.example",
		"<a@b.example> <c@d.example>", "Team: a@b.example", "a: b: c@d.example;;",
		"<>", "a@b.example;", "x@y.example <a@b.example>", "a\\b@c.example",
		"[192.0.2.1]@x.example", "a@b..example", "a@", "@b.example", ".a@b.example",
		"a.@b.example", "a..b@b.example", "a@.b", "<a@b.example>>", "a@b.example <",
		"Alice <a@b.example", "Alice <<a@b.example>>", "<a.@b.example>",
		"<@r.example a@b.example>", "<@r.example:>", "a@[1.2.3.4", "a@[1[2]",
		"\"unterminated@b.example", "a@b.example (unclosed", "a@b.example\\",
		"Team: a@b.example,;", "a@b.example, Team: ;;", "a@b.example\x01",
	};

	for (size_t i = 0; i < ARRAY_LEN(t); i++) {
		char addr[ADDR_MAX + 1] = "junk";
		int n = message_parse_mailbox(t[i].value, strlen(t[i].value), addr, sizeof(addr));

		is_int(n, t[i].count, "mailbox #%zu count", i);
		is_str(addr, t[i].addr, "mailbox #%zu addr", i);
	}
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		char addr[ADDR_MAX + 1];
		is_int(message_parse_mailbox(bad[i], strlen(bad[i]), addr, sizeof(addr)), -1,
		    "mailbox bad #%zu unparseable", i);
	}

	/* len is honoured: nothing after it is read. */
	{
		char addr[64];
		const char *v = "a@b.example>junk";
		is_int(message_parse_mailbox(v, 11, addr, sizeof(addr)), 1, "len bounds the value");
		is_str(addr, "a@b.example", "addr within len");
		is_int(message_parse_mailbox("\"abc\"@x", 3, addr, sizeof(addr)), -1,
		    "quote cut by len is unbalanced");
	}
	/* The caller's buffer is never overrun. */
	{
		char small[6];
		memset(small, 'Z', sizeof(small));
		is_int(message_parse_mailbox("a@b.example", 11, small, sizeof(small)), -1,
		    "address too long for buffer");
		is_int(small[sizeof(small) - 1] == 'Z' || small[0] == '\0', 1, "small buffer intact");
		is_int(message_parse_mailbox("a@b", 3, small, 4), 1, "address fits exactly");
		is_str(small, "a@b", "exact-fit address");
	}
	/* Hostile values: deep nesting, huge lists; linear and bounded. */
	{
		size_t n = 1 << 20;
		char *v = malloc(2 * n + 32), addr[ADDR_MAX + 1];

		memset(v, '(', n);
		is_int(message_parse_mailbox(v, n, addr, sizeof(addr)), -1, "1M unbalanced '('");
		memset(v + n, ')', n);
		memcpy(v + 2 * n, " a@b.example", 12);
		is_int(message_parse_mailbox(v, 2 * n + 12, addr, sizeof(addr)), 1,
		    "1M nested comments then a mailbox");
		memset(v, 'a', n);
		is_int(message_parse_mailbox(v, n, addr, sizeof(addr)), -1, "1M-octet atom, no '@'");
		memset(v, 'a', n);
		memcpy(v + n, "@b.example", 10);
		is_int(message_parse_mailbox(v, n + 10, addr, sizeof(addr)), -1,
		    "1M-octet local part does not fit");
		for (size_t i = 0; i < 100000; i++)
			memcpy(v + 4 * i, "a@b,", 4);
		is_int(message_parse_mailbox(v, 4 * 100000 - 1, addr, sizeof(addr)), 100000,
		    "100000 mailboxes counted");
		memset(v, '"', n);
		is_int(message_parse_mailbox(v, n, addr, sizeof(addr)), -1, "1M quotes");
		memset(v, '<', n);
		is_int(message_parse_mailbox(v, n, addr, sizeof(addr)), -1, "1M '<'");
		free(v);
	}
}

static void
test_basic(void)
{
	struct message_params p = params();
	struct message_info info;
	char err[256], *out = NULL;
	size_t outlen;
	const char *hdr = "From: Alice <alice@Example.COM>\r\n"
	    "To: b@y.example\r\n"
	    "Subject: hi\r\n"
	    "Date: Mon, 13 Nov 2023 10:00:00 +0100\r\n"
	    "Message-ID: <m1@example.com>\r\n";
	const char *body = "\r\nbody line\r\n";
	char in[1024], want[2048];

	snprintf(in, sizeof(in), "%s%s", hdr, body);
	is_int(prep(in, &p, &info, &out, &outlen, err, sizeof(err)), 0, "basic message accepted");
	snprintf(want, sizeof(want), "%s%s%s", RCVD_PLAIN, hdr, body);
	is_str(out, want, "Received: first, headers and body unchanged");
	is_int((long long)outlen, (long long)strlen(want), "outlen");
	is_str(info.from_addr, "alice@example.com", "from_addr, domain lower-cased");
	is_str(info.from_domain, "example.com", "from_domain");
	is_str(info.sender_addr, "", "no Sender:");
	is_str(info.message_id, "<m1@example.com>", "message_id as found");
	ok(!info.added_date && !info.added_message_id && !info.removed_bcc, "nothing added");
	is_int((long long)info.header_len, (long long)(strlen(RCVD_PLAIN) + strlen(hdr) + 2),
	    "header_len includes the blank line");
	free(out);
}

static void
test_fixes(void)
{
	struct message_params p = params();
	struct message_info info;
	char err[256], *out = NULL, want[2048];
	size_t outlen;

	/* Date: and Message-ID: added at the end of the header section. */
	is_int(prep("From: a@b.example\r\nSubject: s\r\n\r\nx\r\n", &p, &info, &out, &outlen, err,
	    sizeof(err)), 0, "missing Date/Message-ID accepted");
	snprintf(want, sizeof(want), "%sFrom: a@b.example\r\nSubject: s\r\nDate: %s\r\n"
	    "Message-ID: <3F2A1B09C4D7.%d@relay.example.com>\r\n\r\nx\r\n", RCVD_PLAIN, DATE, NOW);
	is_str(out, want, "Date and Message-ID appended before the blank line");
	ok(info.added_date && info.added_message_id, "added flags");
	is_str(info.message_id, "<3F2A1B09C4D7.1700000000@relay.example.com>", "added message_id");
	is_int((long long)info.header_len, (long long)(outlen - 3), "header_len with added fields");
	free(out);

	/* Bcc removed, folded continuation included; others kept in order. */
	is_int(prep("To: t@x.example\r\nBcc: hidden@x.example,\r\n\tsecret@x.example\r\n"
	    "From: a@b.example\r\nbcc:\r\nDate: " DATE "\r\nMessage-ID: <i@d>\r\n\r\n"
	    "Bcc: stays@body\r\n", &p, &info, &out, &outlen, err, sizeof(err)), -1,
	    "two Bcc: is a duplicate");
	is_str(err, "550 5.6.0 Duplicate Bcc: header (RFC 5322 3.6 allows one)", "duplicate Bcc reply");
	is_int(prep("To: t@x.example\r\nBcc: hidden@x.example,\r\n\tsecret@x.example\r\n"
	    "From: a@b.example\r\nDate: " DATE "\r\nMessage-ID: <i@d>\r\n\r\n"
	    "Bcc: stays@body\r\n", &p, &info, &out, &outlen, err, sizeof(err)), 0,
	    "folded Bcc accepted");
	snprintf(want, sizeof(want), "%sTo: t@x.example\r\nFrom: a@b.example\r\nDate: %s\r\n"
	    "Message-ID: <i@d>\r\n\r\nBcc: stays@body\r\n", RCVD_PLAIN, DATE);
	is_str(out, want, "Bcc and its continuation removed, body Bcc kept");
	ok(strstr(out, "secret") == NULL && strstr(out, "hidden") == NULL, "no Bcc address leaks");
	is_int(info.removed_bcc, 1, "removed_bcc");
	free(out);

	/* Empty Bcc: at the very end of the header section. */
	is_int(prep("From: a@b.example\r\nBCC:\r\n\r\n", &p, &info, &out, &outlen, err,
	    sizeof(err)), 0, "empty BCC accepted");
	ok(strstr(out, "BCC") == NULL && info.removed_bcc, "empty BCC removed");
	free(out);

	/* Received: with TLS and without a single recipient. */
	p.tls = "TLSv1.3 TLS_AES_256_GCM_SHA384";
	p.rcpt_for = NULL;
	p.protocol = "ESMTPS";
	is_int(prep("From: a@b.example\r\nDate: x\r\nMessage-ID: <i@d>\r\n\r\n", &p, &info, &out,
	    &outlen, err, sizeof(err)), 0, "TLS message accepted");
	is_str(out, "Received: from client.example (192.0.2.7)\r\n"
	    "\tby relay.example.com (outpost) with ESMTPS id 3F2A1B09C4D7\r\n"
	    "\t(using TLSv1.3 TLS_AES_256_GCM_SHA384); " DATE "\r\n"
	    "From: a@b.example\r\nDate: x\r\nMessage-ID: <i@d>\r\n\r\n", "Received with TLS, no for");
	free(out);
	p.tls = NULL;
	is_int(prep("From: a@b.example\r\nDate: x\r\nMessage-ID: <i@d>\r\n\r\n", &p, &info, &out,
	    &outlen, err, sizeof(err)), 0, "plain message accepted");
	{
		const char *w = "Received: from client.example (192.0.2.7)\r\n"
		    "\tby relay.example.com (outpost) with ESMTPS id 3F2A1B09C4D7;\r\n"
		    "\t" DATE "\r\nFrom: ";
		if (!ok(strncmp(out, w, strlen(w)) == 0,
		    "Received without TLS nor for: date folded after the by line"))
			printf("#   got \"%s\"\n", out);
	}
	ok(strstr(out, "using") == NULL, "no (using) without TLS");
	free(out);
	p = params();

	/* Sender: and a folded Message-ID. */
	is_int(prep("From: a@b.example\r\nSender: Sec <sec@B.Example>\r\nDate: x\r\n"
	    "Message-ID:\r\n <abc@def.example>\r\n\r\n", &p, &info, &out, &outlen, err,
	    sizeof(err)), 0, "Sender and folded Message-ID");
	is_str(info.sender_addr, "sec@B.Example", "sender_addr");
	is_str(info.message_id, "<abc@def.example>", "folded Message-ID unfolded");
	ok(!info.added_message_id, "Message-ID not added");
	free(out);
}

/* lines_ok - every line ends in CRLF, none is longer than max, and no
 * byte is a control other than CR LF HTAB */
static int
lines_ok(const char *s, size_t n, size_t max)
{
	size_t col = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '\r') {
			if (i + 1 >= n || s[i + 1] != '\n')
				return 0;
			i++;
			col = 0;
			continue;
		}
		if (c == '\n' || (c < 0x20 && c != '\t') || c == 0x7f)
			return 0;
		if (++col > max)
			return 0;
	}
	return col == 0;
}

static void
test_received_hostile(void)
{
	struct message_params p = params();
	struct message_info info;
	char err[256], *out = NULL, helo[600], *end;
	size_t outlen;

	/* S7: CR/LF and controls in the client's text never make a line. */
	p.helo = "evil\r\nX-Injected: 1\x01";
	p.rcpt_for = "b@y\r\nX-Rcpt: 2";
	p.tls = "TLS\nX-Tls: 3";
	is_int(prep("From: a@b.example\r\n\r\n", &p, &info, &out, &outlen, err, sizeof(err)), 0,
	    "hostile Received items accepted");
	end = strstr(out, "From: a@b.example\r\n");
	ok(end != NULL, "original headers follow");
	ok(strstr(out, "\nX-Injected") == NULL && strstr(out, "\nX-Rcpt") == NULL &&
	    strstr(out, "\nX-Tls") == NULL, "no injected header line");
	ok(strstr(out, "from evil??X-Injected: 1?") != NULL, "controls replaced by '?'");
	ok(end != NULL && lines_ok(out, (size_t)(end - out), 998), "Received lines clean");
	free(out);

	/* Long items fold; no line over 998, lines over 78 only when one
	 * item alone is that long. */
	p = params();
	memset(helo, 'h', 500);
	helo[500] = '\0';
	p.helo = helo;
	p.tls = "TLSv1.3 TLS_AES_256_GCM_SHA384";
	is_int(prep("From: a@b.example\r\n\r\n", &p, &info, &out, &outlen, err, sizeof(err)), 0,
	    "long helo accepted");
	end = strstr(out, "From: a@b.example\r\n");
	ok(end != NULL && lines_ok(out, (size_t)(end - out), 998), "no Received line over 998");
	ok(strstr(out, "\r\n\t(192.0.2.7)\r\n") != NULL, "client ip folded onto its own line");
	ok(strstr(out, "hhhh") != NULL && strstr(out, helo) == NULL, "helo cut to a bounded length");
	free(out);

	p = params();
	p.hostname = "a-very-long-host-name.with.many.labels.relay.example.com";
	p.protocol = "ESMTPSA";
	is_int(prep("From: a@b.example\r\n\r\n", &p, &info, &out, &outlen, err, sizeof(err)), 0,
	    "long hostname accepted");
	end = strstr(out, "From: a@b.example\r\n");
	ok(end != NULL && lines_ok(out, (size_t)(end - out), 78), "Received folded within 78");
	free(out);
}

static void
test_body(void)
{
	struct message_params p = params();
	struct message_info info;
	char err[256], *out = NULL;
	size_t outlen;
	static const char in[] = "From: a@b.example\r\nDate: x\r\nMessage-ID: <i@d>\r\n\r\n"
	    "From: not-a-header@x\r\n.\r\n..\r\n\r\n\r\nMAIL FROM:<x@y>\r\n\xff\xfe\0nul\r\n"
	    " leading space\r\nno final crlf";
	size_t inlen = sizeof(in) - 1;
	const char *body = strstr(in, "\r\n\r\n") + 2;
	size_t blen = inlen - (size_t)(body - in);

	is_int(message_prepare(in, inlen, &p, &info, &out, &outlen, err, sizeof(err)), 0,
	    "body with dots, NUL and 8-bit accepted");
	ok(outlen >= blen && memcmp(out + outlen - blen, body, blen) == 0, "body byte-exact");
	is_int((long long)outlen, (long long)(strlen(RCVD_PLAIN) + inlen), "nothing else added");
	is_int((long long)info.header_len, (long long)(outlen - blen + 2), "header_len");
	free(out);
}

static void
test_header_only(void)
{
	struct message_params p = params();
	struct message_info info;
	char err[256], *out = NULL, want[1024];
	size_t outlen;

	is_int(prep("From: a@b.example\r\nSubject: x\r\n", &p, &info, &out, &outlen, err,
	    sizeof(err)), 0, "header-only message accepted");
	snprintf(want, sizeof(want), "%sFrom: a@b.example\r\nSubject: x\r\nDate: %s\r\n"
	    "Message-ID: <3F2A1B09C4D7.%d@relay.example.com>\r\n", RCVD_PLAIN, DATE, NOW);
	is_str(out, want, "header-only: fields added, no blank line invented");
	is_int((long long)info.header_len, (long long)outlen, "header_len is the whole message");
	free(out);

	is_int(prep("From: a@b.example", &p, &info, &out, &outlen, err, sizeof(err)), 0,
	    "unterminated single line accepted");
	ok(strstr(out, "From: a@b.example\r\nDate: ") != NULL, "CRLF supplied before added Date");
	free(out);
}

static void
test_checks(void)
{
	char line999[1100], line998[1100], bigbody[1300], bighdr[1300];
	static const char *dup_names[] = {
		"Sender", "To", "Cc", "Bcc", "Subject", "Date", "Message-ID", "Reply-To",
		"In-Reply-To", "References",
	};
	static const struct {
		const char *in;
		const char *reply;
	} t[] = {
		{ "", "550 5.6.0 Message must have exactly one From: header (found 0)" },
		{ "\r\nFrom: a@b.example\r\n", "550 5.6.0 Message must have exactly one From: header (found 0)" },
		{ "To: a@b.example\r\n\r\n", "550 5.6.0 Message must have exactly one From: header (found 0)" },
		{ "From: a@b.example\r\nfrom: c@d.example\r\n\r\n",
		  "550 5.6.0 Message must have exactly one From: header (found 2)" },
		{ "From: a@b.example\r\nTo: x@y\r\nFROM: a@b.example\r\nFrom: a@b.example\r\n\r\n",
		  "550 5.6.0 Message must have exactly one From: header (found 3)" },
		{ "From: a@b.example, c@d.example\r\n\r\n", "550 5.6.0 From: header must hold exactly one mailbox" },
		{ "From: A <a@b.example>,\r\n C <c@d.example>\r\n\r\n", "550 5.6.0 From: header must hold exactly one mailbox" },
		{ "From: undisclosed-recipients:;\r\n\r\n", "550 5.6.0 From: header must hold exactly one mailbox" },
		{ "From:\r\n\r\n", "550 5.6.0 From: header must hold exactly one mailbox" },
		{ "From: Alice\r\n\r\n", "550 5.6.0 From: header must hold exactly one mailbox" },
		{ "From: <a@b.example\r\n\r\n", "550 5.6.0 From: header must hold exactly one mailbox" },
		{ "From: \"Alice <a@b.example>\r\n\r\n", "550 5.6.0 From: header must hold exactly one mailbox" },
		{ "From: a@b.example\r\nSubject: x\r\nsubject: y\r\n\r\n",
		  "550 5.6.0 Duplicate Subject: header (RFC 5322 3.6 allows one)" },
		{ "From: a@b.example\r\nthis is not a header\r\n\r\n",
		  "550 5.6.0 Malformed header field at line 2 (RFC 5322 2.2)" },
		{ " folded first\r\nFrom: a@b.example\r\n\r\n",
		  "550 5.6.0 Malformed header field at line 1 (RFC 5322 2.2)" },
		{ "From : a@b.example\r\n\r\n", "550 5.6.0 Malformed header field at line 1 (RFC 5322 2.2)" },
		{ ": novalue\r\nFrom: a@b.example\r\n\r\n",
		  "550 5.6.0 Malformed header field at line 1 (RFC 5322 2.2)" },
		{ "From: a@b.example\r\nX-\xc3\xa9: 1\r\n\r\n",
		  "550 5.6.0 Malformed header field at line 2 (RFC 5322 2.2)" },
		{ "From a@b.example Mon Nov 13 2023\r\nFrom: a@b.example\r\n\r\n",
		  "550 5.6.0 Malformed header field at line 1 (RFC 5322 2.2)" },
		{ "From: a@b.example\r\n\r\nbody\nbare LF\r\n", "550 5.6.0 Line 3 holds a bare CR or LF (RFC 5322 2.3)" },
		{ "From: a@b.example\r\nSubject: a\rb\r\n\r\n", "550 5.6.0 Line 2 holds a bare CR or LF (RFC 5322 2.3)" },
		{ "From: a@b.example\n\n", "550 5.6.0 Line 1 holds a bare CR or LF (RFC 5322 2.3)" },
	};
	struct message_params p = params();
	struct message_info info;
	char err[256], *out = NULL, in[2048];
	size_t outlen;

	for (size_t i = 0; i < ARRAY_LEN(t); i++) {
		out = (char *)"untouched";
		is_int(prep(t[i].in, &p, &info, &out, &outlen, err, sizeof(err)), -1, "check #%zu refused", i);
		is_str(err, t[i].reply, "check #%zu reply", i);
		ok(out == NULL, "check #%zu: no output", i);
	}

	/* Each single-instance field, twice, case varied for the second. */
	for (size_t i = 0; i < ARRAY_LEN(dup_names); i++) {
		char want[128], upper[32];
		size_t k;

		for (k = 0; dup_names[i][k] != '\0' && k < sizeof(upper) - 1; k++)
			upper[k] = (char)(dup_names[i][k] >= 'a' && dup_names[i][k] <= 'z' ?
			    dup_names[i][k] - 32 : dup_names[i][k]);
		upper[k] = '\0';
		snprintf(in, sizeof(in), "%s: x@y.example\r\nFrom: a@b.example\r\n%s:\r\n <z@y.example>\r\n\r\nbody\r\n",
		    dup_names[i], upper);
		snprintf(want, sizeof(want), "550 5.6.0 Duplicate %s: header (RFC 5322 3.6 allows one)",
		    dup_names[i]);
		is_int(prep(in, &p, &info, &out, &outlen, err, sizeof(err)), -1, "duplicate %s refused",
		    dup_names[i]);
		is_str(err, want, "duplicate %s reply", dup_names[i]);
		/* ... and once is fine. */
		snprintf(in, sizeof(in), "%s: x@y.example\r\nFrom: a@b.example\r\n\r\nbody\r\n", dup_names[i]);
		is_int(prep(in, &p, &info, &out, &outlen, err, sizeof(err)), 0, "single %s accepted",
		    dup_names[i]);
		free(out);
	}
	/* Fields that may repeat (Received, Comments, X-*) are fine. */
	is_int(prep("Received: a\r\nReceived: b\r\nComments: 1\r\nComments: 2\r\nX-A: 1\r\nX-A: 2\r\n"
	    "From: a@b.example\r\n\r\n", &p, &info, &out, &outlen, err, sizeof(err)), 0,
	    "repeatable fields accepted");
	free(out);

	/* Line length: 998 passes, 999 fails, in the body and the header. */
	memset(line998, 'x', 998);
	line998[998] = '\0';
	memset(line999, 'x', 999);
	line999[999] = '\0';
	snprintf(bigbody, sizeof(bigbody), "From: a@b.example\r\n\r\n%s\r\n", line998);
	is_int(prep(bigbody, &p, &info, &out, &outlen, err, sizeof(err)), 0, "998-octet body line");
	free(out);
	snprintf(bigbody, sizeof(bigbody), "From: a@b.example\r\n\r\nok\r\n%s\r\n", line999);
	is_int(prep(bigbody, &p, &info, &out, &outlen, err, sizeof(err)), -1, "999-octet body line");
	is_str(err, "550 5.6.0 Line 4 is longer than 998 octets (RFC 5322 2.1.1)", "999 body reply");
	snprintf(bigbody, sizeof(bigbody), "From: a@b.example\r\n\r\nok\r\n%s", line999);
	is_int(prep(bigbody, &p, &info, &out, &outlen, err, sizeof(err)), -1,
	    "999-octet unterminated last line");
	snprintf(bighdr, sizeof(bighdr), "From: a@b.example\r\nX-Long: %.991s\r\n\r\n", line999);
	is_int(prep(bighdr, &p, &info, &out, &outlen, err, sizeof(err)), -1, "1000-octet header line");
	is_str(err, "550 5.6.0 Line 2 is longer than 998 octets (RFC 5322 2.1.1)", "long header reply");

	/* Header size limit, and the order of the checks. */
	p.max_header_size = 100;
	snprintf(in, sizeof(in), "From: a@b.example\r\nSubject: %.100s\r\n\r\nbody\r\n", line998);
	is_int(prep(in, &p, &info, &out, &outlen, err, sizeof(err)), -1, "header over limit");
	is_str(err, "552 5.3.4 Header section too large (limit 100 bytes)", "header limit reply");
	is_int(prep(bighdr, &p, &info, &out, &outlen, err, sizeof(err)), -1, "too large and too long");
	ok(strncmp(err, "552 5.3.4", 9) == 0, "size is checked before line length");
	snprintf(in, sizeof(in), "Subject: x\r\n\r\n%s\r\n", line999);
	is_int(prep(in, &p, &info, &out, &outlen, err, sizeof(err)), -1, "no From and a long line");
	ok(strncmp(err, "550 5.6.0 Line 3", 16) == 0, "line length is checked before From");
	is_int(prep("From: a@b.example\r\nFrom: c@d.example\r\nTo: x\r\nTo: y\r\n\r\n", &p, &info, &out,
	    &outlen, err, sizeof(err)), -1, "two From and two To");
	is_str(err, "550 5.6.0 Message must have exactly one From: header (found 2)",
	    "From is checked before duplicates");
	is_int(prep("From: a@b.example, c@d\r\nTo: x\r\nTo: y\r\n\r\n", &p, &info, &out,
	    &outlen, err, sizeof(err)), -1, "two mailboxes and two To");
	is_str(err, "550 5.6.0 From: header must hold exactly one mailbox",
	    "From mailbox is checked before duplicates");
	/* The limit counts the header section only, not the body. */
	snprintf(in, sizeof(in), "From: a@b.example\r\n\r\n%s\r\n", line998);
	is_int(prep(in, &p, &info, &out, &outlen, err, sizeof(err)), 0, "big body, small header");
	free(out);
	/* Exactly at the limit passes. */
	snprintf(in, sizeof(in), "From: a@b.example\r\nX: %.76s\r\n\r\n", line998);
	is_int((int)(strstr(in, "\r\n\r\n") + 2 - in), 100, "built a 100-octet header section");
	is_int(prep(in, &p, &info, &out, &outlen, err, sizeof(err)), 0, "header exactly at limit");
	free(out);

	/* A tiny err buffer is not overrun. */
	{
		char tiny[10];
		memset(tiny, 'Z', sizeof(tiny));
		is_int(message_prepare("", 0, &p, &info, &out, &outlen, tiny, sizeof(tiny)), -1,
		    "tiny err rc");
		is_int((int)strlen(tiny), 9, "tiny err terminated");
	}
}

static void
test_big_header(void)
{
	struct message_params p = params();
	struct message_info info;
	char err[256], *out = NULL;
	size_t outlen, n = 1024 * 1024, len = 0;
	char *in = malloc(n + 64);

	/* S11: 1 MB of header fields against a 64 KB limit. */
	len = (size_t)snprintf(in, n, "From: a@b.example\r\n");
	while (len + 20 < n)
		len += (size_t)snprintf(in + len, n - len, "X-Pad: %010zu\r\n", len);
	len += (size_t)snprintf(in + len, 64, "\r\nbody\r\n");
	is_int(message_prepare(in, len, &p, &info, &out, &outlen, err, sizeof(err)), -1,
	    "1 MB header refused");
	is_str(err, "552 5.3.4 Header section too large (limit 65536 bytes)", "1 MB header reply");
	p.max_header_size = 2 * n;
	is_int(message_prepare(in, len, &p, &info, &out, &outlen, err, sizeof(err)), 0,
	    "1 MB header accepted with a larger limit");
	is_int((long long)outlen, (long long)(len + strlen(RCVD_PLAIN) +
	    strlen("Date: " DATE "\r\n") + strlen("Message-ID: <3F2A1B09C4D7.1700000000@relay.example.com>\r\n")),
	    "1 MB output length");
	free(out);
	free(in);
}

int
main(void)
{
	setenv("TZ", "UTC", 1);
	tzset();
	test_mailbox();
	test_basic();
	test_fixes();
	test_received_hostile();
	test_body();
	test_header_only();
	test_checks();
	test_big_header();
	return done();
}
