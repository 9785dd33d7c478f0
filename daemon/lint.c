/*
 * lint - the content checks a sender otherwise needs mail-tester for.
 *
 * API (lint.h): lint_message() parses a message held in memory and fills
 * a report of findings {id, penalty, text}; lint_print() writes it as text
 * or JSON; lint_report_free() releases it.
 *
 * Input is untrusted and may be anything: every length is bounded by a
 * named limit (header fields, MIME depth and parts, decoded text scanned),
 * NUL bytes and invalid UTF-8 are carried as bytes, never as C strings.
 *
 * Parsing: the header is indexed once and unfolded on demand (RFC 5322
 * 2.2.3); RFC 2047 encoded-words of Subject and From are decoded (B and Q;
 * UTF-8 kept, ISO-8859-1/-15 and windows-1252 widened to UTF-8, other
 * charsets kept as bytes); the MIME tree (RFC 2046 5.1) is walked to depth
 * LINT_DEPTH_MAX and LINT_PARTS_MAX leaves, base64 and quoted-printable
 * (RFC 2045 6.7, 6.8) decoded for text parts. HTML is scanned by a small
 * tag tokenizer (no DOM): visible text, tags, attributes, inline styles.
 *
 * Penalties and why receivers care: docs/LINT.md.
 */
#include "config.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "lint.h"
#include "message.h"
#include "util.h"

#define LINT_FIELDS_MAX 1000            /* header fields indexed */
#define LINT_VALUE_MAX 8192             /* an unfolded header value kept */
#define LINT_DEPTH_MAX 10               /* multipart nesting followed */
#define LINT_PARTS_MAX 100              /* MIME parts looked at */
#define LINT_SCAN_MAX (2 * 1024 * 1024) /* decoded text kept per kind */
#define LINT_BIG_ATTACH (10 * 1024 * 1024)
#define LINT_WIDTH_MAX 800              /* px; receivers render 600-800 */
#define LINT_TEXT_PER_IMAGE 400         /* visible characters per image */
#define LINT_BULK_RCPTS 10              /* To+Cc addresses that look bulk */
#define LINT_LINK_TEXT_MAX 256          /* link text kept for comparison */

/* growable byte buffer, capped */
struct buf {
	char *p;
	size_t len, cap, max;
};

struct field {
	const char *name, *val;
	size_t nlen, vlen;
};

struct hdr {
	struct field f[LINT_FIELDS_MAX];
	size_t n;
};

struct ctx {
	struct lint_report *r;
	struct buf plain;       /* text/plain parts, decoded, UTF-8-ish */
	struct buf html;        /* text/html parts, decoded */
	int has_plain, has_html, image_parts, text_parts;
	size_t parts;
	int too_deep, too_many, unclosed;       /* MIME limits hit */
	size_t big_size;        /* largest attachment over the limit */
	char big_name[128];
};

/* what the HTML scan found */
struct html_info {
	struct buf vis;         /* visible text */
	int images;
	char active[64];        /* "script, iframe" */
	int wide;
	long wide_px;
	char hidden[96];
	int mismatches;
	char mismatch[256];
};

/* buf_add - append, silently keeping at most b->max bytes */
static void
buf_add(struct buf *b, const void *p, size_t n)
{
	if (b->len + n > b->max)
		n = b->max - b->len;
	if (n == 0)
		return;
	if (b->len + n + 1 > b->cap) {
		b->cap = (b->len + n + 1) * 2;
		if (b->cap > b->max + 1)
			b->cap = b->max + 1;
		b->p = xrealloc(b->p, b->cap);
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void
buf_addc(struct buf *b, char c)
{
	buf_add(b, &c, 1);
}

/* clean - untrusted text for a finding: controls and invalid UTF-8 become
 * '?', so both the terminal and the JSON output stay sane */
static void
clean(char *dst, size_t dstlen, const char *src, size_t n)
{
	size_t o = 0, i = 0;

	while (i < n && o + 5 < dstlen) {
		unsigned char c = (unsigned char)src[i];
		size_t k = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 :
		    (c & 0xf8) == 0xf0 ? 4 : 0;
		size_t j;

		for (j = 1; k > 1 && j < k; j++)
			if (i + j >= n || ((unsigned char)src[i + j] & 0xc0) != 0x80)
				k = 0;
		if (k == 0 || (k == 1 && (c < 0x20 || c == 0x7f))) {
			dst[o++] = '?';
			i++;
			continue;
		}
		memcpy(dst + o, src + i, k);
		o += k;
		i += k;
	}
	dst[o] = '\0';
}

/* add - one finding */
static void PRINTF_LIKE(4, 5)
add(struct ctx *c, const char *id, double penalty, const char *fmt, ...)
{
	struct lint_report *r = c->r;
	struct lint_finding *f;
	char raw[LINT_TEXT_MAX];
	va_list ap;

	r->f = xreallocarray(r->f, r->n + 1, sizeof(*r->f));
	f = &r->f[r->n++];
	util_strlcpy(f->id, id, sizeof(f->id));
	f->penalty = penalty;
	va_start(ap, fmt);
	vsnprintf(raw, sizeof(raw), fmt, ap);
	va_end(ap);
	clean(f->text, sizeof(f->text), raw, strlen(raw));
}

/* ---- header ---- */

/* hdr_index - the fields of the header block [p, p+len); the body offset
 * goes to *body. -1 when the first line is not a header field. */
static int
hdr_index(const char *p, size_t len, struct hdr *h, size_t *body)
{
	size_t i = 0;
	int kept = 0;           /* the last field fitted in the index */

	h->n = 0;
	/* an mbox "From " line before the header */
	if (len >= 5 && memcmp(p, "From ", 5) == 0) {
		const char *nl = memchr(p, '\n', len);
		i = nl ? (size_t)(nl - p) + 1 : len;
	}
	while (i < len) {
		size_t s = i, e, colon = 0;
		const char *nl = memchr(p + i, '\n', len - i);

		e = nl ? (size_t)(nl - p) : len;
		i = nl ? e + 1 : len;
		if (e == s || (e == s + 1 && p[s] == '\r')) {
			*body = i;
			return h->n == 0 ? -1 : 0;
		}
		if (p[s] == ' ' || p[s] == '\t') {
			if (kept)
				h->f[h->n - 1].vlen = (size_t)(p + e - h->f[h->n - 1].val);
			continue;
		}
		for (size_t k = s; k < e; k++) {
			unsigned char ch = (unsigned char)p[k];
			if (ch == ':') {
				colon = k;
				break;
			}
			if (ch <= 32 || ch >= 127)
				break;
		}
		if (colon == 0 || colon == s) {
			if (h->n == 0)
				return -1;
			kept = 0;
			continue;       /* a stray line: skipped, like most MUAs */
		}
		kept = h->n < LINT_FIELDS_MAX;
		if (kept) {
			struct field *f = &h->f[h->n++];
			f->name = p + s;
			f->nlen = colon - s;
			f->val = p + colon + 1;
			f->vlen = e - colon - 1;
		}
	}
	*body = len;
	return h->n == 0 ? -1 : 0;
}

/* hdr_get - the first field named name, unfolded and trimmed into out
 * (truncated to outlen); 1 if present */
static int
hdr_get(const struct hdr *h, const char *name, char *out, size_t outlen)
{
	size_t nl = strlen(name);
	char *t;

	out[0] = '\0';
	for (size_t i = 0; i < h->n; i++) {
		const struct field *f = &h->f[i];
		size_t o = 0;

		if (f->nlen != nl || strncasecmp(f->name, name, nl) != 0)
			continue;
		for (size_t k = 0; k < f->vlen && o + 1 < outlen; k++) {
			char ch = f->val[k];
			if (ch == '\r' || ch == '\n' || ch == '\0')
				continue;
			out[o++] = ch == '\t' ? ' ' : ch;
		}
		out[o] = '\0';
		t = util_strtrim(out);
		memmove(out, t, strlen(t) + 1);
		return 1;
	}
	return 0;
}

/* param - parameter pname of a Content-Type/-Disposition value (quoted or
 * token; RFC 2231 continuations are not joined) into out */
static void
param(const char *v, const char *pname, char *out, size_t outlen)
{
	size_t pl = strlen(pname);
	const char *s = v;

	out[0] = '\0';
	while ((s = strchr(s, ';')) != NULL) {
		size_t o = 0;

		s++;
		while (*s == ' ' || *s == '\t')
			s++;
		if (strncasecmp(s, pname, pl) != 0)
			continue;
		s += pl;
		while (*s == ' ')
			s++;
		if (*s != '=')
			continue;
		s++;
		while (*s == ' ')
			s++;
		if (*s == '"') {
			for (s++; *s && *s != '"' && o + 1 < outlen; s++) {
				if (*s == '\\' && s[1])
					s++;
				out[o++] = *s;
			}
		} else {
			for (; *s && *s != ';' && *s != ' ' && o + 1 < outlen; s++)
				out[o++] = *s;
		}
		out[o] = '\0';
		return;
	}
}

/* ---- decoding ---- */

static int
latin1_charset(const char *cs)
{
	return util_strcaseeq(cs, "iso-8859-1") || util_strcaseeq(cs, "iso-8859-15") ||
	    util_strcaseeq(cs, "latin1") || util_strcaseeq(cs, "windows-1252") ||
	    util_strcaseeq(cs, "cp1252") || util_strcaseeq(cs, "us-ascii");
}

/* widen - bytes of a Latin-1 family charset as UTF-8 (C1 controls of
 * windows-1252 are left as U+0080..U+009F: only letters matter here) */
static void
widen(struct buf *out, const char *p, size_t n)
{
	for (size_t i = 0; i < n && out->len < out->max; i++) {
		unsigned char ch = (unsigned char)p[i];
		if (ch < 0x80) {
			buf_addc(out, (char)ch);
		} else {
			char u[2] = { (char)(0xc0 | (ch >> 6)), (char)(0x80 | (ch & 0x3f)) };
			buf_add(out, u, 2);
		}
	}
}

/* b64 - base64 through EVP, anything outside the alphabet skipped (line
 * breaks, junk); returns the decoded length, out holds 3 * n / 4 + 3 */
static size_t
b64(const char *p, size_t n, unsigned char *out)
{
	EVP_ENCODE_CTX *e = EVP_ENCODE_CTX_new();
	unsigned char chunk[4096];
	size_t o = 0, k = 0;
	int ol;

	if (e == NULL)
		return 0;
	EVP_DecodeInit(e);
	for (size_t i = 0; i <= n; i++) {
		unsigned char ch = i < n ? (unsigned char)p[i] : 0;
		int good = i < n && (isalnum(ch) || ch == '+' || ch == '/' || ch == '=');

		if (good)
			chunk[k++] = ch;
		if (k == sizeof(chunk) || (i == n && k > 0)) {
			if (EVP_DecodeUpdate(e, out + o, &ol, chunk, (int)k) < 0) {
				k = 0;
				break;
			}
			o += (size_t)ol;
			k = 0;
		}
	}
	if (EVP_DecodeFinal(e, out + o, &ol) >= 0)
		o += (size_t)ol;
	EVP_ENCODE_CTX_free(e);
	return o;
}

static int
hexval(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	ch = tolower(ch);
	return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

/* qp - quoted-printable (RFC 2045 6.7), or the Q encoding of RFC 2047
 * 4.2 when q is set ('_' is a space); decoded in place into out */
static size_t
qp(const char *p, size_t n, char *out, int q)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		if (p[i] == '=') {
			int h = i + 1 < n ? hexval((unsigned char)p[i + 1]) : -1;
			int l = i + 2 < n ? hexval((unsigned char)p[i + 2]) : -1;

			if (h >= 0 && l >= 0) {
				out[o++] = (char)(h * 16 + l);
				i += 2;
			} else if (i + 1 < n && p[i + 1] == '\n') {
				i += 1;                 /* soft line break */
			} else if (i + 2 < n && p[i + 1] == '\r' && p[i + 2] == '\n') {
				i += 2;
			} else {
				out[o++] = '=';
			}
		} else if (q && p[i] == '_') {
			out[o++] = ' ';
		} else {
			out[o++] = p[i];
		}
	}
	return o;
}

/* decode_words - an unstructured header value with its RFC 2047
 * encoded-words decoded to UTF-8 where the charset is known; white space
 * between adjacent encoded-words dropped (6.2) */
static void
decode_words(const char *v, struct buf *out)
{
	const char *s = v, *pend_ws = NULL;
	int last_ew = 0;

	while (*s) {
		const char *cs, *enc, *txt, *end;
		char charset[40];
		size_t csl;

		if (s[0] != '=' || s[1] != '?')
			goto literal;
		cs = s + 2;
		if ((enc = strchr(cs, '?')) == NULL || enc[1] == '\0' || enc[2] != '?')
			goto literal;
		txt = enc + 3;
		for (end = txt; *end && end - txt < 256 && !(end[0] == '?' && end[1] == '='); end++)
			;
		if (end[0] != '?')      /* RFC 2047 2: at most 75 characters */
			goto literal;
		csl = (size_t)(enc - cs);
		if (csl == 0 || csl >= sizeof(charset))
			goto literal;
		memcpy(charset, cs, csl);
		charset[csl] = '\0';
		if (strchr(charset, '*'))          /* RFC 2231 language */
			*strchr(charset, '*') = '\0';
		{
			size_t tl = (size_t)(end - txt), dl;
			char *d = xmalloc(tl + 4);

			if (enc[1] == 'B' || enc[1] == 'b')
				dl = b64(txt, tl, (unsigned char *)d);
			else if (enc[1] == 'Q' || enc[1] == 'q')
				dl = qp(txt, tl, d, 1);
			else {
				free(d);
				goto literal;
			}
			if (!last_ew && pend_ws)
				buf_add(out, pend_ws, (size_t)(s - pend_ws));
			if (latin1_charset(charset))
				widen(out, d, dl);
			else
				buf_add(out, d, dl);
			free(d);
		}
		pend_ws = NULL;
		last_ew = 1;
		s = end + 2;
		continue;
literal:
		if (*s == ' ' || *s == '\t') {
			if (pend_ws == NULL)
				pend_ws = s;
			s++;
			continue;
		}
		if (pend_ws)
			buf_add(out, pend_ws, (size_t)(s - pend_ws));
		pend_ws = NULL;
		last_ew = 0;
		buf_addc(out, *s++);
	}
	if (pend_ws && !last_ew)
		buf_add(out, pend_ws, strlen(pend_ws));
}

/* ---- MIME ---- */

/* next_delim - offset of the next line "--boundary" in [p+from, p+len),
 * or len; *close set when it is the closing "--boundary--" */
static size_t
next_delim(const char *p, size_t len, size_t from, const char *bd, size_t bl, int *close)
{
	size_t i = from;

	*close = 0;
	while (i < len) {
		if (len - i >= bl + 2 && p[i] == '-' && p[i + 1] == '-' &&
		    memcmp(p + i + 2, bd, bl) == 0) {
			*close = len - i >= bl + 4 && p[i + bl + 2] == '-' && p[i + bl + 3] == '-';
			return i;
		}
		const char *nl = memchr(p + i, '\n', len - i);
		if (nl == NULL)
			break;
		i = (size_t)(nl - p) + 1;
	}
	return len;
}


/* leaf - one non-multipart part: text decoded and kept, attachments sized */
static void
leaf(struct ctx *c, const char *ctype, const char *cte, const char *disp,
    const char *body, size_t blen)
{
	char type[64], charset[40], name[128];
	int attach = util_strncaseprefix(disp, "attachment");
	int is_b64 = util_strncaseprefix(cte, "base64");
	size_t size = blen;

	util_strlcpy(type, ctype[0] ? ctype : "text/plain", sizeof(type));
	type[strcspn(type, "; \t")] = '\0';
	util_strlower(type);
	param(ctype, "charset", charset, sizeof(charset));
	param(disp, "filename", name, sizeof(name));
	if (name[0] == '\0')
		param(ctype, "name", name, sizeof(name));
	if (is_b64) {
		size_t chars = 0;
		for (size_t i = 0; i < blen; i++)
			if (isalnum((unsigned char)body[i]) || body[i] == '+' || body[i] == '/')
				chars++;
		size = chars * 3 / 4;
	}
	if (!attach && (strcmp(type, "text/plain") == 0 || strcmp(type, "text/html") == 0)) {
		int html = type[5] == 'h';
		struct buf *out = html ? &c->html : &c->plain;
		char *d;
		size_t dl, room = out->max - out->len;

		if (blen > room * 2 + 8)
			blen = room * 2 + 8;    /* no point decoding what cannot be kept */
		d = xmalloc(blen + 4);
		if (is_b64)
			dl = b64(body, blen, (unsigned char *)d);
		else if (util_strncaseprefix(cte, "quoted-printable"))
			dl = qp(body, blen, d, 0);
		else {
			memcpy(d, body, blen);
			dl = blen;
		}
		if (latin1_charset(charset))
			widen(out, d, dl);
		else
			buf_add(out, d, dl);
		buf_addc(out, '\n');
		free(d);
		if (html)
			c->has_html = 1;
		else if (dl > 0)
			c->has_plain = 1;
		c->text_parts++;
		return;
	}
	if (util_strncaseprefix(type, "image/") && !attach)
		c->image_parts++;
	if (size > LINT_BIG_ATTACH && size > c->big_size) {
		c->big_size = size;
		clean(c->big_name, sizeof(c->big_name), name, strlen(name));
	}
}

/* walk - one entity (header and body); multiparts followed to
 * LINT_DEPTH_MAX, LINT_PARTS_MAX parts in all */
static void
walk(struct ctx *c, const char *p, size_t len, int depth)
{
	char ctype[512], cte[64], disp[256], bd[128];
	struct hdr *h;
	size_t body = 0, bl;

	if (c->parts >= LINT_PARTS_MAX) {
		c->too_many = 1;
		return;
	}
	c->parts++;
	h = xmalloc(sizeof(*h));
	if (len > 0 && (p[0] == '\n' || (p[0] == '\r' && len > 1 && p[1] == '\n'))) {
		h->n = 0;       /* no header: a text/plain part (RFC 2045 5.2) */
		body = p[0] == '\n' ? 1 : 2;
	} else if (hdr_index(p, len, h, &body) < 0) {
		h->n = 0;
		body = 0;
	}
	hdr_get(h, "Content-Type", ctype, sizeof(ctype));
	hdr_get(h, "Content-Transfer-Encoding", cte, sizeof(cte));
	hdr_get(h, "Content-Disposition", disp, sizeof(disp));
	free(h);
	if (!util_strncaseprefix(ctype, "multipart/")) {
		leaf(c, ctype, cte, disp, p + body, len - body);
		return;
	}
	param(ctype, "boundary", bd, sizeof(bd));
	if ((bl = strlen(bd)) == 0) {
		leaf(c, "text/plain", cte, disp, p + body, len - body);
		return;
	}
	if (depth >= LINT_DEPTH_MAX) {
		c->too_deep = 1;
		return;
	}
	{
		int close;
		size_t d = next_delim(p, len, body, bd, bl, &close);

		if (d == len) {         /* no delimiter at all: read it as text */
			c->unclosed = 1;
			leaf(c, "text/plain", cte, disp, p + body, len - body);
			return;
		}
		while (d < len && !close && c->parts < LINT_PARTS_MAX) {
			const char *nl = memchr(p + d, '\n', len - d);
			size_t s = nl ? (size_t)(nl - p) + 1 : len, e;

			e = next_delim(p, len, s, bd, bl, &close);
			/* the CRLF before a delimiter belongs to it (RFC 2046 5.1.1) */
			{
				size_t pe = e;
				if (pe > s && p[pe - 1] == '\n')
					pe--;
				if (pe > s && p[pe - 1] == '\r')
					pe--;
				walk(c, p + s, pe - s, depth + 1);
			}
			d = e;
		}
		if (d < len && !close)
			c->too_many = 1;
		else if (!close)
			c->unclosed = 1;
	}
}

/* ---- text helpers ---- */

/* fold - lower-case ASCII and the Latin-1 capitals (U+00C0..U+00DE in
 * UTF-8), white space runs as one space, into out */
static void
fold(const char *p, size_t n, struct buf *out)
{
	int sp = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)p[i];

		if (ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n' || ch == 0xa0) {
			sp = 1;
			continue;
		}
		if (ch == 0xc2 && i + 1 < n && (unsigned char)p[i + 1] == 0xa0) {
			sp = 1;         /* U+00A0 no-break space */
			i++;
			continue;
		}
		if (sp && out->len > 0)
			buf_addc(out, ' ');
		sp = 0;
		if (ch == 0xc3 && i + 1 < n) {
			unsigned char nx = (unsigned char)p[i + 1];
			if (nx >= 0x80 && nx <= 0x9e && nx != 0x97)
				nx += 0x20;
			buf_addc(out, (char)ch);
			buf_addc(out, (char)nx);
			i++;
			continue;
		}
		buf_addc(out, (char)tolower(ch));
	}
}

static int
wordch(unsigned char ch)
{
	return isalnum(ch) || ch >= 0x80;
}

/* edge - a word may start (or end) between t[i - 1] and t[i]: not both
 * word bytes, or the neighbour is UTF-8 punctuation (U+00A1..U+00BF such
 * as the Spanish inverted marks and guillemets, U+2000..U+203F such as
 * curly quotes) */
static int
edge(const char *t, size_t n, size_t i)
{
	const unsigned char *u = (const unsigned char *)t;

	if (i == 0 || i >= n || !wordch(u[i - 1]) || !wordch(u[i]))
		return 1;
	if (i >= 2 && u[i - 2] == 0xc2 && u[i - 1] >= 0xa1 && u[i - 1] <= 0xbf)
		return 1;
	if (i >= 3 && u[i - 3] == 0xe2 && u[i - 2] == 0x80)
		return 1;
	return u[i] == 0xc2 || (u[i] == 0xe2 && i + 1 < n && u[i + 1] == 0x80);
}

/* The trigger words of the ERP's advice in its three languages, and the
 * phrases mail-tester and SpamAssassin rule sets share. Folded form. */
static const char *const spam_words[] = {
	/* English */
	"free", "100% free", "no charge", "exceptional offer", "guarantee",
	"guaranteed", "increase sales", "order now", "no risk", "risk-free",
	"risk free", "special promotion", "winner", "act now", "click here",
	"limited time", "buy now", "cash bonus", "earn money", "make money",
	"congratulations", "you have been selected", "urgent",
	/* French */
	"gratuit", "gratuite", "gratuitement", "sans frais", "offre exceptionnelle",
	"garantie", "garanti", "augmenter les ventes", "commander maintenant",
	"sans risque", "promotion spéciale", "gagnant", "gagnez", "cliquez ici",
	"félicitations", "offre limitée", "argent facile",
	/* Spanish */
	"gratis", "sin cargo", "oferta excepcional", "oferta exclusiva",
	"garantía", "garantizado", "aumentar ventas", "ordene ahora",
	"compre ahora", "sin riesgo", "promoción especial", "ganador",
	"haga clic", "haz clic", "felicidades", "dinero fácil",
};

/* count_words - occurrences of each trigger word in folded text, whole
 * words only, the longest at a place ("100% free" is not also "free") */
static void
count_words(const char *t, size_t n, unsigned *cnt)
{
	size_t covered = 0;

	for (size_t i = 0; i < n; i++) {
		size_t best = 0, bw = 0;

		if (i < covered || !edge(t, n, i))
			continue;
		for (size_t w = 0; w < ARRAY_LEN(spam_words); w++) {
			const char *s = spam_words[w];
			size_t sl;

			if (s[0] != t[i])
				continue;
			sl = strlen(s);
			if (sl > n - i || sl <= best || memcmp(t + i, s, sl) != 0)
				continue;
			if (!edge(t, n, i + sl))
				continue;
			best = sl;
			bw = w;
		}
		if (best) {
			cnt[bw]++;
			covered = i + best;
		}
	}
}

/* emoji - emoji-looking characters: every 4-byte UTF-8 sequence (the
 * astral planes hold nearly all emoji) and U+2600..U+27BF, U+2B00..U+2BFF
 * (symbols, dingbats, stars) */
static unsigned
emoji(const char *p, size_t n)
{
	unsigned k = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)p[i];

		if (ch >= 0xf0 && ch <= 0xf4 && i + 3 < n &&
		    ((unsigned char)p[i + 1] & 0xc0) == 0x80) {
			k++;
			i += 3;
		} else if (ch == 0xe2 && i + 2 < n) {
			unsigned char b = (unsigned char)p[i + 1];
			if ((b >= 0x98 && b <= 0x9e) || b == 0xad)
				k++;
			i += 2;
		}
	}
	return k;
}

/* bang_runs - runs of two or more '!' */
static unsigned
bang_runs(const char *p, size_t n)
{
	unsigned k = 0;

	for (size_t i = 0; i + 1 < n; i++)
		if (p[i] == '!' && p[i + 1] == '!') {
			k++;
			while (i + 1 < n && p[i + 1] == '!')
				i++;
		}
	return k;
}

/* ---- HTML ---- */

/* attr - value of attribute name within a tag's text [t, t+n), lower-case
 * and without white space when squash; "" if absent */
static void
attr(const char *t, size_t n, const char *name, char *out, size_t outlen, int squash)
{
	size_t nl = strlen(name), o = 0;

	out[0] = '\0';
	for (size_t i = 0; i + nl < n; i++) {
		size_t j;
		char q = 0;

		if (i > 0 && (isalnum((unsigned char)t[i - 1]) || t[i - 1] == '-'))
			continue;
		if (strncasecmp(t + i, name, nl) != 0)
			continue;
		for (j = i + nl; j < n && t[j] == ' '; j++)
			;
		if (j >= n || t[j] != '=')
			continue;
		for (j++; j < n && t[j] == ' '; j++)
			;
		if (j < n && (t[j] == '"' || t[j] == '\''))
			q = t[j++];
		for (; j < n && o + 1 < outlen; j++) {
			unsigned char ch = (unsigned char)t[j];
			if (q ? ch == (unsigned char)q : (ch == ' ' || ch == '>'))
				break;
			if (squash && isspace(ch))
				continue;
			out[o++] = squash ? (char)tolower(ch) : (char)ch;
		}
		out[o] = '\0';
		return;
	}
}

/* css_px - the px value of the first `prop:` in a squashed style, -1 if
 * none; the property must start the declaration (so "max-width" is not
 * "width") */
static long
css_px(const char *st, const char *prop)
{
	size_t pl = strlen(prop);

	for (const char *s = st; (s = strstr(s, prop)) != NULL; s += pl) {
		if (s > st && s[-1] != ';' && s[-1] != '{' && s[-1] != '"')
			continue;
		if (s[pl] != ':')
			continue;
		if (!isdigit((unsigned char)s[pl + 1]))
			return -1;
		return strtol(s + pl + 1, NULL, 10);
	}
	return -1;
}

static void
note(char *list, size_t len, const char *what)
{
	if (strstr(list, what))
		return;
	if (list[0])
		util_strlcat(list, ", ", len);
	util_strlcat(list, what, len);
}

/* style_checks - width and hidden content in one inline style */
static void
style_checks(const char *st, struct html_info *hi)
{
	static const char *const hide[] = {
		"display:none", "visibility:hidden", "font-size:0", "font-size:1px",
		"max-height:0", "opacity:0",
	};
	char fg[64] = "", bg[64] = "";
	const char *s;
	long w;

	if ((w = css_px(st, "width")) > LINT_WIDTH_MAX ||
	    (w = css_px(st, "min-width")) > LINT_WIDTH_MAX) {
		hi->wide = 1;
		if (w > hi->wide_px)
			hi->wide_px = w;
	}
	for (size_t i = 0; i < ARRAY_LEN(hide); i++) {
		if ((s = strstr(st, hide[i])) == NULL)
			continue;
		if (s > st && s[-1] != ';')
			continue;
		/* "font-size:0" must not match "font-size:0.9em"/"font-size:10px" */
		s += strlen(hide[i]);
		if (*s == '.' || isdigit((unsigned char)*s))
			continue;
		note(hi->hidden, sizeof(hi->hidden), hide[i]);
	}
	for (s = st; (s = strstr(s, "color:")) != NULL; s += 6) {
		char *dst = (s == st || s[-1] == ';' || s[-1] == '"') ? fg :
		    (s >= st + 11 && strncmp(s - 11, "background-", 11) == 0) ? bg : NULL;
		size_t k = strcspn(s + 6, ";");
		if (dst && k < 64) {
			memcpy(dst, s + 6, k);
			dst[k] = '\0';
		}
	}
	if ((s = strstr(st, "background:")) != NULL && (s == st || s[-1] == ';')) {
		size_t k = strcspn(s + 11, ";");
		if (bg[0] == '\0' && k < 64) {
			memcpy(bg, s + 11, k);
			bg[k] = '\0';
		}
	}
	if (fg[0] && bg[0] && strcmp(fg, bg) == 0)
		note(hi->hidden, sizeof(hi->hidden), "text colour = background");
}

/* host_of - the host of an http(s) URL, or of text that looks like a URL
 * or a bare domain ("www.bank.example", "bank.example/login"); lower-case
 * into out; 0 if none */
static int
host_of(const char *s, size_t n, int need_scheme, char *out, size_t outlen)
{
	size_t i = 0, o = 0, dots = 0, last_dot = 0;

	while (i < n && isspace((unsigned char)s[i]))
		i++;
	if (n - i >= 7 && strncasecmp(s + i, "http://", 7) == 0)
		i += 7;
	else if (n - i >= 8 && strncasecmp(s + i, "https://", 8) == 0)
		i += 8;
	else if (need_scheme)
		return 0;
	for (; i < n && o + 1 < outlen; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch == '@' && !need_scheme)
			return 0;           /* an address, not a link */
		if (ch == '@') {
			o = dots = 0;       /* userinfo */
			continue;
		}
		if (!isalnum(ch) && ch != '.' && ch != '-')
			break;
		if (ch == '.') {
			dots++;
			last_dot = o;
		}
		out[o++] = (char)tolower(ch);
	}
	out[o] = '\0';
	if (!need_scheme) {
		/* the text must be nothing but the link: trailing "/path" allowed */
		while (i < n && isspace((unsigned char)s[i]))
			i++;
		if (i < n && s[i] != '/' && s[i] != ':')
			return 0;
		if (dots == 0 || o - last_dot < 3 || isdigit((unsigned char)out[o - 1]))
			return 0;
		for (size_t k = last_dot + 1; k < o; k++)
			if (!isalpha((unsigned char)out[k]))
				return 0;
	}
	if (o > 0 && out[o - 1] == '.')
		out[--o] = '\0';
	return o > 0;
}

/* base_domain - the last two labels (no public suffix list: a hint, not a
 * verdict) */
static const char *
base_domain(const char *h)
{
	const char *last = strrchr(h, '.'), *s;

	if (last == NULL)
		return h;
	for (s = last - 1; s >= h && *s != '.'; s--)
		;
	return s + 1;
}

static void
check_link(const char *href, const char *text, size_t tlen, struct html_info *hi)
{
	char hh[256], th[256];

	if (!host_of(href, strlen(href), 1, hh, sizeof(hh)))
		return;
	if (!host_of(text, tlen, 0, th, sizeof(th)))
		return;
	if (strcmp(base_domain(hh), base_domain(th)) == 0)
		return;
	if (hi->mismatches++ == 0)
		snprintf(hi->mismatch, sizeof(hi->mismatch), "text shows %.90s, link goes to %.90s",
		    th, hh);
}

/* tag_is - the tag name at t (after '<' and an optional '/') equals name */
static int
tag_is(const char *t, size_t n, const char *name)
{
	size_t nl = strlen(name);

	return n >= nl && strncasecmp(t, name, nl) == 0 &&
	    (n == nl || !isalnum((unsigned char)t[nl]));
}

/* entity - one character reference at p[0] == '&' added to out; returns
 * the bytes consumed */
static size_t
entity(const char *p, size_t n, struct buf *out)
{
	size_t e;

	for (e = 1; e < n && e < 12 && p[e] != ';' && !isspace((unsigned char)p[e]); e++)
		;
	if (e >= n || p[e] != ';') {
		buf_addc(out, '&');
		return 1;
	}
	if (p[1] == '#') {
		unsigned long cp = (p[2] == 'x' || p[2] == 'X') ? strtoul(p + 3, NULL, 16) :
		    strtoul(p + 2, NULL, 10);
		char u[4];
		if (cp == 0 || cp > 0x10ffff)
			cp = '?';
		if (cp < 0x80) {
			buf_addc(out, (char)cp);
		} else if (cp < 0x800) {
			u[0] = (char)(0xc0 | (cp >> 6));
			u[1] = (char)(0x80 | (cp & 0x3f));
			buf_add(out, u, 2);
		} else if (cp < 0x10000) {
			u[0] = (char)(0xe0 | (cp >> 12));
			u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
			u[2] = (char)(0x80 | (cp & 0x3f));
			buf_add(out, u, 3);
		} else {
			u[0] = (char)(0xf0 | (cp >> 18));
			u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
			u[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
			u[3] = (char)(0x80 | (cp & 0x3f));
			buf_add(out, u, 4);
		}
	} else if (e == 5 && strncasecmp(p, "&nbsp", 5) == 0) {
		buf_addc(out, ' ');
	} else if (e == 4 && strncasecmp(p, "&amp", 4) == 0) {
		buf_addc(out, '&');
	} else {
		buf_addc(out, '*');     /* &lt; &eacute; ...: one character */
	}
	return e + 1;
}

/* html_scan - one pass over the HTML: visible text, images, active
 * content, widths, hidden content, links */
static void
html_scan(const char *p, size_t n, struct html_info *hi)
{
	char href[1024] = "", val[1024];
	struct buf ltext = { NULL, 0, 0, LINT_LINK_TEXT_MAX };
	const char *skip = NULL;        /* inside <script>, <style>, <head>, <title> */
	static const char *const hidden_el[] = { "script", "style", "head", "title" };
	int in_a = 0;
	size_t i = 0;

	while (i < n) {
		const char *gt, *t;
		size_t tl;
		int end;

		if (p[i] != '<') {
			size_t before = hi->vis.len;
			if (p[i] == '&' && !skip)
				i += entity(p + i, n - i, &hi->vis);
			else {
				if (!skip)
					buf_addc(&hi->vis, p[i]);
				i++;
			}
			if (in_a && hi->vis.len > before)
				buf_add(&ltext, hi->vis.p + before, hi->vis.len - before);
			continue;
		}
		if (n - i >= 4 && memcmp(p + i, "<!--", 4) == 0) {
			const char *ce = NULL;
			for (size_t k = i + 4; k + 2 < n; k++)
				if (p[k] == '-' && p[k + 1] == '-' && p[k + 2] == '>') {
					ce = p + k;
					break;
				}
			i = ce ? (size_t)(ce - p) + 3 : n;
			continue;
		}
		if ((gt = memchr(p + i, '>', n - i)) == NULL)
			break;
		t = p + i + 1;
		tl = (size_t)(gt - t);
		i = (size_t)(gt - p) + 1;
		end = tl > 0 && t[0] == '/';
		if (end) {
			t++;
			tl--;
		}
		if (skip) {
			if (end && tag_is(t, tl, skip))
				skip = NULL;
			else if (!end && tag_is(t, tl, "script"))
				note(hi->active, sizeof(hi->active), "script");
			continue;
		}
		for (size_t k = 0; k < ARRAY_LEN(hidden_el) && !end; k++)
			if (tag_is(t, tl, hidden_el[k]) && t[tl - 1] != '/')
				skip = hidden_el[k];
		if (end) {
			if (tag_is(t, tl, "a") && in_a) {
				check_link(href, ltext.p ? ltext.p : "", ltext.len, hi);
				in_a = 0;
			}
			continue;
		}
		if (tag_is(t, tl, "script"))
			note(hi->active, sizeof(hi->active), "script");
		else if (tag_is(t, tl, "iframe"))
			note(hi->active, sizeof(hi->active), "iframe");
		else if (tag_is(t, tl, "object"))
			note(hi->active, sizeof(hi->active), "object");
		else if (tag_is(t, tl, "embed"))
			note(hi->active, sizeof(hi->active), "embed");
		else if (tag_is(t, tl, "form"))
			note(hi->active, sizeof(hi->active), "form");
		else if (tag_is(t, tl, "img")) {
			char w[16], h[16];
			attr(t, tl, "width", w, sizeof(w), 1);
			attr(t, tl, "height", h, sizeof(h), 1);
			if (!(w[0] && atoi(w) <= 2) && !(h[0] && atoi(h) <= 2))
				hi->images++;   /* a 1x1 tracking pixel shows nothing */
		} else if (tag_is(t, tl, "a")) {
			attr(t, tl, "href", href, sizeof(href), 0);
			ltext.len = 0;
			in_a = 1;
		}
		attr(t, tl, "width", val, sizeof(val), 1);
		if (val[0] && !strchr(val, '%') && atol(val) > LINT_WIDTH_MAX) {
			hi->wide = 1;
			if (atol(val) > hi->wide_px)
				hi->wide_px = atol(val);
		}
		attr(t, tl, "style", val, sizeof(val), 1);
		if (val[0])
			style_checks(val, hi);
	}
	free(ltext.p);
}

/* visible - non-space characters (not bytes) of a text */
static size_t
visible(const char *p, size_t n)
{
	size_t k = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)p[i];
		if (!isspace(ch) && (ch & 0xc0) != 0x80)
			k++;
	}
	return k;
}

/* ---- the checks ---- */

static void
check_words(struct ctx *c, const char *subj, const struct buf *plain, const struct buf *vis)
{
	unsigned s[ARRAY_LEN(spam_words)] = { 0 }, a[ARRAY_LEN(spam_words)] = { 0 },
	    b[ARRAY_LEN(spam_words)] = { 0 };
	struct buf f = { NULL, 0, 0, LINT_SCAN_MAX };
	char list[300] = "";
	unsigned distinct = 0, total = 0;
	double pen;

	fold(subj, strlen(subj), &f);
	count_words(f.p ? f.p : "", f.len, s);
	f.len = 0;
	fold(plain->p ? plain->p : "", plain->len, &f);
	count_words(f.p ? f.p : "", f.len, a);
	f.len = 0;
	fold(vis->p ? vis->p : "", vis->len, &f);
	count_words(f.p ? f.p : "", f.len, b);
	free(f.p);
	for (size_t w = 0; w < ARRAY_LEN(spam_words); w++) {
		/* the plain and HTML alternatives say the same thing: the larger */
		unsigned k = s[w] + (a[w] > b[w] ? a[w] : b[w]);
		char item[64];

		if (k == 0)
			continue;
		distinct++;
		total += k;
		if (k > 1)
			snprintf(item, sizeof(item), "\"%s\" x%u", spam_words[w], k);
		else
			snprintf(item, sizeof(item), "\"%s\"", spam_words[w]);
		note(list, sizeof(list), item);
	}
	if (distinct == 0)
		return;
	pen = 0.5 * distinct + 0.1 * (total - distinct);
	if (pen > 4.0)
		pen = 4.0;
	add(c, "spam-words", pen, "%u trigger word%s, %u time%s: %s; filters count these"
	    " against you, say it plainly", distinct, distinct == 1 ? "" : "s", total,
	    total == 1 ? "" : "s", list);
}

static void
check_subject(struct ctx *c, const char *subj, const struct buf *plain,
    const struct buf *vis, int has_thread)
{
	static const char *const reply[] = {
		"re", "fw", "fwd", "tr", "rv", "aw", "wg", "sv", "vs", "res", "enc",
	};
	size_t n = strlen(subj), letters = 0, upper = 0, bangs = 0;
	unsigned runs, bruns, em, bem;

	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)subj[i];
		if (isalpha(ch)) {
			letters++;
			upper += isupper(ch) != 0;
		} else if (ch == 0xc3 && i + 1 < n) {
			unsigned char nx = (unsigned char)subj[++i];
			letters++;
			upper += nx >= 0x80 && nx <= 0x9e && nx != 0x97;
		}
		bangs += ch == '!';
	}
	if (letters >= 8 && upper * 4 >= letters * 3)
		add(c, "caps-subject", 1.0, "the subject is %zu%% capitals; write it in sentence"
		    " case", upper * 100 / letters);

	runs = bang_runs(subj, n);
	bruns = bang_runs(plain->p ? plain->p : "", plain->len);
	if (bang_runs(vis->p ? vis->p : "", vis->len) > bruns)
		bruns = bang_runs(vis->p ? vis->p : "", vis->len);
	if (runs > 0 || bangs >= 3)
		add(c, "exclamations", 1.0, "the subject has %zu '!'%s%s; one at most",
		    bangs, runs ? " in a run" : "", bruns >= 3 ? ", the text more runs of '!!'" : "");
	else if (bruns >= 3)
		add(c, "exclamations", 0.5, "the text has %u runs of '!!' or more; one '!' does",
		    bruns);

	em = emoji(subj, n);
	bem = emoji(plain->p ? plain->p : "", plain->len);
	if (emoji(vis->p ? vis->p : "", vis->len) > bem)
		bem = emoji(vis->p ? vis->p : "", vis->len);
	if (em >= 2 || bem >= 8)
		add(c, "emoji", em >= 2 ? 1.0 : 0.5, "%u emoji in the subject, %u in the text;"
		    " a few at most, never to imitate a badge or a button", em, bem);

	/* Re:/Fwd: without a thread: Gmail's sender guidelines call it deceptive */
	for (size_t i = 0; i < ARRAY_LEN(reply); i++) {
		size_t rl = strlen(reply[i]);
		const char *s = subj + rl;

		if (strncasecmp(subj, reply[i], rl) != 0)
			continue;
		if (*s == '[')          /* "Re[2]:" */
			s += strspn(s + 1, "0123456789") + 1 + (s[strspn(s + 1, "0123456789") + 1] == ']');
		while (*s == ' ')
			s++;
		if (*s != ':')
			continue;
		if (!has_thread)
			add(c, "re-fwd-no-thread", 1.5, "the subject starts with \"%.*s:\" but there"
			    " is no In-Reply-To or References; use it only on real replies and"
			    " forwards", (int)rl, subj);
		break;
	}
}

/* unsub_words - unsubscribe wording in EN/FR/ES, folded text */
static int
unsub_words(const struct buf *t)
{
	static const char *const w[] = {
		"unsubscribe", "opt out", "opt-out", "désabonner", "désabonnement",
		"désinscrire", "désinscription", "darse de baja", "darte de baja",
		"cancelar la suscripción", "cancelar suscripción", "anular la suscripción",
	};
	struct buf f = { NULL, 0, 0, LINT_SCAN_MAX };
	int found = 0;

	fold(t->p ? t->p : "", t->len, &f);
	for (size_t i = 0; i < ARRAY_LEN(w) && f.p && !found; i++)
		found = strstr(f.p, w[i]) != NULL;
	free(f.p);
	return found;
}

/* count_addrs - '@' signs of To and Cc: a cheap recipient count */
static size_t
count_addrs(const char *v)
{
	size_t k = 0;

	for (; *v; v++)
		k += *v == '@';
	return k;
}

/* check_bulk - bulk-looking mail (Precedence, List-Id, many visible
 * recipients, unsubscribe wording) needs List-Unsubscribe, and one-click
 * (RFC 8058) with it; v is scratch space of LINT_VALUE_MAX */
static void
check_bulk(struct ctx *c, const struct hdr *h, char *v, const struct buf *vis)
{
	int unsub = hdr_get(h, "List-Unsubscribe", v, LINT_VALUE_MAX);
	const char *why = NULL;
	size_t rc;

	if (hdr_get(h, "Precedence", v, LINT_VALUE_MAX) && (util_strcaseeq(v, "bulk") ||
	    util_strcaseeq(v, "list") || util_strcaseeq(v, "junk")))
		why = "Precedence: bulk";
	else if (hdr_get(h, "List-Id", v, LINT_VALUE_MAX))
		why = "a List-Id";
	if (why == NULL) {
		rc = hdr_get(h, "To", v, LINT_VALUE_MAX) ? count_addrs(v) : 0;
		rc += hdr_get(h, "Cc", v, LINT_VALUE_MAX) ? count_addrs(v) : 0;
		if (rc >= LINT_BULK_RCPTS)
			why = "many recipients in To/Cc";
	}
	if (why == NULL && (unsub_words(&c->plain) || unsub_words(vis)))
		why = "unsubscribe wording in the text";
	if (why && !unsub)
		add(c, "bulk-no-unsubscribe", 1.5, "looks bulk (%s) but has no"
		    " List-Unsubscribe; Gmail and Yahoo require it with"
		    " List-Unsubscribe-Post for one-click (RFC 8058)", why);
	else if (unsub && !hdr_get(h, "List-Unsubscribe-Post", v, LINT_VALUE_MAX))
		add(c, "no-one-click", 0.3, "List-Unsubscribe without"
		    " List-Unsubscribe-Post: List-Unsubscribe=One-Click (RFC 8058), which"
		    " Gmail requires of bulk senders");
}

/* check_from - From's display name names an address of another
 * domain ("PayPal service@paypal.com" <x@evil.example>) */
static void
check_from(struct ctx *c, const char *from)
{
	char addr[ADDR_MAX + 1] = "", dname[LINT_VALUE_MAX];
	const char *lt = strrchr(from, '<'), *at;
	struct buf d = { NULL, 0, 0, LINT_VALUE_MAX };
	char dom[HOST_MAX], shown[HOST_MAX];
	size_t o = 0;

	if (message_parse_mailbox(from, strlen(from), addr, sizeof(addr)) < 1 && lt) {
		size_t k = strcspn(lt + 1, ">");
		if (k < sizeof(addr)) {
			memcpy(addr, lt + 1, k);
			addr[k] = '\0';
		}
	}
	if (lt == NULL || addr[0] == '\0')
		return;
	util_strlcpy(dname, from, sizeof(dname));
	dname[lt - from] = '\0';
	decode_words(dname, &d);
	util_strlcpy(dom, util_addr_domain(addr), sizeof(dom));
	util_strlower(dom);
	if (d.p && (at = memchr(d.p, '@', d.len)) != NULL) {
		for (at++; *at && o + 1 < sizeof(shown) &&
		    (isalnum((unsigned char)*at) || *at == '.' || *at == '-'); at++)
			shown[o++] = (char)tolower((unsigned char)*at);
		shown[o] = '\0';
		if (o > 0 && shown[o - 1] == '.')
			shown[--o] = '\0';
		if (o > 0 && strcmp(base_domain(shown), base_domain(dom)) != 0)
			add(c, "from-name-domain", 2.0, "the From display name shows an address at"
			    " %s but the mail comes from %s; put a plain name there", shown, dom);
	}
	free(d.p);
}

/* lint_message - parse msg, run every check */
int
lint_message(const char *msg, size_t len, struct lint_report *r)
{
	struct hdr *h = xmalloc(sizeof(*h));
	struct ctx c;
	struct html_info hi;
	struct buf subj = { NULL, 0, 0, LINT_VALUE_MAX };
	char *v = xmalloc(LINT_VALUE_MAX);
	const char *sj;
	size_t body;
	int has_thread;
	double total = 0;

	memset(r, 0, sizeof(*r));
	if (hdr_index(msg, len, h, &body) < 0) {
		free(h);
		free(v);
		return -1;
	}
	memset(&c, 0, sizeof(c));
	memset(&hi, 0, sizeof(hi));
	c.r = r;
	c.plain.max = c.html.max = hi.vis.max = LINT_SCAN_MAX;
	walk(&c, msg, len, 0);

	if (hdr_get(h, "Subject", v, LINT_VALUE_MAX))
		decode_words(v, &subj);
	sj = subj.p ? subj.p : "";
	if (c.has_html)
		html_scan(c.html.p, c.html.len, &hi);

	/* the basics RFC 5322 3.6 and every receiver expect */
	if (!hdr_get(h, "From", v, LINT_VALUE_MAX))
		add(&c, "missing-from", 3.0, "no From: header; every receiver requires one"
		    " (RFC 5322 3.6)");
	else
		check_from(&c, v);
	if (!hdr_get(h, "Date", v, LINT_VALUE_MAX))
		add(&c, "missing-date", 1.0, "no Date: header (RFC 5322 3.6); outpost adds one"
		    " when it relays, other paths will not");
	if (!hdr_get(h, "Message-ID", v, LINT_VALUE_MAX))
		add(&c, "missing-message-id", 1.0, "no Message-ID: header; Gmail requires one"
		    " (outpost adds one when it relays)");

	check_words(&c, sj, &c.plain, &hi.vis);
	has_thread = hdr_get(h, "In-Reply-To", v, LINT_VALUE_MAX) ||
	    hdr_get(h, "References", v, LINT_VALUE_MAX);
	check_subject(&c, sj, &c.plain, &hi.vis, has_thread);

	if (hi.wide)
		add(&c, "html-width", 0.5, "the HTML is %ld px wide; keep it within 600-800 px",
		    hi.wide_px);
	if (hi.active[0])
		add(&c, "html-active", 2.0, "the HTML holds %s; mail clients strip it and filters"
		    " treat it as an attack, remove it", hi.active);
	if (hi.hidden[0])
		add(&c, "hidden-content", 1.5, "content hidden with CSS (%s); Gmail marks hidden"
		    " text as spam, show it or drop it", hi.hidden);
	{
		size_t vis = visible(hi.vis.p ? hi.vis.p : "", hi.vis.len);
		size_t pvis = visible(c.plain.p ? c.plain.p : "", c.plain.len);
		int images = hi.images + (c.has_html ? 0 : c.image_parts);

		if (images > 0 && vis < 30 && pvis < 30)
			add(&c, "image-ratio", 2.5, "%d image%s and almost no text; an image-only"
			    " message is a classic spam trick, write the message as text",
			    images, images == 1 ? "" : "s");
		else if (c.has_html && hi.images > 0 &&
		    vis < (size_t)hi.images * LINT_TEXT_PER_IMAGE)
			add(&c, "image-ratio", 1.0, "%d image%s for %zu characters of text; give"
			    " each image about %d characters of text", hi.images,
			    hi.images == 1 ? "" : "s", vis, LINT_TEXT_PER_IMAGE);
	}
	if (c.has_html && !c.has_plain)
		add(&c, "no-text-part", 1.0, "HTML without a text/plain alternative; send"
		    " multipart/alternative with both");
	if (hi.mismatches)
		add(&c, "link-mismatch", 2.0, "%d link%s whose text shows another domain (%s);"
		    " this is what phishing looks like, show the real address", hi.mismatches,
		    hi.mismatches == 1 ? "" : "s", hi.mismatch);
	if (c.big_size)
		add(&c, "big-attachment", 1.5, "attachment %s%s%sof %.1f MB; over 10 MB, share a"
		    " link instead", c.big_name[0] ? "\"" : "", c.big_name,
		    c.big_name[0] ? "\" " : "", c.big_size / 1048576.0);
	check_bulk(&c, h, v, &hi.vis);
	if (c.too_deep || c.too_many || c.unclosed)
		add(&c, "mime-structure", 0.5, "%s%s%s; receivers distrust broken MIME, and"
		    " what lies beyond was not checked", c.too_deep ? "multiparts nested deeper"
		    " than 10 levels " : "", c.too_many ? "more than 100 parts " : "",
		    c.unclosed ? "a multipart boundary never closed" : "");

	for (size_t i = 0; i < r->n; i++)
		total += r->f[i].penalty;
	r->score = total >= 10.0 ? 0.0 : 10.0 - total;
	free(subj.p);
	free(c.plain.p);
	free(c.html.p);
	free(hi.vis.p);
	free(v);
	free(h);
	return 0;
}

/* lint_print - "score: 7.5/10" and one line per finding, or JSON */
void
lint_print(const struct lint_report *r, int json, FILE *out)
{
	char a[LINT_ID_MAX * 6 + 3], b[LINT_TEXT_MAX * 6 + 3];

	if (!json) {
		fprintf(out, "score: %.1f/10\n", r->score);
		for (size_t i = 0; i < r->n; i++)
			fprintf(out, "-%.1f %s: %s\n", r->f[i].penalty, r->f[i].id, r->f[i].text);
		return;
	}
	fprintf(out, "{\"score\":%.1f,\"findings\":[", r->score);
	for (size_t i = 0; i < r->n; i++)
		fprintf(out, "%s{\"id\":%s,\"penalty\":%.1f,\"text\":%s}", i ? "," : "",
		    util_json_str(r->f[i].id, a, sizeof(a)), r->f[i].penalty,
		    util_json_str(r->f[i].text, b, sizeof(b)));
	fprintf(out, "]}\n");
}

/* lint_report_free - the findings */
void
lint_report_free(struct lint_report *r)
{
	free(r->f);
	r->f = NULL;
	r->n = 0;
}
