/*
 * test_auth - users file loading (good and bad lines), crypt(3)
 * verification for yescrypt and sha512-crypt, sender ownership, SASL
 * PLAIN/LOGIN decoding (hostile input included) and the penalty table.
 */
#include "config.h"

#include <crypt.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "tap.h"
#include "util.h"

static char dir[200];
static char upath[256];
static char *errs;

/* load - write the users file and load it, keeping the messages */
static struct auth_db *
load(const char *text, int *nerr)
{
	struct auth_db *db;
	size_t len;
	FILE *f;

	if ((f = fopen(upath, "w")) == NULL || fputs(text, f) < 0 || fclose(f) != 0) {
		perror(upath);
		exit(99);
	}
	free(errs);
	errs = NULL;
	f = open_memstream(&errs, &len);
	db = auth_load(upath, f, nerr);
	fclose(f);
	return db;
}

/* msg - the expected "path:line: text\n" */
static const char *
msg(int line, const char *text)
{
	static char buf[12][1024];
	static int i;

	i = (i + 1) % 12;
	snprintf(buf[i], sizeof(buf[i]), "%s:%d: %s\n", upath, line, text);
	return buf[i];
}

/* make_hash - crypt(3) hash of pw with a fresh salt for `prefix` */
static char *
make_hash(const char *prefix, const char *pw)
{
	char *setting = crypt_gensalt_ra(prefix, 0, NULL, 0);
	void *data = NULL;
	int size = 0;
	char *r, *out = NULL;

	if (setting == NULL)
		return NULL;
	r = crypt_ra(pw, setting, &data, &size);
	if (r && r[0] == '$')
		out = strdup(r);
	free(data);
	free(setting);
	return out;
}

/* b64 - base64 of n bytes (malloc'd) */
static char *
b64(const char *s, size_t n)
{
	return util_b64_encode((const unsigned char *)s, n);
}

/* test_load - users files, good and bad, with line numbers */
static void
test_load(void)
{
	struct auth_db *db;
	const struct auth_user *u;
	char want[4096], *text;
	int nerr = -1;

	db = load("# users\n"
	    "\n"
	    "alice:$y$j9T$abc$def:Alice@Example.com, @Example.org\n"
	    "   # indented comment\n"
	    "bob:$6$salt$hash::\n"
	    "carol:$6$s$h:carol@example.com:forward, list=team.example.com\r\n"
	    "  dave : $2b$05$x : dave@example.net \n", &nerr);
	ok(db != NULL, "good users file loads");
	is_int(nerr, 0, "no errors");
	is_str(errs, "", "no messages");
	if (db == NULL)
		return;
	is_int(db->nusers, 4, "four users");
	u = auth_find(db, "alice");
	ok(u != NULL, "alice found");
	if (u) {
		is_str(u->hash, "$y$j9T$abc$def", "alice's hash");
		is_int(u->nsenders, 2, "alice has two senders");
		if (u->nsenders == 2) {
			is_str(u->senders[0], "alice@example.com", "sender lower-cased");
			is_str(u->senders[1], "@example.org", "@domain kept, trimmed");
		}
		is_int(u->noptions, 0, "no options with three fields");
		is_int(u->line, 3, "alice on line 3");
	}
	u = auth_find(db, "bob");
	ok(u && u->nsenders == 0 && u->noptions == 0, "bob: empty senders and options");
	u = auth_find(db, "carol");
	ok(u != NULL, "carol found");
	if (u) {
		is_int(u->noptions, 2, "carol has two options");
		if (u->noptions == 2) {
			is_str(u->options[0], "forward", "option 1");
			is_str(u->options[1], "list=team.example.com", "option 2 trimmed");
		}
		{
			const char *v = NULL;
			char own[ADDR_MAX + 1];

			ok(auth_user_option(u, "forward", &v) && v && *v == '\0', "option forward");
			ok(auth_user_option(u, "list", &v) && strcmp(v, "team.example.com") == 0,
			    "option list=ID gives ID");
			ok(!auth_user_option(u, "lis", NULL), "options match whole names");
			ok(auth_user_address(u, own, sizeof(own)) == 0 &&
			    strcmp(own, "carol@example.com") == 0, "own address: first full sender");
		}
		is_int(u->line, 6, "carol on line 6");
	}
	u = auth_find(db, "dave");
	ok(u && strcmp(u->hash, "$2b$05$x") == 0, "fields trimmed");
	ok(auth_find(db, "Alice") == NULL, "user names are case-sensitive");
	ok(auth_find(db, "eve") == NULL, "unknown user not found");
	auth_free(db);

	db = load("alice:$y$x:alice@example.com\n"
	    "bob:$6$x\n"
	    "carol:plaintext:carol@example.com\n"
	    "alice:$y$y:alice@example.com\n"
	    "dave:$y$z:dave@example.com, not-an-address\n"
	    "erin:$y$z:erin@exa mple.com\n"
	    "frank:$y$z:a:b:c\n"
	    ":$y$z:x@example.com\n"
	    "ok:$y$z:@sub.example.com\n"
	    "gina:$y$z:@\n"
	    "hal:$y$z:hal@example.com:forward, lists\n"
	    "ida:$y$z:ida@example.com:list=no-dot\n", &nerr);
	ok(db == NULL, "bad users file rejected");
	is_int(nerr, 10, "ten errors");
	snprintf(want, sizeof(want), "%s%s%s%s%s%s%s%s%s%s",
	    msg(2, "expected name:hash:senders"),
	    msg(3, "user 'carol': bad password hash (expected a crypt(3) hash starting with '$')"),
	    msg(4, "duplicate user 'alice' (first on line 1)"),
	    msg(5, "user 'dave': invalid sender 'not-an-address' (expected user@domain or @domain)"),
	    msg(6, "user 'erin': invalid sender 'erin@exa mple.com' (expected user@domain or @domain)"),
	    msg(7, "too many fields (expected name:hash:senders[:options])"),
	    msg(8, "missing user name"),
	    msg(10, "user 'gina': invalid sender '@' (expected user@domain or @domain)"),
	    msg(11, "user 'hal': unknown option 'lists' (expected forward, list,"
	    " list=LIST-ID such as list=team.example.com, or bulk)"),
	    msg(12, "user 'ida': unknown option 'list=no-dot' (expected forward, list,"
	    " list=LIST-ID such as list=team.example.com, or bulk)"));
	is_str(errs, want, "every bad line reported with its number");

	text = malloc(10000);
	memset(text, 'a', 9000);
	memcpy(text + 9000, "\nzed:$y$z:z@example.com\nzed:$y$z:\n", 35);
	db = load(text, &nerr);
	free(text);
	ok(db == NULL, "long line rejected");
	is_int(nerr, 2, "two errors");
	snprintf(want, sizeof(want), "%s%s", msg(1, "line too long"),
	    msg(3, "duplicate user 'zed' (first on line 2)"));
	is_str(errs, want, "long line skipped whole; counting goes on");

	db = load("", &nerr);
	ok(db != NULL && db->nusers == 0 && nerr == 0, "empty file: empty db");
	auth_free(db);

	free(errs);
	errs = NULL;
	{
		char p[300];
		size_t len;
		FILE *f = open_memstream(&errs, &len);
		snprintf(p, sizeof(p), "%s/missing", dir);
		db = auth_load(p, f, &nerr);
		fclose(f);
		ok(db == NULL && nerr == 1, "missing file is an error");
		snprintf(want, sizeof(want), "%s: No such file or directory\n", p);
		is_str(errs, want, "missing file message");
	}
	db = auth_empty();
	ok(db && db->nusers == 0 && auth_find(db, "x") == NULL, "auth_empty");
	auth_free(db);
}

/* test_verify - yescrypt and sha512-crypt, unknown users, auth_hash_password */
static void
test_verify(void)
{
	struct auth_user u;
	char *y = make_hash("$y$", "s3cret!"), *six = make_hash("$6$", "pa:ss word");
	char *h, *h2, longpw[AUTH_PASS_MAX + 2];

	ok(y && strncmp(y, "$y$", 3) == 0, "yescrypt hash made");
	ok(six && strncmp(six, "$6$", 3) == 0, "sha512-crypt hash made");
	memset(&u, 0, sizeof(u));
	u.name = "alice";
	u.hash = y;
	is_int(auth_verify(&u, "s3cret!"), 1, "yescrypt: right password");
	is_int(auth_verify(&u, "s3cret"), 0, "yescrypt: wrong password");
	is_int(auth_verify(&u, ""), 0, "yescrypt: empty password");
	u.hash = six;
	is_int(auth_verify(&u, "pa:ss word"), 1, "sha512-crypt: right password");
	is_int(auth_verify(&u, "pa:ss Word"), 0, "sha512-crypt: wrong password");
	is_int(auth_verify(NULL, "s3cret!"), 0, "unknown user fails");
	/* The dummy hash's own password still fails for an unknown user. */
	is_int(auth_verify(NULL, "outpost-dummy-password"), 0,
	    "unknown user fails even with the dummy's password");
	is_int(auth_verify(NULL, ""), 0, "unknown user, empty password fails");
	u.hash = "$6$";
	is_int(auth_verify(&u, ""), 0, "malformed hash never matches");
	u.hash = "*";
	is_int(auth_verify(&u, "*"), 0, "locked hash never matches");

	memset(longpw, 'p', sizeof(longpw) - 1);
	longpw[sizeof(longpw) - 1] = '\0';
	h = make_hash("$y$", longpw);
	u.hash = h;
	is_int(auth_verify(&u, longpw), 0, "password above AUTH_PASS_MAX refused");
	free(h);

	h = auth_hash_password("correct horse");
	h2 = auth_hash_password("correct horse");
	ok(h && strncmp(h, "$y$", 3) == 0, "auth_hash_password makes yescrypt");
	ok(h && h2 && strcmp(h, h2) != 0, "salts differ");
	u.hash = h;
	is_int(auth_verify(&u, "correct horse"), 1, "new hash verifies");
	is_int(auth_verify(&u, "correct horsE"), 0, "new hash rejects another password");
	free(h);
	free(h2);
	ok(auth_hash_password(longpw) == NULL, "hashing refuses an over-long password");
	free(y);
	free(six);
}

/* test_senders - exact, @domain, no subdomains, case */
static void
test_senders(void)
{
	char *s[] = { "alice@example.com", "@example.org" };
	struct auth_user u = { .name = "alice", .hash = "x", .senders = s, .nsenders = 2 };
	static const struct { const char *addr; int want; } cases[] = {
		{ "alice@example.com", 1 },
		{ "ALICE@Example.COM", 1 },
		{ "bob@example.com", 0 },
		{ "alice@example.co", 0 },
		{ "xalice@example.com", 0 },
		{ "anyone@example.org", 1 },
		{ "Anyone@EXAMPLE.ORG", 1 },
		{ "anyone@sub.example.org", 0 },
		{ "anyone@example.org.evil", 0 },
		{ "anyone@notexample.org", 0 },
		{ "example.org", 0 },
		{ "@example.org", 0 },
		{ "anyone@", 0 },
		{ "", 0 },
	};

	for (size_t i = 0; i < ARRAY_LEN(cases); i++)
		is_int(auth_sender_allowed(&u, cases[i].addr), cases[i].want, "sender '%s' %s",
		    cases[i].addr, cases[i].want ? "allowed" : "refused");
	is_int(auth_sender_allowed(NULL, "alice@example.com"), 0, "no user owns nothing");
	u.nsenders = 0;
	is_int(auth_sender_allowed(&u, "alice@example.com"), 0, "no senders owns nothing");

	ok(auth_sender_valid("a@example.com"), "valid: address");
	ok(auth_sender_valid("@example.com"), "valid: @domain");
	ok(!auth_sender_valid("example.com"), "invalid: no @");
	ok(!auth_sender_valid("a@"), "invalid: no domain");
	ok(!auth_sender_valid("a b@example.com"), "invalid: blank");
	ok(!auth_sender_valid("a@b@example.com"), "invalid: two @");
	ok(!auth_sender_valid("a@exa_mple.com"), "invalid: bad domain character");
}

/* plain - decode PLAIN from raw bytes; returns the result */
static int
plain(const char *raw, size_t n, char *user, size_t ulen, char *pass, size_t plen)
{
	char *enc = b64(raw, n);
	int r = auth_decode_plain(enc, user, ulen, pass, plen);

	free(enc);
	return r;
}

/* test_sasl - PLAIN and LOGIN decoding, hostile input included */
static void
test_sasl(void)
{
	char user[AUTH_NAME_MAX], pass[AUTH_PASS_MAX + 1], big[12 * 1024 + 1], raw[600];
	char pass2[AUTH_PASS_MAX + 8];
	char *enc;

	is_int(plain("\0alice\0s3cret", 13, user, sizeof(user), pass, sizeof(pass)), 0,
	    "PLAIN without authzid");
	is_str(user, "alice", "PLAIN user");
	is_str(pass, "s3cret", "PLAIN password");
	is_int(plain("alice\0alice\0pw", 14, user, sizeof(user), pass, sizeof(pass)), 0,
	    "PLAIN with authzid equal to authcid");
	is_str(user, "alice", "PLAIN user with authzid");
	is_int(plain("admin\0alice\0pw", 14, user, sizeof(user), pass, sizeof(pass)), -1,
	    "PLAIN authzid mismatch refused");
	is_str(user, "", "no user left behind on failure");
	is_int(plain("alice\0pw", 8, user, sizeof(user), pass, sizeof(pass)), -1,
	    "PLAIN with one NUL refused");
	is_int(plain("alicepw", 7, user, sizeof(user), pass, sizeof(pass)), -1,
	    "PLAIN without NUL refused");
	is_int(plain("\0alice\0pw\0x", 11, user, sizeof(user), pass, sizeof(pass)), -1,
	    "PLAIN with a NUL in the password refused");
	is_int(plain("\0\0pw", 4, user, sizeof(user), pass, sizeof(pass)), -1,
	    "PLAIN with empty user refused");
	is_int(plain("\0alice\0", 7, user, sizeof(user), pass, sizeof(pass)), -1,
	    "PLAIN with empty password refused");
	is_int(plain("\0alice\0pw", 9, user, 5, pass, sizeof(pass)), -1,
	    "PLAIN user longer than the buffer refused");
	is_int(plain("\0alice\0pw", 9, user, 6, pass, sizeof(pass)), 0,
	    "PLAIN user just fits");
	is_int(plain("\0alice\0pw", 9, user, sizeof(user), pass, 2), -1,
	    "PLAIN password longer than the buffer refused");
	is_int(auth_decode_plain("AGFsaWNlAHB3", user, sizeof(user), pass, sizeof(pass)), 0,
	    "known base64 of \\0alice\\0pw");
	is_int(auth_decode_plain("AGFsaWNlAHB3=", user, sizeof(user), pass, sizeof(pass)), -1,
	    "bad base64 length refused");
	is_int(auth_decode_plain("AGFsa!NlAHB3", user, sizeof(user), pass, sizeof(pass)), -1,
	    "bad base64 character refused");
	is_int(auth_decode_plain("AGFs aWNlAHB3", user, sizeof(user), pass, sizeof(pass)), -1,
	    "base64 with a blank refused");
	is_int(auth_decode_plain("", user, sizeof(user), pass, sizeof(pass)), -1,
	    "empty PLAIN refused");

	memset(raw, 0, sizeof(raw));
	memcpy(raw, "\0bob\0", 5);
	memset(raw + 5, 'p', AUTH_PASS_MAX);
	is_int(plain(raw, 5 + AUTH_PASS_MAX, user, sizeof(user), pass, sizeof(pass)), 0,
	    "password of AUTH_PASS_MAX bytes accepted");
	is_int(strlen(pass), AUTH_PASS_MAX, "whole password kept");
	raw[5 + AUTH_PASS_MAX] = 'p';
	is_int(plain(raw, 6 + AUTH_PASS_MAX, user, sizeof(user), pass2, sizeof(pass2)), -1,
	    "password above AUTH_PASS_MAX refused");

	memset(big, 'A', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	is_int(auth_decode_plain(big, user, sizeof(user), pass, sizeof(pass)), -1,
	    "12 KB PLAIN refused");
	is_int(auth_decode_login(big, user, sizeof(user)), -1, "12 KB LOGIN refused");

	enc = b64("alice@example.com", 17);
	is_int(auth_decode_login(enc, user, sizeof(user)), 0, "LOGIN decodes");
	is_str(user, "alice@example.com", "LOGIN text");
	is_int(auth_decode_login(enc, user, 17), -1, "LOGIN text longer than the buffer");
	is_int(auth_decode_login(enc, user, 18), 0, "LOGIN text just fits");
	free(enc);
	enc = b64("ab\0cd", 5);
	is_int(auth_decode_login(enc, user, sizeof(user)), -1, "LOGIN with a NUL refused");
	free(enc);
	is_int(auth_decode_login("YWJj*A==", user, sizeof(user)), -1, "LOGIN bad base64");
	is_int(auth_decode_login("YW=j", user, sizeof(user)), -1, "LOGIN padding inside");
	is_int(auth_decode_login("", user, sizeof(user)), -1, "LOGIN empty refused");
	is_str(user, "", "LOGIN output cleared on failure");
}

/* test_penalty - window expiry and eviction of the oldest entry */
static void
test_penalty(void)
{
	struct auth_penalty *p = auth_penalty_new(4, 600);
	char ip[IP_STR_MAX];

	is_int(auth_penalty_count(p, "192.0.2.1", 1000), 0, "unknown IP counts 0");
	auth_penalty_fail(p, "192.0.2.1", 1000);
	auth_penalty_fail(p, "192.0.2.1", 1001);
	auth_penalty_fail(p, "192.0.2.1", 1002);
	is_int(auth_penalty_count(p, "192.0.2.1", 1002), 3, "three failures");
	is_int(auth_penalty_count(p, "192.0.2.2", 1002), 0, "other IP unaffected");
	is_int(auth_penalty_count(p, "192.0.2.1", 1602), 3, "still counted at the window's end");
	is_int(auth_penalty_count(p, "192.0.2.1", 1603), 0, "forgotten after the window");
	auth_penalty_fail(p, "192.0.2.1", 1700);
	is_int(auth_penalty_count(p, "192.0.2.1", 1700), 1, "a new failure starts from 1");
	auth_penalty_success(p, "192.0.2.1");
	is_int(auth_penalty_count(p, "192.0.2.1", 1700), 0, "success clears");
	auth_penalty_free(p);

	/* Four slots: the fifth address pushes out the one idle longest. */
	p = auth_penalty_new(4, 600);
	for (int i = 0; i < 4; i++) {
		snprintf(ip, sizeof(ip), "2001:db8::%d", i);
		auth_penalty_fail(p, ip, 100 + i);
		auth_penalty_fail(p, ip, 100 + i);
	}
	auth_penalty_fail(p, "2001:db8::0", 150);       /* ::1 is now the oldest */
	auth_penalty_fail(p, "2001:db8::9", 200);
	is_int(auth_penalty_count(p, "2001:db8::1", 200), 0, "oldest evicted");
	is_int(auth_penalty_count(p, "2001:db8::0", 200), 3, "first slot, recently used, kept");
	is_int(auth_penalty_count(p, "2001:db8::2", 200), 2, "third kept");
	is_int(auth_penalty_count(p, "2001:db8::3", 200), 2, "newest kept");
	is_int(auth_penalty_count(p, "2001:db8::9", 200), 1, "new entry counted");
	/* An expired entry's slot is taken before any live one. */
	auth_penalty_fail(p, "2001:db8::0", 300);
	auth_penalty_fail(p, "2001:db8::3", 301);
	auth_penalty_fail(p, "2001:db8::9", 302);
	auth_penalty_fail(p, "198.51.100.1", 705);      /* ::2 last failed at 102 */
	is_int(auth_penalty_count(p, "2001:db8::0", 705), 4, "live entry not evicted");
	is_int(auth_penalty_count(p, "2001:db8::3", 705), 3, "live entry kept");
	is_int(auth_penalty_count(p, "2001:db8::9", 705), 2, "live entry kept too");
	is_int(auth_penalty_count(p, "198.51.100.1", 705), 1, "new entry took the expired slot");
	is_int(auth_penalty_count(p, "2001:db8::2", 705), 0, "expired entry gone");
	auth_penalty_free(p);
}

/* rm - nftw callback */
static int
rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

/* main - run every group in a fresh temporary directory */
int
main(void)
{
	if (tap_tmpdir(dir, sizeof(dir), "test_auth") == NULL)
		return 99;
	snprintf(upath, sizeof(upath), "%s/users", dir);
	test_load();
	test_verify();
	test_senders();
	test_sasl();
	test_penalty();
	free(errs);
	nftw(dir, rm, 8, FTW_DEPTH | FTW_PHYS);
	return done();
}
