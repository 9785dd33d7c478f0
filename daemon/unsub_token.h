/*
 * unsub_token - the TOKEN in one-click unsubscribe links
 * (List-Unsubscribe: <https://HOST/u/TOKEN>, <mailto:unsubscribe+TOKEN@DOMAIN>):
 * a MAC over (sender, recipient, list, expiry) that cannot be forged or
 * enumerated without the key in state_dir/unsubscribe.key. Pure
 * functions of their arguments; any thread.
 */
#ifndef OUTPOST_UNSUB_TOKEN_H
#define OUTPOST_UNSUB_TOKEN_H

#include <stddef.h>
#include <time.h>

#define UNSUB_TOKEN_LEN 26      /* lower-case base32 of 16 bytes */
#define UNSUB_FIELD_MAX 512     /* sender, recipient, list: longest + 1 */
#define UNSUB_KEY_FILE "unsubscribe.key"

enum { UNSUB_OK = 0, UNSUB_BAD = -1, UNSUB_EXPIRED = -2 };

struct unsub_key {
	unsigned char k[32];
};

/* Read the key at path, or make it (32 random bytes, mode 0600) when
 * there is none: 0 read, 1 made, -1 with err (a key readable by others
 * is refused). */
int unsub_key_load(const char *path, struct unsub_key *k, char *err, size_t errlen);
/* The token for these fields; 0, or -1 when a field is too long. */
int unsub_token_make(const struct unsub_key *k, const char *sender, const char *rcpt,
    const char *list, time_t expires, char out[UNSUB_TOKEN_LEN + 1]);
/* Is token the one made for these fields, and not expired at now?
 * UNSUB_OK, UNSUB_BAD (not a token, or not theirs) or UNSUB_EXPIRED. */
int unsub_token_check(const struct unsub_key *k, const char *token, const char *sender,
    const char *rcpt, const char *list, time_t now);
/* The expiry a token carries (unauthenticated): 0, or -1 if malformed. */
int unsub_token_expiry(const char *token, time_t *expires);

#endif
