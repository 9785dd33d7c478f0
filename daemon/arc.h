/*
 * arc - Authenticated Received Chain (RFC 8617): validate the ARC sets a
 * message arrives with, and seal it with one more set, on OpenSSL EVP,
 * dkim_canon (signing) and dkim_verify's EVP verifier.
 *
 * Validation (RFC 8617 5.2) runs without network access: keys come from
 * a struct dkim_verify_lookup the caller filled beforehand (the names are
 * listed by dkim_verify_keynames, with the DKIM ones). A key lookup that
 * failed for now gives ARC_TEMPERROR, not ARC_FAIL: cv=fail would end the
 * chain for every later hop because of our own DNS trouble, so the
 * sealer refuses to seal a temperror chain (ARC_SEAL_SKIP) and the
 * caller relays the message unsealed; later hops still see the earlier
 * chain and judge it themselves. A definite failure anywhere wins over a
 * temporary one.
 *
 * Sealing (RFC 8617 5.1) adds instance N+1: ARC-Seal, ARC-Message-
 * Signature, ARC-Authentication-Results, in that order (as dkimpy writes
 * them), to go on top of the message. rsa-sha256 only (RFC 8617 4.1.3
 * leaves a= to DKIM's registry, and receivers verify RSA only today).
 *
 * No global state; every call has its own contexts, so one EVP_PKEY may
 * be shared read-only by many threads. err never holds key material.
 */
#ifndef OUTPOST_ARC_H
#define OUTPOST_ARC_H

#include <stddef.h>
#include <time.h>

#include <openssl/evp.h>

#include "dkim_verify.h"

#define ARC_INSTANCES_MAX 50    /* RFC 8617 4.2.1: i= is 1 to 50 */
#define ARC_REASON_MAX 128
#define ARC_SEAL_SKIP 1         /* arc_seal: must not seal, relay unsealed */

enum arc_status {
	ARC_NONE,                   /* no ARC field at all */
	ARC_PASS,
	ARC_FAIL,
	ARC_TEMPERROR,              /* a key lookup failed for now, nothing failed */
};

struct arc_result {
	enum arc_status status;
	int instances;              /* N, the highest valid i= (0: none) */
	int fail_instance;          /* the set at fault; 0 when none or structural */
	int ended;                  /* the highest ARC-Seal says cv=fail: the chain
	                             * is over, never seal (RFC 8617 5.1.2) */
	char reason[ARC_REASON_MAX];    /* "" on pass and none */
};

/* What to seal with. */
struct arc_seal_params {
	EVP_PKEY *key;              /* RSA */
	const char *domain;         /* d= */
	const char *selector;       /* s= */
	const char *authserv_id;    /* our host name (RFC 8601 2.5) */
	const char *results;        /* resinfo "; "-separated, no CR or LF:
	                             * "dkim=pass header.d=...; arc=none" */
	time_t t;                   /* t= */
};

/* Validate msg's chain (RFC 8617 5.2): structure (each instance 1..N
 * exactly one AAR, AMS and AS, N <= 50, cv=none on i=1 and cv=pass on the
 * others, the highest AS not cv=fail), the highest AMS, then every AS
 * from N down to 1. now is the time for x=. Fills *res. */
void arc_validate(const char *msg, size_t len, const struct dkim_verify_lookup *lk,
    time_t now, struct arc_result *res);

/* "none", "pass", "fail", "temperror" */
const char *arc_status_str(enum arc_status s);

/* The arc= resinfo for Authentication-Results: "arc=pass",
 * "arc=fail (ARC-Seal i=2: signature mismatch)", "arc=none". Returns the
 * length it needed (as snprintf). */
size_t arc_ar_result(const struct arc_result *r, char *buf, size_t len);

/* Seal msg (CRLF lines) as instance chain->instances + 1 with cv= from
 * chain (none, pass or fail; RFC 8617 4.1.3, 5.1.2: a failed chain is
 * sealed over our own set only). On 0, *out (malloc'd) holds the three
 * fields, folded to 78 columns where values allow, each with its CRLF,
 * to put above the message. ARC_SEAL_SKIP (with a reason in err) when
 * RFC 8617 5.1.2 forbids sealing: N >= 50, the chain ended in cv=fail,
 * or temperror. -1 with err otherwise (not an RSA key, bad parameters,
 * no From:). */
int arc_seal(const struct arc_seal_params *p, const struct arc_result *chain,
    const char *msg, size_t len, char **out, char *err, size_t errlen);

#endif
