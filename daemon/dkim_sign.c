/*
 * dkim_sign - DKIM signatures (RFC 6376, RFC 8463) with libopendkim.
 *
 * API: dkim_sign_new / dkim_sign_free, dkim_sign_keys, dkim_sign_message
 * (see dkim_sign.h).
 *
 * The message comes from our own pipeline, already checked against
 * RFC 5322 and with CRLF line ends; it is split here into header fields
 * (first line plus its continuation lines, RFC 5322 2.2.3) and the body,
 * and fed to one libopendkim handle per key. The library handle holds
 * only the header lists and is shared by the signer threads; each
 * signature has its own DKIM handle. libopendkim's error text names what
 * failed, never key material, so it can go into err.
 *
 * Known library bug: Debian's libopendkim 2.11 dkim_free() does not free
 * an Ed25519 handle's parsed key (OpenDKIM issue #30, fixed upstream by
 * PR #321), about 470 bytes per Ed25519 signature. RSA signatures do not
 * leak. Sanitizer builds ignore those allocations only (dkim_sign_lsan),
 * so the tests still catch leaks of our own.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <opendkim/dkim.h>
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif

#include "dkim_sign.h"
#include "util.h"

#define DKIM_SIGN_HDR "DKIM-Signature: "
#define DKIM_SIGN_HDRLEN (sizeof(DKIM_SIGN_HDR) - 1)

struct dkim_signer {
	DKIM_LIB *lib;
	struct dkim_keyset *ks;
};

/* One signature: the header value as libopendkim folded it (LF). */
struct dkim_sig {
	char *value;
	size_t len;
};

/* RFC 6376 5.4.1 recommends these; Feedback-ID is Gmail's, List-* are
 * RFC 2369 / RFC 8058 (one-click unsubscribe must be signed). */
static const char *dkim_sign_hdrs[] = {
	"From", "Sender", "Reply-To", "To", "Cc", "Subject", "Date", "Message-ID",
	"In-Reply-To", "References", "MIME-Version", "Content-Type",
	"Content-Transfer-Encoding", "List-Id", "List-Unsubscribe",
	"List-Unsubscribe-Post", "Feedback-ID", NULL
};

/* Listed once more in h= (RFC 6376 5.4.2, 8.15): present or not, none of
 * these can be added after signing without breaking the signature. */
static const char *dkim_sign_oversign[] = {
	"From", "Subject", "Date", "To", "List-Unsubscribe", "List-Unsubscribe-Post",
	NULL
};

/* dkim_sign_lsan - LeakSanitizer builds: ignore what libopendkim
 * allocates while it signs with an Ed25519 key (the leak described at
 * the top), and only that; a no-op otherwise */
static void
dkim_sign_lsan(const struct dkim_key *k, int ignore)
{
#if defined(__SANITIZE_ADDRESS__)
	if (k->type == DKIM_KEY_ED25519) {
		if (ignore)
			__lsan_disable();
		else
			__lsan_enable();
	}
#else
	(void)k;
	(void)ignore;
#endif
}

/* dkim_sign_new - start libopendkim with our header lists */
struct dkim_signer *
dkim_sign_new(struct dkim_keyset *ks, char *err, size_t errlen)
{
	struct dkim_signer *s;
	DKIM_STAT st;
	int need_ed = 0;

	for (size_t i = 0; i < ks->ndomains; i++)
		for (size_t j = 0; j < ks->domains[i].nkeys; j++)
			need_ed |= ks->domains[i].keys[j].type == DKIM_KEY_ED25519;
	s = xcalloc(1, sizeof(*s));
	if ((s->lib = dkim_init(NULL, NULL)) == NULL) {
		snprintf(err, errlen, "libopendkim could not start (dkim_init)");
		goto fail;
	}
	if (need_ed && !dkim_libfeature(s->lib, DKIM_FEATURE_ED25519)) {
		snprintf(err, errlen, "this libopendkim cannot sign with Ed25519 keys");
		goto fail;
	}
	if ((st = dkim_options(s->lib, DKIM_OP_SETOPT, DKIM_OPTS_SIGNHDRS,
	    dkim_sign_hdrs, sizeof(char **))) != DKIM_STAT_OK ||
	    (st = dkim_options(s->lib, DKIM_OP_SETOPT, DKIM_OPTS_OVERSIGNHDRS,
	    dkim_sign_oversign, sizeof(char **))) != DKIM_STAT_OK) {
		snprintf(err, errlen, "libopendkim refused the header lists: %s",
		    dkim_getresultstr(st));
		goto fail;
	}
	s->ks = ks;
	return s;
fail:
	if (s->lib)
		dkim_close(s->lib);
	free(s);
	dkim_key_free(ks);
	return NULL;
}

/* dkim_sign_free - the library handle and the keys; NULL is fine */
void
dkim_sign_free(struct dkim_signer *s)
{
	if (s == NULL)
		return;
	dkim_close(s->lib);
	dkim_key_free(s->ks);
	free(s);
}

/* dkim_sign_keys - the key set the signer owns */
const struct dkim_keyset *
dkim_sign_keys(const struct dkim_signer *s)
{
	return s->ks;
}

/* dkim_sign_crlf - find the next CRLF in [p, end), or NULL */
static const char *
dkim_sign_crlf(const char *p, const char *end)
{
	const char *cr;

	while (p < end && (cr = memchr(p, '\r', (size_t)(end - p))) != NULL) {
		if (cr + 1 < end && cr[1] == '\n')
			return cr;
		p = cr + 1;
	}
	return NULL;
}

/* dkim_sign_feed - header fields one by one, then the body. A field is
 * its first line and every following line that starts with SP or HTAB,
 * passed without its final CRLF; no blank line means no body. */
static DKIM_STAT
dkim_sign_feed(DKIM *d, const char *msg, size_t len)
{
	const char *end = msg + len, *p = msg, *field = NULL, *eol, *next;
	DKIM_STAT st = DKIM_STAT_OK;

	while (p < end) {
		eol = dkim_sign_crlf(p, end);
		next = eol ? eol + 2 : end;
		if (eol == p)           /* the blank line */
			break;
		if (field != NULL && *p != ' ' && *p != '\t') {
			/* p - 2: the CRLF that ended the field */
			if ((st = dkim_header(d, (u_char *)field, (size_t)(p - 2 - field))) !=
			    DKIM_STAT_OK)
				return st;
			field = NULL;
		}
		if (field == NULL)
			field = p;
		if (eol == NULL) {      /* the last line, without CRLF */
			p = end;
			break;
		}
		p = next;
	}
	if (field != NULL) {
		/* the field ends at p's CRLF, or at the end of the message */
		size_t flen = (size_t)(p - field);

		if (p < end || (flen >= 2 && field[flen - 2] == '\r' && field[flen - 1] == '\n'))
			flen -= 2;
		if ((st = dkim_header(d, (u_char *)field, flen)) != DKIM_STAT_OK)
			return st;
	}
	if ((st = dkim_eoh(d)) != DKIM_STAT_OK)
		return st;
	if (p < end) {
		p += 2;                 /* past the blank line */
		if (p < end && (st = dkim_body(d, (u_char *)p, (size_t)(end - p))) !=
		    DKIM_STAT_OK)
			return st;
	}
	return dkim_eom(d, NULL);
}

/* dkim_sign_one - one key's DKIM-Signature value into sig */
static int
dkim_sign_one(const struct dkim_signer *s, const struct dkim_domain *dom,
    const struct dkim_key *k, const char *queue_id, const char *msg, size_t len,
    struct dkim_sig *sig, char *err, size_t errlen)
{
	DKIM_STAT st;
	DKIM *d;
	u_char *hdr = NULL;
	size_t hlen = 0;
	const char *why;

	dkim_sign_lsan(k, 1);
	d = dkim_sign(s->lib, (const u_char *)(queue_id ? queue_id : "outpost"), NULL,
	    (dkim_sigkey_t)k->pem, (const u_char *)k->selector,
	    (const u_char *)dom->name, DKIM_CANON_RELAXED, DKIM_CANON_RELAXED,
	    k->type == DKIM_KEY_ED25519 ? DKIM_SIGN_ED25519SHA256 : DKIM_SIGN_RSASHA256,
	    -1, &st);
	if (d == NULL) {
		dkim_sign_lsan(k, 0);
		snprintf(err, errlen, "dkim d=%s s=%s: cannot start signing: %s", dom->name,
		    k->selector, dkim_getresultstr(st));
		return -1;
	}
	if ((st = dkim_sign_feed(d, msg, len)) == DKIM_STAT_OK)
		st = dkim_getsighdr_d(d, DKIM_SIGN_HDRLEN, &hdr, &hlen);
	dkim_sign_lsan(k, 0);
	if (st != DKIM_STAT_OK || hdr == NULL) {
		why = dkim_geterror(d);
		snprintf(err, errlen, "dkim d=%s s=%s: %s%s%s", dom->name, k->selector,
		    dkim_getresultstr(st), why && *why ? ": " : "", why ? why : "");
		dkim_free(d);
		return -1;
	}
	sig->value = xstrndup((const char *)hdr, hlen);
	sig->len = strlen(sig->value);
	dkim_free(d);
	return 0;
}

/* dkim_sign_put - append a signature field with CRLF line ends: the
 * library folds with bare LF */
static char *
dkim_sign_put(char *p, const struct dkim_sig *sig)
{
	memcpy(p, DKIM_SIGN_HDR, DKIM_SIGN_HDRLEN);
	p += DKIM_SIGN_HDRLEN;
	for (size_t i = 0; i < sig->len; i++) {
		if (sig->value[i] == '\n' && (i == 0 || sig->value[i - 1] != '\r'))
			*p++ = '\r';
		*p++ = sig->value[i];
	}
	*p++ = '\r';
	*p++ = '\n';
	return p;
}

/* dkim_sign_message - one signature per key, in config order, above msg */
int
dkim_sign_message(const struct dkim_signer *s, const struct dkim_domain *d,
    const char *queue_id, const char *msg, size_t len, char **out, size_t *outlen,
    char *log, size_t loglen, char *err, size_t errlen)
{
	struct dkim_sig *sigs;
	size_t size = len, i;
	char item[DKIM_SIGN_LOG_MAX], *p;
	int rc = 0;

	*out = NULL;
	*outlen = 0;
	if (loglen > 0)
		log[0] = '\0';
	if (d == NULL || d->nkeys == 0) {
		snprintf(err, errlen, "no DKIM key");
		return -1;
	}
	sigs = xcalloc(d->nkeys, sizeof(*sigs));
	for (i = 0; i < d->nkeys && rc == 0; i++) {
		rc = dkim_sign_one(s, d, &d->keys[i], queue_id, msg, len, &sigs[i], err,
		    errlen);
		/* header name, every LF as CRLF at worst, final CRLF */
		size += DKIM_SIGN_HDRLEN + 2 * sigs[i].len + 2;
	}
	if (rc == 0) {
		p = *out = xmalloc(size + 1);
		for (i = 0; i < d->nkeys; i++) {
			p = dkim_sign_put(p, &sigs[i]);
			snprintf(item, sizeof(item), "%sd=%s s=%s a=%s", i ? "; " : "", d->name,
			    d->keys[i].selector, dkim_key_alg(&d->keys[i]));
			util_strlcat(log, item, loglen);
		}
		memcpy(p, msg, len);
		p += len;
		*p = '\0';
		*outlen = (size_t)(p - *out);
	}
	for (i = 0; i < d->nkeys; i++)
		free(sigs[i].value);
	free(sigs);
	return rc;
}
