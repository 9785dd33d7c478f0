/*
 * bounce - RFC 3464 delivery status notifications and postmaster alerts.
 *
 * The message is assembled in a growing buffer: top-level header, then
 * the three parts of RFC 6522 multipart/report. The parts are built
 * first so that the random boundary can be checked against all of them
 * (RFC 2046 5.1.1: it must not occur in the encapsulated text).
 *
 * Everything taken from outside (reply text, addresses, the original's
 * header section) passes through clean_text(): controls become spaces,
 * 8-bit bytes '?', so the DSN stays 7-bit and cannot grow extra header
 * lines. Header fields are folded at white space near 78 columns (RFC
 * 5322 2.1.1) and words longer than a line are cut, so no line passes
 * 998 octets.
 */
#include "config.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/rand.h>

#include "bounce.h"
#include "classify.h"
#include "smtp_parse.h"
#include "util.h"

#define FOLD_AT 78              /* RFC 5322 2.1.1 "SHOULD" */
#define TEXT_WIDTH 76           /* prose in the human-readable part */
#define WORD_MAX 900            /* longer words are cut to keep < 998 */
#define DATE_MAX 64
#define VALUE_MAX 1024          /* a cleaned address, ENVID, host */
#define BOUNDARY_TRIES 8

#define NULL_SENDER_ERR \
	"no DSN for a null-sender message (RFC 3464 2; send a postmaster alert instead)"

struct buf {
	char *p;
	size_t len, cap;
};

static void
buf_add(struct buf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;

		while (cap < b->len + n + 1)
			cap *= 2;
		b->p = xrealloc(b->p, cap);
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void
buf_str(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

PRINTF_LIKE(2, 3)
static void
buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	s = xmalloc((size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(s, (size_t)n + 1, fmt, ap);
	va_end(ap);
	buf_add(b, s, (size_t)n);
	free(s);
}

/* clean_text - untrusted bytes to one line of printable ASCII: controls
 * (CR, LF, NUL, TAB ...) to spaces, 8-bit to '?'; at most max bytes */
static char *
clean_text(const char *s, size_t len, size_t max)
{
	char *out;

	if (s == NULL)
		len = 0;
	if (len > max)
		len = max;
	out = xmalloc(len + 1);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		out[i] = c >= 0x80 ? '?' : (c < 0x20 || c == 0x7f) ? ' ' : (char)c;
	}
	out[len] = '\0';
	return out;
}

/* clean_value - a short value for a structured field (address, ENVID):
 * kept as is when it is printable ASCII without space, otherwise xtext
 * (RFC 3461 4), which is both unambiguous and safe in a header. */
static int
clean_value(const char *in, char *out, size_t outlen)
{
	const unsigned char *p;

	for (p = (const unsigned char *)in; *p != '\0'; p++)
		if (*p <= 0x20 || *p >= 0x7f)
			break;
	if (*p == '\0')
		return util_strlcpy(out, in, outlen) < outlen ? 0 : -1;
	return smtp_xtext_encode(in, out, outlen);
}

/* next_word - the next space-separated word at or after w (at most
 * WORD_MAX octets: longer ones are cut into pieces), or NULL at the end */
static const char *
next_word(const char *w, size_t *n)
{
	while (*w == ' ')
		w++;
	if (*w == '\0')
		return NULL;
	*n = strcspn(w, " ");
	if (*n > WORD_MAX)
		*n = WORD_MAX;
	return w;
}

/* add_folded - "Name: value" with value already clean, folded at white
 * space before FOLD_AT when a word allows it, cut at WORD_MAX when not */
static void
add_folded(struct buf *b, const char *name, const char *value)
{
	size_t col, n;
	const char *w = value;

	buf_str(b, name);
	buf_str(b, ":");
	col = strlen(name) + 1;
	while ((w = next_word(w, &n)) != NULL) {
		if (col > strlen(name) + 1 && col + 1 + n > FOLD_AT) {
			buf_str(b, "\r\n");
			col = 0;
		}
		buf_str(b, " ");
		buf_add(b, w, n);
		col += 1 + n;
		w += n;
	}
	buf_str(b, "\r\n");
}

/* add_wrapped - prose wrapped at TEXT_WIDTH with an indent; the input is
 * cleaned here, so it may be untrusted */
static void
add_wrapped(struct buf *b, const char *indent, const char *text)
{
	char *t = clean_text(text, text ? strlen(text) : 0, BOUNCE_DIAG_MAX);
	const char *w = t;
	size_t col = 0, n, il = strlen(indent);

	while ((w = next_word(w, &n)) != NULL) {
		if (col > 0 && col + 1 + n > TEXT_WIDTH) {
			buf_str(b, "\r\n");
			col = 0;
		}
		if (col == 0) {
			buf_str(b, indent);
			col = il;
		} else {
			buf_str(b, " ");
			col++;
		}
		buf_add(b, w, n);
		col += n;
		w += n;
	}
	if (col > 0)
		buf_str(b, "\r\n");
	free(t);
}

static int
valid_host(const char *h)
{
	size_t n = 0;

	if (h == NULL)
		return 0;
	for (; h[n] != '\0'; n++)
		if (!isalnum((unsigned char)h[n]) && strchr(".-_[]:", h[n]) == NULL)
			return 0;
	return n > 0 && n < HOST_MAX;
}

/* valid_status - RFC 3464 2.3.4 status-code: class.subject.detail */
static int
valid_status(const char *s)
{
	size_t i = 2, n;

	if (s == NULL || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.')
		return 0;
	for (int part = 0; part < 2; part++) {
		for (n = 0; isdigit((unsigned char)s[i]) && n < 3; i++)
			n++;
		if (n == 0 || (part == 0 && s[i++] != '.'))
			return 0;
	}
	return s[i] == '\0';
}

static int
valid_action(const char *a)
{
	static const char *ok[] = { "failed", "delayed", "delivered", "relayed", "expanded" };

	for (size_t i = 0; i < ARRAY_LEN(ok); i++)
		if (strcmp(a, ok[i]) == 0)
			return 1;
	return 0;
}

/* mem_find - the boundary search; the original may hold NUL bytes */
static int
mem_find(const char *hay, size_t len, const char *needle)
{
	size_t n = strlen(needle);

	for (size_t i = 0; n <= len && i + n <= len; i++)
		if (hay[i] == needle[0] && memcmp(hay + i, needle, n) == 0)
			return 1;
	return 0;
}

static void
random_token(char *out, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char r[12];

	if (RAND_bytes(r, sizeof(r)) != 1)
		memset(r, 0x5a, sizeof(r));   /* then the collision check decides */
	for (size_t i = 0; i < sizeof(r) && 2 * i + 2 < len; i++) {
		out[2 * i] = hex[r[i] >> 4];
		out[2 * i + 1] = hex[r[i] & 15];
		out[2 * i + 2] = '\0';
	}
}

/* add_from - "Mail Delivery System" <MAILER-DAEMON@host>; the display
 * name loses quotes and backslashes rather than needing escapes */
static int
add_from(struct buf *b, const char *hostname, const char *from_addr,
    const char *display, char *err, size_t errlen)
{
	char addr[VALUE_MAX], *d, *q;

	if (from_addr != NULL) {
		if (clean_value(from_addr, addr, sizeof(addr)) == -1 ||
		    strcmp(addr, from_addr) != 0 || strchr(addr, '@') == NULL) {
			snprintf(err, errlen, "unusable From: address");
			return -1;
		}
	} else
		snprintf(addr, sizeof(addr), "MAILER-DAEMON@%s", hostname);
	d = clean_text(display ? display : "Mail Delivery System",
	    display ? strlen(display) : 20, 128);
	for (q = d; *q != '\0'; q++)
		if (*q == '"' || *q == '\\')
			*q = ' ';
	buf_printf(b, "From: \"%s\" <%s>\r\n", d, addr);
	free(d);
	return 0;
}

/* header_section - the original's header lines, cleaned, each cut at the
 * line limit, CRLF-terminated, not more than max bytes, stopping at the
 * first empty line (a message without one is all header) */
static void
header_section(struct buf *b, const char *m, size_t len, size_t max)
{
	size_t i = 0, start = b->len;

	while (i < len) {
		const char *nl = memchr(m + i, '\n', len - i);
		size_t end = nl ? (size_t)(nl - m) : len, ll = end - i;
		char *line;

		if (ll > 0 && m[i + ll - 1] == '\r')
			ll--;
		if (ll == 0)
			break;
		if (ll > BOUNCE_LINE_MAX)
			ll = BOUNCE_LINE_MAX;
		if (b->len - start + ll + 2 > max)
			break;
		line = clean_text(m + i, ll, BOUNCE_LINE_MAX);
		/* a continuation line keeps its leading white space */
		if (m[i] == '\t')
			line[0] = '\t';
		buf_add(b, line, ll);
		buf_str(b, "\r\n");
		free(line);
		i = nl ? end + 1 : len;
	}
}

/* full_ok - RET=FULL only for what can travel as 7bit message/rfc822:
 * CRLF lines of at most 998 octets, no NUL, no bare CR/LF, no 8-bit */
static int
full_ok(const char *m, size_t len, size_t max)
{
	size_t col = 0;

	if (len == 0 || len > max || len < 2 || m[len - 2] != '\r' || m[len - 1] != '\n')
		return 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)m[i];

		if (c == '\r') {
			if (i + 1 >= len || m[i + 1] != '\n')
				return 0;
			i++;
			col = 0;
			continue;
		}
		if (c == '\n' || c == '\0' || c >= 0x80 || ++col > BOUNCE_LINE_MAX)
			return 0;
	}
	return 1;
}

static void
human_part(struct buf *b, const struct bounce_params *p, const char *domain)
{
	char adv[CLASSIFY_ADVICE_MAX], date[DATE_MAX];

	buf_printf(b, "This is the mail system at host %s.\r\n\r\n", p->hostname);
	if (p->kind == BOUNCE_DELAYED)
		add_wrapped(b, "", "Your message has not yet been delivered to the "
		    "recipients listed below. The mail system keeps trying; you do not "
		    "need to send it again. You will be told if delivery finally fails.");
	else
		add_wrapped(b, "", "Your message could not be delivered to the "
		    "recipients listed below. This is a permanent error: the mail "
		    "system will not try again.");
	for (size_t i = 0; i < p->nrcpts; i++) {
		const struct bounce_rcpt *r = &p->rcpts[i];
		enum classify_class c = classify_diagnostic(r->diagnostic, r->status);
		char *line;

		buf_str(b, "\r\n");
		line = xasprintf("<%s>", r->final_rcpt);
		add_wrapped(b, "", line);
		free(line);
		if (p->kind == BOUNCE_DELAYED || classify_is_permanent(c)) {
			line = xasprintf("What happened: %s.", classify_describe(c));
			add_wrapped(b, "    ", line);
			free(line);
		} else
			add_wrapped(b, "    ", "What happened: delivery kept failing with "
			    "temporary errors until the message expired.");
		if (r->diagnostic != NULL && r->diagnostic[0] != '\0') {
			const char *dg = r->diagnostic;

			/* people need the reply, not its diagnostic-type */
			if (strncasecmp(dg, "smtp;", 5) == 0)
				dg += 5;
			line = xasprintf("The receiving system said: %s", dg);
			add_wrapped(b, "    ", line);
			free(line);
		}
		if (p->kind == BOUNCE_DELAYED) {
			if (r->will_retry_until != 0) {
				util_rfc5322_date(r->will_retry_until, date, sizeof(date));
				line = xasprintf("What to do: nothing for now; delivery is "
				    "retried until %s.", date);
			} else
				line = xstrdup("What to do: nothing for now; delivery is retried.");
		} else if (classify_is_permanent(c))
			line = xasprintf("What to do: %s.",
			    classify_advice(c, domain, adv, sizeof(adv)));
		else
			line = xstrdup("What to do: the receiving system may be down or "
			    "refusing mail for now; send the message again later, or ask "
			    "the recipient's postmaster.");
		add_wrapped(b, "    ", line);
		free(line);
	}
	buf_str(b, "\r\n");
	add_wrapped(b, "", p->ret == BOUNCE_RET_FULL && p->orig_len > 0 ?
	    "The returned message (or its header section, if it could not be "
	    "returned whole) is attached." :
	    "The header section of your message is attached.");
}

static int
status_part(struct buf *b, const struct bounce_params *p, char *err, size_t errlen)
{
	char v[VALUE_MAX], date[DATE_MAX];

	buf_printf(b, "Reporting-MTA: dns; %s\r\n", p->hostname);
	buf_printf(b, "X-Outpost-Queue-ID: %s\r\n", p->queue_id);
	if (p->envid != NULL && p->envid[0] != '\0') {
		if (clean_value(p->envid, v, sizeof(v)) == -1) {
			snprintf(err, errlen, "ENVID too long");
			return -1;
		}
		add_folded(b, "Original-Envelope-Id", v);
	}
	if (p->arrival != 0) {
		util_rfc5322_date(p->arrival, date, sizeof(date));
		buf_printf(b, "Arrival-Date: %s\r\n", date);
	}
	for (size_t i = 0; i < p->nrcpts; i++) {
		const struct bounce_rcpt *r = &p->rcpts[i];
		const char *action = r->action ? r->action :
		    p->kind == BOUNCE_DELAYED ? "delayed" : "failed";

		buf_str(b, "\r\n");
		if (r->orcpt != NULL && r->orcpt[0] != '\0') {
			char *f;

			if (clean_value(r->orcpt, v, sizeof(v)) == -1) {
				snprintf(err, errlen, "ORCPT of recipient %zu too long", i + 1);
				return -1;
			}
			f = xasprintf("rfc822;%s", v);
			add_folded(b, "Original-Recipient", f);
			free(f);
		}
		if (clean_value(r->final_rcpt, v, sizeof(v)) == -1) {
			snprintf(err, errlen, "recipient %zu too long", i + 1);
			return -1;
		}
		buf_printf(b, "Final-Recipient: rfc822; %s\r\n", v);
		buf_printf(b, "Action: %s\r\n", action);
		buf_printf(b, "Status: %s\r\n", r->status);
		if (r->remote_mta != NULL && r->remote_mta[0] != '\0' &&
		    clean_value(r->remote_mta, v, sizeof(v)) == 0)
			buf_printf(b, "Remote-MTA: dns; %s\r\n", v);
		if (r->diagnostic != NULL && r->diagnostic[0] != '\0') {
			char *d = clean_text(r->diagnostic, strlen(r->diagnostic),
			    BOUNCE_DIAG_MAX), *f, *s = d;
			size_t t;

			while (*s == ' ')
				s++;
			/* keep a diagnostic-type the caller gave ("smtp;",
			 * "X-Postfix;"), else it is an SMTP reply */
			t = strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-");
			f = t > 0 && s[t] == ';' ? xstrdup(s) : xasprintf("smtp; %s", s);
			add_folded(b, "Diagnostic-Code", f);
			free(f);
			free(d);
		}
		if (r->last_attempt != 0) {
			util_rfc5322_date(r->last_attempt, date, sizeof(date));
			buf_printf(b, "Last-Attempt-Date: %s\r\n", date);
		}
		if (strcmp(action, "delayed") == 0 && r->will_retry_until != 0) {
			util_rfc5322_date(r->will_retry_until, date, sizeof(date));
			buf_printf(b, "Will-Retry-Until: %s\r\n", date);
		}
	}
	return 0;
}

static int
check_params(const struct bounce_params *p, char *err, size_t errlen)
{
	if (p->sender == NULL || p->sender[0] == '\0' || strcmp(p->sender, "<>") == 0) {
		snprintf(err, errlen, "%s", NULL_SENDER_ERR);
		return -1;
	}
	if (!smtp_addr_valid(p->sender, 1)) {
		snprintf(err, errlen, "unusable envelope sender for the DSN's To:");
		return -1;
	}
	if (!valid_host(p->hostname)) {
		snprintf(err, errlen, "reporting MTA hostname missing or invalid");
		return -1;
	}
	if (p->queue_id == NULL || p->queue_id[0] == '\0' ||
	    strspn(p->queue_id, "0123456789ABCDEFabcdef") != strlen(p->queue_id) ||
	    strlen(p->queue_id) > 64) {
		snprintf(err, errlen, "queue id missing or invalid");
		return -1;
	}
	if (p->nrcpts == 0 || p->rcpts == NULL || p->nrcpts > BOUNCE_RCPTS_MAX) {
		snprintf(err, errlen, "a DSN needs 1 to %d recipients", BOUNCE_RCPTS_MAX);
		return -1;
	}
	for (size_t i = 0; i < p->nrcpts; i++) {
		const struct bounce_rcpt *r = &p->rcpts[i];

		if (r->final_rcpt == NULL || r->final_rcpt[0] == '\0') {
			snprintf(err, errlen, "recipient %zu has no address", i + 1);
			return -1;
		}
		if (!valid_status(r->status)) {
			snprintf(err, errlen, "recipient %zu: status is not x.y.z", i + 1);
			return -1;
		}
		if (r->action != NULL && !valid_action(r->action)) {
			snprintf(err, errlen, "recipient %zu: unknown action", i + 1);
			return -1;
		}
	}
	return 0;
}

/* bounce_build - the DSN of RFC 3464 as one multipart/report */
int
bounce_build(const struct bounce_params *p, char **out, size_t *outlen,
    char *err, size_t errlen)
{
	struct buf human = { 0 }, status = { 0 }, orig = { 0 }, msg = { 0 };
	char boundary[64], tok[32], date[DATE_MAX], *to;
	size_t max = p->return_max ? p->return_max : BOUNCE_RETURN_MAX;
	int full, tries;

	*out = NULL;
	*outlen = 0;
	if (check_params(p, err, errlen) == -1)
		return -1;
	human_part(&human, p, util_addr_domain(p->sender));
	if (status_part(&status, p, err, errlen) == -1)
		goto fail;
	full = p->ret == BOUNCE_RET_FULL && p->orig != NULL &&
	    full_ok(p->orig, p->orig_len, max);
	if (full)
		buf_add(&orig, p->orig, p->orig_len);
	else if (p->orig != NULL)
		header_section(&orig, p->orig, p->orig_len, max);
	buf_str(&orig, "");     /* an empty original still gets a buffer */

	for (tries = 0; tries < BOUNDARY_TRIES; tries++) {
		random_token(tok, sizeof(tok));
		snprintf(boundary, sizeof(boundary), "=_outpost_%s_%s", p->queue_id, tok);
		if (!mem_find(orig.p, orig.len, boundary) &&
		    !mem_find(human.p, human.len, boundary) &&
		    !mem_find(status.p, status.len, boundary))
			break;
	}
	if (tries == BOUNDARY_TRIES) {
		snprintf(err, errlen, "no MIME boundary absent from the message");
		goto fail;
	}

	if (add_from(&msg, p->hostname, p->from_addr, p->from_display, err, errlen) == -1)
		goto fail;
	to = xasprintf("<%s>", p->sender);
	add_folded(&msg, "To", to);
	free(to);
	buf_printf(&msg, "Subject: %s\r\n", p->kind == BOUNCE_DELAYED ?
	    "Delayed Mail (still being retried)" : "Undelivered Mail Returned to Sender");
	util_rfc5322_date(p->now, date, sizeof(date));
	buf_printf(&msg, "Date: %s\r\n", date);
	buf_printf(&msg, "Message-ID: <%s.%lld@%s>\r\n", p->queue_id,
	    (long long)p->now, p->hostname);
	buf_str(&msg, "MIME-Version: 1.0\r\n");
	buf_str(&msg, "Auto-Submitted: auto-replied\r\n");
	buf_printf(&msg, "Content-Type: multipart/report; report-type=delivery-status;\r\n"
	    "\tboundary=\"%s\"\r\n", boundary);
	buf_str(&msg, "\r\nThis is a MIME-encapsulated message.\r\n\r\n");

	buf_printf(&msg, "--%s\r\nContent-Description: Notification\r\n"
	    "Content-Type: text/plain; charset=us-ascii\r\n\r\n", boundary);
	buf_add(&msg, human.p, human.len);
	buf_printf(&msg, "\r\n--%s\r\nContent-Description: Delivery report\r\n"
	    "Content-Type: message/delivery-status\r\n\r\n", boundary);
	buf_add(&msg, status.p, status.len);
	buf_printf(&msg, "\r\n--%s\r\n", boundary);
	if (full)
		buf_str(&msg, "Content-Description: Undelivered Message\r\n"
		    "Content-Type: message/rfc822\r\n\r\n");
	else
		buf_str(&msg, "Content-Description: Undelivered Message Headers\r\n"
		    "Content-Type: text/rfc822-headers\r\n\r\n");
	buf_add(&msg, orig.p, orig.len);
	buf_printf(&msg, "\r\n--%s--\r\n", boundary);

	free(human.p);
	free(status.p);
	free(orig.p);
	*out = msg.p;
	*outlen = msg.len;
	return 0;
fail:
	free(human.p);
	free(status.p);
	free(orig.p);
	free(msg.p);
	return -1;
}

/* bounce_alert_build - a plain-text notice to postmaster; also what a
 * failed null-sender message turns into instead of a DSN */
int
bounce_alert_build(const struct bounce_alert_params *p, char **out,
    size_t *outlen, char *err, size_t errlen)
{
	struct buf msg = { 0 };
	char date[DATE_MAX], tok[32], *s, *f;

	*out = NULL;
	*outlen = 0;
	if (!valid_host(p->hostname)) {
		snprintf(err, errlen, "hostname missing or invalid");
		return -1;
	}
	if (p->to == NULL || !smtp_addr_valid(p->to, 1)) {
		snprintf(err, errlen, "postmaster address missing or invalid");
		return -1;
	}
	if (add_from(&msg, p->hostname, p->from_addr, p->from_display, err, errlen) == -1) {
		free(msg.p);
		return -1;
	}
	s = xasprintf("<%s>", p->to);
	add_folded(&msg, "To", s);
	free(s);
	s = clean_text(p->cause ? p->cause : "unspecified",
	    p->cause ? strlen(p->cause) : 11, 200);
	f = xasprintf("outpost alert: %s", s);
	add_folded(&msg, "Subject", f);
	free(f);
	free(s);
	util_rfc5322_date(p->now, date, sizeof(date));
	buf_printf(&msg, "Date: %s\r\n", date);
	random_token(tok, sizeof(tok));
	buf_printf(&msg, "Message-ID: <alert.%s.%lld@%s>\r\n", tok, (long long)p->now,
	    p->hostname);
	buf_str(&msg, "MIME-Version: 1.0\r\n");
	buf_str(&msg, "Content-Type: text/plain; charset=us-ascii\r\n");
	buf_str(&msg, "Auto-Submitted: auto-generated\r\n\r\n");
	buf_printf(&msg, "This is the mail system at host %s.\r\n\r\n", p->hostname);
	if (p->queue_id != NULL && valid_host(p->queue_id))
		buf_printf(&msg, "Queue id: %s\r\n\r\n", p->queue_id);
	/* details: each line of the caller's text wrapped on its own */
	for (const char *d = p->details ? p->details : ""; *d != '\0';) {
		size_t n = strcspn(d, "\n");
		char *line = xstrndup(d, n);

		if (n == 0 || (n == 1 && line[0] == '\r'))
			buf_str(&msg, "\r\n");
		else
			add_wrapped(&msg, "", line);
		free(line);
		d += n;
		if (*d == '\n')
			d++;
	}
	if (p->advice != NULL && p->advice[0] != '\0') {
		s = xasprintf("What to do: %s.", p->advice);
		buf_str(&msg, "\r\n");
		add_wrapped(&msg, "", s);
		free(s);
	}
	*out = msg.p;
	*outlen = msg.len;
	return 0;
}
