/*
 * dkim_canon - relaxed/relaxed signature header fields (DKIM, ARC) on
 * OpenSSL EVP.
 *
 * API: dkim_canon_split / dkim_canon_msg_free, dkim_canon_header,
 * dkim_canon_body_hash, dkim_canon_alg, dkim_canon_finish,
 * dkim_canon_sign (see dkim_canon.h).
 *
 * The output must read like libopendkim's, which made outpost's RSA
 * signatures before dkim_canon did, so that receivers see the same
 * signatures: the same tag order (v, a, c, d, s, t, bh, h, b) and the
 * same h= list, which names the present fields top to bottom and then
 * each over-signed name once more. Only the folding differs. What is hashed
 * for h= follows the verifier's rule instead (RFC 6376 5.4.2): the n-th
 * entry of a name takes the n-th instance from the bottom, so a name
 * present twice is hashed bottom instance first.
 *
 * Trust: the message comes from our own pipeline (CRLF line ends, lines
 * of at most 998 octets), but nothing here relies on it beyond not
 * reading out of bounds: every length is explicit, no NUL is assumed in
 * the message. Key material never reaches err.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>
#include <openssl/evp.h>

#include "dkim_canon.h"
#include "util.h"

#define DKIM_CANON_BODY_BUF 16384   /* canonical body octets per digest update */
#define DKIM_CANON_B_MIN 16         /* b= starts a new line unless this much fits */

/* A growing string that knows where its current line starts. */
struct dkim_canon_buf {
	char *p;
	size_t len, size;
	size_t line;                /* offset of the current line */
};

/* dkim_canon_wsp - WSP (RFC 5234): SP or HTAB */
static int
dkim_canon_wsp(char c)
{
	return c == ' ' || c == '\t';
}

/* dkim_canon_crlf - the next CRLF in [p, end), or NULL */
static const char *
dkim_canon_crlf(const char *p, const char *end)
{
	const char *cr;

	while (p < end && (cr = memchr(p, '\r', (size_t)(end - p))) != NULL) {
		if (cr + 1 < end && cr[1] == '\n')
			return cr;
		p = cr + 1;
	}
	return NULL;
}

/* dkim_canon_put - append n octets, keeping a NUL after them */
static void
dkim_canon_put(struct dkim_canon_buf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->size) {
		b->size = (b->len + n + 1) * 2;
		b->p = xrealloc(b->p, b->size);
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

/* dkim_canon_puts - append a string */
static void
dkim_canon_puts(struct dkim_canon_buf *b, const char *s)
{
	dkim_canon_put(b, s, strlen(s));
}

/* dkim_canon_newline - end the line; the next one starts with indent
 * (FWS: continuation lines start with WSP, RFC 5322 2.2.3) */
static void
dkim_canon_newline(struct dkim_canon_buf *b, const char *indent)
{
	dkim_canon_puts(b, "\r\n");
	b->line = b->len;
	dkim_canon_puts(b, indent);
}

/* dkim_canon_col - octets on the current line so far */
static size_t
dkim_canon_col(const struct dkim_canon_buf *b)
{
	return b->len - b->line;
}

/* dkim_canon_split - header fields and body, see dkim_canon.h */
void
dkim_canon_split(const char *msg, size_t len, struct dkim_canon_msg *m)
{
	const char *end = msg + len, *p = msg, *eol, *field = NULL, *fend = NULL, *colon;
	struct dkim_canon_field *f;
	size_t cap = 0;

	memset(m, 0, sizeof(*m));
	for (;;) {
		eol = p < end ? dkim_canon_crlf(p, end) : NULL;
		if (p < end && eol == p) {  /* the empty line */
			m->body = p + 2;
			m->bodylen = (size_t)(end - m->body);
		}
		/* a field ends where a line that is not a continuation starts */
		if (field != NULL && (p == end || eol == p || !dkim_canon_wsp(*p))) {
			if (m->nfields == cap) {
				cap = cap ? 2 * cap : 32;
				m->fields = xreallocarray(m->fields, cap, sizeof(*m->fields));
			}
			f = &m->fields[m->nfields++];
			f->text = field;
			f->len = (size_t)(fend - field);
			colon = memchr(field, ':', f->len);
			f->namelen = colon ? (size_t)(colon - field) : 0;
			while (f->namelen > 0 && dkim_canon_wsp(field[f->namelen - 1]))
				f->namelen--;
			field = NULL;
		}
		if (p == end || eol == p)
			break;
		if (field == NULL)
			field = p;
		fend = eol ? eol : end;
		p = eol ? eol + 2 : end;
	}
}

/* dkim_canon_msg_free - the field array; the message is the caller's */
void
dkim_canon_msg_free(struct dkim_canon_msg *m)
{
	free(m->fields);
	memset(m, 0, sizeof(*m));
}

/* dkim_canon_span - relaxed form of a name or a value: CRLF removed
 * (unfolding), WSP runs as one SP, none at either end */
static char *
dkim_canon_span(const char *p, const char *end, char *o, int lower)
{
	int wsp = 0, any = 0;

	for (; p < end; p++) {
		if (p[0] == '\r' && p + 1 < end && p[1] == '\n') {
			p++;
			continue;
		}
		if (dkim_canon_wsp(*p)) {
			wsp = 1;
			continue;
		}
		if (wsp && any)
			*o++ = ' ';
		wsp = 0;
		any = 1;
		*o++ = lower && *p >= 'A' && *p <= 'Z' ? (char)(*p - 'A' + 'a') : *p;
	}
	return o;
}

/* dkim_canon_header - RFC 6376 3.4.2, see dkim_canon.h */
size_t
dkim_canon_header(const char *field, size_t len, char *out)
{
	const char *end = field + len, *colon = memchr(field, ':', len);
	char *o;

	o = dkim_canon_span(field, colon ? colon : end, out, 1);
	if (colon != NULL) {
		*o++ = ':';
		o = dkim_canon_span(colon + 1, end, o, 0);
	}
	*o++ = '\r';
	*o++ = '\n';
	*o = '\0';
	return (size_t)(o - out);
}

/* The canonical body goes to the digest through a buffer: a body of
 * short words would otherwise cost one EVP call per word. */
struct dkim_canon_body {
	EVP_MD_CTX *ctx;
	size_t n;
	int ok;
	char buf[DKIM_CANON_BODY_BUF];
};

/* dkim_canon_body_flush - the buffered octets into the digest */
static void
dkim_canon_body_flush(struct dkim_canon_body *b)
{
	if (b->n > 0 && EVP_DigestUpdate(b->ctx, b->buf, b->n) != 1)
		b->ok = 0;
	b->n = 0;
}

/* dkim_canon_body_put - n canonical octets */
static void
dkim_canon_body_put(struct dkim_canon_body *b, const char *s, size_t n)
{
	if (b->n + n > sizeof(b->buf)) {
		dkim_canon_body_flush(b);
		if (n > sizeof(b->buf)) {
			if (EVP_DigestUpdate(b->ctx, s, n) != 1)
				b->ok = 0;
			return;
		}
	}
	memcpy(b->buf + b->n, s, n);
	b->n += n;
}

/* dkim_canon_body_hash - RFC 6376 3.4.4, see dkim_canon.h. Empty lines
 * are only counted, and written when a line with text follows: the
 * empty lines at the end are never written. */
int
dkim_canon_body_hash(const char *body, size_t len, unsigned char md[DKIM_CANON_HASHLEN])
{
	struct dkim_canon_body *b = xcalloc(1, sizeof(*b));
	const char *end = body ? body + len : NULL, *p = body, *eol, *q, *r;
	size_t empty = 0;
	unsigned int mdlen = 0;
	int wsp, text, rc = -1;

	b->ok = 1;
	if ((b->ctx = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestInit_ex(b->ctx, EVP_sha256(), NULL) != 1)
		goto out;
	while (p != NULL && p < end) {
		if ((eol = dkim_canon_crlf(p, end)) == NULL)
			eol = end;          /* a last line without CRLF: as if it had one */
		wsp = text = 0;
		for (q = p; q < eol; q = r) {
			if (dkim_canon_wsp(*q)) {
				wsp = 1;
				r = q + 1;
				continue;
			}
			for (r = q; r < eol && !dkim_canon_wsp(*r); r++)
				;
			for (; !text && empty > 0; empty--)
				dkim_canon_body_put(b, "\r\n", 2);
			if (wsp)
				dkim_canon_body_put(b, " ", 1);
			dkim_canon_body_put(b, q, (size_t)(r - q));
			wsp = 0;
			text = 1;
		}
		if (text)
			dkim_canon_body_put(b, "\r\n", 2);
		else
			empty++;
		p = eol == end ? end : eol + 2;
	}
	dkim_canon_body_flush(b);
	if (b->ok && EVP_DigestFinal_ex(b->ctx, md, &mdlen) == 1 && mdlen == DKIM_CANON_HASHLEN)
		rc = 0;
out:
	EVP_MD_CTX_free(b->ctx);
	free(b);
	return rc;
}

/* dkim_canon_alg - a= for the key */
const char *
dkim_canon_alg(const EVP_PKEY *key)
{
	switch (EVP_PKEY_get_base_id(key)) {
	case EVP_PKEY_RSA:
		return "rsa-sha256";
	case EVP_PKEY_ED25519:
		return "ed25519-sha256";
	default:
		return NULL;
	}
}

/* dkim_canon_ssl_err - OpenSSL's reason for a failure, and an empty
 * error queue for the thread */
static void
dkim_canon_ssl_err(const char *what, char *err, size_t errlen)
{
	unsigned long e = ERR_peek_last_error();
	char reason[256] = "unknown error";

	if (e != 0)
		ERR_error_string_n(e, reason, sizeof(reason));
	ERR_clear_error();
	snprintf(err, errlen, "%s: %s", what, reason);
}

/* dkim_canon_pksign - the signature of data. rsa-sha256: RSASSA-PKCS1-v1_5
 * with SHA-256 over the data (RFC 6376 3.3.1); ed25519-sha256: PureEdDSA
 * over the SHA-256 of the data (RFC 8463 3). Returns a malloc'd
 * signature, or NULL with err. */
static unsigned char *
dkim_canon_pksign(EVP_PKEY *key, const char *data, size_t len, size_t *siglen,
    char *err, size_t errlen)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned char md[DKIM_CANON_HASHLEN], *sig = NULL;
	const unsigned char *tbs = (const unsigned char *)data;
	const EVP_MD *digest = EVP_sha256();
	size_t tbslen = len;
	int size = EVP_PKEY_get_size(key);

	if (EVP_PKEY_get_base_id(key) == EVP_PKEY_ED25519) {
		if (EVP_Digest(data, len, md, NULL, EVP_sha256(), NULL) != 1)
			goto fail;
		tbs = md;
		tbslen = sizeof(md);
		digest = NULL;      /* Ed25519 hashes by itself: no md here */
	}
	if (ctx == NULL || size <= 0 ||
	    EVP_DigestSignInit(ctx, NULL, digest, NULL, key) != 1)
		goto fail;
	*siglen = (size_t)size;
	sig = xmalloc(*siglen);
	if (EVP_DigestSign(ctx, sig, siglen, tbs, tbslen) != 1)
		goto fail;
	EVP_MD_CTX_free(ctx);
	return sig;
fail:
	dkim_canon_ssl_err("cannot sign", err, errlen);
	free(sig);
	EVP_MD_CTX_free(ctx);
	return NULL;
}

/* dkim_canon_fold_tag - " TAG;" on the current line if it fits, else on
 * a new one. An h= too long for any line is broken after a colon, where
 * FWS is allowed (RFC 6376 3.5); other values are never broken: a long
 * d= makes a long line, still far below 998 octets. */
static void
dkim_canon_fold_tag(struct dkim_canon_buf *b, const char *tag)
{
	const char *p, *q;
	size_t n, total = strlen(tag) + 1;

	if (dkim_canon_col(b) + 1 + total <= DKIM_CANON_FOLD) {
		dkim_canon_puts(b, " ");
		dkim_canon_puts(b, tag);
	} else if (strncmp(tag, "h=", 2) != 0 || 1 + total <= DKIM_CANON_FOLD) {
		dkim_canon_newline(b, "\t");
		dkim_canon_puts(b, tag);
	} else {
		for (p = tag; *p != '\0'; p = q) {
			q = strchr(p, ':');
			q = q ? q + 1 : p + strlen(p);
			n = (size_t)(q - p) + (*q == '\0');    /* the last one has ';' */
			if (p == tag && dkim_canon_col(b) + 1 + n <= DKIM_CANON_FOLD)
				dkim_canon_puts(b, " ");
			else if (p == tag)
				dkim_canon_newline(b, "\t");
			else if (dkim_canon_col(b) + n > DKIM_CANON_FOLD)
				dkim_canon_newline(b, "\t ");
			dkim_canon_put(b, p, (size_t)(q - p));
		}
	}
	dkim_canon_puts(b, ";");
}

/* dkim_canon_finish - fold, hash, sign; see dkim_canon.h */
int
dkim_canon_finish(EVP_PKEY *key, const char *hdrname, const char *const *tags,
    const char *data, size_t datalen, char **out, char *err, size_t errlen)
{
	struct dkim_canon_buf f = { 0 }, h = { 0 };
	unsigned char *sig = NULL;
	size_t siglen = 0, n, room;
	char *b64 = NULL, *c;
	int rc = -1;

	*out = NULL;
	dkim_canon_puts(&f, hdrname);
	dkim_canon_puts(&f, ":");
	for (size_t i = 0; tags[i] != NULL; i++)
		dkim_canon_fold_tag(&f, tags[i]);
	if (dkim_canon_col(&f) + 1 + 2 + DKIM_CANON_B_MIN > DKIM_CANON_FOLD)
		dkim_canon_newline(&f, "\t");
	else
		dkim_canon_puts(&f, " ");
	dkim_canon_puts(&f, "b=");

	/* the covered fields, then this one with b= empty and no CRLF */
	h.size = datalen + f.len + 3;
	h.p = xmalloc(h.size);
	memcpy(h.p, data, datalen);
	h.len = datalen;
	h.len += dkim_canon_header(f.p, f.len, h.p + h.len) - 2;
	if ((sig = dkim_canon_pksign(key, h.p, h.len, &siglen, err, errlen)) == NULL)
		goto out;

	/* base64 ignores FWS (RFC 6376 3.5, b=): fill each line */
	b64 = util_b64_encode(sig, siglen);
	for (c = b64; *c != '\0'; c += n) {
		if (dkim_canon_col(&f) >= DKIM_CANON_FOLD)
			dkim_canon_newline(&f, "\t ");
		room = DKIM_CANON_FOLD - dkim_canon_col(&f);
		n = strlen(c) < room ? strlen(c) : room;
		dkim_canon_put(&f, c, n);
	}
	dkim_canon_puts(&f, "\r\n");
	*out = f.p;
	f.p = NULL;
	rc = 0;
out:
	free(f.p);
	free(h.p);
	free(sig);
	free(b64);
	return rc;
}

/* dkim_canon_names - sign and oversign together, each name once (case
 * does not matter in field names, RFC 5322 1.2.2); returns the count */
static size_t
dkim_canon_names(const struct dkim_canon_sig *sig, const char ***names)
{
	const char *const *lists[2] = { sig->sign, sig->oversign };
	size_t n = 0, cap = 0, j;

	*names = NULL;
	for (int l = 0; l < 2; l++) {
		for (size_t i = 0; lists[l] != NULL && lists[l][i] != NULL; i++) {
			for (j = 0; j < n && strcasecmp((*names)[j], lists[l][i]) != 0; j++)
				;
			if (j < n)
				continue;
			if (n == cap) {
				cap = cap ? 2 * cap : 32;
				*names = xreallocarray(*names, cap, sizeof(**names));
			}
			(*names)[n++] = lists[l][i];
		}
	}
	return n;
}

/* dkim_canon_id - which of names a field has, or -1 */
static long
dkim_canon_id(const struct dkim_canon_field *f, const char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strlen(names[i]) == f->namelen &&
		    strncasecmp(f->text, names[i], f->namelen) == 0)
			return (long)i;
	return -1;
}

/* dkim_canon_select - h= into hl and the hashed fields into data.
 * byid holds the field indices grouped by name (counting sort), so the
 * r-th instance from the top of a name present c times is hashed in the
 * slot of its (c-1-r)-th: one pass, however many fields. Returns the
 * number of From: instances. */
static size_t
dkim_canon_select(const struct dkim_canon_msg *m, const struct dkim_canon_sig *sig,
    struct dkim_canon_buf *hl, struct dkim_canon_buf *data)
{
	const char **names = NULL;
	size_t nn = dkim_canon_names(sig, &names), i, from = 0, k;
	long *id = xcalloc(m->nfields + 1, sizeof(*id)), fromid;
	size_t *count = xcalloc(nn + 1, sizeof(*count));
	size_t *start = xcalloc(nn + 1, sizeof(*start));
	size_t *seen = xcalloc(nn + 1, sizeof(*seen));
	size_t *byid = xcalloc(m->nfields + 1, sizeof(*byid));
	char *canon = NULL;
	size_t canonsize = 0;

	for (i = 0; i < m->nfields; i++)
		if ((id[i] = dkim_canon_id(&m->fields[i], names, nn)) >= 0)
			count[id[i]]++;
	for (k = 1; k < nn; k++)
		start[k] = start[k - 1] + count[k - 1];
	for (i = 0; i < m->nfields; i++)
		if (id[i] >= 0)
			byid[start[id[i]] + seen[id[i]]++] = i;
	memset(seen, 0, (nn + 1) * sizeof(*seen));

	for (i = 0; i < m->nfields; i++) {
		const struct dkim_canon_field *f;

		if (id[i] < 0)
			continue;
		if (hl->len > 0)
			dkim_canon_puts(hl, ":");
		dkim_canon_put(hl, m->fields[i].text, m->fields[i].namelen);
		k = seen[id[i]]++;
		f = &m->fields[byid[start[id[i]] + count[id[i]] - 1 - k]];
		if (f->len + 3 > canonsize) {
			canonsize = f->len + 3;
			canon = xrealloc(canon, canonsize);
		}
		dkim_canon_put(data, canon, dkim_canon_header(f->text, f->len, canon));
	}
	/* over-signed: one entry past the last instance, which hashes nothing */
	for (i = 0; sig->oversign != NULL && sig->oversign[i] != NULL; i++) {
		if (hl->len > 0)
			dkim_canon_puts(hl, ":");
		dkim_canon_puts(hl, sig->oversign[i]);
	}
	for (fromid = 0; (size_t)fromid < nn && strcasecmp(names[fromid], "From") != 0;
	    fromid++)
		;
	if ((size_t)fromid < nn)
		from = count[fromid];
	free(canon);
	free(byid);
	free(seen);
	free(start);
	free(count);
	free(id);
	free(names);
	return from;
}

/* dkim_canon_sign - a whole DKIM-Signature or ARC-Message-Signature */
int
dkim_canon_sign(EVP_PKEY *key, const struct dkim_canon_sig *sig, const char *msg,
    size_t len, char **out, char *err, size_t errlen)
{
	struct dkim_canon_msg m;
	struct dkim_canon_buf hl = { 0 }, data = { 0 };
	unsigned char bh[DKIM_CANON_HASHLEN];
	char **tags = NULL, *first = NULL, *p, *tok, *save = NULL, *b64;
	const char *alg = dkim_canon_alg(key);
	size_t ntags = 0, cap = 16;
	int rc = -1;

	*out = NULL;
	if (alg == NULL) {
		snprintf(err, errlen, "unsupported key type (RSA or Ed25519 only)");
		return -1;
	}
	dkim_canon_split(msg, len, &m);
	if (dkim_canon_select(&m, sig, &hl, &data) == 0) {
		snprintf(err, errlen, "no From: field to sign (RFC 6376 5.4)");
		goto out;
	}
	if (dkim_canon_body_hash(m.body, m.bodylen, bh) != 0) {
		dkim_canon_ssl_err("cannot hash the body", err, errlen);
		goto out;
	}
	tags = xcalloc(cap, sizeof(*tags));
	first = xstrdup(sig->first_tags ? sig->first_tags : "");
	for (tok = strtok_r(first, ";", &save); tok; tok = strtok_r(NULL, ";", &save)) {
		p = util_strtrim(tok);
		if (*p == '\0')
			continue;
		if (ntags + 8 >= cap)
			tags = xreallocarray(tags, cap *= 2, sizeof(*tags));
		tags[ntags++] = xstrdup(p);
	}
	b64 = util_b64_encode(bh, sizeof(bh));
	tags[ntags++] = xasprintf("a=%s", alg);
	tags[ntags++] = xstrdup("c=relaxed/relaxed");
	tags[ntags++] = xasprintf("d=%s", sig->domain);
	tags[ntags++] = xasprintf("s=%s", sig->selector);
	tags[ntags++] = xasprintf("t=%lld", (long long)sig->t);
	tags[ntags++] = xasprintf("bh=%s", b64);
	tags[ntags++] = xasprintf("h=%s", hl.p);
	free(b64);
	rc = dkim_canon_finish(key, sig->hdrname, (const char *const *)tags,
	    data.p ? data.p : "", data.len, out, err, errlen);
out:
	for (size_t i = 0; i < ntags; i++)
		free(tags[i]);
	free(tags);
	free(first);
	free(hl.p);
	free(data.p);
	dkim_canon_msg_free(&m);
	return rc;
}
