/*
 * unsub_token - the TOKEN of one-click unsubscribe links (RFC 8058),
 * see unsub_token.h.
 *
 * A token is 16 bytes written in lower-case base32 (26 characters, no
 * padding): the expiry (Unix time, 32 bits big-endian) and the first 12
 * bytes of HMAC-SHA256(key, "outpost-unsubscribe-v1" NUL sender NUL
 * recipient NUL list NUL expiry). Both addresses are lower-cased first.
 * Nobody without the key can make one (a 96-bit MAC) or guess another
 * recipient's, and the token names nothing: the sender, recipient and
 * list it stands for are kept by outpost (queue.db) under the token, and
 * checked against the MAC when it comes back. Lower-case base32 survives
 * mail software that changes the case of a local part
 * (mailto:unsubscribe+TOKEN@DOMAIN) and fits its 64-octet limit.
 *
 * The key is 32 random bytes in state_dir/unsubscribe.key, made at the
 * first start with mode 0600 and never logged.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "unsub_token.h"
#include "util.h"

#define UNSUB_MAC_LEN 12
#define UNSUB_RAW_LEN (4 + UNSUB_MAC_LEN)
#define UNSUB_CONTEXT "outpost-unsubscribe-v1"

static const char b32[] = "abcdefghijklmnopqrstuvwxyz234567";

/* unsub_mac - the MAC of the four fields */
static int
unsub_mac(const struct unsub_key *k, const char *sender, const char *rcpt, const char *list,
    const unsigned char exp[4], unsigned char mac[EVP_MAX_MD_SIZE])
{
	char lsender[UNSUB_FIELD_MAX], lrcpt[UNSUB_FIELD_MAX], digest[] = "SHA256";
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
		OSSL_PARAM_construct_end(),
	};
	size_t maclen = 0;
	EVP_MAC *m;
	EVP_MAC_CTX *h = NULL;
	int ok;

	if (strlen(sender) >= sizeof(lsender) || strlen(rcpt) >= sizeof(lrcpt) ||
	    strlen(list) >= UNSUB_FIELD_MAX)
		return -1;
	util_strlcpy(lsender, sender, sizeof(lsender));
	util_strlcpy(lrcpt, rcpt, sizeof(lrcpt));
	util_strlower(lsender);
	util_strlower(lrcpt);
	if ((m = EVP_MAC_fetch(NULL, "HMAC", NULL)) == NULL)
		return -1;
	ok = (h = EVP_MAC_CTX_new(m)) != NULL &&
	    EVP_MAC_init(h, k->k, sizeof(k->k), params) &&
	    EVP_MAC_update(h, (const unsigned char *)UNSUB_CONTEXT, sizeof(UNSUB_CONTEXT)) &&
	    EVP_MAC_update(h, (const unsigned char *)lsender, strlen(lsender) + 1) &&
	    EVP_MAC_update(h, (const unsigned char *)lrcpt, strlen(lrcpt) + 1) &&
	    EVP_MAC_update(h, (const unsigned char *)list, strlen(list) + 1) &&
	    EVP_MAC_update(h, exp, 4) && EVP_MAC_final(h, mac, &maclen, EVP_MAX_MD_SIZE);
	EVP_MAC_CTX_free(h);
	EVP_MAC_free(m);
	return ok && maclen >= UNSUB_MAC_LEN ? 0 : -1;
}

int
unsub_token_make(const struct unsub_key *k, const char *sender, const char *rcpt,
    const char *list, time_t expires, char out[UNSUB_TOKEN_LEN + 1])
{
	unsigned char raw[UNSUB_RAW_LEN], mac[EVP_MAX_MD_SIZE];
	unsigned long e = (unsigned long)expires;
	unsigned acc = 0;
	int bits = 0;
	size_t o = 0;

	raw[0] = (unsigned char)(e >> 24);
	raw[1] = (unsigned char)(e >> 16);
	raw[2] = (unsigned char)(e >> 8);
	raw[3] = (unsigned char)e;
	if (unsub_mac(k, sender, rcpt, list, raw, mac) < 0)
		return -1;
	memcpy(raw + 4, mac, UNSUB_MAC_LEN);
	for (size_t i = 0; i < sizeof(raw); i++) {
		acc = (acc << 8) | raw[i];
		bits += 8;
		while (bits >= 5) {
			out[o++] = b32[(acc >> (bits - 5)) & 31];
			bits -= 5;
		}
	}
	if (bits > 0)
		out[o++] = b32[(acc << (5 - bits)) & 31];
	out[o] = '\0';
	return o == UNSUB_TOKEN_LEN ? 0 : -1;
}

/* unsub_decode - the 16 bytes of a token; -1 if it is not one */
static int
unsub_decode(const char *token, unsigned char raw[UNSUB_RAW_LEN])
{
	unsigned acc = 0;
	int bits = 0;
	size_t o = 0;

	if (strlen(token) != UNSUB_TOKEN_LEN)
		return -1;
	for (const char *p = token; *p; p++) {
		const char *at = strchr(b32, tolower((unsigned char)*p));

		if (at == NULL)
			return -1;
		acc = (acc << 5) | (unsigned)(at - b32);
		bits += 5;
		if (bits >= 8) {
			if (o >= UNSUB_RAW_LEN)
				return -1;
			raw[o++] = (unsigned char)(acc >> (bits - 8));
			bits -= 8;
		}
	}
	/* 26 characters carry 130 bits: the last 2 must be zero */
	return o == UNSUB_RAW_LEN && (acc & ((1u << bits) - 1)) == 0 ? 0 : -1;
}

int
unsub_token_expiry(const char *token, time_t *expires)
{
	unsigned char raw[UNSUB_RAW_LEN];

	if (unsub_decode(token, raw) < 0)
		return -1;
	*expires = (time_t)(((unsigned long)raw[0] << 24) | ((unsigned long)raw[1] << 16) |
	    ((unsigned long)raw[2] << 8) | raw[3]);
	return 0;
}

int
unsub_token_check(const struct unsub_key *k, const char *token, const char *sender,
    const char *rcpt, const char *list, time_t now)
{
	unsigned char raw[UNSUB_RAW_LEN], mac[EVP_MAX_MD_SIZE];
	time_t expires;

	if (unsub_decode(token, raw) < 0 || unsub_mac(k, sender, rcpt, list, raw, mac) < 0 ||
	    CRYPTO_memcmp(raw + 4, mac, UNSUB_MAC_LEN) != 0)
		return UNSUB_BAD;
	if (unsub_token_expiry(token, &expires) < 0 || expires < now)
		return UNSUB_EXPIRED;
	return UNSUB_OK;
}

int
unsub_key_load(const char *path, struct unsub_key *k, char *err, size_t errlen)
{
	struct stat st;
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 && errno == ENOENT) {
		/* The first start: a new key, written before it is used. */
		if (RAND_bytes(k->k, sizeof(k->k)) != 1) {
			snprintf(err, errlen, "%s: no randomness for a new key", path);
			return -1;
		}
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (fd < 0 || write(fd, k->k, sizeof(k->k)) != (ssize_t)sizeof(k->k) ||
		    fsync(fd) < 0) {
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			if (fd >= 0) {
				close(fd);
				unlink(path);
			}
			OPENSSL_cleanse(k->k, sizeof(k->k));
			return -1;
		}
		close(fd);
		return 1;
	}
	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (st.st_mode & 077) != 0) {
		snprintf(err, errlen, "%s: must be a regular file of mode 0600", path);
		close(fd);
		return -1;
	}
	n = read(fd, k->k, sizeof(k->k));
	close(fd);
	if (n != (ssize_t)sizeof(k->k)) {
		snprintf(err, errlen, "%s: not a key of %zu bytes", path, sizeof(k->k));
		OPENSSL_cleanse(k->k, sizeof(k->k));
		return -1;
	}
	return 0;
}
