/*
 * dkim_canon - DKIM-style signature header fields on OpenSSL EVP:
 * relaxed/relaxed canonicalisation (RFC 6376 3.4.2, 3.4.4), the body
 * hash, the h= selection, the tag list, its folding, and the signature
 * itself, rsa-sha256 (PKCS#1 v1.5) or ed25519-sha256 (RFC 8463).
 *
 * Used for outpost's DKIM-Signature fields, RSA and Ed25519 (dkim_sign;
 * libopendkim 2.11 leaks on every Ed25519 signature and re-parses the PEM
 * key of every RSA one), and by the ARC sealer (RFC 8617): an ARC-Message-Signature is a DKIM-Signature under
 * another name, with i= and without v= (dkim_canon_sign); an ARC-Seal
 * signs canonicalised header fields only (dkim_canon_header, then
 * dkim_canon_finish).
 *
 * Input: a message of our own pipeline, every line ending in CRLF (a
 * missing final CRLF is tolerated); CR and LF alone are ordinary octets.
 * No global state; every call has its own digest contexts, so one
 * EVP_PKEY may be shared read-only by many threads.
 */
#ifndef OUTPOST_DKIM_CANON_H
#define OUTPOST_DKIM_CANON_H

#include <stddef.h>
#include <time.h>

#include <openssl/evp.h>

#define DKIM_CANON_HASHLEN 32   /* SHA-256 */
#define DKIM_CANON_FOLD 78      /* RFC 5322 2.1.1: lines SHOULD be <= 78 */

/* One header field as it is in the message. */
struct dkim_canon_field {
	const char *text;           /* name, colon, value, continuation lines */
	size_t len;                 /* without the final CRLF */
	size_t namelen;             /* the name without WSP before the colon;
	                             * 0 when the field has no colon */
};

/* A message split into header fields and body (pointers into it). */
struct dkim_canon_msg {
	struct dkim_canon_field *fields;    /* top to bottom */
	size_t nfields;
	const char *body;           /* after the blank line; NULL if none */
	size_t bodylen;
};

/* What to sign, besides the key (which gives a=). */
struct dkim_canon_sig {
	const char *hdrname;        /* "DKIM-Signature", "ARC-Message-Signature" */
	const char *first_tags;     /* tags before a=, "; "-separated: "v=1" for
	                             * DKIM (RFC 6376 3.5), "i=1" for an AMS,
	                             * which has no v= (RFC 8617 4.1.2) */
	const char *domain;         /* d= */
	const char *selector;       /* s= */
	const char *const *sign;    /* header names to sign, NULL-terminated */
	const char *const *oversign;    /* listed once more in h=; signed too */
	time_t t;                   /* t= */
};

/* Split msg: a field is its first line and every following line that
 * starts with SP or HTAB (RFC 5322 2.2.3); the header ends at the first
 * empty line, or at the end when there is none (then body is NULL). */
void dkim_canon_split(const char *msg, size_t len, struct dkim_canon_msg *m);
void dkim_canon_msg_free(struct dkim_canon_msg *m);

/* Relaxed header canonicalisation of one field (RFC 6376 3.4.2) into out,
 * which must hold len + 3 bytes: lower-case name, unfolded, WSP runs as
 * one SP, no WSP around the colon or at the end, then CRLF and a NUL.
 * Returns the length written (the CRLF included, the NUL not). */
size_t dkim_canon_header(const char *field, size_t len, char *out);

/* SHA-256 of the relaxed body (RFC 6376 3.4.4): WSP runs as one SP, no
 * WSP at the end of a line, no empty lines at the end, a last line
 * without CRLF taken as if it had one; an empty body hashes the empty
 * string (errata 1384, as dkimpy). body may be NULL when len is 0.
 * Returns 0, or -1 if OpenSSL fails. */
int dkim_canon_body_hash(const char *body, size_t len,
    unsigned char md[DKIM_CANON_HASHLEN]);

/* "rsa-sha256" or "ed25519-sha256" for the key, NULL for other types. */
const char *dkim_canon_alg(const EVP_PKEY *key);

/* Finish a signature field: fold "HDRNAME: TAG; TAG; ...; b=" to lines of
 * at most DKIM_CANON_FOLD octets where the values allow, hash `data` (the
 * canonicalised fields the signature covers, as dkim_canon_header wrote
 * them) followed by the canonicalised field itself with an empty b= and
 * no CRLF (RFC 6376 3.7), sign, and append the signature in base64.
 * tags are "name=value" strings, NULL-terminated, without b=. On success
 * *out (malloc'd) is the whole field with its CRLF and 0 is returned;
 * else -1 with a reason in err (never key material). */
int dkim_canon_finish(EVP_PKEY *key, const char *hdrname, const char *const *tags,
    const char *data, size_t datalen, char **out, char *err, size_t errlen);

/* Sign msg relaxed/relaxed: FIRST_TAGS; a=; c=relaxed/relaxed; d=; s=;
 * t=; bh=; h=; b=. h= lists the present fields named in sign or
 * oversign, top to bottom, as the message spells them, then every
 * oversign name once more, as libopendkim wrote it; the fields are
 * hashed as a verifier selects them, the bottom instance first, an
 * h= entry beyond the last instance adding nothing (RFC 6376 5.4.2).
 * A message without a From: field is refused (RFC 6376 5.4). Returns as
 * dkim_canon_finish. */
int dkim_canon_sign(EVP_PKEY *key, const struct dkim_canon_sig *sig, const char *msg,
    size_t len, char **out, char *err, size_t errlen);

#endif
