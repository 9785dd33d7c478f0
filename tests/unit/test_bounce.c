/*
 * test_bounce - daemon/bounce.c: every DSN built here is parsed back by a
 * small strict checker (CRLF only, 7-bit, lines <= 998, the top-level
 * headers once each, one consistent boundary, exactly three parts of the
 * right types, a delivery-status block per recipient). Hostile input:
 * diagnostics with CR/LF/controls/8-bit, an original without a blank
 * line, 10 MB originals. Also writes tests/unit/test_bounce_sample.eml
 * for a hand check with Python's email package.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bounce.h"
#include "util.h"
#include "tap.h"

#define T0 1700000000

struct dsn {
	char boundary[128];
	char *part[3];          /* bodies, NUL-terminated copies */
	char ptype[3][64];      /* Content-Type of each part */
	char *header;           /* top-level header section, unfolded */
	int nfinal;             /* Final-Recipient blocks in part 2 */
};

static void
dsn_free(struct dsn *d)
{
	for (int i = 0; i < 3; i++)
		free(d->part[i]);
	free(d->header);
	memset(d, 0, sizeof(*d));
}

/* count_field - header lines (at line start) named name in an unfolded
 * header section */
static int
count_field(const char *h, const char *name)
{
	int n = 0;
	size_t l = strlen(name);

	for (const char *p = h; p != NULL && *p != '\0';) {
		if (strncasecmp(p, name, l) == 0 && p[l] == ':')
			n++;
		p = strstr(p, "\r\n");
		if (p != NULL)
			p += 2;
	}
	return n;
}

/* unfold - header section with CRLF+WSP joined, a copy */
static char *
unfold(const char *s, size_t len)
{
	char *o = malloc(len + 1);
	size_t j = 0;

	for (size_t i = 0; i < len; i++) {
		if (s[i] == '\r' && i + 2 < len && s[i + 1] == '\n' &&
		    (s[i + 2] == ' ' || s[i + 2] == '\t')) {
			i++;
			continue;
		}
		o[j++] = s[i];
	}
	o[j] = '\0';
	return o;
}

/* check_dsn - 0 if m is a well-formed DSN with nrcpts recipients, else -1
 * and a reason in why */
static int
check_dsn(const char *m, size_t len, int nrcpts, struct dsn *d, char *why, size_t wl)
{
	size_t col = 0, hend, pos;
	const char *ct, *b, *e;
	int i;

	memset(d, 0, sizeof(*d));
	if (strlen(m) != len)
		return snprintf(why, wl, "NUL in output"), -1;
	for (size_t k = 0; k < len; k++) {
		unsigned char c = (unsigned char)m[k];

		if (c == '\r') {
			if (k + 1 >= len || m[k + 1] != '\n')
				return snprintf(why, wl, "bare CR at %zu", k), -1;
			k++;
			col = 0;
			continue;
		}
		if (c == '\n')
			return snprintf(why, wl, "bare LF at %zu", k), -1;
		if (c >= 0x80)
			return snprintf(why, wl, "8-bit byte at %zu", k), -1;
		if (++col > 998)
			return snprintf(why, wl, "line over 998 at %zu", k), -1;
	}
	if (len < 2 || m[len - 2] != '\r')
		return snprintf(why, wl, "no final CRLF"), -1;
	b = strstr(m, "\r\n\r\n");
	if (b == NULL)
		return snprintf(why, wl, "no header/body separator"), -1;
	hend = (size_t)(b - m) + 2;
	d->header = unfold(m, hend);
	for (i = 0; i < 8; i++) {
		static const char *once[] = { "From", "To", "Subject", "Date",
		    "Message-ID", "MIME-Version", "Auto-Submitted", "Content-Type" };
		if (count_field(d->header, once[i]) != 1)
			return snprintf(why, wl, "header %s not exactly once", once[i]), -1;
	}
	ct = strstr(d->header, "\r\nContent-Type: multipart/report; report-type=delivery-status;");
	if (ct == NULL || (b = strstr(ct, "boundary=\"")) == NULL)
		return snprintf(why, wl, "bad Content-Type"), -1;
	b += 10;
	e = strchr(b, '"');
	if (e == NULL || e == b || (size_t)(e - b) >= sizeof(d->boundary) - 1 ||
	    (size_t)(e - b) > 70)
		return snprintf(why, wl, "bad boundary"), -1;
	memcpy(d->boundary, b, (size_t)(e - b));
	if (count_field(d->header, "Auto-Submitted") != 1 ||
	    strstr(d->header, "\r\nAuto-Submitted: auto-replied\r\n") == NULL)
		return snprintf(why, wl, "no Auto-Submitted: auto-replied"), -1;
	if (strstr(d->header, "\r\nMIME-Version: 1.0\r\n") == NULL)
		return snprintf(why, wl, "no MIME-Version"), -1;

	/* body: delimiter lines "--B" and the close "--B--" */
	pos = hend + 2;
	{
		char delim[140], close[140];
		const char *start[4] = { 0 };
		int n = 0, closed = 0;
		size_t dl;

		snprintf(delim, sizeof(delim), "--%s", d->boundary);
		snprintf(close, sizeof(close), "--%s--", d->boundary);
		dl = strlen(delim);
		for (const char *l = m + pos; l < m + len;) {
			const char *nl = strstr(l, "\r\n");
			size_t ll = (size_t)(nl - l);

			if (closed)
				return snprintf(why, wl, "text after close delimiter"), -1;
			if (ll == dl + 2 && memcmp(l, close, dl + 2) == 0) {
				if (n == 0)
					return snprintf(why, wl, "close before parts"), -1;
				start[n] = l;
				closed = 1;
			} else if (ll == dl && memcmp(l, delim, dl) == 0) {
				if (n >= 3)
					return snprintf(why, wl, "more than three parts"), -1;
				if (n > 0)
					start[n] = l;
				d->part[n] = (char *)nl + 2;    /* fixed below */
				n++;
			} else if (strstr(l, delim) != NULL && strstr(l, delim) < nl)
				return snprintf(why, wl, "boundary inside a line"), -1;
			l = nl + 2;
		}
		if (n != 3 || !closed)
			return snprintf(why, wl, "%d parts, closed %d", n, closed), -1;
		for (i = 0; i < 3; i++) {
			const char *ps = d->part[i], *pe = start[i + 1] - 2, *sep;
			char *ph;

			d->part[i] = NULL;
			sep = strstr(ps, "\r\n\r\n");
			if (sep == NULL || sep > pe)
				return snprintf(why, wl, "part %d has no header", i + 1), -1;
			ph = unfold(ps, (size_t)(sep - ps) + 2);
			ct = strstr(ph, "Content-Type: ");
			if (ct == NULL) {
				free(ph);
				return snprintf(why, wl, "part %d without Content-Type", i + 1), -1;
			}
			ct += 14;
			snprintf(d->ptype[i], sizeof(d->ptype[i]), "%.*s",
			    (int)strcspn(ct, ";\r"), ct);
			free(ph);
			d->part[i] = strndup(sep + 4, (size_t)(pe - sep - 4 < 0 ? 0 : pe - sep - 4));
		}
	}
	if (strcmp(d->ptype[0], "text/plain") != 0 ||
	    strcmp(d->ptype[1], "message/delivery-status") != 0 ||
	    (strcmp(d->ptype[2], "text/rfc822-headers") != 0 &&
	    strcmp(d->ptype[2], "message/rfc822") != 0))
		return snprintf(why, wl, "part types %.20s, %.30s, %.20s", d->ptype[0],
		    d->ptype[1], d->ptype[2]), -1;

	/* part 2: a per-message block, then one block per recipient */
	{
		char *s = unfold(d->part[1], strlen(d->part[1])), *blk = s, *next;
		int nb = 0;

		while (blk != NULL && *blk != '\0') {
			next = strstr(blk, "\r\n\r\n");
			if (next != NULL) {
				next[2] = '\0';
				next += 4;
			}
			if (nb == 0) {
				if (count_field(blk, "Reporting-MTA") != 1 ||
				    count_field(blk, "Final-Recipient") != 0) {
					free(s);
					return snprintf(why, wl, "bad per-message block"), -1;
				}
			} else if (count_field(blk, "Final-Recipient") != 1 ||
			    count_field(blk, "Action") != 1 || count_field(blk, "Status") != 1) {
				free(s);
				return snprintf(why, wl, "bad recipient block %d", nb), -1;
			} else
				d->nfinal++;
			nb++;
			blk = next;
		}
		free(s);
	}
	if (d->nfinal != nrcpts)
		return snprintf(why, wl, "%d recipient blocks, want %d", d->nfinal, nrcpts), -1;
	return 0;
}

/* flat - a copy with every line break and the indentation after it made
 * one space, so wrapped prose and folded fields can be searched */
static char *
flat(const char *s)
{
	char *o = malloc(strlen(s) + 1);
	size_t j = 0;

	for (size_t i = 0; s[i] != '\0'; i++) {
		if (s[i] == '\r' && s[i + 1] == '\n' && s[i + 2] != '\r' && s[i + 2] != '\0') {
			i += 2;
			while (s[i] == ' ' || s[i] == '\t')
				i++;
			o[j++] = ' ';
			i--;
			continue;
		}
		o[j++] = s[i];
	}
	o[j] = '\0';
	return o;
}

static const char orig_msg[] =
	"Received: from client.example.com ([192.0.2.7])\r\n"
	"\tby relay.example.com with ESMTPSA id 3F2A1B09C4D7\r\n"
	"From: Alice <alice@example.com>\r\n"
	"To: bob@example.net, carol@example.org\r\n"
	"Subject: hello\r\n"
	"Message-ID: <m1@example.com>\r\n"
	"\r\n"
	"Body line one.\r\n"
	"Body line two.\r\n";

static struct bounce_rcpt rcpts2[] = {
	{ "bob@example.net", "Bob@example.net", NULL, "5.1.1", "mx.example.net",
	  "550-5.1.1 The email account that you tried to reach does not exist. Please "
	  "try double-checking the recipient's email address for typos or unnecessary "
	  "spaces. https://support.google.com/mail/?p=NoSuchUser a1si123 - gsmtp",
	  T0 + 60, 0 },
	{ "carol@example.org", NULL, "failed", "5.7.26", "smtp.example.org",
	  "smtp; 550 5.7.26 This mail has been blocked because the sender is unauthenticated.",
	  T0 + 61, 0 },
};

static void
base_params(struct bounce_params *p)
{
	memset(p, 0, sizeof(*p));
	p->hostname = "relay.example.com";
	p->sender = "alice@example.com";
	p->orig = orig_msg;
	p->orig_len = sizeof(orig_msg) - 1;
	p->envid = "ENV-42";
	p->arrival = T0;
	p->queue_id = "3F2A1B09C4D7";
	p->kind = BOUNCE_FAILED;
	p->rcpts = rcpts2;
	p->nrcpts = 2;
	p->now = T0 + 120;
}

static int
build_and_check(const struct bounce_params *p, int nrcpts, struct dsn *d,
    char **out, size_t *outlen, const char *what)
{
	char err[BOUNCE_ERR_MAX] = "", why[200] = "";
	int rc = bounce_build(p, out, outlen, err, sizeof(err));

	if (!ok(rc == 0, "%s: built", what)) {
		printf("#   err: %s\n", err);
		return -1;
	}
	rc = check_dsn(*out, *outlen, nrcpts, d, why, sizeof(why));
	if (!ok(rc == 0, "%s: strict check", what))
		printf("#   %s\n", why);
	return rc;
}

static void
test_failed(void)
{
	struct bounce_params p;
	struct dsn d;
	char *out = NULL;
	size_t len;
	FILE *f;

	base_params(&p);
	if (build_and_check(&p, 2, &d, &out, &len, "failed DSN") == 0) {
		static const char *in_header[] = {
			"\r\nTo: <alice@example.com>\r\n",
			"\r\nSubject: Undelivered Mail Returned to Sender\r\n",
			"\r\nMessage-ID: <3F2A1B09C4D7.1700000120@relay.example.com>\r\n",
			"\r\nAuto-Submitted: auto-replied\r\n",
		};
		static const char *in_status[] = {
			"Reporting-MTA: dns; relay.example.com\r\n",
			"Original-Envelope-Id: ENV-42\r\n",
			"Arrival-Date: ",
			"Original-Recipient: rfc822;Bob@example.net\r\n"
			    "Final-Recipient: rfc822; bob@example.net\r\n"
			    "Action: failed\r\nStatus: 5.1.1\r\n"
			    "Remote-MTA: dns; mx.example.net\r\n"
			    "Diagnostic-Code: smtp; 550-5.1.1 The email account",
			"Final-Recipient: rfc822; carol@example.org\r\nAction: failed\r\n"
			    "Status: 5.7.26\r\nRemote-MTA: dns; smtp.example.org\r\n"
			    "Diagnostic-Code: smtp; 550 5.7.26 This mail",
			"Last-Attempt-Date: ",
		};
		static const char *in_human[] = {
			"<bob@example.net>",
			"does not exist",
			"check the address",
			"did not accept our sender authentication",
			"SPF/DKIM/DMARC failed for example.com; run outpostctl check dns example.com.",
			"The receiving system said: 550-5.1.1 The email",
			"The receiving system said: 550 5.7.26",
			"permanent error",
		};

		char *human = flat(d.part[0]);

		ok(strncmp(d.header, "From: \"Mail Delivery System\" "
		    "<MAILER-DAEMON@relay.example.com>\r\n", 64) == 0, "From: first");
		for (size_t i = 0; i < ARRAY_LEN(in_header); i++)
			ok(strstr(d.header, in_header[i]) != NULL, "header has %.*s",
			    (int)strcspn(in_header[i] + 2, "\r"), in_header[i] + 2);
		ok(strstr(d.header, "\r\nDate: ") != NULL, "header has Date");
		for (size_t i = 0; i < ARRAY_LEN(in_status); i++)
			ok(strstr(d.part[1], in_status[i]) != NULL, "status has %.*s",
			    (int)strcspn(in_status[i], "\r"), in_status[i]);
		ok(strstr(d.part[1], "Will-Retry-Until") == NULL, "no Will-Retry-Until when failed");
		for (size_t i = 0; i < ARRAY_LEN(in_human); i++)
			ok(strstr(human, in_human[i]) != NULL, "human part has %.40s", in_human[i]);
		free(human);
		is_str(d.ptype[2], "text/rfc822-headers", "RET unset: headers only");
		ok(strstr(d.part[2], "Subject: hello\r\n") != NULL, "original Subject returned");
		ok(strstr(d.part[2], "\tby relay.example.com") != NULL, "continuation kept");
		ok(strstr(out, "Body line") == NULL, "original body not returned");
		f = fopen("tests/unit/test_bounce_sample.eml", "wb");
		if (f == NULL)
			f = fopen("test_bounce_sample.eml", "wb");
		ok(f != NULL && fwrite(out, 1, len, f) == len && fclose(f) == 0,
		    "sample DSN written for the Python check");
	}
	dsn_free(&d);
	free(out);
}

static void
test_delayed(void)
{
	struct bounce_rcpt r[] = {
		{ "dave@example.net", NULL, NULL, "4.7.0", "mx.example.net",
		  "421 4.7.0 [TSS04] Messages from 192.0.2.1 temporarily deferred",
		  T0 + 3600, T0 + 5 * 86400 },
	};
	struct bounce_params p;
	struct dsn d;
	char *out = NULL;
	size_t len;

	base_params(&p);
	p.kind = BOUNCE_DELAYED;
	p.rcpts = r;
	p.nrcpts = 1;
	p.envid = NULL;
	if (build_and_check(&p, 1, &d, &out, &len, "delayed DSN") == 0) {
		ok(strstr(d.header, "\r\nSubject: Delayed Mail (still being retried)\r\n") != NULL,
		    "delay subject");
		ok(strstr(d.part[1], "Action: delayed\r\n") != NULL, "Action: delayed");
		ok(strstr(d.part[1], "Will-Retry-Until: ") != NULL, "Will-Retry-Until");
		ok(strstr(d.part[1], "Original-Envelope-Id") == NULL, "no ENVID, no field");
		ok(strstr(d.part[1], "Original-Recipient") == NULL, "no ORCPT, no field");
		ok(strstr(d.part[0], "you do not") != NULL, "human: no need to resend");
		ok(strstr(d.part[0], "retried until") != NULL, "human: until when");
	}
	dsn_free(&d);
	free(out);

	/* the end of max_lifetime: failed with 4.4.7 */
	r[0].status = "4.4.7";
	r[0].will_retry_until = 0;
	p.kind = BOUNCE_FAILED;
	if (build_and_check(&p, 1, &d, &out, &len, "expired DSN") == 0) {
		ok(strstr(d.part[1], "Action: failed\r\nStatus: 4.4.7\r\n") != NULL,
		    "failed 4.4.7");
		ok(strstr(d.part[0], "expired") != NULL, "human: expired");
	}
	dsn_free(&d);
	free(out);
}

static void
test_ret_full(void)
{
	struct bounce_params p;
	struct dsn d;
	char *out = NULL, *m8;
	size_t len;

	base_params(&p);
	p.ret = BOUNCE_RET_FULL;
	if (build_and_check(&p, 2, &d, &out, &len, "RET=FULL") == 0) {
		is_str(d.ptype[2], "message/rfc822", "full message part");
		ok(strstr(d.part[2], "Body line two.\r\n") != NULL, "body returned");
	}
	dsn_free(&d);
	free(out);

	p.return_max = 100;
	if (build_and_check(&p, 2, &d, &out, &len, "RET=FULL over the cap") == 0) {
		is_str(d.ptype[2], "text/rfc822-headers", "too big: headers instead");
		ok(strlen(d.part[2]) <= 100, "headers capped too");
	}
	dsn_free(&d);
	free(out);

	m8 = xasprintf("%s%s", orig_msg, "Gr\xc3\xbc\xc3\x9f" "e\r\n");
	p.return_max = 0;
	p.orig = m8;
	p.orig_len = strlen(m8);
	if (build_and_check(&p, 2, &d, &out, &len, "RET=FULL of an 8-bit body") == 0)
		is_str(d.ptype[2], "text/rfc822-headers", "8-bit: headers instead");
	dsn_free(&d);
	free(out);
	free(m8);
}

static void
test_null_sender(void)
{
	static const char *senders[] = { "", "<>", NULL };
	struct bounce_params p;
	char err[BOUNCE_ERR_MAX], *out = (char *)1;
	size_t len = 1;

	for (size_t i = 0; i < ARRAY_LEN(senders); i++) {
		base_params(&p);
		p.sender = senders[i];
		is_int(bounce_build(&p, &out, &len, err, sizeof(err)), -1,
		    "null sender \"%s\" refused", senders[i] ? senders[i] : "(null)");
		is_str(err, "no DSN for a null-sender message (RFC 3464 2; send a "
		    "postmaster alert instead)", "null sender reason");
		ok(out == NULL && len == 0, "nothing returned");
	}
}

static void
test_bad_params(void)
{
	struct bounce_rcpt r;
	struct bounce_params p;
	char err[BOUNCE_ERR_MAX], *out;
	size_t len;
	static const struct {
		const char *field, *value;
	} t[] = {
		{ "hostname", "relay example.com" },
		{ "hostname", "" },
		{ "queue_id", "" },
		{ "queue_id", "3F2A\r\nX" },
		{ "sender", "alice@example.com\r\nBcc: x@y" },
		{ "sender", "not an address" },
		{ "from_addr", "a b@c" },
		{ "status", "5.1" },
		{ "status", "5.1.1 x" },
		{ "status", "6.1.1" },
		{ "action", "bounced" },
		{ "final", "" },
	};

	for (size_t i = 0; i < ARRAY_LEN(t); i++) {
		base_params(&p);
		r = rcpts2[0];
		p.rcpts = &r;
		p.nrcpts = 1;
		if (strcmp(t[i].field, "hostname") == 0)
			p.hostname = t[i].value;
		else if (strcmp(t[i].field, "queue_id") == 0)
			p.queue_id = t[i].value;
		else if (strcmp(t[i].field, "sender") == 0)
			p.sender = t[i].value;
		else if (strcmp(t[i].field, "from_addr") == 0)
			p.from_addr = t[i].value;
		else if (strcmp(t[i].field, "status") == 0)
			r.status = t[i].value;
		else if (strcmp(t[i].field, "action") == 0)
			r.action = t[i].value;
		else
			r.final_rcpt = t[i].value;
		err[0] = '\0';
		is_int(bounce_build(&p, &out, &len, err, sizeof(err)), -1,
		    "bad %s (case %zu) refused", t[i].field, i);
		ok(err[0] != '\0', "  with a reason (%s)", err);
	}
	base_params(&p);
	p.nrcpts = 0;
	is_int(bounce_build(&p, &out, &len, err, sizeof(err)), -1, "no recipients refused");
	p.nrcpts = BOUNCE_RCPTS_MAX + 1;
	is_int(bounce_build(&p, &out, &len, err, sizeof(err)), -1, "too many recipients refused");
}

static void
test_hostile(void)
{
	char diag[4096], *big, *out = NULL;
	struct bounce_rcpt r[2];
	struct bounce_params p;
	struct dsn d;
	size_t len, n;

	/* diagnostic with CR/LF (header injection attempt), controls, 8-bit */
	base_params(&p);
	memcpy(r, rcpts2, sizeof(r));
	r[0].diagnostic = "550 5.1.1 bad\r\nBcc: victim@example.org\r\n\r\n--x\x01\x7f\x1b[31m"
	    "\xc3\xa9\xff end";
	r[0].orcpt = "B\xc3\xb6" "b@example.net\r\nX: y";
	r[1].remote_mta = "mx\r\nX-Evil: 1";
	p.rcpts = r;
	p.envid = "ENV 1\r\nX-Injected: yes";
	if (build_and_check(&p, 2, &d, &out, &len, "hostile diagnostic") == 0) {
		ok(strstr(out, "\r\nBcc:") == NULL, "no injected Bcc: line");
		ok(strstr(out, "\r\nX-Injected") == NULL, "no injected ENVID line");
		ok(strstr(out, "\r\nX-Evil") == NULL, "no injected Remote-MTA line");
		ok(strstr(out, "\r\nX: y") == NULL, "no injected ORCPT line");
		ok(strstr(d.part[1], "Original-Recipient: rfc822;B+C3+B6b@example.net+0D+0AX:+20y")
		    != NULL, "8-bit ORCPT written as xtext");
		ok(strstr(d.part[1], "Original-Envelope-Id: ENV+201+0D+0AX-Injected:+20yes") != NULL,
		    "hostile ENVID written as xtext");
		ok(strstr(d.part[1], "Diagnostic-Code: smtp; 550 5.1.1 bad Bcc:") != NULL,
		    "CR/LF became spaces");
	}
	dsn_free(&d);
	free(out);

	/* one 3000-byte word, and 4000 bytes of short words */
	memset(diag, 'x', 3000);
	diag[3000] = '\0';
	r[0].diagnostic = diag;
	r[1].diagnostic = NULL;
	p.envid = NULL;
	if (build_and_check(&p, 2, &d, &out, &len, "3000-byte word in a diagnostic") == 0)
	{
		char *f = flat(d.part[1]);

		ok(strstr(f, "Diagnostic-Code: smtp; xxx") != NULL, "long word kept, cut");
		free(f);
	}
	dsn_free(&d);
	free(out);
	for (n = 0; n + 4 < sizeof(diag); n += 4)
		memcpy(diag + n, "ab  ", 4);
	diag[n] = '\0';
	if (build_and_check(&p, 2, &d, &out, &len, "long diagnostic folded") == 0)
		ok(strstr(d.part[1], "\r\n ab ab") != NULL, "folded with white space");
	dsn_free(&d);
	free(out);

	/* original without a blank line: all of it is header */
	base_params(&p);
	p.orig = "Subject: x\r\nno colon here\r\nlast line without CRLF";
	p.orig_len = strlen(p.orig);
	if (build_and_check(&p, 2, &d, &out, &len, "original without blank line") == 0)
		ok(strstr(d.part[2], "last line without CRLF\r\n") != NULL, "all lines kept");
	dsn_free(&d);
	free(out);

	/* bare LF, NUL, 8-bit, a 2000-byte line in the original's header */
	big = malloc(4000);
	n = (size_t)snprintf(big, 4000, "Subject: \xe2\x82\xac caf\xc3\xa9\nX-Nul: a");
	big[n++] = '\0';
	big[n++] = 'b';
	memcpy(big + n, "\r\nX-Long: ", 10);
	n += 10;
	memset(big + n, 'y', 2000);
	n += 2000;
	memcpy(big + n, "\r\n\r\nbody\r\n", 10);
	n += 10;
	p.orig = big;
	p.orig_len = n;
	p.ret = BOUNCE_RET_FULL;
	if (build_and_check(&p, 2, &d, &out, &len, "dirty original header") == 0) {
		is_str(d.ptype[2], "text/rfc822-headers", "dirty: headers, not full");
		ok(strstr(d.part[2], "Subject: ??? caf??\r\nX-Nul: a b\r\nX-Long: yyy") != NULL,
		    "cleaned line by line");
	}
	dsn_free(&d);
	free(out);
	free(big);

	/* 10 MB original, headers only: output stays small */
	n = 10 * 1024 * 1024;
	big = malloc(n);
	memcpy(big, orig_msg, sizeof(orig_msg) - 1);
	for (size_t i = sizeof(orig_msg) - 1; i < n; i += 2)
		memcpy(big + i, "z\n", 2);
	p.orig = big;
	p.orig_len = n;
	p.ret = BOUNCE_RET_HDRS;
	if (build_and_check(&p, 2, &d, &out, &len, "10 MB original, RET=HDRS") == 0)
		ok(len < 16384, "DSN small (%zu bytes)", len);
	dsn_free(&d);
	free(out);
	p.ret = BOUNCE_RET_FULL;
	if (build_and_check(&p, 2, &d, &out, &len, "10 MB original, RET=FULL") == 0)
		ok(len < 16384 && strcmp(d.ptype[2], "text/rfc822-headers") == 0,
		    "over the cap: headers only");
	dsn_free(&d);
	free(out);
	/* 10 MB of header lines and no blank line: capped */
	memset(big, 'h', n);
	for (size_t i = 70; i < n; i += 72)
		memcpy(big + i, "\r\n", 2);
	p.ret = BOUNCE_RET_UNSET;
	p.return_max = 0;
	if (build_and_check(&p, 2, &d, &out, &len, "10 MB header, no blank line") == 0)
		ok(strlen(d.part[2]) <= BOUNCE_RETURN_MAX && len < BOUNCE_RETURN_MAX + 8192,
		    "capped at BOUNCE_RETURN_MAX (%zu)", len);
	dsn_free(&d);
	free(out);
	free(big);
}

static void
test_boundary_random(void)
{
	struct bounce_params p;
	struct dsn d1, d2;
	char *o1 = NULL, *o2 = NULL;
	size_t l1, l2;

	base_params(&p);
	if (build_and_check(&p, 2, &d1, &o1, &l1, "first build") == 0 &&
	    build_and_check(&p, 2, &d2, &o2, &l2, "second build") == 0)
		ok(strcmp(d1.boundary, d2.boundary) != 0, "boundary is random");
	dsn_free(&d1);
	dsn_free(&d2);
	free(o1);
	free(o2);
}

static void
test_alert(void)
{
	struct bounce_alert_params a = {
		.hostname = "relay.example.com",
		.to = "postmaster@example.com",
		.cause = "5.7.26 from example.com",
		.details = "550 5.7.26 This mail has been blocked because the sender is "
		    "unauthenticated.\nRecipient: carol@example.org\n\nUpstream: smtp.example.org",
		.advice = "SPF/DKIM/DMARC failed for example.com; run outpostctl check dns example.com",
		.queue_id = "3F2A1B09C4D7",
		.now = T0,
	};
	char err[BOUNCE_ERR_MAX], *out = NULL;
	size_t len;

	is_int(bounce_alert_build(&a, &out, &len, err, sizeof(err)), 0, "alert built");
	if (out != NULL) {
		ok(strstr(out, "\r\nSubject: outpost alert: 5.7.26 from example.com\r\n") != NULL,
		    "alert subject");
		ok(strstr(out, "\r\nTo: <postmaster@example.com>\r\n") != NULL, "alert To:");
		ok(strstr(out, "\r\nAuto-Submitted: auto-generated\r\n") != NULL,
		    "Auto-Submitted: auto-generated");
		ok(strncmp(out, "From: \"Mail Delivery System\" <MAILER-DAEMON@relay.example.com>\r\n",
		    64) == 0, "alert From:");
		ok(strstr(out, "run outpostctl check dns") != NULL, "advice in body");
		ok(strstr(out, "Recipient: carol@example.org\r\n\r\nUpstream:") != NULL,
		    "details kept line by line");
		ok(strstr(out, "Queue id: 3F2A1B09C4D7") != NULL, "queue id");
		ok(strchr(out, '\n') != NULL && strstr(out, "\r\n\r\n") != NULL, "header ends");
	}
	free(out);
	out = NULL;

	a.cause = "evil\r\nBcc: x@example.org";
	a.details = "line\rwith\x01 junk \xff";
	a.from_addr = "alerts@example.com";
	a.from_display = "Out\"post\\";
	is_int(bounce_alert_build(&a, &out, &len, err, sizeof(err)), 0, "hostile alert built");
	if (out != NULL) {
		ok(strstr(out, "\r\nBcc:") == NULL, "no injected header");
		ok(strstr(out, "Subject: outpost alert: evil Bcc: x@example.org\r\n") != NULL,
		    "cause cleaned");
		ok(strstr(out, "line with junk ?\r\n") != NULL, "details cleaned");
		ok(strncmp(out, "From: \"Out post \" <alerts@example.com>\r\n", 40) == 0,
		    "display name cleaned");
		for (size_t i = 0; i < len; i++)
			if ((out[i] == '\r' && out[i + 1] != '\n') ||
			    (out[i] == '\n' && (i == 0 || out[i - 1] != '\r')) ||
			    (unsigned char)out[i] >= 0x80) {
				ok(0, "alert CRLF and 7-bit only (byte %zu)", i);
				break;
			}
	}
	free(out);
	a.to = "";
	is_int(bounce_alert_build(&a, &out, &len, err, sizeof(err)), -1, "alert without To refused");
	a.to = "postmaster@example.com";
	a.hostname = NULL;
	is_int(bounce_alert_build(&a, &out, &len, err, sizeof(err)), -1,
	    "alert without hostname refused");
}

int
main(void)
{
	test_failed();
	test_delayed();
	test_ret_full();
	test_null_sender();
	test_bad_params();
	test_hostile();
	test_boundary_random();
	test_alert();
	return done();
}
