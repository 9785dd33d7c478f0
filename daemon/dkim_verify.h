/*
 * dkim_verify - DKIM signature verification (RFC 6376 6) without network
 * access: the caller fetches the key records beforehand (the loop thread
 * prefetches every name dkim_verify_keynames lists) and hands them in
 * through a lookup callback or a ready table (struct dkim_verify_keytab).
 *
 * libopendkim verifies (verify mode), its key lookup replaced by ours
 * (dkim_set_key_lookup), so the library never queries DNS. Ed25519
 * (RFC 8463) too: Debian's libopendkim 2.11 loses ~470 bytes per Ed25519
 * *signature* (dkim_sign.c), but LeakSanitizer finds nothing lost per
 * Ed25519 *verification* (test_arc), so no second path is needed here.
 *
 * An EVP verifier is exported too (dkim_verify_field, dkim_verify_key,
 * dkim_verify_check): the ARC validator (arc.c, RFC 8617) checks its
 * ARC-Message-Signature and ARC-Seal fields with it, since libopendkim
 * 2.11 knows nothing of ARC. It handles DKIM-Signature fields as well
 * (relaxed and simple, no l=), checked against dkimpy in test_arc, should
 * libopendkim have to be bypassed.
 *
 * Results read as RFC 8601 2.7.1 method results, each with a short
 * reason, and format as the body of an Authentication-Results field.
 *
 * Threads: one struct dkim_verifier (one DKIM_LIB, immutable after
 * dkim_verify_new) is shared by every thread; each call has its own DKIM
 * handle and digest contexts. Input: a message of our pipeline, CRLF
 * lines; signatures and key records are hostile and bounded here.
 */
#ifndef OUTPOST_DKIM_VERIFY_H
#define OUTPOST_DKIM_VERIFY_H

#include <stddef.h>
#include <time.h>

#include <openssl/evp.h>

#include "dkim_canon.h"
#include "util.h"

#define DKIM_VERIFY_KEYS_MAX 64     /* key names listed per message */
#define DKIM_VERIFY_SIGS_MAX 16     /* DKIM-Signature fields verified per message */
#define DKIM_VERIFY_SELECTOR_MAX 64
#define DKIM_VERIFY_TXT_MAX 4096    /* a key record, the strings joined */
#define DKIM_VERIFY_NAME_MAX (DKIM_VERIFY_SELECTOR_MAX + HOST_MAX + 16)
#define DKIM_VERIFY_REASON_MAX 64
#define DKIM_VERIFY_B_PREFIX 8      /* header.b: RFC 6008 2, at least 8 */

/* A key name a message needs: SELECTOR._domainkey.DOMAIN (RFC 6376 3.6.2.1). */
struct dkim_verify_keyname {
	char domain[HOST_MAX];      /* lower case */
	char selector[DKIM_VERIFY_SELECTOR_MAX];
	char name[DKIM_VERIFY_NAME_MAX];    /* "sel._domainkey.example.com" */
};

/* What a key lookup found. */
enum dkim_verify_keyst {
	DKIM_VERIFY_KEY_FOUND,      /* txt holds the record */
	DKIM_VERIFY_KEY_NOTFOUND,   /* NXDOMAIN or no TXT record */
	DKIM_VERIFY_KEY_TEMPFAIL,   /* SERVFAIL, timeout, not prefetched */
};

/* Look name up (no network: from what the caller prefetched); on FOUND
 * copy the TXT record, its strings joined, NUL-terminated, into txt. */
typedef enum dkim_verify_keyst (*dkim_verify_lookup_fn)(void *ctx, const char *name,
    char *txt, size_t txtlen);

struct dkim_verify_lookup {
	dkim_verify_lookup_fn fn;
	void *ctx;
};

/* A ready table for dkim_verify_keytab_lookup (ctx = the table). */
struct dkim_verify_keyent {
	const char *name;           /* "sel._domainkey.example.com" */
	const char *txt;            /* NULL: not found */
	int tempfail;               /* the lookup failed for now */
};
struct dkim_verify_keytab {
	const struct dkim_verify_keyent *ents;
	size_t n;
};

/* RFC 8601 2.7.1 results. */
enum dkim_verify_res {
	DKIM_VERIFY_NONE,
	DKIM_VERIFY_PASS,
	DKIM_VERIFY_FAIL,           /* bad signature, body hash, revoked key */
	DKIM_VERIFY_NEUTRAL,        /* syntax errors, unsupported tags */
	DKIM_VERIFY_POLICY,         /* expired, small key, foreign i= */
	DKIM_VERIFY_PERMERROR,      /* no key, unusable key record */
	DKIM_VERIFY_TEMPERROR,      /* the key lookup failed for now */
};

/* One verified signature. */
struct dkim_verify_sig {
	enum dkim_verify_res res;
	char reason[DKIM_VERIFY_REASON_MAX];    /* "" on pass */
	char domain[HOST_MAX];      /* d= */
	char selector[DKIM_VERIFY_SELECTOR_MAX];    /* s= */
	char alg[24];               /* a= */
	char identity[ADDR_MAX];    /* i=, "" if none */
	char b[DKIM_VERIFY_B_PREFIX + 1];   /* the first octets of b= */
};

struct dkim_verifier;

/* One libopendkim library handle for every thread. NULL with err. */
struct dkim_verifier *dkim_verify_new(char *err, size_t errlen);
void dkim_verify_free(struct dkim_verifier *v);

/* The key names needed by msg's DKIM-Signature, ARC-Message-Signature
 * and ARC-Seal fields (d= and s=), each once, at most max (names beyond
 * are dropped: their signatures end in temperror). Returns the count. */
size_t dkim_verify_keynames(const char *msg, size_t len, struct dkim_verify_keyname *out,
    size_t max);

/* A lookup_fn over a struct dkim_verify_keytab (case-insensitive names);
 * a name not in the table is TEMPFAIL: it was not prefetched. */
enum dkim_verify_keyst dkim_verify_keytab_lookup(void *ctx, const char *name, char *txt,
    size_t txtlen);

/* Verify every DKIM-Signature of msg (at most max, and at most
 * DKIM_VERIFY_SIGS_MAX; the first ones from the top), results in field
 * order into sigs, count into *nsigs (0: not signed). libopendkim reads
 * the clock for x= (RFC 6376 3.5). Returns 0, or -1 with err when
 * verification could not run at all (libopendkim refused a handle). */
int dkim_verify_message(struct dkim_verifier *v, const char *msg, size_t len,
    const struct dkim_verify_lookup *lk, struct dkim_verify_sig *sigs, size_t max,
    size_t *nsigs, char *err, size_t errlen);

/* "pass", "fail", ... as RFC 8601 spells them */
const char *dkim_verify_res_str(enum dkim_verify_res r);

/* The results as Authentication-Results resinfo, "; "-separated:
 *   dkim=pass header.d=example.com header.s=sel header.b=abcd1234;
 *   dkim=fail (body hash mismatch) header.d=...
 * "dkim=none" when n is 0. Truncates at a whole resinfo; returns the
 * length it needed (as snprintf). */
size_t dkim_verify_format(const struct dkim_verify_sig *sigs, size_t n, char *buf,
    size_t len);

/* --- the EVP verifier, shared with arc.c --- */

/* Parse a tag=value list (RFC 6376 3.2) and find tag name in it: the
 * value without surrounding FWS, into val (NUL-terminated, truncated to
 * vallen - 1). Returns 1 if found, 0 if not, -1 if the list is malformed
 * or a tag repeats. */
int dkim_verify_tag(const char *list, size_t len, const char *name, char *val,
    size_t vallen);

/* The public key of SELECTOR._domainkey.DOMAIN for algorithm alg
 * ("rsa-sha256", "ed25519-sha256") through lk, parsed (RFC 6376 3.6.1,
 * RFC 8463 4). Returns PASS with *key set (the caller frees it), or
 * PERMERROR / TEMPERROR / FAIL (revoked) / POLICY (RSA under 1024 bits)
 * with a reason. */
enum dkim_verify_res dkim_verify_key(const struct dkim_verify_lookup *lk,
    const char *domain, const char *selector, const char *alg, EVP_PKEY **key,
    char *reason, size_t reasonlen);

/* Check signature b64 (FWS allowed) over data, the canonicalised covered
 * fields followed by the canonicalised signature field with an empty b=
 * and no CRLF (RFC 6376 3.7). Returns PASS, FAIL or NEUTRAL (bad base64). */
enum dkim_verify_res dkim_verify_check(EVP_PKEY *key, const char *alg, const char *data,
    size_t datalen, const char *b64, char *reason, size_t reasonlen);

/* The relaxed canonical form of field with the value of its b= tag
 * removed, without the final CRLF, appended to buf (at least len + 3
 * octets free). Returns the length written. */
size_t dkim_verify_canon_nob(const char *field, size_t len, char *buf);

/* Verify one DKIM-Signature (ams = 0: v=1 required, RFC 6376 3.5) or
 * ARC-Message-Signature (ams = 1: i= instead of v=, relaxed/relaxed only,
 * must not sign ARC-Seal, RFC 8617 4.1.2) that is field idx of m, on
 * EVP: tags, body hash, header hash (h=, bottom instance first, RFC 6376
 * 5.4.2), key, signature. Fills *out (res, reason, tags). */
void dkim_verify_field(const struct dkim_canon_msg *m, size_t idx, int ams,
    const struct dkim_verify_lookup *lk, time_t now, struct dkim_verify_sig *out);

#endif
