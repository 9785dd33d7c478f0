/*
 * test_unsub_token - tokens round-trip, cannot be bent to other fields,
 * expire, and survive a change of case; the key file is made once,
 * private, and refused when others can read it.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tap.h"
#include "unsub_token.h"

static void
test_tokens(void)
{
	struct unsub_key k, other;
	char t[UNSUB_TOKEN_LEN + 1], t2[UNSUB_TOKEN_LEN + 1], upper[UNSUB_TOKEN_LEN + 1];
	time_t exp = 1900000000, got = 0;
	char longaddr[UNSUB_FIELD_MAX + 10];

	memset(k.k, 7, sizeof(k.k));
	memset(other.k, 8, sizeof(other.k));
	ok(unsub_token_make(&k, "News@Example.com", "bob@example.net", "news", exp, t) == 0,
	    "a token is made");
	is_int(strlen(t), UNSUB_TOKEN_LEN, "26 characters");
	ok(strspn(t, "abcdefghijklmnopqrstuvwxyz234567") == UNSUB_TOKEN_LEN,
	    "lower-case base32 only: %s", t);
	is_int(unsub_token_check(&k, t, "news@example.com", "BOB@example.net", "news", exp - 1),
	    UNSUB_OK, "it checks, whatever the addresses' case");
	ok(unsub_token_expiry(t, &got) == 0 && got == exp, "it carries its expiry");
	is_int(unsub_token_check(&k, t, "news@example.com", "carol@example.net", "news", 0),
	    UNSUB_BAD, "not for another recipient");
	is_int(unsub_token_check(&k, t, "other@example.com", "bob@example.net", "news", 0),
	    UNSUB_BAD, "not for another sender");
	is_int(unsub_token_check(&k, t, "news@example.com", "bob@example.net", "offers", 0),
	    UNSUB_BAD, "not for another list");
	is_int(unsub_token_check(&other, t, "news@example.com", "bob@example.net", "news", 0),
	    UNSUB_BAD, "not under another key");
	is_int(unsub_token_check(&k, t, "news@example.com", "bob@example.net", "news", exp + 1),
	    UNSUB_EXPIRED, "expired after its time");
	for (size_t i = 0; i <= UNSUB_TOKEN_LEN; i++)
		upper[i] = (char)(t[i] >= 'a' && t[i] <= 'z' ? t[i] - 32 : t[i]);
	is_int(unsub_token_check(&k, upper, "news@example.com", "bob@example.net", "news", 0),
	    UNSUB_OK, "upper case works too (local parts change case)");
	memcpy(t2, t, sizeof(t2));
	t2[20] = t2[20] == 'a' ? 'b' : 'a';
	is_int(unsub_token_check(&k, t2, "news@example.com", "bob@example.net", "news", 0),
	    UNSUB_BAD, "one character changed");
	/* a later expiry under the same MAC is not a token */
	ok(unsub_token_make(&k, "news@example.com", "bob@example.net", "news", exp + 86400,
	    t2) == 0 && strncmp(t, t2, 7) != 0, "the expiry is at the front");
	memcpy(t2 + 7, t + 7, UNSUB_TOKEN_LEN - 7);
	is_int(unsub_token_check(&k, t2, "news@example.com", "bob@example.net", "news", 0),
	    UNSUB_BAD, "a moved expiry breaks the MAC");
	is_int(unsub_token_check(&k, "short", "a@b", "c@d", "", 0), UNSUB_BAD, "too short");
	is_int(unsub_token_check(&k, "abcdefghijklmnopqrstuvwxy1", "a@b", "c@d", "", 0),
	    UNSUB_BAD, "not base32");
	memset(longaddr, 'a', sizeof(longaddr) - 1);
	longaddr[sizeof(longaddr) - 1] = '\0';
	ok(unsub_token_make(&k, longaddr, "b@c", "", exp, t2) == -1, "a field too long");
}

static void
test_key_file(void)
{
	char dir[256], path[300], err[512];
	struct unsub_key a, b;
	struct stat st;

	if (tap_tmpdir(dir, sizeof(dir), "test_unsub") == NULL) {
		ok(0, "temporary directory");
		return;
	}
	snprintf(path, sizeof(path), "%s/%s", dir, UNSUB_KEY_FILE);
	is_int(unsub_key_load(path, &a, err, sizeof(err)), 1, "made at the first start: %s", err);
	ok(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600 && st.st_size == 32,
	    "32 bytes, mode 0600");
	is_int(unsub_key_load(path, &b, err, sizeof(err)), 0, "read back later");
	ok(memcmp(a.k, b.k, sizeof(a.k)) == 0, "the same key");
	chmod(path, 0644);
	is_int(unsub_key_load(path, &b, err, sizeof(err)), -1, "readable by others: refused");
	ok(strstr(err, "mode 0600") != NULL, "... saying so: %s", err);
	unlink(path);
	rmdir(dir);
}

/* The vector tests/integration/test_unsubscribe.py mints in Python too:
 * both must make the same token from the same key and fields. */
static void
test_vector(void)
{
	struct unsub_key k;
	char t[UNSUB_TOKEN_LEN + 1];

	for (size_t i = 0; i < sizeof(k.k); i++)
		k.k[i] = (unsigned char)i;
	ok(unsub_token_make(&k, "News@Example.com", "Bob@Example.net", "news", 1900000000,
	    t) == 0, "the vector's token is made");
	is_str(t, "oe73gac5u5dlgtwru7emfhp324", "the vector: key 00..1f, news@example.com,"
	    " bob@example.net, list news, expiry 1900000000");
}

int
main(void)
{
	test_tokens();
	test_vector();
	test_key_file();
	return done();
}
