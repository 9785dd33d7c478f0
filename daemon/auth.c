/*
 * auth - users file, crypt(3) verification, sender ownership, SASL PLAIN
 * and LOGIN decoding, and the per-IP failure penalty. See auth.h.
 *
 * Trust: the users file is the admin's (still checked line by line); SASL
 * input is the client's and hostile: it is decoded into bounded buffers,
 * and every buffer that held a password is wiped before it is freed.
 *
 * auth_verify() runs libxcrypt's crypt_rn(), which takes tens of
 * milliseconds for yescrypt: call it off the event loop. The penalty table
 * is not locked: it belongs to the event loop thread.
 */
#include "config.h"

#include <crypt.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "auth.h"
#include "util.h"

#define USERS_LINE_MAX 8192     /* one users-file line, newline included */
#define SASL_B64_MAX 2048       /* longest base64 SASL line we decode */

/* Verified when the user is unknown, so that "no such user" takes as long
 * as "wrong password". Its password is not one anybody can type here: the
 * result is thrown away. */
static const char dummy_hash[] =
    "$y$j9T$Mj5Dhbgjp1Mk3QRrC.sIC0$4XlHGl3MffFGLJZ.HsiJKuhzs/IRDtOPPA5BQBkcjx.";

/* valid_domain - letters, digits, '-' and '.', not empty */
static int
valid_domain(const char *d)
{
	if (*d == '\0' || *d == '.' || *d == '-')
		return 0;
	for (; *d; d++)
		if (!((*d >= 'a' && *d <= 'z') || (*d >= 'A' && *d <= 'Z') ||
		    (*d >= '0' && *d <= '9') || *d == '-' || *d == '.'))
			return 0;
	return 1;
}

/* auth_sender_valid - "user@domain" or "@domain", as the users file takes them */
int
auth_sender_valid(const char *entry)
{
	const char *at = strrchr(entry, '@');

	if (at == NULL || strlen(entry) >= ADDR_MAX || !valid_domain(at + 1))
		return 0;
	for (const char *p = entry; p < at; p++)
		if ((unsigned char)*p <= ' ' || *p == 0x7f || *p == '<' || *p == '>' ||
		    *p == ',' || *p == ':' || *p == '@')
			return 0;
	return 1;
}

/* free_list - free an array of strings */
static void
free_list(char **list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(list[i]);
	free(list);
}

/* split_list - comma list into trimmed, non-empty strings */
static char **
split_list(const char *s, size_t *n)
{
	char *copy = xstrdup(s), *p = copy, *item, *comma;
	char **list = NULL;

	*n = 0;
	while (p) {
		if ((comma = strchr(p, ',')) != NULL)
			*comma++ = '\0';
		item = util_strtrim(p);
		p = comma;
		if (*item == '\0')
			continue;
		list = xreallocarray(list, *n + 1, sizeof(*list));
		list[(*n)++] = xstrdup(item);
	}
	free(copy);
	return list;
}

/* user_clear - free what one entry owns */
static void
user_clear(struct auth_user *u)
{
	free(u->name);
	if (u->hash) {
		util_wipe(u->hash, strlen(u->hash));
		free(u->hash);
	}
	free_list(u->senders, u->nsenders);
	free_list(u->options, u->noptions);
	memset(u, 0, sizeof(*u));
}

/* auth_name_valid - a user name: printable, no blanks, no ':' */
int
auth_name_valid(const char *s)
{
	if (*s == '\0' || strlen(s) >= AUTH_NAME_MAX)
		return 0;
	for (; *s; s++)
		if ((unsigned char)*s <= ' ' || *s == 0x7f || *s == ':')
			return 0;
	return 1;
}

/* auth_list_id_valid - RFC 2919 list-id: dot-atom text with at least one
 * dot, no brackets (outpost adds them) */
static int
auth_list_id_valid(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > AUTH_LIST_ID_MAX || strchr(s, '.') == NULL || s[0] == '.' ||
	    s[n - 1] == '.' || strstr(s, "..") != NULL)
		return 0;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && strchr(".-_+", *s) == NULL)
			return 0;
	return 1;
}

/* auth_user_option - 1 if u has option name (or "name=VALUE": *value
 * then points at VALUE, else at "") */
int
auth_user_option(const struct auth_user *u, const char *name, const char **value)
{
	size_t n = strlen(name);

	for (size_t i = 0; i < u->noptions; i++) {
		const char *o = u->options[i];

		if (strncmp(o, name, n) == 0 && (o[n] == '\0' || o[n] == '=')) {
			if (value)
				*value = o[n] == '=' ? o + n + 1 : "";
			return 1;
		}
	}
	return 0;
}

/* auth_user_address - the user's own address: the first full address
 * of its senders, else NAME@DOMAIN of the first @domain (NAME itself
 * when it is an address). 0, or -1 when it has none. */
int
auth_user_address(const struct auth_user *u, char *out, size_t len)
{
	for (size_t i = 0; i < u->nsenders; i++) {
		if (u->senders[i][0] != '@') {
			util_strlcpy(out, u->senders[i], len);
			return strlen(u->senders[i]) < len ? 0 : -1;
		}
	}
	if (strchr(u->name, '@') != NULL) {
		util_strlcpy(out, u->name, len);
		return strlen(u->name) < len ? 0 : -1;
	}
	if (u->nsenders == 0)
		return -1;
	return (size_t)snprintf(out, len, "%s%s", u->name, u->senders[0]) < len ? 0 : -1;
}

/* parse_line - "name:hash:senders[:options]"; 0, or -1 after reporting */
static int
parse_line(struct auth_db *db, char *line, int lineno, FILE *errs)
{
	char *f[5], *p = line;
	struct auth_user u;
	size_t nf = 0;

#define BAD(...) do { if (errs) { fprintf(errs, "%s:%d: ", db->path, lineno); \
	fprintf(errs, __VA_ARGS__); fputc('\n', errs); } goto fail; } while (0)

	memset(&u, 0, sizeof(u));
	while (nf < ARRAY_LEN(f)) {
		f[nf++] = p;
		if ((p = strchr(p, ':')) == NULL)
			break;
		*p++ = '\0';
	}
	for (size_t i = 0; i < nf; i++)
		f[i] = util_strtrim(f[i]);
	if (nf < 3)
		BAD("expected name:hash:senders");
	if (nf > 4 || p != NULL)
		BAD("too many fields (expected name:hash:senders[:options])");
	if (*f[0] == '\0')
		BAD("missing user name");
	if (!auth_name_valid(f[0]))
		BAD("bad user name (printable, no blanks, at most %d characters)",
		    AUTH_NAME_MAX - 1);
	if (auth_find(db, f[0]) != NULL)
		BAD("duplicate user '%s' (first on line %d)", f[0], auth_find(db, f[0])->line);
	if (f[1][0] != '$' || strlen(f[1]) >= CRYPT_OUTPUT_SIZE)
		BAD("user '%s': bad password hash (expected a crypt(3) hash"
		    " starting with '$')", f[0]);
	u.name = xstrdup(f[0]);
	u.hash = xstrdup(f[1]);
	u.line = lineno;
	u.senders = split_list(f[2], &u.nsenders);
	for (size_t i = 0; i < u.nsenders; i++) {
		if (!auth_sender_valid(u.senders[i]))
			BAD("user '%s': invalid sender '%s' (expected user@domain"
			    " or @domain)", f[0], u.senders[i]);
		util_strlower(u.senders[i]);
	}
	if (nf == 4)
		u.options = split_list(f[3], &u.noptions);
	for (size_t i = 0; i < u.noptions; i++) {
		const char *o = u.options[i];

		if (strcmp(o, "forward") != 0 && strcmp(o, "list") != 0 &&
		    strcmp(o, "bulk") != 0 &&
		    !(strncmp(o, "list=", 5) == 0 && auth_list_id_valid(o + 5)))
			BAD("user '%s': unknown option '%s' (expected forward, list,"
			    " list=LIST-ID such as list=team.example.com, or bulk)", f[0], o);
	}
	db->users = xreallocarray(db->users, db->nusers + 1, sizeof(*db->users));
	db->users[db->nusers++] = u;
	return 0;
fail:
	user_clear(&u);
	return -1;
#undef BAD
}

/* read_line - one line without its newline: 1, 0 at end of file, -1 too
 * long (skipped whole), -2 holds a NUL byte */
static int
read_line(FILE *f, char *buf, size_t size)
{
	size_t n = 0;
	int ch, nul = 0, toolong = 0;

	while ((ch = getc(f)) != EOF && ch != '\n') {
		nul |= ch == '\0';
		if (n + 1 < size)
			buf[n++] = (char)ch;
		else
			toolong = 1;
	}
	buf[n] = '\0';
	if (ch == EOF && n == 0 && !toolong)
		return 0;
	return toolong ? -1 : nul ? -2 : 1;
}

/* auth_empty - a db with no users (no users_file configured) */
struct auth_db *
auth_empty(void)
{
	return xcalloc(1, sizeof(struct auth_db));
}

/* auth_load - read a users file; NULL after reporting every bad line */
struct auth_db *
auth_load(const char *path, FILE *errs, int *nerr)
{
	struct auth_db *db;
	char *line, *p;
	FILE *f;
	int lineno = 0, r;

	*nerr = 0;
	db = auth_empty();
	util_strlcpy(db->path, path, sizeof(db->path));
	if ((f = fopen(path, "re")) == NULL) {
		if (errs)
			fprintf(errs, "%s: %s\n", path, strerror(errno));
		*nerr = 1;
		auth_free(db);
		return NULL;
	}
	line = xmalloc(USERS_LINE_MAX);
	while ((r = read_line(f, line, USERS_LINE_MAX)) != 0) {
		lineno++;
		if (r < 0) {
			if (errs)
				fprintf(errs, "%s:%d: %s\n", path, lineno, r == -1 ?
				    "line too long" : "NUL byte in line");
			(*nerr)++;
			continue;
		}
		p = util_strtrim(line);
		if (*p == '\0' || *p == '#')
			continue;
		if (parse_line(db, p, lineno, errs) < 0)
			(*nerr)++;
	}
	if (ferror(f)) {
		if (errs)
			fprintf(errs, "%s: read error\n", path);
		(*nerr)++;
	}
	fclose(f);
	util_wipe(line, USERS_LINE_MAX);
	free(line);
	if (*nerr) {
		auth_free(db);
		return NULL;
	}
	return db;
}

/* auth_free - release a db, wiping the hashes */
void
auth_free(struct auth_db *db)
{
	if (db == NULL)
		return;
	for (size_t i = 0; i < db->nusers; i++)
		user_clear(&db->users[i]);
	free(db->users);
	free(db);
}

/* auth_user_dup - a deep copy a session can keep across a users reload;
 * the hash is not copied (the session never needs it again) */
struct auth_user *
auth_user_dup(const struct auth_user *u)
{
	struct auth_user *c = xcalloc(1, sizeof(*c));

	c->name = xstrdup(u->name);
	c->hash = xstrdup("");
	c->line = u->line;
	c->nsenders = u->nsenders;
	c->senders = xcalloc(u->nsenders, sizeof(*c->senders));
	for (size_t i = 0; i < u->nsenders; i++)
		c->senders[i] = xstrdup(u->senders[i]);
	c->noptions = u->noptions;
	c->options = xcalloc(u->noptions, sizeof(*c->options));
	for (size_t i = 0; i < u->noptions; i++)
		c->options[i] = xstrdup(u->options[i]);
	return c;
}

/* auth_user_free - release a copy made by auth_user_dup */
void
auth_user_free(struct auth_user *u)
{
	if (u == NULL)
		return;
	user_clear(u);
	free(u);
}

/* auth_find - a user by exact name */
const struct auth_user *
auth_find(const struct auth_db *db, const char *name)
{
	if (db == NULL || name == NULL)
		return NULL;
	for (size_t i = 0; i < db->nusers; i++)
		if (strcmp(db->users[i].name, name) == 0)
			return &db->users[i];
	return NULL;
}

/* auth_verify - crypt(3) check in constant-ish time, known user or not */
int
auth_verify(const struct auth_user *u, const char *password)
{
	struct crypt_data *cd;
	const char *setting = u ? u->hash : dummy_hash;
	const char *r;
	size_t len;
	int ok = 0;

	/* ~32 KiB: too big for a worker's stack, so on the heap. */
	cd = xcalloc(1, sizeof(*cd));
	if (strlen(password) > AUTH_PASS_MAX)
		password = "";
	r = crypt_rn(password, setting, cd, (int)sizeof(*cd));
	if (u != NULL && r != NULL && r[0] != '*') {
		len = strlen(setting);
		ok = strlen(r) == len && CRYPTO_memcmp(r, setting, len) == 0;
	}
	util_wipe(cd, sizeof(*cd));
	free(cd);
	return ok;
}

/* auth_sender_allowed - exact address or @domain ownership */
int
auth_sender_allowed(const struct auth_user *u, const char *addr)
{
	const char *domain;

	if (u == NULL || addr == NULL || *addr == '\0')
		return 0;
	domain = strrchr(addr, '@');
	if (domain == NULL || domain == addr || *++domain == '\0')
		return 0;
	for (size_t i = 0; i < u->nsenders; i++) {
		const char *s = u->senders[i];
		/* "@example.com" is that domain only, never sub.example.com. */
		if (s[0] == '@' ? util_strcaseeq(s + 1, domain) : util_strcaseeq(s, addr))
			return 1;
	}
	return 0;
}

/* b64_decode_bounded - strict base64 into a heap buffer; its length or -1 */
static int
b64_decode_bounded(const char *b64, unsigned char **out, size_t *cap)
{
	size_t n = strnlen(b64, SASL_B64_MAX + 1);
	int r;

	if (n > SASL_B64_MAX)
		return -1;
	*cap = 3 * (n / 4) + 1;
	*out = xmalloc(*cap);
	r = util_b64_decode(b64, *out, *cap);
	if (r < 0) {
		util_wipe(*out, *cap);
		free(*out);
		*out = NULL;
	}
	return r;
}

/* auth_decode_plain - SASL PLAIN (RFC 4616) into user and password */
int
auth_decode_plain(const char *b64, char *user, size_t userlen, char *pass, size_t passlen)
{
	unsigned char *buf;
	const char *authz, *authc, *pw;
	size_t cap, zlen, clen, plen;
	int n, r = -1;

	if (userlen > 0)
		user[0] = '\0';
	if (passlen > 0)
		pass[0] = '\0';
	if ((n = b64_decode_bounded(b64, &buf, &cap)) < 0)
		return -1;
	/* RFC 4616 2: [authzid] NUL authcid NUL passwd, nothing else NUL. */
	authz = (const char *)buf;
	zlen = strnlen(authz, (size_t)n);
	if (zlen + 1 >= (size_t)n)
		goto out;
	authc = authz + zlen + 1;
	clen = strnlen(authc, (size_t)n - zlen - 1);
	if (zlen + 1 + clen + 1 > (size_t)n)
		goto out;
	pw = authc + clen + 1;
	plen = (size_t)n - zlen - clen - 2;
	if (memchr(pw, '\0', plen) != NULL)
		goto out;
	if (clen == 0 || plen == 0 || clen >= AUTH_NAME_MAX || plen > AUTH_PASS_MAX ||
	    clen >= userlen || plen >= passlen)
		goto out;
	if (zlen != 0 && (zlen != clen || memcmp(authz, authc, clen) != 0))
		goto out;
	memcpy(user, authc, clen);
	user[clen] = '\0';
	memcpy(pass, pw, plen);
	pass[plen] = '\0';
	r = 0;
out:
	util_wipe(buf, cap);
	free(buf);
	return r;
}

/* auth_decode_login - one SASL LOGIN line into text */
int
auth_decode_login(const char *b64, char *out, size_t outlen)
{
	unsigned char *buf;
	size_t cap;
	int n, r = -1;

	if (outlen > 0)
		out[0] = '\0';
	if ((n = b64_decode_bounded(b64, &buf, &cap)) < 0)
		return -1;
	if (n > 0 && (size_t)n < outlen && (size_t)n <= AUTH_PASS_MAX &&
	    memchr(buf, '\0', (size_t)n) == NULL) {
		memcpy(out, buf, (size_t)n);
		out[n] = '\0';
		r = 0;
	}
	util_wipe(buf, cap);
	free(buf);
	return r;
}

/* auth_hash_password - yescrypt hash with a fresh random salt */
char *
auth_hash_password(const char *password)
{
	char *setting, *hash = NULL;
	struct crypt_data *cd;
	const char *r;

	if (strlen(password) > AUTH_PASS_MAX)
		return NULL;
	if ((setting = crypt_gensalt_ra("$y$", 0, NULL, 0)) == NULL)
		return NULL;
	cd = xcalloc(1, sizeof(*cd));
	r = crypt_rn(password, setting, cd, (int)sizeof(*cd));
	if (r != NULL && r[0] == '$')
		hash = xstrdup(r);
	util_wipe(cd, sizeof(*cd));
	free(cd);
	free(setting);
	return hash;
}

/* One client address and its recent failures. */
struct penalty_entry {
	char ip[IP_STR_MAX];
	int count;
	time_t last;            /* time of the latest failure; 0 = free */
};

struct auth_penalty {
	struct penalty_entry *e;
	size_t n;
	long window;
};

/* auth_penalty_new - a table of at most max_entries client addresses */
struct auth_penalty *
auth_penalty_new(size_t max_entries, long window)
{
	struct auth_penalty *p = xcalloc(1, sizeof(*p));

	p->n = max_entries ? max_entries : 1;
	p->e = xcalloc(p->n, sizeof(*p->e));
	p->window = window;
	return p;
}

/* auth_penalty_free - release the table */
void
auth_penalty_free(struct auth_penalty *p)
{
	if (p == NULL)
		return;
	free(p->e);
	free(p);
}

/* penalty_find - the entry for an IP, or NULL */
static struct penalty_entry *
penalty_find(struct auth_penalty *p, const char *ip)
{
	for (size_t i = 0; i < p->n; i++)
		if (p->e[i].last != 0 && strncmp(p->e[i].ip, ip, sizeof(p->e[i].ip) - 1) == 0)
			return &p->e[i];
	return NULL;
}

/* penalty_expired - has the window passed since the last failure? */
static int
penalty_expired(const struct auth_penalty *p, const struct penalty_entry *e, time_t now)
{
	return e->last == 0 || now - e->last > p->window;
}

/* auth_penalty_fail - count one failure for ip at time now */
void
auth_penalty_fail(struct auth_penalty *p, const char *ip, time_t now)
{
	struct penalty_entry *e = penalty_find(p, ip), *victim = NULL;

	if (e == NULL) {
		/* A free or expired slot, else the one idle the longest: an
		 * attacker cycling addresses only pushes out the oldest. */
		for (size_t i = 0; i < p->n; i++) {
			if (penalty_expired(p, &p->e[i], now)) {
				victim = &p->e[i];
				break;
			}
			if (victim == NULL || p->e[i].last < victim->last)
				victim = &p->e[i];
		}
		e = victim;
		memset(e, 0, sizeof(*e));
		util_strlcpy(e->ip, ip, sizeof(e->ip));
	} else if (penalty_expired(p, e, now)) {
		e->count = 0;
	}
	if (e->count < 1000000)
		e->count++;
	/* time 0 marks a free slot */
	e->last = now > 0 ? now : 1;
}

/* auth_penalty_success - forget ip after a good login */
void
auth_penalty_success(struct auth_penalty *p, const char *ip)
{
	struct penalty_entry *e = penalty_find(p, ip);

	if (e)
		memset(e, 0, sizeof(*e));
}

/* auth_penalty_count - recent failures of ip, 0 once the window passed */
int
auth_penalty_count(struct auth_penalty *p, const char *ip, time_t now)
{
	struct penalty_entry *e = penalty_find(p, ip);

	return (e == NULL || penalty_expired(p, e, now)) ? 0 : e->count;
}
