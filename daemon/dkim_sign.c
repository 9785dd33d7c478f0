/*
 * dkim_sign - DKIM signatures (RFC 6376, RFC 8463) with libopendkim.
 *
 * API: dkim_sign_new / dkim_sign_free, dkim_sign_keys, dkim_sign_message
 * (see dkim_sign.h).
 *
 * The message comes from our own pipeline, already checked against
 * RFC 5322 and with CRLF line ends.
 *
 * RSA keys sign with libopendkim: the message is split here into header
 * fields (first line plus its continuation lines, RFC 5322 2.2.3) and the
 * body, and fed to one DKIM handle per signature; the library handle
 * holds only the header lists and is shared by the signer threads.
 * libopendkim's error text names what failed, never key material, so it
 * can go into err.
 *
 * Ed25519 keys sign with dkim_canon (OpenSSL EVP), because Debian's
 * libopendkim 2.11 dkim_free() never frees an Ed25519 handle's key
 * (OpenDKIM issue #30, fixed upstream by PR #321 only): ~470 bytes lost
 * per signature, and a daemon must not grow per message. Each Ed25519 key
 * is parsed once, at dkim_sign_new, into an EVP_PKEY that the threads
 * share read-only; dkim_canon gives every signature its own digest
 * contexts. dkim_canon writes the same tags and the same h= list as
 * libopendkim, so both signatures of a message read alike.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <opendkim/dkim.h>
#include <openssl/evp.h>

#include "dkim_canon.h"
#include "dkim_key.h"
#include "dkim_sign.h"
#include "log.h"
#include "util.h"

#define DKIM_SIGN_HDR "DKIM-Signature: "
#define DKIM_SIGN_HDRLEN (sizeof(DKIM_SIGN_HDR) - 1)

struct dkim_signer {
	DKIM_LIB *lib;
	struct dkim_keyset *ks;
	EVP_PKEY ***ed;             /* [domain][key]: parsed Ed25519 keys, else NULL */
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

/* dkim_sign_parse - an Ed25519 key's PEM as an EVP_PKEY, or NULL */
static EVP_PKEY *
dkim_sign_parse(const struct dkim_key *k)
{
	EVP_PKEY *pk = dkim_key_parse(k->pem, k->pemlen);

	if (pk != NULL && EVP_PKEY_get_base_id(pk) != EVP_PKEY_ED25519) {
		EVP_PKEY_free(pk);
		pk = NULL;
	}
	return pk;
}

/* dkim_sign_new - start libopendkim with our header lists; parse the
 * Ed25519 keys */
struct dkim_signer *
dkim_sign_new(struct dkim_keyset *ks, char *err, size_t errlen)
{
	struct dkim_signer *s;
	const struct dkim_domain *d;
	DKIM_STAT st;

	s = xcalloc(1, sizeof(*s));
	s->ks = ks;
	s->ed = xcalloc(ks->ndomains + 1, sizeof(*s->ed));
	for (size_t i = 0; i < ks->ndomains; i++) {
		d = &ks->domains[i];
		s->ed[i] = xcalloc(d->nkeys + 1, sizeof(**s->ed));
		for (size_t j = 0; j < d->nkeys; j++) {
			if (d->keys[j].type != DKIM_KEY_ED25519)
				continue;
			if ((s->ed[i][j] = dkim_sign_parse(&d->keys[j])) == NULL) {
				snprintf(err, errlen, "dkim d=%s s=%s: cannot read the Ed25519 key",
				    d->name, d->keys[j].selector);
				goto fail;
			}
		}
	}
	if ((s->lib = dkim_init(NULL, NULL)) == NULL) {
		snprintf(err, errlen, "libopendkim could not start (dkim_init)");
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
	return s;
fail:
	dkim_sign_free(s);
	return NULL;
}

/* dkim_sign_free - the library handle and the keys; NULL is fine */
void
dkim_sign_free(struct dkim_signer *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->ks->ndomains; i++) {
		for (size_t j = 0; s->ed[i] != NULL && j < s->ks->domains[i].nkeys; j++)
			EVP_PKEY_free(s->ed[i][j]);
		free(s->ed[i]);
	}
	free(s->ed);
	if (s->lib)
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

/* dkim_sign_feed - header fields one by one (split by dkim_canon, so both
 * signature kinds see the same fields), then the body */
static DKIM_STAT
dkim_sign_feed(DKIM *d, const char *msg, size_t len)
{
	struct dkim_canon_msg m;
	DKIM_STAT st = DKIM_STAT_OK;

	dkim_canon_split(msg, len, &m);
	for (size_t i = 0; i < m.nfields && st == DKIM_STAT_OK; i++)
		st = dkim_header(d, (u_char *)m.fields[i].text, m.fields[i].len);
	if (st == DKIM_STAT_OK)
		st = dkim_eoh(d);
	if (st == DKIM_STAT_OK && m.body != NULL && m.bodylen > 0)
		st = dkim_body(d, (u_char *)m.body, m.bodylen);
	dkim_canon_msg_free(&m);
	if (st != DKIM_STAT_OK)
		return st;
	return dkim_eom(d, NULL);
}

/* dkim_sign_opendkim - an RSA key's DKIM-Signature field, with CRLF
 * line ends (the library folds with bare LF), into *field */
static int
dkim_sign_opendkim(const struct dkim_signer *s, const struct dkim_domain *dom,
    const struct dkim_key *k, const char *queue_id, const char *msg, size_t len,
    char **field, char *err, size_t errlen)
{
	DKIM_STAT st;
	DKIM *d;
	u_char *hdr = NULL;
	size_t hlen = 0;
	const char *why;
	char *p;

	d = dkim_sign(s->lib, (const u_char *)(queue_id ? queue_id : "outpost"), NULL,
	    (dkim_sigkey_t)k->pem, (const u_char *)k->selector,
	    (const u_char *)dom->name, DKIM_CANON_RELAXED, DKIM_CANON_RELAXED,
	    DKIM_SIGN_RSASHA256, -1, &st);
	if (d == NULL) {
		snprintf(err, errlen, "dkim d=%s s=%s: cannot start signing: %s", dom->name,
		    k->selector, dkim_getresultstr(st));
		return -1;
	}
	if ((st = dkim_sign_feed(d, msg, len)) == DKIM_STAT_OK)
		st = dkim_getsighdr_d(d, DKIM_SIGN_HDRLEN, &hdr, &hlen);
	if (st != DKIM_STAT_OK || hdr == NULL) {
		why = dkim_geterror(d);
		snprintf(err, errlen, "dkim d=%s s=%s: %s%s%s", dom->name, k->selector,
		    dkim_getresultstr(st), why && *why ? ": " : "", why ? why : "");
		dkim_free(d);
		return -1;
	}
	/* the name, every LF as CRLF at worst, the final CRLF */
	p = *field = xmalloc(DKIM_SIGN_HDRLEN + 2 * hlen + 3);
	memcpy(p, DKIM_SIGN_HDR, DKIM_SIGN_HDRLEN);
	p += DKIM_SIGN_HDRLEN;
	for (size_t i = 0; i < hlen && hdr[i] != '\0'; i++) {
		if (hdr[i] == '\n' && (i == 0 || hdr[i - 1] != '\r'))
			*p++ = '\r';
		*p++ = (char)hdr[i];
	}
	memcpy(p, "\r\n", 3);
	dkim_free(d);
	return 0;
}

/* dkim_sign_ed25519 - an Ed25519 key's DKIM-Signature field, with the
 * header lists libopendkim uses for RSA, into *field */
static int
dkim_sign_ed25519(EVP_PKEY *pk, const struct dkim_domain *dom, const struct dkim_key *k,
    const char *msg, size_t len, char **field, char *err, size_t errlen)
{
	const struct dkim_canon_sig sig = {
		.hdrname = "DKIM-Signature",
		.first_tags = "v=1",
		.domain = dom->name,
		.selector = k->selector,
		.sign = dkim_sign_hdrs,
		.oversign = dkim_sign_oversign,
		.t = util_now(),
	};
	char why[256];

	if (dkim_canon_sign(pk, &sig, msg, len, field, why, sizeof(why)) != 0) {
		snprintf(err, errlen, "dkim d=%s s=%s: %s", dom->name, k->selector, why);
		return -1;
	}
	return 0;
}

/* dkim_sign_message - one signature per key, in config order, above msg */
int
dkim_sign_message(const struct dkim_signer *s, const struct dkim_domain *d,
    const char *queue_id, const char *msg, size_t len, char **out, size_t *outlen,
    char *log, size_t loglen, char *err, size_t errlen)
{
	EVP_PKEY **ed = NULL;
	char **fields, item[DKIM_SIGN_LOG_MAX], *p;
	size_t size = len, i, n;
	int rc = 0;

	*out = NULL;
	*outlen = 0;
	if (loglen > 0)
		log[0] = '\0';
	if (d == NULL || d->nkeys == 0) {
		snprintf(err, errlen, "no DKIM key");
		return -1;
	}
	for (i = 0; i < s->ks->ndomains; i++)
		if (d == &s->ks->domains[i])
			ed = s->ed[i];
	if (ed == NULL) {
		snprintf(err, errlen, "dkim d=%s: not a domain of this signer", d->name);
		return -1;
	}
	fields = xcalloc(d->nkeys, sizeof(*fields));
	for (i = 0; i < d->nkeys && rc == 0; i++) {
		if (d->keys[i].type == DKIM_KEY_ED25519)
			rc = dkim_sign_ed25519(ed[i], d, &d->keys[i], msg, len, &fields[i], err,
			    errlen);
		else
			rc = dkim_sign_opendkim(s, d, &d->keys[i], queue_id, msg, len, &fields[i],
			    err, errlen);
		if (rc == 0)
			size += strlen(fields[i]);
	}
	if (rc == 0) {
		p = *out = xmalloc(size + 1);
		for (i = 0; i < d->nkeys; i++) {
			n = strlen(fields[i]);
			memcpy(p, fields[i], n);
			p += n;
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
		free(fields[i]);
	free(fields);
	return rc;
}

/* dkim_sign_log - one log line per signature of a dkim_sign_message log */
void
dkim_sign_log(const char *queue_id, const char *items)
{
	const char *p = items, *sep;

	while (*p) {
		sep = strstr(p, "; ");
		log_info("%s: dkim %.*s", queue_id, (int)(sep ? (size_t)(sep - p) : strlen(p)), p);
		if (sep == NULL)
			break;
		p = sep + 2;
	}
}
