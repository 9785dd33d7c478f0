/*
 * dkim_sign - DKIM signatures (RFC 6376, RFC 8463): rsa-sha256 and
 * ed25519-sha256, both with dkim_canon on OpenSSL EVP, each key parsed
 * once when the key set is loaded (libopendkim, which signed RSA before,
 * re-parsed the PEM key for every message).
 *
 * Runs in the signer threads, right after the RFC 5322 checks and before
 * the store commit, so what is queued is exactly what is sent and a retry
 * never re-signs. One signature per key of the From: domain:
 * relaxed/relaxed, rsa-sha256 or ed25519-sha256, no l= tag. Signed header
 * fields, when present: From, Sender, Reply-To, To, Cc, Subject, Date,
 * Message-ID, In-Reply-To, References, MIME-Version, Content-Type,
 * Content-Transfer-Encoding, List-Id, List-Unsubscribe,
 * List-Unsubscribe-Post, Feedback-ID. From, Subject, Date, To,
 * List-Unsubscribe and List-Unsubscribe-Post are over-signed (listed once
 * more in h=), so none can be added after signing.
 *
 * The parsed keys (EVP_PKEY) are shared read-only by all threads; every
 * signature has its own digest contexts, so concurrent signing is safe.
 */
#ifndef OUTPOST_DKIM_SIGN_H
#define OUTPOST_DKIM_SIGN_H

#include <stddef.h>
#include "dkim_key.h"

#define DKIM_SIGN_LOG_MAX 512

struct dkim_signer;

/* Takes ownership of ks and parses every key of it. NULL with err (a key
 * OpenSSL cannot read as the type dkim_key found; nothing of the key in
 * err). */
struct dkim_signer *dkim_sign_new(struct dkim_keyset *ks, char *err, size_t errlen);
void dkim_sign_free(struct dkim_signer *s);
const struct dkim_keyset *dkim_sign_keys(const struct dkim_signer *s);

/* Sign msg (the final message: CRLF line endings, header, blank line,
 * body) with every key of d. On success returns 0 and *out (malloc'd) is
 * the DKIM-Signature fields followed by msg unchanged; `log` gets one
 * "d=example.com s=s2026 a=rsa-sha256" item per signature, separated by
 * "; ". On failure returns -1 with a reason in err (nothing of the key in
 * it). queue_id is not used in the signature. */
int dkim_sign_message(const struct dkim_signer *s, const struct dkim_domain *d,
    const char *queue_id, const char *msg, size_t len, char **out, size_t *outlen,
    char *log, size_t loglen, char *err, size_t errlen);

/* Log the `log` string of dkim_sign_message as one line per signature:
 * "QUEUEID: dkim d=example.com s=s2026 a=rsa-sha256". */
void dkim_sign_log(const char *queue_id, const char *items);

#endif
