/*
 * test_lint - the content checks, table-driven: each check with messages
 * that must and must not trip it, the MIME and RFC 2047 decoding under
 * them, the output forms, and hostile input (no crash, bounded time).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lint.h"
#include "util.h"
#include "tap.h"

/* the header every case gets unless it says otherwise */
#define BASE "From: Ann <ann@shop.example>\nDate: Sun, 22 Nov 2026 10:00:00 +0000\n" \
	"Message-ID: <1@shop.example>\n"
#define HTML "Content-Type: text/html; charset=utf-8\n"
#define ALT(plain, html) "Content-Type: multipart/alternative; boundary=\"b\"\n\n" \
	"--b\nContent-Type: text/plain\n\n" plain "\n--b\n" HTML "\n" html "\n--b--\n"
#define LONG "The quarterly report is attached below; it covers sales, returns, " \
	"stock levels, delivery times and the survey of customers across all regions."

struct tcase {
	const char *name;
	const char *msg;        /* full message */
	const char *ids;        /* exact set, space-separated; "" for none */
};

static const struct tcase cases[] = {
	/* clean */
	{ "clean plain mail", BASE "Subject: Your order shipped\n\nHello, it left today.\n", "" },
	/* spam-words */
	{ "spam word in the subject", BASE "Subject: A free gift\n\nhi\n", "spam-words" },
	{ "whole words only", BASE "Subject: Carefree freedom\n\nfreely guaranteed\n",
	  "spam-words" },       /* "guaranteed" itself is listed; free* are not */
	{ "no trigger word", BASE "Subject: Carefree freedom\n\nfreely\n", "" },
	{ "French, any case", BASE "Subject: Info\n\nC'est GRATUIT.\n", "spam-words" },
	{ "Spanish capital accent folded", BASE "Subject: Info\n\nCon GARANTÍA total\n",
	  "spam-words" },
	{ "phrase across a line break", BASE "Subject: Info\n\nplease order\n now\n",
	  "spam-words" },
	/* caps-subject */
	{ "capital subject", BASE "Subject: MEETING NOTES FOR MONDAY\n\nhi\n", "caps-subject" },
	{ "short capital subject", BASE "Subject: Q3 KPI\n\nhi\n", "" },
	{ "sentence case subject", BASE "Subject: Meeting notes for Monday\n\nhi\n", "" },
	/* exclamations */
	{ "!! in the subject", BASE "Subject: Hello!!\n\nhi\n", "exclamations" },
	{ "three ! in the subject", BASE "Subject: Hi! Yes! Go!\n\nhi\n", "exclamations" },
	{ "one ! in the subject", BASE "Subject: Hello!\n\nhi\n", "" },
	{ "three runs in the text", BASE "Subject: Hi\n\nwow!! yes!!! now!!\n", "exclamations" },
	{ "two runs in the text", BASE "Subject: Hi\n\nwow!! yes!!\n", "" },
	/* emoji */
	{ "two emoji in the subject", BASE "Subject: Sale \xf0\x9f\x8e\x81\xf0\x9f\x94\xa5\n\nhi\n",
	  "emoji" },
	{ "one emoji in the subject", BASE "Subject: Sale \xf0\x9f\x8e\x81\n\nhi\n", "" },
	{ "dingbats in the text", BASE "Subject: Hi\n\n\xe2\x98\x80\xe2\x98\x80\xe2\x9c\x85"
	  "\xe2\x9c\x85\xe2\x9c\x85\xe2\x9c\x85\xe2\x9c\x85\xe2\x9c\x85\n", "emoji" },
	{ "accents are no emoji", BASE "Subject: \xc3\xa9t\xc3\xa9 \xc3\xa0 No\xc3\xabl\n\nhi\n",
	  "" },
	/* html-width */
	{ "width attribute", BASE "Subject: Hi\n" ALT(LONG, "<table width=\"900\"><tr><td>" LONG
	  "</td></tr></table>"), "html-width" },
	{ "css width", BASE "Subject: Hi\n" ALT(LONG, "<div style=\"WIDTH: 1000px\">" LONG
	  "</div>"), "html-width" },
	{ "min-width", BASE "Subject: Hi\n" ALT(LONG, "<div style=\"min-width:1000px\">" LONG
	  "</div>"), "html-width" },
	{ "max-width is fine", BASE "Subject: Hi\n" ALT(LONG, "<div style=\"max-width:1200px;"
	  "width:600px\">" LONG "</div>"), "" },
	{ "percent and 800", BASE "Subject: Hi\n" ALT(LONG, "<table width=\"100%\"><tr>"
	  "<td width=\"800\">" LONG "</td></tr></table>"), "" },
	/* html-active */
	{ "script", BASE "Subject: Hi\n" ALT(LONG, "<p>" LONG "</p><script>x()</script>"),
	  "html-active" },
	{ "script in head", BASE "Subject: Hi\n" ALT(LONG, "<head><title>t</title><script "
	  "src=x></script></head><p>" LONG "</p>"), "html-active" },
	{ "iframe", BASE "Subject: Hi\n" ALT(LONG, "<p>" LONG "</p><iframe src=x></iframe>"),
	  "html-active" },
	{ "object", BASE "Subject: Hi\n" ALT(LONG, "<p>" LONG "</p><OBJECT data=x>"),
	  "html-active" },
	{ "embed", BASE "Subject: Hi\n" ALT(LONG, "<p>" LONG "</p><embed src=x>"), "html-active" },
	{ "form", BASE "Subject: Hi\n" ALT(LONG, "<form action=x><p>" LONG "</p></form>"),
	  "html-active" },
	{ "the word script", BASE "Subject: Hi\n" ALT(LONG, "<p>script " LONG "</p>"), "" },
	/* hidden-content */
	{ "display none", BASE "Subject: Hi\n" ALT(LONG, "<p>" LONG "</p><div style=\""
	  "display: none\">x</div>"), "hidden-content" },
	{ "visibility hidden", BASE "Subject: Hi\n" ALT(LONG, "<p style='visibility:hidden'>"
	  LONG "</p>"), "hidden-content" },
	{ "font-size 0", BASE "Subject: Hi\n" ALT(LONG, "<p style=\"font-size:0\">" LONG
	  "</p>"), "hidden-content" },
	{ "font-size 1px", BASE "Subject: Hi\n" ALT(LONG, "<p style=\"color:red;font-size:"
	  " 1px\">" LONG "</p>"), "hidden-content" },
	{ "white on white", BASE "Subject: Hi\n" ALT(LONG, "<p style=\"color:#fff; "
	  "background-color: #FFF\">" LONG "</p>"), "hidden-content" },
	{ "font-size 10px, 0.9em", BASE "Subject: Hi\n" ALT(LONG, "<p style=\"font-size:10px\">"
	  LONG "</p><p style=\"font-size:0.9em\">x</p>"), "" },
	{ "different colours", BASE "Subject: Hi\n" ALT(LONG, "<p style=\"color:#333;"
	  "background-color:#fff\">" LONG "</p>"), "" },
	/* image-ratio, no-text-part */
	{ "one image, little text", BASE "Subject: Hi\n" ALT(LONG, "<img src=a.png><p>"
	  "A short caption for the picture above, nothing more to say.</p>"), "image-ratio" },
	{ "image with enough text", BASE "Subject: Hi\n" ALT(LONG, "<img src=a.png><p>" LONG
	  LONG LONG LONG "</p>"), "" },
	{ "tracking pixel", BASE "Subject: Hi\n" ALT(LONG, "<p>" LONG "</p><img src=p.gif "
	  "width=\"1\" height=\"1\">"), "" },
	{ "image only, no text part", BASE "Subject: Hi\n" HTML "\n<img src=a.png>\n",
	  "image-ratio no-text-part" },
	{ "image part alone", BASE "Subject: Hi\nContent-Type: image/png\n"
	  "Content-Transfer-Encoding: base64\n\niVBORw0KGgo=\n", "image-ratio" },
	{ "html alone", BASE "Subject: Hi\n" HTML "\n<p>" LONG "</p>\n", "no-text-part" },
	/* link-mismatch */
	{ "text shows another domain", BASE "Subject: Hi\n" ALT(LONG, "<p>" LONG "</p><a "
	  "href=\"http://evil.example/x\">www.bank.example</a>"), "link-mismatch" },
	{ "URL text to another host", BASE "Subject: Hi\n" ALT(LONG, "<p>" LONG "</p><a "
	  "href='https://t.mailer.example/c/1'>https://shop.example/sale</a>"), "link-mismatch" },
	{ "same domain", BASE "Subject: Hi\n" ALT(LONG, "<p>" LONG "</p><a href=\"https://"
	  "shop.example/a\">www.shop.example/a</a>"), "" },
	{ "plain link text", BASE "Subject: Hi\n" ALT(LONG, "<p>" LONG "</p><a href=\"https://"
	  "t.example/a\">Read the report</a> <a href=\"mailto:x@y.example\">ann@shop.example"
	  "</a> <a href=\"https://a.example\">version 1.5</a>"), "" },
	/* big-attachment */
	{ "small attachment", BASE "Subject: Hi\nContent-Type: multipart/mixed; boundary=m\n\n"
	  "--m\n\nsee attached\n--m\nContent-Type: application/pdf\nContent-Disposition: "
	  "attachment; filename=a.pdf\nContent-Transfer-Encoding: base64\n\nJVBERi0=\n--m--\n", "" },
	/* re-fwd-no-thread */
	{ "Re: alone", BASE "Subject: Re: the contract\n\nhi\n", "re-fwd-no-thread" },
	{ "Fwd: alone", BASE "Subject: Fwd: the contract\n\nhi\n", "re-fwd-no-thread" },
	{ "TR : alone", BASE "Subject: TR : le contrat\n\nhi\n", "re-fwd-no-thread" },
	{ "RV: alone", BASE "Subject: RV: el contrato\n\nhi\n", "re-fwd-no-thread" },
	{ "Re[2]: alone", BASE "Subject: Re[2]: the contract\n\nhi\n", "re-fwd-no-thread" },
	{ "Re: with In-Reply-To", BASE "Subject: Re: the contract\nIn-Reply-To: <a@b>\n\nhi\n",
	  "" },
	{ "Re: with References", BASE "Subject: Re: the contract\nReferences: <a@b>\n\nhi\n", "" },
	{ "Research: is no reply", BASE "Subject: Research: results\n\nhi\n", "" },
	/* bulk-no-unsubscribe, no-one-click */
	{ "Precedence: bulk", BASE "Subject: News\nPrecedence: bulk\n\nhi\n",
	  "bulk-no-unsubscribe" },
	{ "List-Id", BASE "Subject: News\nList-Id: <n.shop.example>\n\nhi\n",
	  "bulk-no-unsubscribe" },
	{ "ten recipients", BASE "Subject: News\nTo: a@x.example, b@x.example, c@x.example,\n"
	  " d@x.example, e@x.example, f@x.example, g@x.example, h@x.example, i@x.example,\n"
	  " j@x.example\n\nhi\n", "bulk-no-unsubscribe" },
	{ "unsubscribe wording", BASE "Subject: News\n\nTo unsubscribe, reply STOP.\n",
	  "bulk-no-unsubscribe" },
	{ "Spanish unsubscribe wording", BASE "Subject: News\n\nPara darse de baja, responda.\n",
	  "bulk-no-unsubscribe" },
	{ "one-click unsubscribe", BASE "Subject: News\nPrecedence: bulk\nList-Unsubscribe: "
	  "<https://n.example/u>\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\n\nhi\n", "" },
	{ "unsubscribe without Post", BASE "Subject: News\nList-Id: <n.shop.example>\n"
	  "List-Unsubscribe: <mailto:u@n.example>\n\nhi\n", "no-one-click" },
	/* basics */
	{ "no From, Date, Message-ID", "Subject: Hi\n\nhi\n",
	  "missing-from missing-date missing-message-id" },
	{ "display name shows another domain", "From: \"support@bank.example\" <x@evil.example>\n"
	  "Date: Sun, 22 Nov 2026 10:00:00 +0000\nMessage-ID: <1@e>\nSubject: Hi\n\nhi\n",
	  "from-name-domain" },
	{ "display name, unquoted @", "From: Bank support@bank.example <x@evil.example>\n"
	  "Date: Sun, 22 Nov 2026 10:00:00 +0000\nMessage-ID: <1@e>\nSubject: Hi\n\nhi\n",
	  "from-name-domain" },
	{ "display name, same domain", "From: \"Ann (ann@shop.example)\" <ann@mail.shop.example>"
	  "\nDate: Sun, 22 Nov 2026 10:00:00 +0000\nMessage-ID: <1@e>\nSubject: Hi\n\nhi\n", "" },
	/* decoding */
	{ "base64 text part", BASE "Subject: Hi\nContent-Transfer-Encoding: base64\n\n"
	  "R2V0IGl0IGZvciBm\ncmVlIHRvZGF5Lg==\n", "spam-words" },       /* "Get it for free today." */
	{ "quoted-printable soft break", BASE "Subject: Hi\nContent-Type: text/plain; charset="
	  "iso-8859-1\nContent-Transfer-Encoding: quoted-printable\n\nC'est grat=\nuit, garanti=\n"
	  "e =E0 vie\n", "spam-words" },
	{ "encoded-word B subject", BASE "Subject: =?UTF-8?B?TUVFVElORyBOT1RFUyBGT1IgTU9OREFZ?="
	  "\n\nhi\n", "caps-subject" },
	{ "encoded-word Q Latin-1 subject", BASE "Subject: =?ISO-8859-1?Q?Garant=EDa_total?=\n\nhi\n",
	  "spam-words" },
	{ "adjacent encoded-words join", BASE "Subject: =?utf-8?q?gra?= =?utf-8?q?tis?=\n\nhi\n",
	  "spam-words" },
	{ "folded subject", BASE "Subject: Order\n now\n\nhi\n", "spam-words" },
	{ "CRLF line ends", "From: a@b.example\r\nDate: Sun, 22 Nov 2026 10:00:00 +0000\r\n"
	  "Message-ID: <1@b>\r\nSubject: Fwd: x\r\nContent-Type: multipart/alternative; "
	  "boundary=q\r\n\r\n--q\r\n\r\nplain\r\n--q\r\nContent-Type: text/html\r\n\r\n<p>hi</p>"
	  "\r\n--q--\r\n", "re-fwd-no-thread" },
	/* broken MIME */
	{ "unclosed boundary", BASE "Subject: Hi\nContent-Type: multipart/mixed; boundary=z\n\n"
	  "--z\n\nhello\n", "mime-structure" },
	{ "no delimiter at all", BASE "Subject: Hi\nContent-Type: multipart/mixed; boundary=z\n\n"
	  "it is free\n", "mime-structure spam-words" },
	{ "multipart without boundary", BASE "Subject: Hi\nContent-Type: multipart/mixed\n\n"
	  "hello\n", "" },
};

/* ids_are - the report holds exactly the ids of the space-separated list */
static int
ids_are(const struct lint_report *r, const char *want, char *got, size_t gotlen)
{
	size_t n = 0;
	char buf[256], *tok, *save;

	got[0] = '\0';
	for (size_t i = 0; i < r->n; i++) {
		util_strlcat(got, i ? " " : "", gotlen);
		util_strlcat(got, r->f[i].id, gotlen);
	}
	util_strlcpy(buf, want, sizeof(buf));
	for (tok = strtok_r(buf, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
		int found = 0;
		for (size_t i = 0; i < r->n; i++)
			found |= strcmp(r->f[i].id, tok) == 0;
		if (!found)
			return 0;
		n++;
	}
	return n == r->n;
}

static double
lint_str(const char *m, size_t len, struct lint_report *r, int *rc)
{
	*rc = lint_message(m, len, r);
	return r->score;
}

static const struct lint_finding *
finding(const struct lint_report *r, const char *id)
{
	for (size_t i = 0; i < r->n; i++)
		if (strcmp(r->f[i].id, id) == 0)
			return &r->f[i];
	return NULL;
}

static void
test_table(void)
{
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		struct lint_report r;
		char got[512];
		int rc;

		lint_str(cases[i].msg, strlen(cases[i].msg), &r, &rc);
		if (!ok(rc == 0 && ids_are(&r, cases[i].ids, got, sizeof(got)), "%s: [%s]",
		    cases[i].name, cases[i].ids))
			printf("#   rc %d, got [%s]\n", rc, got);
		lint_report_free(&r);
	}
}

static void
test_details(void)
{
	struct lint_report r;
	const struct lint_finding *f;
	const char *m;
	int rc;

	m = BASE "Subject: Free, FREE, free!\n\nwinner winner 100% free, gratis\n";
	lint_str(m, strlen(m), &r, &rc);
	f = finding(&r, "spam-words");
	ok(f && strstr(f->text, "\"free\" x3") && strstr(f->text, "\"winner\" x2") &&
	    strstr(f->text, "\"100% free\"") && strstr(f->text, "\"gratis\""),
	    "spam-words counts and lists: %s", f ? f->text : "-");
	ok(f && f->penalty > 1.9 && f->penalty < 2.6, "4 distinct, 7 in all: 2.0 + 0.3");
	lint_report_free(&r);

	m = BASE "Subject: Your order\n\nThanks, it shipped.\n";
	is_int(lint_str(m, strlen(m), &r, &rc) == 10.0, 1, "a clean message scores 10");
	lint_report_free(&r);

	m = "Subject: FREE WINNER!!! \xf0\x9f\x8e\x81\xf0\x9f\x8e\x81\nPrecedence: bulk\n"
	    HTML "\n<script>x</script><img src=a><a href=\"http://e.example\">bank.example</a>"
	    "<div style=\"display:none\">guarantee order now act now click here</div>\n";
	lint_str(m, strlen(m), &r, &rc);
	is_int(r.score == 0.0, 1, "the score never goes below 0");
	lint_report_free(&r);

	/* a big attachment: 14 M base64 characters is about 10.5 MB */
	{
		size_t n = 14 * 1024 * 1024, hl;
		const char *h = BASE "Subject: Scans\nContent-Type: multipart/mixed; boundary=m\n\n"
		    "--m\n\nsee attached\n--m\nContent-Type: application/pdf; name=\"scan.pdf\"\n"
		    "Content-Transfer-Encoding: base64\n\n";
		char *big;

		hl = strlen(h);
		big = xmalloc(hl + n + 8);
		memcpy(big, h, hl);
		memset(big + hl, 'A', n);
		memcpy(big + hl + n, "\n--m--\n", 7);
		lint_str(big, hl + n + 7, &r, &rc);
		f = finding(&r, "big-attachment");
		ok(rc == 0 && r.n == 1 && f && strstr(f->text, "scan.pdf") &&
		    strstr(f->text, "10.5 MB"), "big-attachment: %s", f ? f->text : "-");
		lint_report_free(&r);
		free(big);
	}
}

static void
test_print(void)
{
	struct lint_report r;
	char *out = NULL;
	size_t len = 0;
	FILE *f;
	const char *m = BASE "Subject: Re: \"quoted\" \\ \x01\xff\n\nhi\n";
	int rc;

	lint_str(m, strlen(m), &r, &rc);
	f = open_memstream(&out, &len);
	lint_print(&r, 0, f);
	fclose(f);
	ok(strncmp(out, "score: 8.5/10\n-1.5 re-fwd-no-thread: the subject starts with "
	    "\"Re:\"", 63) == 0, "text form: score line, then -penalty id: text");
	free(out);
	f = open_memstream(&out, &len);
	lint_print(&r, 1, f);
	fclose(f);
	ok(strncmp(out, "{\"score\":8.5,\"findings\":[{\"id\":\"re-fwd-no-thread\",\"penalty\":1.5,"
	    "\"text\":\"the subject starts with \\\"Re:\\\" but", 94) == 0 &&
	    strcmp(out + len - 3, "}]}") != 0 && strcmp(out + len - 4, "}]}\n") == 0,
	    "JSON form: {score, findings [{id, penalty, text}]}, escaped");
	free(out);
	lint_report_free(&r);

	memset(&r, 0, sizeof(r));
	r.score = 10;
	f = open_memstream(&out, &len);
	lint_print(&r, 1, f);
	fclose(f);
	is_str(out, "{\"score\":10.0,\"findings\":[]}\n", "JSON with no findings");
	free(out);
}

/* valid_utf8_text - the finding texts hold no control bytes and no
 * invalid UTF-8, whatever came in */
static int
valid_text(const struct lint_report *r)
{
	for (size_t i = 0; i < r->n; i++)
		for (const unsigned char *s = (const unsigned char *)r->f[i].text; *s; s++) {
			size_t k = *s < 0x80 ? 0 : (*s & 0xe0) == 0xc0 ? 1 : (*s & 0xf0) == 0xe0 ? 2 :
			    (*s & 0xf8) == 0xf0 ? 3 : 9;
			if (*s < 0x20 || *s == 0x7f || k == 9)
				return 0;
			for (; k > 0; k--)
				if ((*++s & 0xc0) != 0x80)
					return 0;
		}
	return 1;
}

static void
test_hostile(void)
{
	struct lint_report r;
	struct buf { char *p; size_t n; } b;
	clock_t t0;
	int rc;

	lint_str("", 0, &r, &rc);
	is_int(rc, -1, "empty input is not a message");
	lint_report_free(&r);
	lint_str("hello world\n\nbody\n", 18, &r, &rc);
	is_int(rc, -1, "text without a header is not a message");
	lint_report_free(&r);
	lint_str("\n\nbody\n", 7, &r, &rc);
	is_int(rc, -1, "a blank line first is not a message");
	lint_report_free(&r);
	lint_str("Subject: x", 10, &r, &rc);
	is_int(rc, 0, "a header without an end of line is a message");
	lint_report_free(&r);

	/* 10,000 nested multiparts */
	t0 = clock();
	b.p = xmalloc(10000 * 80 + 256);
	b.n = (size_t)sprintf(b.p, BASE "Subject: deep\n");
	for (int i = 0; i < 10000; i++)
		b.n += (size_t)sprintf(b.p + b.n, "Content-Type: multipart/mixed; boundary=\"b%d\""
		    "\n\n--b%d\n", i, i);
	b.n += (size_t)sprintf(b.p + b.n, "\nfree\n");
	lint_str(b.p, b.n, &r, &rc);
	ok(rc == 0 && finding(&r, "mime-structure") && !finding(&r, "spam-words"),
	    "10,000 nested multiparts: stopped at the depth limit");
	lint_report_free(&r);
	free(b.p);

	/* 5,000 parts */
	b.p = xmalloc(5000 * 40 + 256);
	b.n = (size_t)sprintf(b.p, BASE "Subject: wide\nContent-Type: multipart/mixed; "
	    "boundary=w\n\n");
	for (int i = 0; i < 5000; i++)
		b.n += (size_t)sprintf(b.p + b.n, "--w\n\npart %d\n", i);
	b.n += (size_t)sprintf(b.p + b.n, "--w--\n");
	lint_str(b.p, b.n, &r, &rc);
	ok(rc == 0 && finding(&r, "mime-structure"), "5,000 parts: stopped at the parts limit");
	lint_report_free(&r);
	free(b.p);

	/* a 4 MB header line, 3,000 header fields, NUL bytes, invalid UTF-8 */
	b.n = 4 * 1024 * 1024;
	b.p = xmalloc(b.n + 200000);
	memcpy(b.p, "Subject: ", 9);
	memset(b.p + 9, 'X', b.n - 9);
	memcpy(b.p + b.n, "\n", 1);
	b.n++;
	for (int i = 0; i < 3000; i++)
		b.n += (size_t)sprintf(b.p + b.n, "X-H%d: v\n  cont\n", i);
	{
		static const char tail[] = "From: \"\xff\xfe@\x01\" <a@\xc3(.example>\n"
		    "List-Unsubscribe: x\n\nte\0xt\xff\xfe\xf0\x9f\n";

		memcpy(b.p + b.n, tail, sizeof(tail) - 1);
		b.n += sizeof(tail) - 1;
	}
	lint_str(b.p, b.n, &r, &rc);
	ok(rc == 0 && r.n > 0 && valid_text(&r), "huge header, NUL bytes, invalid UTF-8: clean"
	    " texts");
	lint_report_free(&r);
	free(b.p);

	/* junk everywhere the decoders look */
	{
		static const char *const junk[] = {
			BASE "Subject: =?\n\nx\n",
			BASE "Subject: =?utf-8?\n\nx\n",
			BASE "Subject: =?utf-8?B?\n\nx\n",
			BASE "Subject: =?utf-8?B?\?=\n\nx\n",
			BASE "Subject: =?utf-8?X?abc?=\n\nx\n",
			BASE "Subject: =?utf-8?B?!!!!====?=\n\nx\n",
			BASE "Subject: =?utf-8?Q?=?= =?utf-8?Q?=F?= =?*?Q?a?=\n\nx\n",
			BASE "Content-Transfer-Encoding: base64\n\n====AAAA!!!!=\n",
			BASE "Content-Transfer-Encoding: quoted-printable\n\n=\n=4\n=ZZ=",
			BASE HTML "\n<",
			BASE HTML "\n<a href=\"http://",
			BASE HTML "\n<!-- never closed",
			BASE HTML "\n&#99999999999; &#x; &; &nbsp <a href=http://a.example>b.",
			BASE HTML "\n<p style=\"color:;background:\">x</p><img width= >",
			BASE "Content-Type: multipart/mixed; boundary=\"\"\n\n--\n",
			BASE "Content-Type: multipart/mixed; boundary=\"unterminated\n\n--x\n",
			BASE "Content-Type: multipart/mixed; boundary=a\n\n--a",
			BASE "Content-Type: multipart/mixed; boundary=a\n\n--a\n",
			BASE "Content-Type: multipart/mixed; boundary=a\n\n--a\r",
			"From x\n",
			"From x",
			"A:\n\t\n \n",
		};
		int all = 1;

		for (size_t i = 0; i < ARRAY_LEN(junk); i++) {
			lint_str(junk[i], strlen(junk[i]), &r, &rc);
			if (!valid_text(&r) || (rc == 0 && (r.score < 0 || r.score > 10))) {
				printf("#   junk %zu\n", i);
				all = 0;
			}
			lint_report_free(&r);
		}
		ok(all, "junk in the decoders: no crash, sane reports");
	}
	ok((double)(clock() - t0) / CLOCKS_PER_SEC < 10, "hostile input in bounded time");
}

int
main(void)
{
	test_table();
	test_details();
	test_print();
	test_hostile();
	return done();
}
