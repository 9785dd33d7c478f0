/*
 * dkim_verify - DKIM verification with prefetched keys: libopendkim in
 * verify mode with our key lookup; the EVP verifier the ARC validator
 * uses.
 *
 * API: dkim_verify_new / dkim_verify_free, dkim_verify_keynames,
 * dkim_verify_keytab_lookup, dkim_verify_message, dkim_verify_res_str,
 * dkim_verify_format; for arc.c dkim_verify_tag, dkim_verify_key,
 * dkim_verify_check, dkim_verify_canon_nob, dkim_verify_field (see
 * dkim_verify.h).
 *
 * libopendkim verifies rsa-sha256 and ed25519-sha256 alike: unlike
 * signing, its Ed25519 verification loses nothing (LeakSanitizer over
 * the 100 Ed25519 verifications of test_arc's threads). It is asked to ignore
 * (prescreen) the signatures beyond DKIM_VERIFY_SIGS_MAX. Our signatures
 * and libopendkim's are matched by their b= value. Whatever the library
 * makes of a key lookup, the lookup's own answer (not found, temporary
 * failure) decides the result, so the mapping does not depend on the
 * library's internals.
 *
 * Trust: signature fields and key records are hostile: every tag value
 * is copied into a bounded buffer, names and domains are checked before
 * they reach a result (they end up in an Authentication-Results field).
 */
#include "config.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <opendkim/dkim.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "dkim_canon.h"
#include "dkim_verify.h"
#include "util.h"

#define DKIM_VERIFY_TAGS_MAX 32     /* tags in one list */
#define DKIM_VERIFY_B64_MAX 2048    /* b=, bh=, p= in base64 (RSA 8192: 1400) */
#define DKIM_VERIFY_H_MAX 2048      /* h= */
#define DKIM_VERIFY_B64_CHARS \
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
#define DKIM_VERIFY_RSA_MIN 1024    /* RFC 8301 3.2: verifiers MUST NOT accept less */

struct dkim_verifier {
	DKIM_LIB *lib;
};

/* Per verification, the libopendkim handle's user context. */
struct dkim_verify_ctx {
	const struct dkim_verify_lookup *lk;
	char **b;                   /* b= (no FWS) of the signatures to check */
	size_t nb;
	char *notfound[DKIM_VERIFY_SIGS_MAX];   /* key names the lookup did not find */
	char *tempfail[DKIM_VERIFY_SIGS_MAX];   /* ... or failed for now */
	size_t nnotfound, ntempfail;
};

/* dkim_verify_fws - FWS octets (RFC 5322 3.2.2, unfolded or not) */
static int
dkim_verify_fws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* dkim_verify_set - a result with its reason */
static enum dkim_verify_res
dkim_verify_set(char *reason, size_t reasonlen, enum dkim_verify_res r, const char *why)
{
	if (reasonlen > 0)
		util_strlcpy(reason, why, reasonlen);
	return r;
}

/* dkim_verify_res_str - RFC 8601 2.7.1 names */
const char *
dkim_verify_res_str(enum dkim_verify_res r)
{
	switch (r) {
	case DKIM_VERIFY_NONE:
		return "none";
	case DKIM_VERIFY_PASS:
		return "pass";
	case DKIM_VERIFY_FAIL:
		return "fail";
	case DKIM_VERIFY_NEUTRAL:
		return "neutral";
	case DKIM_VERIFY_POLICY:
		return "policy";
	case DKIM_VERIFY_PERMERROR:
		return "permerror";
	case DKIM_VERIFY_TEMPERROR:
		return "temperror";
	}
	return "neutral";
}

/* dkim_verify_tag - one tag of a tag=value list (RFC 6376 3.2):
 * tag-spec = [FWS] tag-name [FWS] "=" [FWS] tag-value [FWS] */
int
dkim_verify_tag(const char *list, size_t len, const char *name, char *val, size_t vallen)
{
	const char *p = list, *end = list + len, *n, *v, *ve;
	const char *seen[DKIM_VERIFY_TAGS_MAX];
	size_t seenlen[DKIM_VERIFY_TAGS_MAX], nseen = 0, nlen, k;
	int found = 0;

	if (vallen > 0)
		val[0] = '\0';
	while (p < end) {
		while (p < end && dkim_verify_fws(*p))
			p++;
		if (p == end)
			break;              /* a trailing ";" is allowed */
		n = p;
		if (!isalpha((unsigned char)*p))
			return -1;
		while (p < end && (isalnum((unsigned char)*p) || *p == '_'))
			p++;
		nlen = (size_t)(p - n);
		while (p < end && dkim_verify_fws(*p))
			p++;
		if (p == end || *p != '=')
			return -1;
		for (v = ++p; p < end && *p != ';'; p++)
			;
		for (ve = p; ve > v && dkim_verify_fws(ve[-1]); ve--)
			;
		while (v < ve && dkim_verify_fws(*v))
			v++;
		for (k = 0; k < nseen; k++)
			if (seenlen[k] == nlen && memcmp(seen[k], n, nlen) == 0)
				return -1;      /* RFC 6376 3.2: a tag MUST NOT repeat */
		if (nseen == DKIM_VERIFY_TAGS_MAX)
			return -1;
		seen[nseen] = n;
		seenlen[nseen++] = nlen;
		if (nlen == strlen(name) && memcmp(n, name, nlen) == 0) {
			found = 1;
			if (vallen > 0) {
				k = (size_t)(ve - v) < vallen ? (size_t)(ve - v) : vallen - 1;
				memcpy(val, v, k);
				val[k] = '\0';
			}
		}
		if (p < end)
			p++;                /* the ';' */
	}
	return found;
}

/* dkim_verify_value - the value of field f (after the colon) */
static const char *
dkim_verify_value(const struct dkim_canon_field *f, size_t *len)
{
	const char *colon = memchr(f->text, ':', f->len);

	if (colon == NULL) {
		*len = 0;
		return f->text + f->len;
	}
	*len = f->len - (size_t)(colon + 1 - f->text);
	return colon + 1;
}

/* dkim_verify_ftag - tag name of field f, as dkim_verify_tag */
static int
dkim_verify_ftag(const struct dkim_canon_field *f, const char *name, char *val, size_t vallen)
{
	size_t len;
	const char *v = dkim_verify_value(f, &len);

	return dkim_verify_tag(v, len, name, val, vallen);
}

/* dkim_verify_isname - field f is called name */
static int
dkim_verify_isname(const struct dkim_canon_field *f, const char *name)
{
	return f->namelen == strlen(name) && strncasecmp(f->text, name, f->namelen) == 0;
}

/* dkim_verify_nofws - remove FWS in place (base64 values, RFC 6376 3.5 b=) */
static char *
dkim_verify_nofws(char *s)
{
	char *o = s;

	for (char *p = s; *p != '\0'; p++)
		if (!dkim_verify_fws(*p))
			*o++ = *p;
	*o = '\0';
	return s;
}

/* dkim_verify_domainok - a d= or s= we can put in a result and a DNS name:
 * letters, digits, '-', '_', '.', not empty */
static int
dkim_verify_domainok(const char *s)
{
	if (*s == '\0')
		return 0;
	for (; *s != '\0'; s++)
		if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_' && *s != '.')
			return 0;
	return 1;
}

/* dkim_verify_keyname - "sel._domainkey.dom" into buf; 0 or -1 if too long
 * or not a name */
static int
dkim_verify_keyname(const char *domain, const char *selector, char *buf, size_t len)
{
	if (!dkim_verify_domainok(domain) || !dkim_verify_domainok(selector))
		return -1;
	if ((size_t)snprintf(buf, len, "%s._domainkey.%s", selector, domain) >= len)
		return -1;
	return 0;
}

/* dkim_verify_keynames - d= and s= of every signature kind, see .h */
size_t
dkim_verify_keynames(const char *msg, size_t len, struct dkim_verify_keyname *out,
    size_t max)
{
	static const char *kinds[] = {
		"DKIM-Signature", "ARC-Message-Signature", "ARC-Seal", NULL
	};
	struct dkim_canon_msg m;
	struct dkim_verify_keyname k;
	size_t n = 0, j;

	dkim_canon_split(msg, len, &m);
	for (size_t i = 0; i < m.nfields && n < max; i++) {
		for (j = 0; kinds[j] != NULL && !dkim_verify_isname(&m.fields[i], kinds[j]); j++)
			;
		if (kinds[j] == NULL)
			continue;
		memset(&k, 0, sizeof(k));
		if (dkim_verify_ftag(&m.fields[i], "d", k.domain, sizeof(k.domain)) != 1 ||
		    dkim_verify_ftag(&m.fields[i], "s", k.selector, sizeof(k.selector)) != 1)
			continue;
		util_strlower(k.domain);
		if (dkim_verify_keyname(k.domain, k.selector, k.name, sizeof(k.name)) != 0)
			continue;
		for (j = 0; j < n && strcasecmp(out[j].name, k.name) != 0; j++)
			;
		if (j == n)
			out[n++] = k;
	}
	dkim_canon_msg_free(&m);
	return n;
}

/* dkim_verify_keytab_lookup - a lookup_fn over a table, see .h */
enum dkim_verify_keyst
dkim_verify_keytab_lookup(void *ctx, const char *name, char *txt, size_t txtlen)
{
	const struct dkim_verify_keytab *t = ctx;

	for (size_t i = 0; i < t->n; i++) {
		if (strcasecmp(t->ents[i].name, name) != 0)
			continue;
		if (t->ents[i].tempfail)
			return DKIM_VERIFY_KEY_TEMPFAIL;
		if (t->ents[i].txt == NULL)
			return DKIM_VERIFY_KEY_NOTFOUND;
		if (util_strlcpy(txt, t->ents[i].txt, txtlen) >= txtlen)
			return DKIM_VERIFY_KEY_TEMPFAIL;    /* cannot be a key */
		return DKIM_VERIFY_KEY_FOUND;
	}
	return DKIM_VERIFY_KEY_TEMPFAIL;
}

/* dkim_verify_b64 - decode a base64 value (FWS removed first); returns
 * the length or -1 */
static int
dkim_verify_b64(char *s, unsigned char *out, size_t outlen)
{
	dkim_verify_nofws(s);
	if (*s == '\0' || strlen(s) > DKIM_VERIFY_B64_MAX)
		return -1;
	return util_b64_decode(s, out, outlen);
}

/* dkim_verify_haslist - a ':'-separated list (key h=, s=) holds word */
static int
dkim_verify_haslist(const char *list, const char *word)
{
	char buf[256], *tok, *save = NULL;

	util_strlcpy(buf, list, sizeof(buf));
	for (tok = strtok_r(buf, ":", &save); tok != NULL; tok = strtok_r(NULL, ":", &save))
		if (strcasecmp(util_strtrim(tok), word) == 0)
			return 1;
	return 0;
}

/* dkim_verify_key - fetch and parse a key record (RFC 6376 3.6.1) */
enum dkim_verify_res
dkim_verify_key(const struct dkim_verify_lookup *lk, const char *domain,
    const char *selector, const char *alg, EVP_PKEY **key, char *reason, size_t reasonlen)
{
	char name[DKIM_VERIFY_NAME_MAX], *txt, v[16], k[32], h[256], s[256];
	char *p = NULL;
	unsigned char *raw = NULL;
	const unsigned char *q;
	enum dkim_verify_res r;
	int n, ed = strcmp(alg, "ed25519-sha256") == 0;

	*key = NULL;
	if (dkim_verify_keyname(domain, selector, name, sizeof(name)) != 0)
		return dkim_verify_set(reason, reasonlen, DKIM_VERIFY_PERMERROR, "bad key name");
	txt = xmalloc(DKIM_VERIFY_TXT_MAX);
	txt[0] = '\0';
	switch (lk->fn(lk->ctx, name, txt, DKIM_VERIFY_TXT_MAX)) {
	case DKIM_VERIFY_KEY_FOUND:
		break;
	case DKIM_VERIFY_KEY_NOTFOUND:
		r = dkim_verify_set(reason, reasonlen, DKIM_VERIFY_PERMERROR, "key not found");
		goto out;
	default:
		r = dkim_verify_set(reason, reasonlen, DKIM_VERIFY_TEMPERROR, "key lookup failed");
		goto out;
	}
	txt[DKIM_VERIFY_TXT_MAX - 1] = '\0';
	r = dkim_verify_set(reason, reasonlen, DKIM_VERIFY_PERMERROR, "bad key record");
	p = xmalloc(DKIM_VERIFY_TXT_MAX);
	if (dkim_verify_tag(txt, strlen(txt), "p", p, DKIM_VERIFY_TXT_MAX) != 1 ||
	    (n = dkim_verify_tag(txt, strlen(txt), "v", v, sizeof(v))) < 0 ||
	    (n == 1 && strcmp(v, "DKIM1") != 0))
		goto out;
	if (dkim_verify_tag(txt, strlen(txt), "k", k, sizeof(k)) != 1)
		util_strlcpy(k, "rsa", sizeof(k));      /* the default, RFC 6376 3.6.1 */
	if (strcasecmp(k, ed ? "ed25519" : "rsa") != 0) {
		r = dkim_verify_set(reason, reasonlen, DKIM_VERIFY_PERMERROR, "key type mismatch");
		goto out;
	}
	if (dkim_verify_tag(txt, strlen(txt), "h", h, sizeof(h)) == 1 &&
	    !dkim_verify_haslist(h, "sha256")) {
		r = dkim_verify_set(reason, reasonlen, DKIM_VERIFY_PERMERROR, "key hash mismatch");
		goto out;
	}
	if (dkim_verify_tag(txt, strlen(txt), "s", s, sizeof(s)) == 1 &&
	    !dkim_verify_haslist(s, "*") && !dkim_verify_haslist(s, "email")) {
		r = dkim_verify_set(reason, reasonlen, DKIM_VERIFY_PERMERROR, "not an e-mail key");
		goto out;
	}
	dkim_verify_nofws(p);
	if (*p == '\0') {           /* RFC 6376 3.6.1: an empty p= is a revoked key */
		r = dkim_verify_set(reason, reasonlen, DKIM_VERIFY_FAIL, "key revoked");
		goto out;
	}
	raw = xmalloc(DKIM_VERIFY_B64_MAX);
	if ((n = dkim_verify_b64(p, raw, DKIM_VERIFY_B64_MAX)) <= 0)
		goto out;
	q = raw;
	if (ed) {
		if (n == 32)
			*key = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, raw, 32);
	} else if ((*key = d2i_PUBKEY(NULL, &q, n)) == NULL) {
		q = raw;                /* some publish the bare RSAPublicKey */
		*key = d2i_PublicKey(EVP_PKEY_RSA, NULL, &q, n);
	}
	ERR_clear_error();
	if (*key == NULL || EVP_PKEY_get_base_id(*key) != (ed ? EVP_PKEY_ED25519 : EVP_PKEY_RSA)) {
		EVP_PKEY_free(*key);
		*key = NULL;
		r = dkim_verify_set(reason, reasonlen, DKIM_VERIFY_PERMERROR, "key unusable");
		goto out;
	}
	if (!ed && EVP_PKEY_get_bits(*key) < DKIM_VERIFY_RSA_MIN) {
		EVP_PKEY_free(*key);
		*key = NULL;
		r = dkim_verify_set(reason, reasonlen, DKIM_VERIFY_POLICY, "key too small");
		goto out;
	}
	r = dkim_verify_set(reason, reasonlen, DKIM_VERIFY_PASS, "");
out:
	free(raw);
	free(p);
	free(txt);
	return r;
}

/* dkim_verify_check - the signature over data (RFC 6376 3.7; Ed25519
 * signs the SHA-256 of it, RFC 8463 3) */
enum dkim_verify_res
dkim_verify_check(EVP_PKEY *key, const char *alg, const char *data, size_t datalen,
    const char *b64, char *reason, size_t reasonlen)
{
	char *s = xstrdup(b64);
	unsigned char *sig = xmalloc(DKIM_VERIFY_B64_MAX), md[DKIM_CANON_HASHLEN];
	const unsigned char *tbs = (const unsigned char *)data;
	size_t tbslen = datalen;
	const EVP_MD *digest = EVP_sha256();
	EVP_MD_CTX *ctx = NULL;
	enum dkim_verify_res r;
	int n;

	if ((n = dkim_verify_b64(s, sig, DKIM_VERIFY_B64_MAX)) <= 0) {
		r = dkim_verify_set(reason, reasonlen, DKIM_VERIFY_NEUTRAL, "bad b=");
		goto out;
	}
	if (strcmp(alg, "ed25519-sha256") == 0) {
		if (EVP_Digest(data, datalen, md, NULL, EVP_sha256(), NULL) != 1)
			goto bad;
		tbs = md;
		tbslen = sizeof(md);
		digest = NULL;
	}
	if ((ctx = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestVerifyInit(ctx, NULL, digest, NULL, key) != 1)
		goto bad;
	if (EVP_DigestVerify(ctx, sig, (size_t)n, tbs, tbslen) == 1) {
		r = dkim_verify_set(reason, reasonlen, DKIM_VERIFY_PASS, "");
		goto out;
	}
bad:
	r = dkim_verify_set(reason, reasonlen, DKIM_VERIFY_FAIL, "signature mismatch");
out:
	ERR_clear_error();
	EVP_MD_CTX_free(ctx);
	free(sig);
	free(s);
	return r;
}

/* dkim_verify_nob - field with the value of its b= tag removed, FWS
 * around it included (RFC 6376 3.7), into out (len + 1 octets); returns
 * the length */
static size_t
dkim_verify_nob(const char *field, size_t len, char *out)
{
	const char *end = field + len, *colon = memchr(field, ':', len), *p, *n;
	size_t o;

	if (colon == NULL) {
		memcpy(out, field, len);
		return len;
	}
	for (p = colon + 1; p < end; ) {
		while (p < end && dkim_verify_fws(*p))
			p++;
		n = p;
		while (p < end && (isalnum((unsigned char)*p) || *p == '_'))
			p++;
		if (p - n == 1 && *n == 'b') {
			while (p < end && dkim_verify_fws(*p))
				p++;
			if (p < end && *p == '=') {
				o = (size_t)(p + 1 - field);
				memcpy(out, field, o);
				for (p++; p < end && *p != ';'; p++)
					;
				memcpy(out + o, p, (size_t)(end - p));
				return o + (size_t)(end - p);
			}
		}
		while (p < end && *p != ';')
			p++;
		if (p < end)
			p++;
	}
	memcpy(out, field, len);
	return len;
}

/* dkim_verify_canon_nob - relaxed, b= empty, no CRLF; see .h */
size_t
dkim_verify_canon_nob(const char *field, size_t len, char *buf)
{
	char *tmp = xmalloc(len + 1);
	size_t n = dkim_verify_nob(field, len, tmp);

	n = dkim_canon_header(tmp, n, buf) - 2;
	buf[n] = '\0';
	free(tmp);
	return n;
}

/* dkim_verify_simple_hash - SHA-256 of the simple body (RFC 6376 3.4.3):
 * as it is, without empty lines at the end, an empty body as one CRLF */
static int
dkim_verify_simple_hash(const char *body, size_t len, unsigned char md[DKIM_CANON_HASHLEN])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned int mdlen = 0;
	int rc = -1, crlf;

	if (body == NULL)
		len = 0;
	while (len >= 4 && memcmp(body + len - 4, "\r\n\r\n", 4) == 0)
		len -= 2;
	if (len == 2 && memcmp(body, "\r\n", 2) == 0)
		len = 0;
	crlf = len < 2 || memcmp(body + len - 2, "\r\n", 2) != 0;
	if (ctx != NULL && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
	    (len == 0 || EVP_DigestUpdate(ctx, body, len) == 1) &&
	    (!crlf || EVP_DigestUpdate(ctx, "\r\n", 2) == 1) &&
	    EVP_DigestFinal_ex(ctx, md, &mdlen) == 1 && mdlen == DKIM_CANON_HASHLEN)
		rc = 0;
	EVP_MD_CTX_free(ctx);
	return rc;
}

/* dkim_verify_hput - one field into data, relaxed or simple (RFC 6376
 * 3.4.1: as it is, CRLF) */
static void
dkim_verify_hput(char **data, size_t *len, size_t *size, const char *field, size_t flen,
    int relaxed, int nob)
{
	if (*len + flen + 4 > *size) {
		*size = (*len + flen + 4) * 2;
		*data = xrealloc(*data, *size);
	}
	if (nob && relaxed) {
		*len += dkim_verify_canon_nob(field, flen, *data + *len);
	} else if (nob) {
		*len += dkim_verify_nob(field, flen, *data + *len);
	} else if (relaxed) {
		*len += dkim_canon_header(field, flen, *data + *len);
	} else {
		memcpy(*data + *len, field, flen);
		memcpy(*data + *len + flen, "\r\n", 2);
		*len += flen + 2;
	}
}

/* dkim_verify_copy - a tag into a result field, checked as a name */
static int
dkim_verify_copyname(char *dst, size_t dstlen, const char *src)
{
	util_strlcpy(dst, src, dstlen);
	return dkim_verify_domainok(src) && strlen(src) < dstlen;
}

/* dkim_verify_field - one signature on EVP, see .h */
void
dkim_verify_field(const struct dkim_canon_msg *m, size_t idx, int ams,
    const struct dkim_verify_lookup *lk, time_t now, struct dkim_verify_sig *out)
{
	const struct dkim_canon_field *f = &m->fields[idx];
	char a[24], c[40], d[HOST_MAX], s[DKIM_VERIFY_SELECTOR_MAX], v[8], x[24], tmp[24];
	char *b = xmalloc(DKIM_VERIFY_B64_MAX + 1), *bh = xmalloc(DKIM_VERIFY_B64_MAX + 1);
	char *h = xmalloc(DKIM_VERIFY_H_MAX), *tok, *save = NULL, *data = NULL, *slash;
	unsigned char want[DKIM_VERIFY_B64_MAX], got[DKIM_CANON_HASHLEN];
	unsigned char *used = xcalloc(m->nfields + 1, 1);
	size_t datalen = 0, datasize = 0, vlen;
	const char *val = dkim_verify_value(f, &vlen), *why = NULL;
	int hrelaxed, brelaxed, from = 0, n;
	EVP_PKEY *key = NULL;
	enum dkim_verify_res r = DKIM_VERIFY_NEUTRAL;

	memset(out, 0, sizeof(*out));
	if (dkim_verify_tag(val, vlen, "a", a, sizeof(a)) != 1 ||
	    dkim_verify_tag(val, vlen, "b", b, DKIM_VERIFY_B64_MAX + 1) != 1 ||
	    dkim_verify_tag(val, vlen, "bh", bh, DKIM_VERIFY_B64_MAX + 1) != 1 ||
	    dkim_verify_tag(val, vlen, "d", d, sizeof(d)) != 1 ||
	    dkim_verify_tag(val, vlen, "s", s, sizeof(s)) != 1 ||
	    dkim_verify_tag(val, vlen, "h", h, DKIM_VERIFY_H_MAX) != 1) {
		why = "missing or malformed tag";
		goto out;
	}
	util_strlcpy(out->alg, a, sizeof(out->alg));
	dkim_verify_nofws(b);
	util_strlcpy(out->b, b, sizeof(out->b));
	if (!dkim_verify_copyname(out->domain, sizeof(out->domain), d) ||
	    !dkim_verify_copyname(out->selector, sizeof(out->selector), s)) {
		why = "bad d= or s=";
		goto out;
	}
	util_strlower(out->domain);
	if (ams) {
		/* RFC 8617 4.1.2: i= instead of v=; relaxed/relaxed only */
		if (dkim_verify_tag(val, vlen, "i", tmp, sizeof(tmp)) != 1 ||
		    dkim_verify_tag(val, vlen, "v", v, sizeof(v)) != 0) {
			why = "bad i= or v=";
			goto out;
		}
	} else {
		if (dkim_verify_tag(val, vlen, "v", v, sizeof(v)) != 1 || strcmp(v, "1") != 0) {
			why = "bad v=";
			goto out;
		}
		if (dkim_verify_tag(val, vlen, "i", out->identity, sizeof(out->identity)) < 0) {
			why = "malformed tag list";
			goto out;
		}
	}
	if (strcmp(a, "rsa-sha256") != 0 && strcmp(a, "ed25519-sha256") != 0) {
		why = "unsupported algorithm";
		goto out;
	}
	if ((n = dkim_verify_tag(val, vlen, "c", c, sizeof(c))) == 0)
		util_strlcpy(c, ams ? "relaxed/relaxed" : "simple/simple", sizeof(c));
	if ((slash = strchr(c, '/')) == NULL && !ams)
		util_strlcat(c, "/simple", sizeof(c));      /* RFC 6376 3.5 c= */
	hrelaxed = strncmp(c, "relaxed", 7) == 0 && (c[7] == '/' || c[7] == '\0');
	brelaxed = (slash = strchr(c, '/')) != NULL && strcmp(slash + 1, "relaxed") == 0;
	if ((!hrelaxed && strncmp(c, "simple/", 7) != 0) ||
	    (!brelaxed && (slash == NULL || strcmp(slash + 1, "simple") != 0)) ||
	    (ams && (!hrelaxed || !brelaxed))) {
		why = "unsupported c=";
		goto out;
	}
	if (dkim_verify_tag(val, vlen, "l", tmp, sizeof(tmp)) != 0) {
		why = "l= not supported";
		goto out;
	}
	if (dkim_verify_tag(val, vlen, "x", x, sizeof(x)) == 1 && strtoll(x, NULL, 10) < now) {
		r = DKIM_VERIFY_POLICY;
		why = "signature expired";
		goto out;
	}
	if ((r = dkim_verify_key(lk, out->domain, out->selector, a, &key, out->reason,
	    sizeof(out->reason))) != DKIM_VERIFY_PASS)
		goto done;

	/* RFC 6376 3.7: the body hash first */
	if ((brelaxed ? dkim_canon_body_hash(m->body, m->bodylen, got) :
	    dkim_verify_simple_hash(m->body, m->bodylen, got)) != 0) {
		r = DKIM_VERIFY_TEMPERROR;
		why = "cannot hash";
		goto out;
	}
	if (dkim_verify_b64(bh, want, sizeof(want)) != DKIM_CANON_HASHLEN) {
		r = DKIM_VERIFY_NEUTRAL;
		why = "bad bh=";
		goto out;
	}
	if (memcmp(want, got, sizeof(got)) != 0) {
		r = DKIM_VERIFY_FAIL;
		why = "body hash mismatch";
		goto out;
	}

	/* RFC 6376 5.4.2: each h= name takes the next instance from the
	 * bottom; a name with none left adds nothing */
	for (tok = strtok_r(h, ":", &save); tok != NULL; tok = strtok_r(NULL, ":", &save)) {
		tok = util_strtrim(dkim_verify_nofws(tok));
		if (strcasecmp(tok, "from") == 0)
			from = 1;
		if (ams && strcasecmp(tok, "arc-seal") == 0) {
			r = DKIM_VERIFY_FAIL;
			why = "h= names ARC-Seal";
			goto out;
		}
		for (size_t i = m->nfields; i-- > 0; ) {
			if (used[i] || i == idx || !dkim_verify_isname(&m->fields[i], tok))
				continue;
			used[i] = 1;
			dkim_verify_hput(&data, &datalen, &datasize, m->fields[i].text,
			    m->fields[i].len, hrelaxed, 0);
			break;
		}
	}
	if (!from && !ams) {
		r = DKIM_VERIFY_NEUTRAL;
		why = "From: not signed";
		goto out;
	}
	dkim_verify_hput(&data, &datalen, &datasize, f->text, f->len, hrelaxed, 1);
	r = dkim_verify_check(key, a, data, datalen, b, out->reason, sizeof(out->reason));
	goto done;
out:
	if (why != NULL)
		util_strlcpy(out->reason, why, sizeof(out->reason));
done:
	out->res = r;
	EVP_PKEY_free(key);
	free(data);
	free(used);
	free(h);
	free(bh);
	free(b);
}

/* dkim_verify_new - the shared libopendkim handle */
static DKIM_CBSTAT dkim_verify_cb_key(DKIM *, DKIM_SIGINFO *, u_char *, size_t);
static DKIM_CBSTAT dkim_verify_cb_prescreen(DKIM *, DKIM_SIGINFO **, int);

struct dkim_verifier *
dkim_verify_new(char *err, size_t errlen)
{
	struct dkim_verifier *v = xcalloc(1, sizeof(*v));

	if ((v->lib = dkim_init(NULL, NULL)) == NULL) {
		snprintf(err, errlen, "libopendkim could not start (dkim_init)");
		free(v);
		return NULL;
	}
	if (dkim_set_key_lookup(v->lib, dkim_verify_cb_key) != DKIM_STAT_OK ||
	    dkim_set_prescreen(v->lib, dkim_verify_cb_prescreen) != DKIM_STAT_OK) {
		snprintf(err, errlen, "libopendkim refused the callbacks");
		dkim_verify_free(v);
		return NULL;
	}
	return v;
}

/* dkim_verify_free - NULL is fine */
void
dkim_verify_free(struct dkim_verifier *v)
{
	if (v == NULL)
		return;
	if (v->lib != NULL)
		dkim_close(v->lib);
	free(v);
}

/* dkim_verify_remember - note a key name the lookup did not give */
static void
dkim_verify_remember(char **list, size_t *n, const char *name)
{
	for (size_t i = 0; i < *n; i++)
		if (strcmp(list[i], name) == 0)
			return;
	if (*n < DKIM_VERIFY_SIGS_MAX)
		list[(*n)++] = xstrdup(name);
}

/* dkim_verify_listed - name is in list */
static int
dkim_verify_listed(char *const *list, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(list[i], name) == 0)
			return 1;
	return 0;
}

/* dkim_verify_cb_key - libopendkim's key lookup: our caller's table, no DNS */
static DKIM_CBSTAT
dkim_verify_cb_key(DKIM *dkim, DKIM_SIGINFO *sig, u_char *buf, size_t buflen)
{
	struct dkim_verify_ctx *c = dkim_get_user_context(dkim);
	const char *d = (const char *)dkim_sig_getdomain(sig);
	const char *s = (const char *)dkim_sig_getselector(sig);
	char name[DKIM_VERIFY_NAME_MAX], dom[HOST_MAX];

	if (c == NULL || d == NULL || s == NULL || buflen < 2)
		return DKIM_CBSTAT_ERROR;
	util_strlcpy(dom, d, sizeof(dom));
	util_strlower(dom);
	if (dkim_verify_keyname(dom, s, name, sizeof(name)) != 0)
		return DKIM_CBSTAT_NOTFOUND;
	switch (c->lk->fn(c->lk->ctx, name, (char *)buf, buflen)) {
	case DKIM_VERIFY_KEY_FOUND:
		buf[buflen - 1] = '\0';
		return DKIM_CBSTAT_CONTINUE;
	case DKIM_VERIFY_KEY_NOTFOUND:
		dkim_verify_remember(c->notfound, &c->nnotfound, name);
		return DKIM_CBSTAT_NOTFOUND;
	default:
		/* not TRYAGAIN, which stops the library before the other
		 * signatures: our own record says temperror */
		dkim_verify_remember(c->tempfail, &c->ntempfail, name);
		return DKIM_CBSTAT_ERROR;
	}
}

/* dkim_verify_sigb - b= of a libopendkim signature without FWS, in buf */
static const char *
dkim_verify_sigb(DKIM_SIGINFO *sig, char *buf, size_t len)
{
	const u_char *b = dkim_sig_gettagvalue(sig, 0, (u_char *)"b");

	if (b == NULL)
		return NULL;
	util_strlcpy(buf, (const char *)b, len);
	return dkim_verify_nofws(buf);
}

/* dkim_verify_cb_prescreen - ignore the signatures beyond our bound */
static DKIM_CBSTAT
dkim_verify_cb_prescreen(DKIM *dkim, DKIM_SIGINFO **sigs, int nsigs)
{
	struct dkim_verify_ctx *c = dkim_get_user_context(dkim);
	char *b = xmalloc(DKIM_VERIFY_B64_MAX + 1);
	const char *sb;
	size_t j;

	for (int i = 0; i < nsigs; i++) {
		sb = dkim_verify_sigb(sigs[i], b, DKIM_VERIFY_B64_MAX + 1);
		for (j = 0; c != NULL && sb != NULL && j < c->nb && strcmp(c->b[j], sb) != 0; j++)
			;
		if (c == NULL || sb == NULL || j == c->nb)
			dkim_sig_ignore(sigs[i]);
	}
	free(b);
	return DKIM_CBSTAT_CONTINUE;
}

/* dkim_verify_keyverdict - the lookup's own answer decides a signature
 * whose key was not found or failed for now; 1 if it did */
static int
dkim_verify_keyverdict(const struct dkim_verify_ctx *c, struct dkim_verify_sig *out)
{
	char name[DKIM_VERIFY_NAME_MAX];

	if (dkim_verify_keyname(out->domain, out->selector, name, sizeof(name)) != 0)
		return 0;
	if (dkim_verify_listed(c->tempfail, c->ntempfail, name)) {
		out->res = dkim_verify_set(out->reason, sizeof(out->reason),
		    DKIM_VERIFY_TEMPERROR, "key lookup failed");
		return 1;
	}
	if (dkim_verify_listed(c->notfound, c->nnotfound, name)) {
		out->res = dkim_verify_set(out->reason, sizeof(out->reason),
		    DKIM_VERIFY_PERMERROR, "key not found");
		return 1;
	}
	return 0;
}

/* dkim_verify_map - libopendkim's verdict on one signature (RFC 8601 terms) */
static void
dkim_verify_map(const struct dkim_verify_ctx *c, DKIM *dkim, DKIM_SIGINFO *sig,
    struct dkim_verify_sig *out)
{
	unsigned int flags = dkim_sig_getflags(sig);
	int e = dkim_sig_geterror(sig);
	const char *why;

	if (!(flags & DKIM_SIGFLAG_PROCESSED))
		(void)dkim_sig_process(dkim, sig);
	flags = dkim_sig_getflags(sig);
	e = dkim_sig_geterror(sig);
	if (dkim_verify_keyverdict(c, out))
		return;
	if ((flags & DKIM_SIGFLAG_PASSED) && e == DKIM_SIGERROR_OK &&
	    dkim_sig_getbh(sig) == DKIM_SIGBH_MATCH) {
		out->res = dkim_verify_set(out->reason, sizeof(out->reason), DKIM_VERIFY_PASS, "");
		return;
	}
	if (dkim_sig_getbh(sig) == DKIM_SIGBH_MISMATCH) {
		out->res = dkim_verify_set(out->reason, sizeof(out->reason), DKIM_VERIFY_FAIL,
		    "body hash mismatch");
		return;
	}
	why = dkim_sig_geterrorstr(e);
	if (why == NULL)
		why = "unknown error";
	switch (e) {
	case DKIM_SIGERROR_OK:
	case DKIM_SIGERROR_BADSIG:
		out->res = dkim_verify_set(out->reason, sizeof(out->reason), DKIM_VERIFY_FAIL,
		    "signature mismatch");
		return;
	case DKIM_SIGERROR_KEYREVOKED:
		out->res = dkim_verify_set(out->reason, sizeof(out->reason), DKIM_VERIFY_FAIL,
		    "key revoked");
		return;
	case DKIM_SIGERROR_NOKEY:
		out->res = dkim_verify_set(out->reason, sizeof(out->reason),
		    DKIM_VERIFY_PERMERROR, "key not found");
		return;
	case DKIM_SIGERROR_KEYFAIL:
		out->res = dkim_verify_set(out->reason, sizeof(out->reason),
		    DKIM_VERIFY_TEMPERROR, "key lookup failed");
		return;
	case DKIM_SIGERROR_DNSSYNTAX:
	case DKIM_SIGERROR_MULTIREPLY:
	case DKIM_SIGERROR_KEYVERSION:
	case DKIM_SIGERROR_KEYUNKNOWNHASH:
	case DKIM_SIGERROR_KEYHASHMISMATCH:
	case DKIM_SIGERROR_NOTEMAILKEY:
	case DKIM_SIGERROR_KEYTYPEMISSING:
	case DKIM_SIGERROR_KEYTYPEUNKNOWN:
	case DKIM_SIGERROR_KEYDECODE:
		out->res = DKIM_VERIFY_PERMERROR;
		break;
	case DKIM_SIGERROR_EXPIRED:
	case DKIM_SIGERROR_FUTURE:
	case DKIM_SIGERROR_SUBDOMAIN:
	case DKIM_SIGERROR_KEYTOOSMALL:
	case DKIM_SIGERROR_MBSFAILED:
		out->res = DKIM_VERIFY_POLICY;
		break;
	default:
		out->res = DKIM_VERIFY_NEUTRAL;
		break;
	}
	util_strlcpy(out->reason, why, sizeof(out->reason));
}

/* dkim_verify_opendkim - the signatures in c->b through libopendkim;
 * results into sigs[] where bs[k] (their b=) match */
static int
dkim_verify_opendkim(struct dkim_verifier *v, struct dkim_verify_ctx *c,
    const struct dkim_canon_msg *m, struct dkim_verify_sig *sigs, char **bs, size_t n,
    char *err, size_t errlen)
{
	DKIM_STAT st;
	DKIM *dkim;
	DKIM_SIGINFO **list = NULL;
	int nlist = 0;
	char *b = xmalloc(DKIM_VERIFY_B64_MAX + 1);
	const char *sb;

	if ((dkim = dkim_verify(v->lib, (const u_char *)"outpost", NULL, &st)) == NULL) {
		snprintf(err, errlen, "dkim: cannot start verifying: %s", dkim_getresultstr(st));
		free(b);
		return -1;
	}
	dkim_set_user_context(dkim, c);
	st = DKIM_STAT_OK;
	for (size_t i = 0; i < m->nfields && st == DKIM_STAT_OK; i++)
		st = dkim_header(dkim, (u_char *)m->fields[i].text, m->fields[i].len);
	/* dkim_eoh reports the first signature's key trouble, yet the
	 * others still get verified: go on unless it found nothing */
	if (st == DKIM_STAT_OK && dkim_eoh(dkim) != DKIM_STAT_NOSIG) {
		if (m->body != NULL && m->bodylen > 0)
			(void)dkim_body(dkim, (u_char *)m->body, m->bodylen);
		(void)dkim_eom(dkim, NULL);
	}
	if (dkim_getsiglist(dkim, &list, &nlist) != DKIM_STAT_OK)
		nlist = 0;
	for (int i = 0; i < nlist; i++) {
		if (dkim_sig_getflags(list[i]) & DKIM_SIGFLAG_IGNORE)
			continue;
		if ((sb = dkim_verify_sigb(list[i], b, DKIM_VERIFY_B64_MAX + 1)) == NULL)
			continue;
		for (size_t k = 0; k < n; k++) {
			if (bs[k] != NULL && strcmp(bs[k], sb) == 0 &&
			    sigs[k].res == DKIM_VERIFY_NONE) {
				dkim_verify_map(c, dkim, list[i], &sigs[k]);
				break;
			}
		}
	}
	dkim_free(dkim);
	free(b);
	return 0;
}

/* dkim_verify_message - every DKIM-Signature, see .h */
int
dkim_verify_message(struct dkim_verifier *v, const char *msg, size_t len,
    const struct dkim_verify_lookup *lk, struct dkim_verify_sig *sigs, size_t max,
    size_t *nsigs, char *err, size_t errlen)
{
	struct dkim_canon_msg m;
	struct dkim_verify_ctx c = { .lk = lk };
	struct dkim_verify_sig *s;
	char **bs;
	size_t n = 0, i;
	int rc = 0;

	*nsigs = 0;
	if (max > DKIM_VERIFY_SIGS_MAX)
		max = DKIM_VERIFY_SIGS_MAX;
	dkim_canon_split(msg, len, &m);
	bs = xcalloc(max + 1, sizeof(*bs));
	c.b = xcalloc(max + 1, sizeof(*c.b));
	for (i = 0; i < m.nfields && n < max; i++) {
		if (!dkim_verify_isname(&m.fields[i], "DKIM-Signature"))
			continue;
		s = &sigs[n];
		/* the tags for the result; the verdict comes from libopendkim */
		memset(s, 0, sizeof(*s));
		bs[n] = xmalloc(DKIM_VERIFY_B64_MAX + 1);
		if (dkim_verify_ftag(&m.fields[i], "b", bs[n], DKIM_VERIFY_B64_MAX + 1) != 1 ||
		    dkim_verify_ftag(&m.fields[i], "d", s->domain, sizeof(s->domain)) != 1 ||
		    dkim_verify_ftag(&m.fields[i], "s", s->selector, sizeof(s->selector)) != 1 ||
		    !dkim_verify_domainok(s->domain) || !dkim_verify_domainok(s->selector)) {
			s->domain[0] = s->selector[0] = '\0';
			free(bs[n]);
			bs[n] = NULL;
			s->res = dkim_verify_set(s->reason, sizeof(s->reason), DKIM_VERIFY_NEUTRAL,
			    "missing or malformed tag");
			n++;
			continue;
		}
		util_strlower(s->domain);
		(void)dkim_verify_ftag(&m.fields[i], "a", s->alg, sizeof(s->alg));
		(void)dkim_verify_ftag(&m.fields[i], "i", s->identity, sizeof(s->identity));
		dkim_verify_nofws(bs[n]);
		util_strlcpy(s->b, bs[n], sizeof(s->b));
		c.b[c.nb++] = bs[n];
		n++;
	}
	if (c.nb > 0)
		rc = dkim_verify_opendkim(v, &c, &m, sigs, bs, n, err, errlen);
	for (i = 0; i < n; i++) {
		if (sigs[i].res == DKIM_VERIFY_NONE && dkim_verify_keyverdict(&c, &sigs[i]))
			;
		else if (sigs[i].res == DKIM_VERIFY_NONE)   /* libopendkim said nothing */
			sigs[i].res = dkim_verify_set(sigs[i].reason, sizeof(sigs[i].reason),
			    DKIM_VERIFY_NEUTRAL, "not verified");
		free(bs[i]);
	}
	for (i = 0; i < c.nnotfound; i++)
		free(c.notfound[i]);
	for (i = 0; i < c.ntempfail; i++)
		free(c.tempfail[i]);
	free(c.b);
	free(bs);
	dkim_canon_msg_free(&m);
	*nsigs = rc == 0 ? n : 0;
	return rc;
}

/* dkim_verify_token - s can stand as an RFC 8601 pvalue without quotes:
 * a domain, a b= prefix, an address of atext */
static int
dkim_verify_token(const char *s)
{
	if (*s == '\0')
		return 0;
	for (; *s != '\0'; s++)
		if (!isalnum((unsigned char)*s) && strchr("-_.@+", *s) == NULL)
			return 0;
	return 1;
}

/* dkim_verify_format - Authentication-Results resinfo, see .h */
size_t
dkim_verify_format(const struct dkim_verify_sig *sigs, size_t n, char *buf, size_t len)
{
	char item[HOST_MAX + ADDR_MAX + 256], reason[DKIM_VERIFY_REASON_MAX];
	size_t used = 0, need = 0, k;
	const struct dkim_verify_sig *s;

	if (len > 0)
		buf[0] = '\0';
	if (n == 0) {
		util_strlcpy(buf, "dkim=none", len);
		return strlen("dkim=none");
	}
	for (size_t i = 0; i < n; i++) {
		s = &sigs[i];
		/* a comment holds no parentheses or backslash (RFC 5322 3.2.2) */
		for (k = 0; s->reason[k] != '\0' && k + 1 < sizeof(reason); k++)
			reason[k] = strchr("()\\\r\n", s->reason[k]) ? ' ' : s->reason[k];
		reason[k] = '\0';
		snprintf(item, sizeof(item), "%sdkim=%s%s%s%s", i ? "; " : "",
		    dkim_verify_res_str(s->res), reason[0] ? " (" : "", reason,
		    reason[0] ? ")" : "");
		if (dkim_verify_token(s->domain))
			snprintf(item + strlen(item), sizeof(item) - strlen(item), " header.d=%s",
			    s->domain);
		if (dkim_verify_token(s->identity))
			snprintf(item + strlen(item), sizeof(item) - strlen(item), " header.i=%s",
			    s->identity);
		if (dkim_verify_token(s->selector))
			snprintf(item + strlen(item), sizeof(item) - strlen(item), " header.s=%s",
			    s->selector);
		/* base64 has '/', a tspecial: then a quoted-string (RFC 8601 2.2) */
		if (s->b[0] != '\0' && strspn(s->b, DKIM_VERIFY_B64_CHARS) == strlen(s->b))
			snprintf(item + strlen(item), sizeof(item) - strlen(item),
			    strpbrk(s->b, "/=") ? " header.b=\"%s\"" : " header.b=%s", s->b);
		need += strlen(item);
		if (used + strlen(item) < len && used == need - strlen(item)) {
			memcpy(buf + used, item, strlen(item) + 1);
			used += strlen(item);
		}
	}
	return need;
}
