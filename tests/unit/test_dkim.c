/*
 * test_dkim - dkim_key and dkim_sign against real keys in a temporary
 * directory: keygen (mode, no overwrite, bit range), the exact
 * "file:line: message" of every key error and warning, the From: domain
 * lookup with and without dkim_subdomains, TXT records that decode to the
 * private key's public half, and signatures checked by libopendkim's own
 * verifier (file query method, keys taken from our TXT records): RSA +
 * Ed25519 both pass; a tampered body, an added From: or an added
 * List-Unsubscribe fail; an added unsigned header still passes.
 */
#include "config.h"

#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <opendkim/dkim.h>

#include "conf.h"
#include "dkim_key.h"
#include "dkim_sign.h"
#include "tap.h"
#include "util.h"

static char dir[200];
static char *errs;

/* path - a file under the test directory; two rotating static buffers,
 * so one call may be nested in another's arguments */
static const char *
path(const char *name)
{
	static char p[2][PATH_MAX];
	static int which;

	which ^= 1;
	snprintf(p[which], sizeof(p[which]), "%s/%s", dir, name);
	return p[which];
}

/* put - write a file under the test directory with a mode */
static void
put(const char *name, const char *text, size_t len, mode_t mode)
{
	const char *p = path(name);
	FILE *f;

	if ((f = fopen(p, "w")) == NULL || fwrite(text, 1, len, f) != len ||
	    fclose(f) != 0 || chmod(p, mode) != 0) {
		perror(p);
		exit(99);
	}
}

/* slurp - a whole file, NUL-terminated */
static char *
slurp(const char *p, size_t *len)
{
	char *s = util_read_file(p, 1 << 20, len);

	if (s == NULL) {
		perror(p);
		exit(99);
	}
	return s;
}

/* load - write outpost.conf, conf_load and dkim_key_load it; errs gets
 * both loaders' output */
static struct dkim_keyset *
load(const char *text, struct conf **c, int *nerr)
{
	struct dkim_keyset *ks = NULL;
	size_t len;
	FILE *f;

	put("outpost.conf", text, strlen(text), 0644);
	free(errs);
	f = open_memstream(&errs, &len);
	if (conf_load(path("outpost.conf"), f, c) == 0)
		ks = dkim_key_load(*c, f, nerr);
	fclose(f);
	return ks;
}

/* keygen_openssl - a key dkim_key_generate refuses to make */
static void
keygen_openssl(const char *name, EVP_PKEY *pk)
{
	const char *p = path(name);
	FILE *f;

	if (pk == NULL || (f = fopen(p, "w")) == NULL) {
		perror(p);
		exit(99);
	}
	chmod(p, 0600);
	PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL);
	fclose(f);
	EVP_PKEY_free(pk);
}

/* test_keygen - the keys the other tests use, and keygen's refusals */
static void
test_keygen(void)
{
	char err[PATH_MAX + 128], want[PATH_MAX + 128], *pem;
	struct stat st;
	size_t len;

	is_int(dkim_key_generate(DKIM_KEY_RSA, 2048, path("r2048.pem"), err, sizeof(err)),
	    0, "keygen RSA-2048");
	is_int(dkim_key_generate(DKIM_KEY_RSA, 1024, path("r1024.pem"), err, sizeof(err)),
	    0, "keygen RSA-1024");
	is_int(dkim_key_generate(DKIM_KEY_ED25519, 0, path("ed.pem"), err, sizeof(err)),
	    0, "keygen Ed25519");
	ok(stat(path("r2048.pem"), &st) == 0 && (st.st_mode & 07777) == 0600,
	    "key written with mode 0600");
	pem = slurp(path("r2048.pem"), &len);
	ok(strncmp(pem, "-----BEGIN PRIVATE KEY-----", 27) == 0, "PKCS#8 PEM");
	free(pem);
	pem = slurp(path("ed.pem"), &len);
	ok(strncmp(pem, "-----BEGIN PRIVATE KEY-----", 27) == 0, "Ed25519 as PKCS#8 PEM");
	free(pem);

	is_int(dkim_key_generate(DKIM_KEY_RSA, 2048, path("r1024.pem"), err, sizeof(err)),
	    -1, "keygen never overwrites");
	snprintf(want, sizeof(want), "%s exists; choose a new selector or remove it",
	    path("r1024.pem"));
	is_str(err, want, "keygen: exists message");
	is_int(dkim_key_generate(DKIM_KEY_RSA, 512, path("r512.pem"), err, sizeof(err)),
	    -1, "keygen refuses RSA-512");
	is_str(err, "RSA keys have 1024 to 8192 bits (2048 recommended), not 512",
	    "keygen: 512 bits message");
	is_int(dkim_key_generate(DKIM_KEY_RSA, 8193, path("r512.pem"), err, sizeof(err)),
	    -1, "keygen refuses RSA-8193");
	ok(access(path("r512.pem"), F_OK) != 0, "no file left by a refused keygen");
	is_int(dkim_key_generate(DKIM_KEY_RSA, 2048, path("nodir/x.pem"), err, sizeof(err)),
	    -1, "keygen into a missing directory fails");

	/* keys outpost must refuse, made with OpenSSL directly */
	keygen_openssl("r512.pem", EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)512));
	keygen_openssl("ec.pem", EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256"));
	pem = slurp(path("r2048.pem"), &len);
	put("mode.pem", pem, len, 0644);
	util_wipe(pem, len);
	free(pem);
	pem = "-----BEGIN PRIVATE KEY-----\nnot base64 at all\n-----END PRIVATE KEY-----\n";
	put("garbage.pem", pem, strlen(pem), 0600);
	pem = xcalloc(1, 70000);
	memset(pem, 'A', 69999);
	put("big.pem", pem, 69999, 0600);
	free(pem);
}

/* test_load_errors - one [domain] per problem, each error at its line */
static void
test_load_errors(void)
{
	struct dkim_keyset *ks;
	struct conf *c = NULL;
	char *want;
	int nerr = -1;
	const char *d = dir;

	ks = load("[listen a]\naddress = 127.0.0.1:2587\ntls = none\n"
	    "[domain missing.example]\ndkim_key = s1:missing.pem\n"   /* 5 */
	    "[domain mode.example]\ndkim_key = s1:mode.pem\n"         /* 7 */
	    "[domain weak.example]\ndkim_key = s1:r512.pem\n"         /* 9 */
	    "[domain edonly.example]\ndkim_key = e1:ed.pem\n"         /* 11 */
	    "[domain garbage.example]\ndkim_key = s1:garbage.pem\n"   /* 13 */
	    "[domain short.example]\ndkim_key = s1:r1024.pem\n"       /* 15 */
	    "[domain mixed.example]\ndkim_key = s1:missing.pem, e1:ed.pem\n" /* 17 */
	    "[domain ec.example]\ndkim_key = s1:ec.pem\n"             /* 19 */
	    "[domain big.example]\ndkim_key = s1:big.pem\n",          /* 21 */
	    &c, &nerr);
	ok(ks != NULL, "key set returned despite errors");
	is_int(nerr, 8, "eight key errors");
	want = xasprintf(
	    "%s/outpost.conf:5: dkim_key s1: %s/missing.pem: No such file or directory\n"
	    "%s/outpost.conf:7: dkim_key s1: %s/mode.pem is readable by group or others"
	    " (mode 0644); run chmod 600 %s/mode.pem\n"
	    "%s/outpost.conf:9: dkim_key s1: %s/r512.pem: RSA key of 512 bits is too weak"
	    " (1024 at least, 2048 recommended)\n"
	    "%s/outpost.conf:11: domain edonly.example: Ed25519 alone is not verified by"
	    " large receivers; add an RSA key (dual signing, RFC 8463)\n"
	    "%s/outpost.conf:13: dkim_key s1: %s/garbage.pem: not a PEM private key\n"
	    "%s/outpost.conf:15: warning: dkim_key s1: %s/r1024.pem: RSA key of 1024 bits;"
	    " 2048 recommended\n"
	    "%s/outpost.conf:17: dkim_key s1: %s/missing.pem: No such file or directory\n"
	    "%s/outpost.conf:19: dkim_key s1: %s/ec.pem: unsupported key type"
	    " id-ecPublicKey (RSA or Ed25519 only)\n"
	    "%s/outpost.conf:21: dkim_key s1: %s/big.pem: larger than 64 KiB, not a PEM"
	    " private key\n",
	    d, d, d, d, d, d, d, d, d, d, d, d, d, d, d, d, d, d);
	is_str(errs, want, "every key error and the warning, with file:line");
	free(want);
	ok(strstr(errs, "MII") == NULL && strstr(errs, "BEGIN") == NULL,
	    "no key material in the messages");
	dkim_key_free(ks);
	conf_free(c);
}

/* good config: RSA + Ed25519 on example.com (with subdomains), RSA-1024
 * on other.org (without), a keyless [domain] */
#define GOOD_CONF \
	"[listen a]\naddress = 127.0.0.1:2587\ntls = none\n" \
	"[domain Example.COM]\ndkim_key = s2026:r2048.pem, e2026:ed.pem\n" \
	"dkim_subdomains = yes\n" \
	"[domain other.org]\ndkim_key = old:r1024.pem\n" \
	"[domain plain.net]\ndkim_subdomains = yes\n"

/* test_find - the From: domain to keys rule */
static void
test_find(const struct dkim_keyset *ks)
{
	const struct dkim_domain *ex = dkim_key_find(ks, "example.com");
	const struct { const char *from; const char *want; } cases[] = {
		{ "example.com", "example.com" },
		{ "EXAMPLE.com", "example.com" },
		{ "example.com.", "example.com" },
		{ "news.example.com", "example.com" },
		{ "Deep.News.Example.Com", "example.com" },
		{ "example.com.evil.org", NULL },
		{ "evilexample.com", NULL },
		{ "com", NULL },
		{ "other.org", "other.org" },
		{ "OTHER.ORG", "other.org" },
		{ "news.other.org", NULL },     /* no dkim_subdomains */
		{ "plain.net", NULL },          /* no keys */
		{ "a.plain.net", NULL },
		{ "", NULL },
		{ ".", NULL },
	};
	const struct dkim_domain *d;

	ok(ex != NULL, "example.com found");
	if (ex == NULL)
		return;
	is_str(ex->name, "example.com", "domain name lower-cased");
	ok(ex->subdomains, "dkim_subdomains kept");
	is_int(ex->nkeys, 2, "two keys");
	is_str(ex->keys[0].selector, "s2026", "first key in config order");
	is_int(ex->keys[0].type, DKIM_KEY_RSA, "first key RSA");
	is_int(ex->keys[0].bits, 2048, "2048 bits");
	is_str(dkim_key_alg(&ex->keys[0]), "rsa-sha256", "rsa alg");
	is_str(ex->keys[1].selector, "e2026", "second key");
	is_int(ex->keys[1].type, DKIM_KEY_ED25519, "second key Ed25519");
	is_int(ex->keys[1].bits, 256, "Ed25519 counts 256 bits");
	is_str(dkim_key_alg(&ex->keys[1]), "ed25519-sha256", "ed25519 alg");
	ok(ex->keys[0].pem && strstr(ex->keys[0].pem, "BEGIN PRIVATE KEY"), "PEM kept");
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		d = dkim_key_find(ks, cases[i].from);
		if (cases[i].want == NULL)
			ok(d == NULL, "find '%s': none", cases[i].from);
		else
			is_str(d ? d->name : NULL, cases[i].want, "find '%s'", cases[i].from);
	}
}

/* txt_value - the strings of a TXT record joined; checks each is at most
 * 255 bytes. NULL if the record does not have the zone file shape. */
static char *
txt_value(const char *txt, const char *name, int *nstr, int *maxlen)
{
	char *value = xcalloc(1, strlen(txt) + 1);
	const char *p, *q;
	size_t n = strlen(name);

	*nstr = *maxlen = 0;
	if (strncmp(txt, name, n) != 0 || strncmp(txt + n, " IN TXT (", 9) != 0 ||
	    strcmp(txt + strlen(txt) - 2, " )") != 0) {
		free(value);
		return NULL;
	}
	for (p = txt + n + 9; (p = strchr(p, '"')) != NULL; p = q + 1) {
		if ((q = strchr(p + 1, '"')) == NULL)
			break;
		strncat(value, p + 1, (size_t)(q - p - 1));
		(*nstr)++;
		if (q - p - 1 > *maxlen)
			*maxlen = (int)(q - p - 1);
	}
	return value;
}

/* pubkey_bytes - what p= must hold for a private key: the DER
 * SubjectPublicKeyInfo (RSA) or the raw 32 bytes (Ed25519) */
static int
pubkey_bytes(const char *pem, unsigned char *out, size_t outlen)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	EVP_PKEY *pk = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
	unsigned char *der = NULL;
	size_t rawlen = outlen;
	int n = -1;

	BIO_free(b);
	if (pk == NULL)
		return -1;
	if (EVP_PKEY_get_base_id(pk) == EVP_PKEY_ED25519) {
		if (EVP_PKEY_get_raw_public_key(pk, out, &rawlen) == 1)
			n = (int)rawlen;
	} else if ((n = i2d_PUBKEY(pk, &der)) > 0 && (size_t)n <= outlen) {
		memcpy(out, der, (size_t)n);
	} else {
		n = -1;
	}
	OPENSSL_free(der);
	EVP_PKEY_free(pk);
	return n;
}

/* check_txt - one key's TXT record: shape, string sizes, p= matches the
 * key; appends "NAME VALUE\n" to keyfile for the verifier and returns
 * the record's value (or NULL) */
static char *
check_txt(const char *domain, const struct dkim_key *k, const char *kind,
    int want_strings, FILE *keyfile)
{
	char err[256], name[300], prefix[64], *txt, *value;
	unsigned char got[1024], want[1024];
	int nstr, maxlen, n, wn;

	txt = dkim_key_txt_record(domain, k->selector, k->pem, k->pemlen, err, sizeof(err));
	ok(txt != NULL, "%s: TXT record", kind);
	if (txt == NULL)
		return NULL;
	snprintf(name, sizeof(name), "%s._domainkey.%s.", k->selector, domain);
	value = txt_value(txt, name, &nstr, &maxlen);
	ok(value != NULL, "%s: 'NAME. IN TXT ( ... )' shape", kind);
	if (value == NULL) {
		printf("# %s\n", txt);
		free(txt);
		return NULL;
	}
	is_int(nstr, want_strings, "%s: %d string(s)", kind, want_strings);
	ok(maxlen <= 255 && maxlen > 0, "%s: strings of at most 255 bytes (%d)", kind, maxlen);
	snprintf(prefix, sizeof(prefix), "v=DKIM1; k=%s; p=",
	    k->type == DKIM_KEY_RSA ? "rsa" : "ed25519");
	ok(strncmp(value, prefix, strlen(prefix)) == 0, "%s: starts with %s", kind, prefix);
	n = util_b64_decode(value + strlen(prefix), got, sizeof(got));
	wn = pubkey_bytes(k->pem, want, sizeof(want));
	ok(n > 0 && n == wn && memcmp(got, want, (size_t)n) == 0,
	    "%s: p= decodes to the key's public half (%d bytes)", kind, n);
	if (k->type == DKIM_KEY_ED25519)
		is_int(n, 32, "%s: p= is the raw 32-byte key (RFC 8463)", kind);
	fprintf(keyfile, "%s._domainkey.%s %s\n", k->selector, domain, value);
	free(txt);
	return value;
}

/* test_txt - TXT records of every kind of key, and a bad PEM; writes
 * the verifier's key file, and "wrongkeys" where s2026 has another key */
static void
test_txt(const struct dkim_keyset *ks, const char *keyfile)
{
	const struct dkim_domain *ex = dkim_key_find(ks, "example.com");
	const struct dkim_domain *other = dkim_key_find(ks, "other.org");
	char err[256] = "", *v[3], *wrong;
	FILE *f;

	if (ex == NULL || other == NULL || (f = fopen(keyfile, "w")) == NULL) {
		ok(0, "keys for the TXT tests");
		return;
	}
	v[0] = check_txt("example.com", &ex->keys[0], "RSA-2048", 2, f);
	v[1] = check_txt("example.com", &ex->keys[1], "Ed25519", 1, f);
	v[2] = check_txt("other.org", &other->keys[0], "RSA-1024", 1, f);
	fclose(f);
	wrong = xasprintf("s2026._domainkey.example.com %s\n", v[2] ? v[2] : "");
	put("wrongkeys", wrong, strlen(wrong), 0600);
	free(wrong);
	for (int i = 0; i < 3; i++)
		free(v[i]);
	ok(dkim_key_txt_record("example.com", "x", "junk", 4, err, sizeof(err)) == NULL,
	    "TXT of a bad PEM: NULL");
	is_str(err, "not a PEM private key", "TXT of a bad PEM: reason");
}

/* feed - a message to a verifying handle: header fields (first line and
 * continuation lines, without the final CRLF), then the body */
static DKIM_STAT
feed(DKIM *v, const char *msg, size_t len)
{
	const char *end = msg + len, *p, *eol, *field = NULL, *body = NULL;
	DKIM_STAT st;

	for (p = msg; p < end; p = eol + 2) {
		for (eol = p; eol + 1 < end && !(eol[0] == '\r' && eol[1] == '\n'); eol++)
			;
		if (eol + 1 >= end)
			eol = end;      /* a last line without CRLF */
		if (eol == p) {
			body = p + 2;
			break;
		}
		if (field && *p != ' ' && *p != '\t') {
			if ((st = dkim_header(v, (u_char *)field, (size_t)(p - 2 - field))) != 0)
				return st;
			field = NULL;
		}
		if (field == NULL)
			field = p;
		if (eol == end) {
			if ((st = dkim_header(v, (u_char *)field, (size_t)(end - field))) != 0)
				return st;
			field = NULL;
			break;
		}
	}
	if (field && (st = dkim_header(v, (u_char *)field,
	    (size_t)((body ? body - 2 : end) - 2 - field))) != 0)
		return st;
	if ((st = dkim_eoh(v)) != DKIM_STAT_OK)
		return st;
	if (body && body < end &&
	    (st = dkim_body(v, (u_char *)body, (size_t)(end - body))) != DKIM_STAT_OK)
		return st;
	return dkim_eom(v, NULL);
}

/* verify - libopendkim's verifier with keys from keyfile; returns how
 * many signatures passed, *nsigs how many there were */
static int
verify(const char *keyfile, const char *msg, size_t len, int *nsigs)
{
	dkim_query_t qm = DKIM_QUERY_FILE;
	DKIM_SIGINFO **sigs;
	DKIM_STAT st;
	DKIM_LIB *lib = dkim_init(NULL, NULL);
	DKIM *v;
	int n = 0, pass = 0;

	*nsigs = 0;
	if (lib == NULL ||
	    dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_QUERYMETHOD, &qm, sizeof(qm)) != 0 ||
	    dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_QUERYINFO, (void *)keyfile,
	    strlen(keyfile) + 1) != 0 ||
	    (v = dkim_verify(lib, (const u_char *)"test", NULL, &st)) == NULL) {
		if (lib)
			dkim_close(lib);
		return -1;
	}
	feed(v, msg, len);
	if (dkim_getsiglist(v, &sigs, &n) == DKIM_STAT_OK) {
		*nsigs = n;
		for (int i = 0; i < n; i++)
			if ((dkim_sig_getflags(sigs[i]) & DKIM_SIGFLAG_PASSED) &&
			    dkim_sig_getbh(sigs[i]) == DKIM_SIGBH_MATCH &&
			    dkim_sig_geterror(sigs[i]) == DKIM_SIGERROR_OK)
				pass++;
	}
	dkim_free(v);
	dkim_close(lib);
	return pass;
}

/* sig_tags - the first DKIM-Signature's value, unfolded, without
 * white space: "v=1;a=rsa-sha256;..." */
static char *
sig_tags(const char *out, size_t len)
{
	const char *p = out + strlen("DKIM-Signature: ");
	char *tags = xcalloc(1, len + 1), *t = tags;

	for (; p + 2 < out + len; p++) {
		if (p[0] == '\r' && p[1] == '\n' && p[2] != ' ' && p[2] != '\t')
			break;
		if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n')
			*t++ = *p;
	}
	return tags;
}

/* tag - one tag's value from sig_tags() output, in buf; NULL if absent */
static const char *
tag(const char *tags, const char *name, char *buf, size_t size)
{
	size_t n = strlen(name);

	for (const char *p = tags; p && *p; p = strchr(p, ';') ? strchr(p, ';') + 1 : NULL) {
		if (strncmp(p, name, n) == 0 && p[n] == '=') {
			size_t vlen = strcspn(p + n + 1, ";");

			snprintf(buf, size, "%.*s", (int)vlen, p + n + 1);
			return buf;
		}
	}
	return NULL;
}

/* count_hdr - how many times a field name is in an h= list */
static int
count_hdr(const char *h, const char *name)
{
	size_t n = strlen(name);
	int count = 0;

	for (const char *p = h; p; p = strchr(p, ':') ? strchr(p, ':') + 1 : NULL)
		if (strncasecmp(p, name, n) == 0 && (p[n] == ':' || p[n] == '\0'))
			count++;
	return count;
}

/* insert - a copy of out with text put in at the top of the header, or
 * at its bottom (before the blank line) */
static char *
insert(const char *out, size_t len, int top, const char *text, size_t *newlen)
{
	const char *blank = strstr(out, "\r\n\r\n");
	size_t at = top ? 0 : blank ? (size_t)(blank - out) + 2 : len, tl = strlen(text);
	char *m = xmalloc(len + tl + 1);

	memcpy(m, out, at);
	memcpy(m + at, text, tl);
	memcpy(m + at + tl, out + at, len - at);
	m[len + tl] = '\0';
	*newlen = len + tl;
	return m;
}

#define MSG \
	"From: Alice <alice@news.example.com>\r\n" \
	"To: bob@example.org\r\n" \
	"Subject: a folded\r\n\tsubject line\r\n" \
	"Date: Sun, 22 Nov 2026 16:41:12 +0000\r\n" \
	"Message-ID: <1@news.example.com>\r\n" \
	"X-Mailer: not signed\r\n" \
	"\r\n" \
	"Hello Bob,\r\n" \
	".a line with a dot\r\n" \
	"caf\xc3\xa9 \t trailing  \r\n" \
	"\r\n" \
	"\r\n"

/* test_sign - RSA + Ed25519 signatures that verify, and what breaks them */
static void
test_sign(struct dkim_signer *s, const char *keyfile)
{
	const struct dkim_keyset *ks = dkim_sign_keys(s);
	const struct dkim_domain *d = dkim_key_find(ks, "news.example.com");
	char log[DKIM_SIGN_LOG_MAX], err[256], buf[2048], *out = NULL, *m, *tags;
	size_t outlen = 0, mlen, msglen = strlen(MSG);
	const char *h;
	int n, bare = 0;

	is_int(dkim_sign_message(s, d, "3F2A1B09C4D7", MSG, msglen, &out, &outlen, log,
	    sizeof(log), err, sizeof(err)), 0, "sign with RSA + Ed25519");
	if (out == NULL) {
		return;
	}
	is_str(log, "d=example.com s=s2026 a=rsa-sha256; d=example.com s=e2026"
	    " a=ed25519-sha256", "log string");
	ok(outlen > msglen && memcmp(out + outlen - msglen, MSG, msglen) == 0,
	    "the message follows unchanged");
	ok(strncmp(out, "DKIM-Signature: v=1; a=rsa-sha256;", 34) == 0,
	    "RSA signature first (config order)");
	m = strstr(out, "\r\nDKIM-Signature: v=1; a=ed25519-sha256;");
	ok(m != NULL && m < out + outlen - msglen, "then the Ed25519 signature");
	for (size_t i = 0; i < outlen; i++)
		bare += out[i] == '\n' && (i == 0 || out[i - 1] != '\r');
	is_int(bare, 0, "signature folded with CRLF only");
	is_int(verify(keyfile, out, outlen, &n), 2, "both signatures verify");
	is_int(n, 2, "two signatures");

	tags = sig_tags(out, outlen);
	h = tag(tags, "h", buf, sizeof(buf));
	ok(h != NULL, "h= present");
	if (h) {
		is_int(count_hdr(h, "From"), 2, "h= has From twice (over-signed)");
		is_int(count_hdr(h, "Subject"), 2, "Subject over-signed");
		is_int(count_hdr(h, "To"), 2, "To over-signed");
		is_int(count_hdr(h, "Date"), 2, "Date over-signed");
		is_int(count_hdr(h, "List-Unsubscribe"), 1, "absent List-Unsubscribe listed");
		is_int(count_hdr(h, "Message-ID"), 1, "Message-ID signed once");
		is_int(count_hdr(h, "X-Mailer"), 0, "X-Mailer not signed");
	}
	ok(tag(tags, "l", buf, sizeof(buf)) == NULL, "no l= tag");
	is_str(tag(tags, "c", buf, sizeof(buf)), "relaxed/relaxed", "c=relaxed/relaxed");
	is_str(tag(tags, "d", buf, sizeof(buf)), "example.com", "d= is the key's domain");
	is_str(tag(tags, "s", buf, sizeof(buf)), "s2026", "s= selector");
	free(tags);

	/* what an attacker or a broken relay could do afterwards */
	m = xstrdup(out);
	if (strstr(m, "Hello Bob"))
		*strstr(m, "Hello Bob") = 'J';
	is_int(verify(keyfile, m, outlen, &n), 0, "tampered body: no signature passes");
	free(m);
	/* verifiers take the bottom-most instance first (RFC 6376 5.4.2): a
	 * field added on top passes unless the name is over-signed */
	m = insert(out, outlen, 1, "From: mallory@evil.example\r\n", &mlen);
	is_int(verify(keyfile, m, mlen, &n), 0, "From: added on top: no signature passes");
	free(m);
	m = insert(out, outlen, 0, "From: mallory@evil.example\r\n", &mlen);
	is_int(verify(keyfile, m, mlen, &n), 0, "From: added below: no signature passes");
	free(m);
	m = insert(out, outlen, 1, "List-Unsubscribe: <https://evil.example/u>\r\n", &mlen);
	is_int(verify(keyfile, m, mlen, &n), 0, "List-Unsubscribe added on top: fails");
	free(m);
	m = insert(out, outlen, 1, "Received: from a relay\r\n", &mlen);
	is_int(verify(keyfile, m, mlen, &n), 2, "Received: added on top: still passes");
	free(m);
	m = insert(out, outlen, 0, "X-Added: fine\r\n", &mlen);
	is_int(verify(keyfile, m, mlen, &n), 2, "added unsigned header: still passes");
	free(m);
	is_int(verify(path("wrongkeys"), out, outlen, &n), 0, "another key: fails");
	free(out);
}

/* test_sign_edge - a header-only message, a one-key domain, no key */
static void
test_sign_edge(struct dkim_signer *s, const char *keyfile)
{
	const struct dkim_keyset *ks = dkim_sign_keys(s);
	const char *hdr_only = "From: a@example.com\r\nSubject: no body\r\n";
	const char *no_crlf = "From: a@example.com\r\nSubject: no final CRLF";
	const char *one = "From: o@other.org\r\nTo: x@example.net\r\n\r\nbody\r\n";
	char log[DKIM_SIGN_LOG_MAX], err[256], *out = NULL;
	size_t outlen;
	int n;

	is_int(dkim_sign_message(s, dkim_key_find(ks, "example.com"), "Q1", hdr_only,
	    strlen(hdr_only), &out, &outlen, log, sizeof(log), err, sizeof(err)), 0,
	    "header-only message signs");
	if (out) {
		is_int(verify(keyfile, out, outlen, &n), 2, "header-only message verifies");
		free(out);
		out = NULL;
	}
	is_int(dkim_sign_message(s, dkim_key_find(ks, "example.com"), "Q2", no_crlf,
	    strlen(no_crlf), &out, &outlen, log, sizeof(log), err, sizeof(err)), 0,
	    "message without a final CRLF signs");
	if (out) {
		ok(outlen > strlen(no_crlf) &&
		    strcmp(out + outlen - strlen(no_crlf), no_crlf) == 0, "and is kept as is");
		free(out);
		out = NULL;
	}
	is_int(dkim_sign_message(s, dkim_key_find(ks, "other.org"), NULL, one, strlen(one),
	    &out, &outlen, log, sizeof(log), err, sizeof(err)), 0, "RSA-1024 signs");
	is_str(log, "d=other.org s=old a=rsa-sha256", "one-key log string");
	if (out) {
		is_int(verify(keyfile, out, outlen, &n), 1, "RSA-1024 signature verifies");
		free(out);
		out = NULL;
	}
	is_int(dkim_sign_message(s, NULL, "Q3", one, strlen(one), &out, &outlen, log,
	    sizeof(log), err, sizeof(err)), -1, "no domain: refused");
	ok(out == NULL, "no output on failure");
	is_int(dkim_sign_message(s, dkim_key_find(ks, "other.org"), "Q4", "To: x@y\r\n\r\nb\r\n",
	    15, &out, &outlen, log, sizeof(log), err, sizeof(err)), -1, "no From: refused");
	ok(strncmp(err, "dkim d=other.org s=old: ", 24) == 0 && strstr(err, "MII") == NULL,
	    "error names the signature, not the key");
	ok(out == NULL, "no output on a library error");
}

/* rm - nftw callback */
static int
rm(const char *p, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	return remove(p);
}

int
main(void)
{
	const char *tmp = getenv("TMPDIR");
	struct dkim_signer *s;
	struct dkim_keyset *ks;
	struct conf *c = NULL;
	char err[256], keyfile[PATH_MAX], *want;
	int nerr = -1;

	if ((size_t)snprintf(dir, sizeof(dir), "%s/test_dkim.XXXXXX",
	    tmp && *tmp ? tmp : "/tmp") >= sizeof(dir) || mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 99;
	}
	snprintf(keyfile, sizeof(keyfile), "%s/keys", dir);
	test_keygen();
	test_load_errors();

	ks = load(GOOD_CONF, &c, &nerr);
	ok(ks != NULL, "good config loads");
	is_int(nerr, 0, "good config: no key errors");
	want = xasprintf("%s/outpost.conf:8: warning: dkim_key old: %s/r1024.pem: RSA key"
	    " of 1024 bits; 2048 recommended\n", dir, dir);
	is_str(errs, want, "good config: only the RSA-1024 warning");
	free(want);
	if (ks != NULL) {
		is_int(ks->ndomains, 2, "two domains with keys");
		test_find(ks);
		test_txt(ks, keyfile);
		s = dkim_sign_new(ks, err, sizeof(err));
		ok(s != NULL, "signer starts");
		if (s != NULL) {
			test_sign(s, keyfile);
			test_sign_edge(s, keyfile);
			dkim_sign_free(s);
		}
	}
	conf_free(c);
	free(errs);
	nftw(dir, rm, 8, FTW_DEPTH | FTW_PHYS);
	return done();
}
