/*
 * dkim_key - DKIM private keys: loading and checking them for every
 * [domain] at config load, generating new ones, and the DNS TXT record
 * that publishes the public half (RFC 6376 3.6.1, RFC 8463 for Ed25519).
 *
 * Checks at load, each an error "file:line: message" at the dkim_key
 * line: the key file cannot be read or parsed; it is readable by group or
 * others (private keys are mode 0600); an RSA key under 1024 bits. An RSA
 * key under 2048 bits is a warning. A domain whose keys are all Ed25519
 * is refused: large receivers do not verify Ed25519 yet, so such mail
 * would arrive unsigned in their eyes; pair it with an RSA key.
 *
 * Uses OpenSSL EVP only; no libopendkim here, so outpostctl links it
 * without the signing machinery. Key material is wiped when freed and
 * never logged.
 */
#ifndef OUTPOST_DKIM_KEY_H
#define OUTPOST_DKIM_KEY_H

#include <stddef.h>
#include <stdio.h>
#include <openssl/evp.h>

#include "conf.h"

enum dkim_key_type { DKIM_KEY_RSA, DKIM_KEY_ED25519 };

struct dkim_key {
	char selector[CONF_SELECTOR_MAX];
	char path[PATH_MAX];
	enum dkim_key_type type;
	int bits;                   /* RSA modulus size; 256 for Ed25519 */
	char *pem;                  /* the PEM text as read (secret) */
	size_t pemlen;
};

/* The keys of one [domain]. */
struct dkim_domain {
	char name[HOST_MAX];        /* lower case */
	int subdomains;             /* dkim_subdomains = yes */
	struct dkim_key *keys;      /* in config order */
	size_t nkeys;
};

struct dkim_keyset {
	struct dkim_domain *domains;
	size_t ndomains;
};

/* Load every [domain]'s keys. Errors and warnings go to errs as
 * "path:line: message" / "path:line: warning: message"; *nerr gets the
 * error count. Returns the set (never NULL; empty when no domain has
 * keys) — callers refuse to start when *nerr > 0. */
struct dkim_keyset *dkim_key_load(const struct conf *c, FILE *errs, int *nerr);
void dkim_key_free(struct dkim_keyset *ks);

/* The keys that sign mail whose header From: is in `domain`: the domain's
 * own [domain] section, else the nearest parent section that has
 * dkim_subdomains = yes (news.example.com -> example.com). NULL if none or
 * if that section has no keys. Case-insensitive. */
const struct dkim_domain *dkim_key_find(const struct dkim_keyset *ks, const char *domain);

/* A key's PEM text as an EVP_PKEY (never prompting for a passphrase),
 * or NULL. */
EVP_PKEY *dkim_key_parse(const char *pem, size_t len);

/* "rsa-sha256" / "ed25519-sha256" */
const char *dkim_key_alg(const struct dkim_key *k);

/* Generate a key (RSA with `bits`, or Ed25519) and write it as PKCS#8 PEM
 * to path, created with mode 0600 (O_EXCL: never overwrites). Returns 0,
 * or -1 with a reason in err. */
int dkim_key_generate(enum dkim_key_type type, int bits, const char *path,
    char *err, size_t errlen);

/* The TXT record for a private key in PEM, as it goes into a zone file:
 *   SELECTOR._domainkey.DOMAIN. IN TXT ( "v=DKIM1; k=rsa; p=MIIB..."
 *   "...rest" )
 * with the value split into strings of at most 255 bytes (RFC 1035
 * 3.3.14 <character-string>). Returns a malloc'd string or NULL with err. */
char *dkim_key_txt_record(const char *domain, const char *selector, const char *pem,
    size_t pemlen, char *err, size_t errlen);

#endif
