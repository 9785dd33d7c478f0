/*
 * auth - the users file, password verification with crypt(3), sender
 * ownership, and the per-IP failure penalty against brute force.
 *
 * Users file: one "name:crypt-hash:senders" per line; '#' comments and
 * blank lines ignored; senders is a comma list of addresses or "@domain".
 * Hashes are whatever libcrypt verifies (yescrypt "$y$", sha512-crypt
 * "$6$", bcrypt "$2b$", ...).
 *
 * auth_verify() is slow on purpose (yescrypt): call it from a worker
 * thread, never on the event loop. The rest is cheap.
 */
#ifndef OUTPOST_AUTH_H
#define OUTPOST_AUTH_H

#include <stddef.h>
#include <stdio.h>
#include <time.h>

#define AUTH_NAME_MAX 256
#define AUTH_PASS_MAX 512

struct auth_user {
	char *name;
	char *hash;
	char **senders;             /* "alice@example.com" or "@example.com", lower case */
	size_t nsenders;
	char **options;             /* fourth field: forward, list, list=ID */
	size_t noptions;
	int line;
};

struct auth_db {
	char path[4096];
	struct auth_user *users;
	size_t nusers;
};

/* Load a users file; errors as "path:line: message" to errs. Returns the
 * db (possibly empty) or NULL when there were errors (*nerr set). */
struct auth_db *auth_load(const char *path, FILE *errs, int *nerr);
struct auth_db *auth_empty(void);
void auth_free(struct auth_db *db);
const struct auth_user *auth_find(const struct auth_db *db, const char *name);
/* A copy of a user's name, senders and options (not the hash) that stays
 * valid when the users file is reloaded; free with auth_user_free. */
struct auth_user *auth_user_dup(const struct auth_user *u);
void auth_user_free(struct auth_user *u);

/* Check a password. u may be NULL (unknown user): a dummy hash is still
 * computed so both cases take the same time. Returns 1 on match. */
int auth_verify(const struct auth_user *u, const char *password);

/* May this user use `addr` as envelope sender or From:? Exact match
 * (case-insensitive domain, case-sensitive local part per RFC 5321 2.4;
 * we compare the local part case-insensitively as every provider does) or
 * "@domain". The null sender "" is never owned. */
int auth_sender_allowed(const struct auth_user *u, const char *addr);
/* Options of the fourth field: forward (a forwarding account: foreign
 * From: and MAIL FROM allowed, the envelope rewritten, ARC-sealed), list
 * (a list account: the same, plus List-Id), list=ID (List-Id: <ID>),
 * bulk (all of the account's mail is bulk mail, bulk.h). */
#define AUTH_LIST_ID_MAX 200
int auth_user_option(const struct auth_user *u, const char *name, const char **value);
int auth_user_address(const struct auth_user *u, char *out, size_t len);
/* Is `entry` acceptable in a users file's senders field ("user@domain"
 * or "@domain")? Returns 1 or 0. */
int auth_sender_valid(const char *entry);
/* Is s acceptable as a user name (printable, no blanks, no ':')? */
int auth_name_valid(const char *s);

/* SASL decoding (RFC 4954, RFC 4616). PLAIN: base64 of
 * authzid NUL authcid NUL passwd; authzid must be empty or equal authcid.
 * Returns 0, or -1 for malformed input (-> 501 5.5.2). */
int auth_decode_plain(const char *b64, char *user, size_t userlen, char *pass, size_t passlen);
/* LOGIN: one base64 line -> text. Returns 0 or -1. */
int auth_decode_login(const char *b64, char *out, size_t outlen);

/* New hash for `password` with yescrypt and a random salt (outpostctl
 * passwd). Returns malloc'd hash or NULL. */
char *auth_hash_password(const char *password);

/* Per-IP failure penalty: a small table of recent failures by client IP
 * text. Entries older than `window` seconds are forgotten. */
struct auth_penalty;
struct auth_penalty *auth_penalty_new(size_t max_entries, long window);
void auth_penalty_free(struct auth_penalty *p);
void auth_penalty_fail(struct auth_penalty *p, const char *ip, time_t now);
void auth_penalty_success(struct auth_penalty *p, const char *ip);
int auth_penalty_count(struct auth_penalty *p, const char *ip, time_t now);

#endif
