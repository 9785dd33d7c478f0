/*
 * smtp_parse - pure parsers for the SMTP protocol, both directions.
 *
 * Server side: the command verb (a table, looked up case-insensitively),
 * the MAIL/RCPT path (RFC 5321 4.1.2) and its ESMTP parameters: SIZE
 * (RFC 1870), BODY (RFC 6152), SMTPUTF8 (RFC 6531), RET/ENVID/NOTIFY/ORCPT
 * (RFC 3461) and AUTH= (RFC 4954 5). Client side: the upstream's replies,
 * multi-line (RFC 5321 4.2.1) with enhanced status codes (RFC 2034).
 *
 * Everything here is untrusted input. Nothing is interpreted beyond the
 * grammar: '%' and '!' in a local part are plain characters (RFC 5321
 * 2.3.11 / S8), and any control character is refused before parsing so
 * that none can reach Received:, DSNs or the queue (S7). Every copy is
 * bounded by the sizes in smtp_parse.h; long input is refused or cut,
 * never written past a buffer.
 */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "smtp_parse.h"

#define LOCAL_MAX 64    /* RFC 5321 4.5.3.1.1 */
#define DOMAIN_MAX 255  /* RFC 5321 4.5.3.1.2 */
#define LABEL_MAX 63    /* RFC 1035 2.3.4 */
#define PATH_MAX_LEN 256 /* RFC 5321 4.5.3.1.3, "<" and ">" included */
#define HELO_MAX 255

static const struct {
	const char *name;
	enum smtp_verb verb;
} verbs[] = {
	{ "HELO", SMTP_VERB_HELO },
	{ "EHLO", SMTP_VERB_EHLO },
	{ "MAIL", SMTP_VERB_MAIL },
	{ "RCPT", SMTP_VERB_RCPT },
	{ "DATA", SMTP_VERB_DATA },
	{ "RSET", SMTP_VERB_RSET },
	{ "NOOP", SMTP_VERB_NOOP },
	{ "QUIT", SMTP_VERB_QUIT },
	{ "VRFY", SMTP_VERB_VRFY },
	{ "EXPN", SMTP_VERB_EXPN },
	{ "HELP", SMTP_VERB_HELP },
	{ "STARTTLS", SMTP_VERB_STARTTLS },
	{ "AUTH", SMTP_VERB_AUTH },
	{ "BDAT", SMTP_VERB_BDAT },
};

/* is_alpha - ASCII letter, whatever the locale */
static int
is_alpha(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* is_digit - ASCII digit */
static int
is_digit(int c)
{
	return c >= '0' && c <= '9';
}

/* is_ctl - a control character, C0 or DEL */
static int
is_ctl(int c)
{
	return c < 0x20 || c == 0x7f;
}

/* is_atext - RFC 5322 3.2.3 atext: letters, digits and !#$%&'*+-/=?^_`{|}~ */
static int
is_atext(int c)
{
	return is_alpha(c) || is_digit(c) || (c != 0 && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* set_err - fill the caller's reply buffer, bounded */
static void
set_err(char *err, size_t errlen, const char *msg)
{
	if (err != NULL && errlen > 0)
		util_strlcpy(err, msg, errlen);
}

/* smtp_parse_verb - split "VERB args"; the verb table is looked up
 * case-insensitively (RFC 5321 2.4: verbs are case-insensitive) */
enum smtp_verb
smtp_parse_verb(const char *line, const char **args)
{
	char word[16];
	size_t n = 0;
	const char *p = line;
	enum smtp_verb v = SMTP_VERB_UNKNOWN;

	while (*p != '\0' && *p != ' ') {
		if (n < sizeof(word) - 1)
			word[n] = *p;
		n++;
		p++;
	}
	if (n < sizeof(word)) {
		word[n] = '\0';
		for (size_t i = 0; i < ARRAY_LEN(verbs); i++)
			if (util_strcaseeq(word, verbs[i].name)) {
				v = verbs[i].verb;
				break;
			}
	}
	while (*p == ' ')
		p++;
	if (args != NULL)
		*args = p;
	return v;
}

/* smtp_verb_name - upper-case name of a verb for logs */
const char *
smtp_verb_name(enum smtp_verb v)
{
	for (size_t i = 0; i < ARRAY_LEN(verbs); i++)
		if (verbs[i].verb == v)
			return verbs[i].name;
	return "UNKNOWN";
}

/* utf8_valid - well-formed UTF-8 (RFC 3629 4): no overlong forms, no
 * surrogates, nothing above U+10FFFF */
static int
utf8_valid(const unsigned char *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		unsigned c = s[i];
		size_t n;
		uint32_t cp;

		if (c < 0x80) {
			i++;
			continue;
		} else if (c >= 0xc2 && c <= 0xdf) {
			n = 1, cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2, cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3, cp = c & 0x07;
		} else {
			return 0;
		}
		if (len - i - 1 < n)
			return 0;
		for (size_t k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
		    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += n + 1;
	}
	return 1;
}

/* domain_valid - RFC 5321 4.1.2 Domain (LDH labels, each 1..63 octets,
 * 255 in all) or address-literal ([v4] or [IPv6:...], 4.1.3); with utf8
 * a label may also hold non-ASCII octets (U-labels, RFC 6531 3.3) */
static int
domain_valid(const char *d, size_t len, int utf8)
{
	if (len == 0 || len > DOMAIN_MAX)
		return 0;
	if (d[0] == '[') {
		char lit[IP_STR_MAX];
		unsigned char bin[sizeof(struct in6_addr)];
		const char *in = d + 1;
		size_t n = len - 2;
		int af = AF_INET;

		if (len < 3 || d[len - 1] != ']')
			return 0;
		if (n > 5 && util_strncaseprefix(in, "IPv6:")) {
			af = AF_INET6;
			in += 5, n -= 5;
		}
		if (n >= sizeof(lit))
			return 0;
		memcpy(lit, in, n);
		lit[n] = '\0';
		return inet_pton(af, lit, bin) == 1;
	}
	size_t label = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)d[i];

		if (c == '.') {
			if (label == 0 || d[i - 1] == '-')
				return 0;
			label = 0;
			continue;
		}
		if (c == '-') {
			if (label == 0)
				return 0;
		} else if (!is_alpha(c) && !is_digit(c) && !(utf8 && c >= 0x80)) {
			return 0;
		}
		if (++label > LABEL_MAX)
			return 0;
	}
	return label > 0 && d[len - 1] != '-';
}

/* local_len - length of a valid local part at the start of s (dot-atom
 * or quoted-string, RFC 5321 4.1.2), or 0 if there is none */
static size_t
local_len(const char *s, int utf8)
{
	size_t i = 0;

	if (s[0] == '"') {
		for (i = 1; s[i] != '"'; i++) {
			unsigned char c = (unsigned char)s[i];

			if (c == '\0')
				return 0;
			if (c == '\\') {
				/* quoted-pairSMTP = %d92 %d32-126 */
				c = (unsigned char)s[++i];
				if (c < 0x20 || c > 0x7e)
					return 0;
			} else if (c >= 0x80) {
				if (!utf8)
					return 0;
			} else if (c < 0x20 || c == 0x7f) {
				return 0;
			}
		}
		return i + 1;
	}
	for (;;) {
		size_t start = i;

		while (is_atext((unsigned char)s[i]) || (utf8 && (unsigned char)s[i] >= 0x80))
			i++;
		if (i == start)
			return 0;
		if (s[i] != '.')
			return i;
		i++;
	}
}

/* smtp_addr_valid - RFC 5321 4.1.2 Mailbox, length limits of 4.5.3.1 */
int
smtp_addr_valid(const char *addr, int utf8)
{
	size_t len = strlen(addr), ll;
	int high = 0;

	if (len == 0 || len > PATH_MAX_LEN - 2)
		return 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)addr[i];
		if (is_ctl(c))
			return 0;
		if (c >= 0x80)
			high = 1;
	}
	if (high && (!utf8 || !utf8_valid((const unsigned char *)addr, len)))
		return 0;
	ll = local_len(addr, utf8);
	if (ll == 0 || ll > LOCAL_MAX || addr[ll] != '@')
		return 0;
	return domain_valid(addr + ll + 1, len - ll - 1, utf8);
}

/* hexval - value of an upper-case hex digit (RFC 3461 4 xtext), or -1 */
static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* smtp_xtext_decode - RFC 3461 4: xchar is 0x21..0x7e except '+' and '=',
 * "+HH" (upper-case hex) stands for any other octet; we only let
 * printable ASCII out, so +0D+0A and friends are refused (S7) */
int
smtp_xtext_decode(const char *in, char *out, size_t outlen)
{
	size_t o = 0;

	if (outlen == 0)
		return -1;
	for (const char *p = in; *p != '\0'; p++) {
		unsigned char c = (unsigned char)*p;

		if (c < 0x21 || c > 0x7e || c == '=')
			return -1;
		if (c == '+') {
			int hi = hexval((unsigned char)p[1]), lo;

			if (hi < 0)
				return -1;
			lo = hexval((unsigned char)p[2]);
			if (lo < 0)
				return -1;
			c = (unsigned char)(hi * 16 + lo);
			if (c < 0x20 || c > 0x7e)
				return -1;
			p += 2;
		}
		if (o + 1 >= outlen)
			return -1;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return 0;
}

/* smtp_xtext_encode - RFC 3461 4, for parameters we pass upstream */
int
smtp_xtext_encode(const char *in, char *out, size_t outlen)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	if (outlen == 0)
		return -1;
	for (const unsigned char *p = (const unsigned char *)in; *p != '\0'; p++) {
		if (*p >= 0x21 && *p <= 0x7e && *p != '+' && *p != '=') {
			if (o + 1 >= outlen)
				return -1;
			out[o++] = (char)*p;
		} else {
			if (o + 3 >= outlen)
				return -1;
			out[o++] = '+';
			out[o++] = hex[*p >> 4];
			out[o++] = hex[*p & 15];
		}
	}
	out[o] = '\0';
	return 0;
}

/* smtp_helo_valid - the EHLO/HELO argument: one word of printable ASCII.
 * We do not insist on a resolvable name (RFC 5321 4.1.4 forbids refusing
 * on that ground); we only keep junk out of Received:. */
int
smtp_helo_valid(const char *arg)
{
	size_t n = 0;

	if (arg == NULL || *arg == '\0')
		return 0;
	for (; arg[n] != '\0'; n++) {
		unsigned char c = (unsigned char)arg[n];
		if (c < 0x21 || c > 0x7e || n >= HELO_MAX)
			return 0;
	}
	return 1;
}

/*
 * The path: "<" [ A-d-l ":" ] Mailbox ">" (RFC 5321 4.1.2).
 */
struct path {
	const char *mbox;   /* start of the mailbox, after any source route */
	size_t mboxlen;
	const char *rest;   /* what follows '>' */
};

/* path_split - find the end of "<...>" honouring quoted strings (a '>'
 * inside "..." does not end the path) and drop a source route
 * "@a,@b:" (RFC 5321 4.1.1.3 and appendix C). Returns 0 or -1. */
static int
path_split(const char *s, struct path *pp)
{
	size_t i, end;
	int inq = 0;

	if (s[0] != '<')
		return -1;
	for (i = 1; s[i] != '\0'; i++) {
		if (inq && s[i] == '\\' && s[i + 1] != '\0')
			i++;
		else if (s[i] == '"')
			inq = !inq;
		else if (!inq && s[i] == '>')
			break;
	}
	if (s[i] != '>' || i + 1 > PATH_MAX_LEN)
		return -1;
	end = i;
	pp->rest = s + end + 1;
	i = 1;
	if (s[1] == '@') {
		/* A-d-l = At-domain *( "," At-domain ); we check and drop it */
		for (;;) {
			size_t d = ++i;   /* after '@' */

			while (i < end && s[i] != ',' && s[i] != ':') {
				if (s[i] == '[')   /* "[IPv6:...]" holds colons */
					while (i < end && s[i] != ']')
						i++;
				if (i < end)
					i++;
			}
			if (i >= end || !domain_valid(s + d, i - d, 0))
				return -1;
			if (s[i] == ':')
				break;
			if (s[++i] != '@')
				return -1;
		}
		i++;
	}
	pp->mbox = s + i;
	pp->mboxlen = end - i;
	return 0;
}

/* param_keyword - check esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-") */
static int
param_keyword(const char *k, size_t n)
{
	if (n == 0 || !(is_alpha((unsigned char)k[0]) || is_digit((unsigned char)k[0])))
		return 0;
	for (size_t i = 1; i < n; i++)
		if (!is_alpha((unsigned char)k[i]) && !is_digit((unsigned char)k[i]) && k[i] != '-')
			return 0;
	return 1;
}

/* param_value - esmtp-value = 1*(%d33-60 / %d62-126) (RFC 5321 4.1.2);
 * also refuses non-ASCII, which no parameter we know admits */
static int
param_value(const char *v)
{
	if (*v == '\0')
		return 0;
	for (; *v != '\0'; v++)
		if ((unsigned char)*v < 33 || (unsigned char)*v > 126 || *v == '=')
			return 0;
	return 1;
}

/* keyeq - case-insensitive compare of a length-bounded keyword */
static int
keyeq(const char *k, size_t n, const char *name)
{
	return strlen(name) == n && util_strncaseprefix(k, name);
}

/* parse_size - SIZE=1*20DIGIT (RFC 1870 3); saturates instead of
 * wrapping, so a huge value is refused later by the size check */
static int
parse_size(const char *v, size_t *out)
{
	size_t n = 0, len = strlen(v);

	if (len == 0 || len > 20)
		return -1;
	for (; *v != '\0'; v++) {
		if (!is_digit((unsigned char)*v))
			return -1;
		if (n > (SIZE_MAX - 9) / 10)
			n = SIZE_MAX;
		else
			n = n * 10 + (size_t)(*v - '0');
	}
	*out = n;
	return 0;
}

/* parse_notify - NOTIFY=NEVER or a comma list of SUCCESS, FAILURE, DELAY
 * (RFC 3461 4.1); NEVER stands alone */
static int
parse_notify(const char *v, int *out)
{
	int bits = 0;

	for (;;) {
		const char *e = strchr(v, ',');
		size_t n = e ? (size_t)(e - v) : strlen(v);
		int b;

		if (keyeq(v, n, "NEVER"))
			b = SMTP_NOTIFY_NEVER;
		else if (keyeq(v, n, "SUCCESS"))
			b = SMTP_NOTIFY_SUCCESS;
		else if (keyeq(v, n, "FAILURE"))
			b = SMTP_NOTIFY_FAILURE;
		else if (keyeq(v, n, "DELAY"))
			b = SMTP_NOTIFY_DELAY;
		else
			return -1;
		if (bits & b)
			return -1;
		bits |= b;
		if (e == NULL)
			break;
		v = e + 1;
	}
	if ((bits & SMTP_NOTIFY_NEVER) && bits != SMTP_NOTIFY_NEVER)
		return -1;
	*out = bits;
	return 0;
}

/* parse_orcpt - ORCPT=addr-type ";" xtext (RFC 3461 4.2); kept as
 * "type;decoded", printable ASCII */
static int
parse_orcpt(const char *v, char *out, size_t outlen)
{
	const char *semi = strchr(v, ';');
	size_t tl;

	if (semi == NULL || semi == v || semi[1] == '\0')
		return -1;
	tl = (size_t)(semi - v);
	if (!param_keyword(v, tl) || tl + 2 >= outlen)
		return -1;
	memcpy(out, v, tl + 1);
	return smtp_xtext_decode(semi + 1, out + tl + 1, outlen - tl - 1);
}

enum { P_SIZE = 1, P_BODY = 2, P_UTF8 = 4, P_RET = 8, P_ENVID = 16, P_AUTH = 32,
	P_NOTIFY = 64, P_ORCPT = 128 };

/* ctl_check - S7: refuse any control character before looking further */
static int
ctl_check(const char *args, char *err, size_t errlen)
{
	for (const char *p = args; *p != '\0'; p++)
		if (is_ctl((unsigned char)*p)) {
			set_err(err, errlen, "500 5.5.2 Control characters are not allowed in commands");
			return -1;
		}
	return 0;
}

/* parse_params - walk "KEY[=VALUE] ..." after the path and hand each to
 * the MAIL or the RCPT handler; returns 0 or -1 with err set */
static int
parse_params(const char *rest, struct smtp_mail *m, struct smtp_rcpt *r,
    char *err, size_t errlen)
{
	char buf[SMTP_LINE_MAX];
	unsigned seen = 0;
	const char *p = rest;

	if (*p != '\0' && *p != ' ')
		goto syntax;
	for (;;) {
		const char *start, *eq;
		size_t n, kl;
		unsigned bit = 0;
		const char *val;

		while (*p == ' ')
			p++;
		if (*p == '\0')
			return 0;
		start = p;
		while (*p != '\0' && *p != ' ')
			p++;
		n = (size_t)(p - start);
		if (n >= sizeof(buf))
			goto syntax;
		memcpy(buf, start, n);
		buf[n] = '\0';
		eq = strchr(buf, '=');
		kl = eq ? (size_t)(eq - buf) : n;
		val = eq ? eq + 1 : NULL;
		if (!param_keyword(buf, kl) || (val != NULL && !param_value(val)))
			goto syntax;

		if (m != NULL && keyeq(buf, kl, "SIZE")) {
			bit = P_SIZE;
			if (val == NULL || parse_size(val, &m->size) < 0)
				goto syntax;
			m->has_size = 1;
		} else if (m != NULL && keyeq(buf, kl, "BODY")) {
			bit = P_BODY;
			if (val != NULL && util_strcaseeq(val, "7BIT"))
				m->body = SMTP_BODY_7BIT;
			else if (val != NULL && util_strcaseeq(val, "8BITMIME"))
				m->body = SMTP_BODY_8BITMIME;
			else
				goto syntax;
		} else if (m != NULL && keyeq(buf, kl, "SMTPUTF8")) {
			bit = P_UTF8;
			if (val != NULL)
				goto syntax;
			m->smtputf8 = 1;
		} else if (m != NULL && keyeq(buf, kl, "RET")) {
			bit = P_RET;
			if (val != NULL && util_strcaseeq(val, "FULL"))
				m->ret = SMTP_RET_FULL;
			else if (val != NULL && util_strcaseeq(val, "HDRS"))
				m->ret = SMTP_RET_HDRS;
			else
				goto syntax;
		} else if (m != NULL && keyeq(buf, kl, "ENVID")) {
			bit = P_ENVID;
			if (val == NULL || smtp_xtext_decode(val, m->envid, sizeof(m->envid)) < 0)
				goto syntax;
		} else if (m != NULL && keyeq(buf, kl, "AUTH")) {
			/* RFC 4954 5: "<>" or xtext of the mailbox; checked
			 * once SMTPUTF8 is known, in smtp_parse_mail */
			bit = P_AUTH;
			if (val == NULL)
				goto syntax;
			if (strcmp(val, "<>") == 0)
				util_strlcpy(m->auth, "<>", sizeof(m->auth));
			else if (smtp_xtext_decode(val, m->auth, sizeof(m->auth)) < 0)
				goto syntax;
		} else if (r != NULL && keyeq(buf, kl, "NOTIFY")) {
			bit = P_NOTIFY;
			if (val == NULL || parse_notify(val, &r->notify) < 0)
				goto syntax;
		} else if (r != NULL && keyeq(buf, kl, "ORCPT")) {
			bit = P_ORCPT;
			if (val == NULL || parse_orcpt(val, r->orcpt, sizeof(r->orcpt)) < 0)
				goto syntax;
		} else {
			set_err(err, errlen, m != NULL ?
			    "555 5.5.4 Unsupported MAIL FROM parameter" :
			    "555 5.5.4 Unsupported RCPT TO parameter");
			return -1;
		}
		if (seen & bit) {
			set_err(err, errlen, "501 5.5.4 Duplicate parameter");
			return -1;
		}
		seen |= bit;
	}
syntax:
	set_err(err, errlen, m != NULL ?
	    "501 5.5.4 Syntax: MAIL FROM:<address> [parameters]" :
	    "501 5.5.4 Syntax: RCPT TO:<address> [parameters]");
	return -1;
}

/* path_start - match "FROM:" / "TO:" case-insensitively and skip the
 * spaces many clients put after the colon (RFC 5321 has none) */
static const char *
path_start(const char *args, const char *kw)
{
	if (!util_strncaseprefix(args, kw))
		return NULL;
	args += strlen(kw);
	while (*args == ' ')
		args++;
	return args;
}

/* smtp_parse_mail - "FROM:<path> [params]" (RFC 5321 4.1.1.2) */
int
smtp_parse_mail(const char *args, struct smtp_mail *out, char *err, size_t errlen)
{
	struct path pp;
	const char *s;

	memset(out, 0, sizeof(*out));
	if (ctl_check(args, err, errlen) < 0)
		return -1;
	if ((s = path_start(args, "FROM:")) == NULL || path_split(s, &pp) < 0) {
		set_err(err, errlen, "501 5.5.4 Syntax: MAIL FROM:<address> [parameters]");
		return -1;
	}
	if (parse_params(pp.rest, out, NULL, err, errlen) < 0)
		return -1;
	if (out->auth[0] != '\0' && strcmp(out->auth, "<>") != 0 &&
	    !smtp_addr_valid(out->auth, out->smtputf8)) {
		set_err(err, errlen, "501 5.5.4 Bad AUTH= parameter");
		return -1;
	}
	if (pp.mboxlen == 0) {
		if (pp.mbox != s + 1) {   /* "<@a:>": a route and no mailbox */
			set_err(err, errlen, "501 5.1.7 Bad sender address syntax");
			return -1;
		}
		return 0;   /* the null reverse-path (RFC 5321 4.5.5) */
	}
	if (pp.mboxlen >= sizeof(out->addr)) {
		set_err(err, errlen, "501 5.1.7 Bad sender address syntax");
		return -1;
	}
	memcpy(out->addr, pp.mbox, pp.mboxlen);
	out->addr[pp.mboxlen] = '\0';
	if (!smtp_addr_valid(out->addr, out->smtputf8)) {
		out->addr[0] = '\0';
		set_err(err, errlen, "501 5.1.7 Bad sender address syntax");
		return -1;
	}
	return 0;
}

/* smtp_parse_rcpt - "TO:<path> [params]" (RFC 5321 4.1.1.3); the bare
 * "<postmaster>" is accepted as RFC 5321 4.5.1 demands */
int
smtp_parse_rcpt(const char *args, int allow_utf8, struct smtp_rcpt *out, char *err, size_t errlen)
{
	struct path pp;
	const char *s;

	memset(out, 0, sizeof(*out));
	if (ctl_check(args, err, errlen) < 0)
		return -1;
	if ((s = path_start(args, "TO:")) == NULL || path_split(s, &pp) < 0) {
		set_err(err, errlen, "501 5.5.4 Syntax: RCPT TO:<address> [parameters]");
		return -1;
	}
	if (parse_params(pp.rest, NULL, out, err, errlen) < 0)
		return -1;
	if (pp.mboxlen == 0 || pp.mboxlen >= sizeof(out->addr)) {
		set_err(err, errlen, "501 5.1.3 Bad recipient address syntax");
		return -1;
	}
	memcpy(out->addr, pp.mbox, pp.mboxlen);
	out->addr[pp.mboxlen] = '\0';
	if (util_strcaseeq(out->addr, "postmaster")) {
		util_strlcpy(out->addr, "postmaster", sizeof(out->addr));
		return 0;
	}
	if (!smtp_addr_valid(out->addr, allow_utf8)) {
		out->addr[0] = '\0';
		set_err(err, errlen, "501 5.1.3 Bad recipient address syntax");
		return -1;
	}
	return 0;
}

/* smtp_reply_init - an empty reply, ready for the first line */
void
smtp_reply_init(struct smtp_reply *r)
{
	memset(r, 0, sizeof(*r));
}

/* enh_len - length of an RFC 2034 enhanced code "C.SSS.DDD" at the start
 * of t (class matching the reply's first digit), followed by a space or
 * the end; 0 if there is none */
static size_t
enh_len(const char *t, size_t n, int cls)
{
	size_t i = 0, d;

	if (n < 5 || t[0] != '0' + cls || (cls != 2 && cls != 4 && cls != 5) || t[1] != '.')
		return 0;
	i = 2;
	for (int part = 0; part < 2; part++) {
		for (d = 0; i < n && d < 4 && is_digit((unsigned char)t[i]); d++)
			i++;
		if (d < 1 || d > 3)
			return 0;
		if (part == 0) {
			if (i >= n || t[i] != '.')
				return 0;
			i++;
		}
	}
	if (i < n && t[i] != ' ')
		return 0;
	return i;
}

/* reply_append - add one line's text, joined by ' ', cut to fit; bytes
 * that are not printable ASCII become '?', so nothing of the upstream's
 * text can forge log lines or DSN fields */
static void
reply_append(struct smtp_reply *r, const char *t, size_t n)
{
	size_t used = strlen(r->text), room = sizeof(r->text) - 1;

	if (n == 0)
		return;
	if (used > 0 && used < room)
		r->text[used++] = ' ';
	for (size_t i = 0; i < n && used < room; i++) {
		unsigned char c = (unsigned char)t[i];
		r->text[used++] = (c >= 0x20 && c <= 0x7e) ? (char)c : '?';
	}
	r->text[used] = '\0';
}

/* smtp_reply_feed - one line of an upstream reply (RFC 5321 4.2.1) */
int
smtp_reply_feed(struct smtp_reply *r, const char *line, size_t len)
{
	int code, last;
	const char *t;
	size_t tn, el;

	if (r->done || len < 3)
		return -1;
	if (line[0] < '2' || line[0] > '5' || line[1] < '0' || line[1] > '5' ||
	    !is_digit((unsigned char)line[2]))
		return -1;
	code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	if (r->nlines > 0 && code != r->code)
		return -1;
	if (len == 3 || line[3] == ' ')
		last = 1;
	else if (line[3] == '-')
		last = 0;
	else
		return -1;
	if (r->nlines >= SMTP_REPLY_LINES_MAX)
		return -1;
	r->nlines++;
	r->code = code;
	t = len > 4 ? line + 4 : "";
	tn = len > 4 ? len - 4 : 0;
	el = enh_len(t, tn, code / 100);
	if (r->nlines == 1 && el > 0 && el < sizeof(r->enh)) {
		memcpy(r->enh, t, el);
		r->enh[el] = '\0';
	}
	/* Continuation lines often repeat the code: strip it there too. */
	if (el > 0 && r->enh[0] != '\0' && el == strlen(r->enh) && memcmp(t, r->enh, el) == 0) {
		t += el;
		tn -= el;
		while (tn > 0 && *t == ' ')
			t++, tn--;
	}
	reply_append(r, t, tn);
	r->done = last;
	return last;
}

/* smtp_reply_format - "250 2.0.0 text" for logs and DSNs, bounded */
void
smtp_reply_format(const struct smtp_reply *r, char *buf, size_t len)
{
	if (len == 0)
		return;
	snprintf(buf, len, "%03d%s%s%s%s", r->code,
	    r->enh[0] ? " " : "", r->enh,
	    r->text[0] ? " " : "", r->text);
}
