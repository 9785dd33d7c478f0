/*
 * dkim_sign - DKIM signatures (RFC 6376, RFC 8463) on OpenSSL EVP.
 *
 * API: dkim_sign_new / dkim_sign_free, dkim_sign_keys, dkim_sign_message
 * (see dkim_sign.h).
 *
 * The message comes from our own pipeline, already checked against
 * RFC 5322 and with CRLF line ends.
 *
 * Every key, RSA and Ed25519 alike, signs through dkim_canon: each key is
 * parsed once, at dkim_sign_new, into an EVP_PKEY that the signer threads
 * share read-only, and dkim_canon gives every signature its own digest
 * contexts. libopendkim is not used here: for RSA it re-parsed the PEM key
 * for every message, which cost more CPU than the signature itself, and
 * Debian's libopendkim 2.11 dkim_free() never frees an Ed25519 handle's
 * key (OpenDKIM issue #30, fixed upstream by PR #321 only): ~470 bytes
 * lost per signature. dkim_canon writes the tags, the tag order, the h=
 * list and the bh= libopendkim wrote (test_dkim compares an RSA field
 * with libopendkim's for the same key, message and time); only the
 * folding, and with it b=, differs. dkim_canon's error text never holds
 * key material, so it can go into err.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "dkim_canon.h"
#include "dkim_key.h"
#include "dkim_sign.h"
#include "log.h"
#include "metrics.h"
#include "util.h"

struct dkim_signer {
	struct dkim_keyset *ks;
	EVP_PKEY ***pk;             /* [domain][key]: the parsed keys */
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

/* dkim_sign_parse - a key's PEM as an EVP_PKEY of the type dkim_key
 * found, or NULL */
static EVP_PKEY *
dkim_sign_parse(const struct dkim_key *k)
{
	EVP_PKEY *pk = dkim_key_parse(k->pem, k->pemlen);
	int want = k->type == DKIM_KEY_ED25519 ? EVP_PKEY_ED25519 : EVP_PKEY_RSA;

	if (pk != NULL && EVP_PKEY_get_base_id(pk) != want) {
		EVP_PKEY_free(pk);
		pk = NULL;
	}
	return pk;
}

/* dkim_sign_new - parse every key once */
struct dkim_signer *
dkim_sign_new(struct dkim_keyset *ks, char *err, size_t errlen)
{
	struct dkim_signer *s;
	const struct dkim_domain *d;

	s = xcalloc(1, sizeof(*s));
	s->ks = ks;
	s->pk = xcalloc(ks->ndomains + 1, sizeof(*s->pk));
	for (size_t i = 0; i < ks->ndomains; i++) {
		d = &ks->domains[i];
		s->pk[i] = xcalloc(d->nkeys + 1, sizeof(**s->pk));
		for (size_t j = 0; j < d->nkeys; j++) {
			if ((s->pk[i][j] = dkim_sign_parse(&d->keys[j])) == NULL) {
				snprintf(err, errlen, "dkim d=%s s=%s: cannot read the %s key",
				    d->name, d->keys[j].selector,
				    d->keys[j].type == DKIM_KEY_ED25519 ? "Ed25519" : "RSA");
				dkim_sign_free(s);
				return NULL;
			}
		}
	}
	return s;
}

/* dkim_sign_free - the parsed keys and the key set; NULL is fine */
void
dkim_sign_free(struct dkim_signer *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->ks->ndomains; i++) {
		for (size_t j = 0; s->pk[i] != NULL && j < s->ks->domains[i].nkeys; j++)
			EVP_PKEY_free(s->pk[i][j]);
		free(s->pk[i]);
	}
	free(s->pk);
	dkim_key_free(s->ks);
	free(s);
}

/* dkim_sign_keys - the key set the signer owns */
const struct dkim_keyset *
dkim_sign_keys(const struct dkim_signer *s)
{
	return s->ks;
}

/* dkim_sign_one - one key's DKIM-Signature field, with CRLF line ends,
 * into *field */
static int
dkim_sign_one(EVP_PKEY *pk, const struct dkim_domain *dom, const struct dkim_key *k,
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
	EVP_PKEY **pk = NULL;
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
			pk = s->pk[i];
	if (pk == NULL) {
		snprintf(err, errlen, "dkim d=%s: not a domain of this signer", d->name);
		return -1;
	}
	fields = xcalloc(d->nkeys, sizeof(*fields));
	for (i = 0; i < d->nkeys && rc == 0; i++) {
		rc = dkim_sign_one(pk[i], d, &d->keys[i], msg, len, &fields[i], err, errlen);
		if (rc == 0)
			size += strlen(fields[i]);
	}
	if (rc == 0) {
		p = *out = xmalloc(size + 1);
		for (i = 0; i < d->nkeys; i++) {
			n = strlen(fields[i]);
			memcpy(p, fields[i], n);
			p += n;
			metrics_dkim_signed(dkim_key_alg(&d->keys[i]));
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
