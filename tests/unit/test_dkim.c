/*
 * test_dkim - dkim_key and dkim_sign against real keys in a temporary
 * directory: keygen (mode, no overwrite, bit range), the exact
 * "file:line: message" of every key error and warning, the From: domain
 * lookup with and without dkim_subdomains, TXT records that decode to the
 * private key's public half, and signatures checked by libopendkim's own
 * verifier (file query method, keys taken from our TXT records): RSA +
 * Ed25519 both pass; a tampered body, an added From: or an added
 * List-Unsubscribe fail; an added unsigned header still passes.
 *
 * dkim_canon, which makes the RSA and Ed25519 signatures: relaxed header
 * and body vectors (RFC 6376 3.4.5 and the corner cases), the RFC 8463
 * appendix A signature reproduced byte for byte, the same h= and bh= in
 * both signatures of a message, RSA tags (all but b=) as libopendkim
 * writes them for the same key, message and time, RSA signing with the
 * PEM text wiped (the key is parsed once, at dkim_sign_new), rsa-sha256
 * through dkim_canon_sign verified by libopendkim (the ARC sealer needs
 * it), and 200 Ed25519 signatures from four threads, which LeakSanitizer
 * checks in sanitizer builds (libopendkim lost ~470 bytes on each).
 */
#include "config.h"

#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
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
#include "dkim_canon.h"
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

/* sig_tags - the value of the signature field at out (the first one
 * when out is a signed message), unfolded, without white space:
 * "v=1;a=rsa-sha256;..." */
static char *
sig_tags(const char *out, size_t len)
{
	const char *p = strchr(out, ':') + 1;
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

/* sha256_is - the digest of a string equals md */
static int
sha256_is(const unsigned char *md, const char *s, size_t len)
{
	unsigned char want[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	return EVP_Digest(s, len, want, &n, EVP_sha256(), NULL) == 1 &&
	    n == DKIM_CANON_HASHLEN && memcmp(md, want, n) == 0;
}

/* test_canon_header - relaxed header canonicalisation (RFC 6376 3.4.2) */
static void
test_canon_header(void)
{
	const struct { const char *in; const char *want; } cases[] = {
		/* RFC 6376 3.4.5 */
		{ "A: X", "a:X\r\n" },
		{ "B : Y\t\r\n\tZ  ", "b:Y Z\r\n" },
		{ "Subject:  Hello\t  World \t", "subject:Hello World\r\n" },
		{ "X-Empty:", "x-empty:\r\n" },
		{ "X-Empty: \t ", "x-empty:\r\n" },
		{ "To:\r\n\tbob@example.org", "to:bob@example.org\r\n" },
		{ "Content-Type: text/plain;\r\n charset=\"utf-8\"",
		  "content-type:text/plain; charset=\"utf-8\"\r\n" },
		{ "MiXeD-CaSe: KeepS  CaSe", "mixed-case:KeepS CaSe\r\n" },
		{ "Date: Fri, 11 Jul 2003 21:00:37 -0700", "date:Fri, 11 Jul 2003 21:00:37 -0700\r\n" },
		{ "Subject: Caf\xc3\x89\t\xc3\x89T\xc3\x89", "subject:Caf\xc3\x89 \xc3\x89T\xc3\x89\r\n" },
		{ "References: <a@x>\r\n <b@x>\r\n\t<c@x>  ", "references:<a@x> <b@x> <c@x>\r\n" },
		{ "X-Bare: a\rb\nc", "x-bare:a\rb\nc\r\n" },   /* only CRLF unfolds */
		{ "no colon here", "no colon here\r\n" },
	};
	char out[256];
	size_t n;

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		n = dkim_canon_header(cases[i].in, strlen(cases[i].in), out);
		is_str(out, cases[i].want, "relaxed header %zu", i);
		is_int(n, strlen(cases[i].want), "relaxed header %zu: length", i);
	}
}

/* test_canon_split - fields, names, body */
static void
test_canon_split(void)
{
	const char *rfc = "A: X\r\nB : Y\t\r\n\tZ  \r\n\r\n C \r\nD \t E\r\n\r\n\r\n";
	const char *hdronly = "From: a\r\nSubject: b\r\n";
	const char *nocrlf = "From: a\r\nSubject: b\r\n c";
	const char *empty = "From: a\r\n\r\n";
	struct dkim_canon_msg m;

	dkim_canon_split(rfc, strlen(rfc), &m);
	is_int(m.nfields, 2, "split: two fields");
	if (m.nfields == 2) {
		is_int(m.fields[0].len, 4, "split: 'A: X'");
		is_int(m.fields[1].len, 12, "split: B with its continuation line");
		is_int(m.fields[1].namelen, 1, "split: name without WSP before the colon");
	}
	ok(m.body == rfc + 22 && m.bodylen == strlen(rfc) - 22, "split: the body");
	dkim_canon_msg_free(&m);
	dkim_canon_split(hdronly, strlen(hdronly), &m);
	ok(m.nfields == 2 && m.body == NULL, "split: header only, no body");
	dkim_canon_msg_free(&m);
	dkim_canon_split(nocrlf, strlen(nocrlf), &m);
	ok(m.nfields == 2 && m.fields[1].len == 14 && m.body == NULL,
	    "split: last field without CRLF");
	dkim_canon_msg_free(&m);
	dkim_canon_split(empty, strlen(empty), &m);
	ok(m.nfields == 1 && m.body != NULL && m.bodylen == 0, "split: empty body");
	dkim_canon_msg_free(&m);
	dkim_canon_split("", 0, &m);
	ok(m.nfields == 0 && m.body == NULL, "split: nothing");
	dkim_canon_msg_free(&m);
}

/* test_canon_body - relaxed body canonicalisation (RFC 6376 3.4.4) */
static void
test_canon_body(void)
{
	const struct { const char *in; const char *want; const char *what; } cases[] = {
		{ " C \r\nD \t E\r\n\r\n\r\n", " C\r\nD E\r\n", "RFC 6376 3.4.5" },
		{ "a  \r\nb\t\r\n", "a\r\nb\r\n", "trailing WSP" },
		{ "a \t  b\r\n\t\tc\r\n", "a b\r\n c\r\n", "WSP runs" },
		{ "a\r\n\r\n\r\n", "a\r\n", "trailing empty lines" },
		{ "a\r\n \r\n\t\r\n", "a\r\n", "trailing lines of WSP" },
		{ "a\r\n\r\nb\r\n", "a\r\n\r\nb\r\n", "empty line inside kept" },
		{ "\r\n\r\na\r\n", "\r\n\r\na\r\n", "leading empty lines kept" },
		{ "", "", "empty body: empty string" },
		{ "\r\n", "", "body of one CRLF: empty string" },
		{ "\r\n \r\n\r\n", "", "body of empty lines: empty string" },
		{ "a", "a\r\n", "no final CRLF: added" },
		{ "a\r\nb", "a\r\nb\r\n", "last line without CRLF" },
		{ "a  ", "a\r\n", "no final CRLF: its WSP still goes" },
		{ "a\r\n  ", "a\r\n", "no final CRLF: a WSP line is an empty line" },
		{ ".\r\n..\r\n.a\r\n", ".\r\n..\r\n.a\r\n", "dot lines as they are" },
		{ "caf\xc3\xa9 \xe2\x80\x94\r\n", "caf\xc3\xa9 \xe2\x80\x94\r\n", "8-bit" },
		{ "x\ry \n z\r\n", "x\ry \n z\r\n", "CR and LF alone are octets" },
	};
	unsigned char md[DKIM_CANON_HASHLEN];
	char *big, *want, *p, *q;
	size_t i;

	for (i = 0; i < ARRAY_LEN(cases); i++)
		ok(dkim_canon_body_hash(cases[i].in, strlen(cases[i].in), md) == 0 &&
		    sha256_is(md, cases[i].want, strlen(cases[i].want)),
		    "relaxed body: %s", cases[i].what);
	ok(dkim_canon_body_hash(NULL, 0, md) == 0 && sha256_is(md, "", 0),
	    "relaxed body: no body at all");

	/* more than the digest buffer: many short lines, one long line */
	p = big = xmalloc(5000 * 14 + 40000 + 10);
	q = want = xmalloc(5000 * 11 + 40000 + 10);
	for (i = 0; i < 5000; i++) {
		memcpy(p, "word \t word \r\n", 14);
		p += 14;
		memcpy(q, "word word\r\n", 11);
		q += 11;
	}
	memset(p, 'x', 40000);
	memset(q, 'x', 40000);
	memcpy(p + 40000, "\r\n\r\n", 4);
	memcpy(q + 40000, "\r\n", 2);
	ok(dkim_canon_body_hash(big, (size_t)(p - big) + 40004, md) == 0 &&
	    sha256_is(md, want, (size_t)(q - want) + 40002), "relaxed body: 110 KB");
	free(big);
	free(want);
}

/* The message of RFC 8463 appendix A.3 and its Ed25519 key (A.2). */
#define RFC8463_MSG \
	"From: Joe SixPack <joe@football.example.com>\r\n" \
	"To: Suzie Q <suzie@shopping.example.net>\r\n" \
	"Subject: Is dinner ready?\r\n" \
	"Date: Fri, 11 Jul 2003 21:00:37 -0700 (PDT)\r\n" \
	"Message-ID: <20030712040037.46341.5F8J@football.example.com>\r\n" \
	"\r\n" \
	"Hi.\r\n" \
	"\r\n" \
	"We lost the game.  Are you hungry yet?\r\n" \
	"\r\n" \
	"Joe.\r\n" \
	"\r\n"
#define RFC8463_SECRET "nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A="
#define RFC8463_BH "2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8="
#define RFC8463_B "/gCrinpcQOoIfuHNQIbq4pgh9kyIK3AQUdt9OdqQehSwhEIug4D11Bus" \
	"Fa3bT3FY5OsU7ZbnKELq+eXdp1Q1Dw=="

/* starts - s begins with prefix */
static int
starts(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* max_line - the longest line of a field, without CRLF */
static size_t
max_line(const char *field)
{
	size_t max = 0, n;

	for (const char *p = field; *p; p += n + 2) {
		const char *eol = strstr(p, "\r\n");

		n = eol ? (size_t)(eol - p) : strlen(p);
		if (n > max)
			max = n;
		if (eol == NULL)
			break;
	}
	return max;
}

/* test_rfc8463 - the published Ed25519 signature, byte for byte: the
 * body hash, the header hash (its tags given as the RFC has them) and
 * PureEdDSA over the SHA-256 of the data */
static void
test_rfc8463(void)
{
	const char *msg = RFC8463_MSG;
	const char *tags[] = {
		"v=1", "a=ed25519-sha256", "c=relaxed/relaxed", "d=football.example.com",
		"i=@football.example.com", "q=dns/txt", "s=brisbane", "t=1528637909",
		"h=from : to : subject : date : message-id : from : subject : date",
		"bh=" RFC8463_BH, NULL
	};
	const char *sign[] = { "From", "To", "Subject", "Date", "Message-ID", NULL };
	const char *over[] = { "From", "Subject", "Date", NULL };
	unsigned char raw[64], md[DKIM_CANON_HASHLEN];
	struct dkim_canon_msg m;
	EVP_PKEY *pk;
	char err[256], buf[1024], *data, *out = NULL, *t, *b64;
	size_t len = 0;

	is_int(util_b64_decode(RFC8463_SECRET, raw, sizeof(raw)), 32, "RFC 8463 key decodes");
	pk = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, raw, 32);
	ok(pk != NULL, "RFC 8463 key as EVP_PKEY");
	if (pk == NULL)
		return;
	is_str(dkim_canon_alg(pk), "ed25519-sha256", "a= of an Ed25519 key");
	dkim_canon_split(msg, strlen(msg), &m);
	ok(dkim_canon_body_hash(m.body, m.bodylen, md) == 0, "RFC 8463 body hashed");
	b64 = util_b64_encode(md, sizeof(md));
	is_str(b64, RFC8463_BH, "RFC 8463 bh=");
	free(b64);
	data = xmalloc(strlen(msg) + 3 * m.nfields + 1);
	for (size_t i = 0; i < m.nfields; i++)
		len += dkim_canon_header(m.fields[i].text, m.fields[i].len, data + len);
	is_int(dkim_canon_finish(pk, "DKIM-Signature", tags, data, len, &out, err,
	    sizeof(err)), 0, "RFC 8463 signature made");
	if (out != NULL) {
		t = sig_tags(out, strlen(out));
		is_str(tag(t, "b", buf, sizeof(buf)), RFC8463_B, "RFC 8463 b=, byte for byte");
		ok(starts(out, "DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed;"),
		    "tags in the order given");
		ok(max_line(out) <= DKIM_CANON_FOLD, "lines of at most 78 octets (%zu)",
		    max_line(out));
		ok(strcmp(out + strlen(out) - 2, "\r\n") == 0, "the field ends in CRLF");
		free(t);
		free(out);
		out = NULL;
	}
	free(data);
	dkim_canon_msg_free(&m);

	/* the same message through dkim_canon_sign: h= as libopendkim
	 * writes it, and the null entries of the over-signed names */
	const struct dkim_canon_sig sig = {
		.hdrname = "DKIM-Signature", .first_tags = "v=1",
		.domain = "football.example.com", .selector = "brisbane",
		.sign = sign, .oversign = over, .t = 1528637909,
	};
	is_int(dkim_canon_sign(pk, &sig, msg, strlen(msg), &out, err, sizeof(err)), 0,
	    "RFC 8463 message through dkim_canon_sign");
	if (out != NULL) {
		t = sig_tags(out, strlen(out));
		is_str(tag(t, "h", buf, sizeof(buf)),
		    "From:To:Subject:Date:Message-ID:From:Subject:Date", "h= with over-signing");
		is_str(tag(t, "bh", buf, sizeof(buf)), RFC8463_BH, "bh= as RFC 8463");
		is_str(tag(t, "t", buf, sizeof(buf)), "1528637909", "t= as given");
		free(t);
		free(out);
	}
	EVP_PKEY_free(pk);
}

/* read_key - a PEM private key file as EVP_PKEY */
static EVP_PKEY *
read_key(const char *name)
{
	FILE *f = fopen(path(name), "r");
	EVP_PKEY *pk = f ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;

	if (f)
		fclose(f);
	return pk;
}

/* test_canon_sign - dkim_canon_sign with RSA (ARC will sign rsa-sha256
 * through it) and Ed25519, checked by libopendkim's verifier; the ARC
 * field shape; refusals */
static void
test_canon_sign(const char *keyfile)
{
	const char *sign[] = { "From", "To", "Subject", "Date", "Message-ID", NULL };
	const char *over[] = { "From", "Subject", NULL };
	const char *nofrom = "To: x@example.org\r\n\r\nbody\r\n";
	struct dkim_canon_sig sig = {
		.hdrname = "DKIM-Signature", .first_tags = "v=1", .domain = "example.com",
		.selector = "s2026", .sign = sign, .oversign = over, .t = util_now(),
	};
	EVP_PKEY *rsa = read_key("r2048.pem"), *ed = read_key("ed.pem");
	EVP_PKEY *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	char err[256], buf[2048], *out = NULL, *m, *t;
	size_t mlen;
	int n;

	ok(rsa != NULL && ed != NULL && ec != NULL, "keys for dkim_canon_sign");
	if (rsa == NULL || ed == NULL || ec == NULL)
		goto out;
	is_str(dkim_canon_alg(rsa), "rsa-sha256", "a= of an RSA key");
	ok(dkim_canon_alg(ec) == NULL, "no a= for an EC key");
	is_int(dkim_canon_sign(rsa, &sig, MSG, strlen(MSG), &out, err, sizeof(err)), 0,
	    "rsa-sha256 through dkim_canon_sign");
	if (out != NULL) {
		ok(starts(out, "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;"),
		    "rsa-sha256 field starts as libopendkim's");
		ok(max_line(out) <= DKIM_CANON_FOLD, "RSA b= folded to 78 octets");
		m = insert(MSG, strlen(MSG), 1, out, &mlen);
		is_int(verify(keyfile, m, mlen, &n), 1, "libopendkim verifies our rsa-sha256");
		free(m);
		free(out);
		out = NULL;
	}
	sig.selector = "e2026";
	is_int(dkim_canon_sign(ed, &sig, MSG, strlen(MSG), &out, err, sizeof(err)), 0,
	    "ed25519-sha256 through dkim_canon_sign");
	if (out != NULL) {
		m = insert(MSG, strlen(MSG), 1, out, &mlen);
		is_int(verify(keyfile, m, mlen, &n), 1, "libopendkim verifies our ed25519-sha256");
		free(m);
		free(out);
		out = NULL;
	}

	/* an ARC-Message-Signature: i= first, no v= (RFC 8617 4.1.2) */
	sig.hdrname = "ARC-Message-Signature";
	sig.first_tags = "i=1; ";
	sig.selector = "s2026";
	is_int(dkim_canon_sign(rsa, &sig, MSG, strlen(MSG), &out, err, sizeof(err)), 0,
	    "ARC-Message-Signature signed");
	if (out != NULL) {
		ok(starts(out, "ARC-Message-Signature: i=1; a=rsa-sha256; c=relaxed/relaxed;"),
		    "AMS: i=1 first, no v=");
		t = sig_tags(out, strlen(out));
		ok(tag(t, "v", buf, sizeof(buf)) == NULL, "AMS: no v= tag");
		is_str(tag(t, "h", buf, sizeof(buf)), "From:To:Subject:Date:Message-ID:From:Subject",
		    "AMS: h=");
		free(t);
		free(out);
		out = NULL;
	}

	sig.hdrname = "DKIM-Signature";
	sig.first_tags = "v=1";
	is_int(dkim_canon_sign(ed, &sig, nofrom, strlen(nofrom), &out, err, sizeof(err)), -1,
	    "no From: refused");
	is_str(err, "no From: field to sign (RFC 6376 5.4)", "no From: reason");
	ok(out == NULL, "no output on refusal");
	is_int(dkim_canon_sign(ec, &sig, MSG, strlen(MSG), &out, err, sizeof(err)), -1,
	    "EC key refused");
	is_str(err, "unsupported key type (RSA or Ed25519 only)", "EC key reason");
out:
	EVP_PKEY_free(rsa);
	EVP_PKEY_free(ed);
	EVP_PKEY_free(ec);
}

/* nth_sig - the n-th (from 0) DKIM-Signature field of a signed message */
static const char *
nth_sig(const char *out, int n)
{
	const char *p = out;

	for (int i = 0; p != NULL && i < n; i++)
		if ((p = strstr(p + 1, "\r\nDKIM-Signature: ")) != NULL)
			p += 2;
	return p;
}

/* Messages with repeated and oddly cased fields and bodies that
 * canonicalise, for test_same_h and test_rsa_as_libopendkim. */
static const char *same_msgs[] = {
	MSG,
	"Subject: first\r\nFROM: a@example.com\r\nto: x@example.org\r\n"
	"subject: second\r\nTo: y@example.org\r\nReceived: r\r\nCc: c@example.org\r\n"
	"List-Unsubscribe: <mailto:u@example.com>\r\n\r\nb  \t c \r\n\r\n",
	"From: a@example.com\r\nContent-Type: text/plain;\r\n\tcharset=utf-8\r\n"
	"\r\n\r\n\r\n  x\r\n\t\r\n",
	"From: a@example.com\r\nSubject: empty body\r\n\r\n",
	"From: a@example.com\r\n",
};

/* test_same_h - the Ed25519 signature of a message lists and hashes what
 * its RSA signature does: h= (present fields top to bottom as spelt, then
 * the over-signed names) and bh= (test_rsa_as_libopendkim compares the RSA
 * one with libopendkim's) */
static void
test_same_h(struct dkim_signer *s, const char *keyfile)
{
	const struct dkim_domain *d = dkim_key_find(dkim_sign_keys(s), "example.com");
	char log[DKIM_SIGN_LOG_MAX], err[256], b1[2048], b2[2048], *out, *t1, *t2;
	const char *rsa, *ed;
	size_t outlen;
	int n;

	for (size_t i = 0; i < ARRAY_LEN(same_msgs); i++) {
		out = NULL;
		if (dkim_sign_message(s, d, "Q", same_msgs[i], strlen(same_msgs[i]), &out,
		    &outlen, log, sizeof(log), err, sizeof(err)) != 0 || (rsa = nth_sig(out, 0)) == NULL ||
		    (ed = nth_sig(out, 1)) == NULL) {
			ok(0, "message %zu signed twice: %s", i, err);
			free(out);
			continue;
		}
		t1 = sig_tags(rsa, outlen);
		t2 = sig_tags(ed, outlen - (size_t)(ed - out));
		ok(strstr(t1, "a=rsa-sha256;") && strstr(t2, "a=ed25519-sha256;"),
		    "message %zu: RSA then Ed25519", i);
		is_str(tag(t2, "h", b2, sizeof(b2)), tag(t1, "h", b1, sizeof(b1)),
		    "message %zu: Ed25519 h= is the RSA one's", i);
		is_str(tag(t2, "bh", b2, sizeof(b2)), tag(t1, "bh", b1, sizeof(b1)),
		    "message %zu: Ed25519 bh= is the RSA one's", i);
		is_str(tag(t2, "c", b2, sizeof(b2)), "relaxed/relaxed", "message %zu: c=", i);
		ok(tag(t2, "t", b2, sizeof(b2)) != NULL, "message %zu: t=", i);
		n = (int)(strstr(ed, "\r\n") - ed);
		ok(starts(ed, "DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed;"),
		    "message %zu: first line as libopendkim's (%.*s)", i, n, ed);
		snprintf(b1, sizeof(b1), "%.*s",
		    (int)(outlen - strlen(same_msgs[i]) - (size_t)(ed - out)), ed);
		ok(max_line(b1) <= DKIM_CANON_FOLD, "message %zu: lines of at most 78", i);
		is_int(verify(keyfile, out, outlen, &n), 2, "message %zu: both verify", i);
		free(t1);
		free(t2);
		free(out);
	}
}

/* opendkim_rsa - what libopendkim, which signed outpost's RSA
 * signatures before dkim_canon did, writes for key k of d at time t
 * with dkim_sign's header lists: the field, unfolded */
static char *
opendkim_rsa(const struct dkim_domain *d, const struct dkim_key *k, const char *msg,
    size_t len, uint64_t t)
{
	const char *hdrs[] = {
		"From", "Sender", "Reply-To", "To", "Cc", "Subject", "Date", "Message-ID",
		"In-Reply-To", "References", "MIME-Version", "Content-Type",
		"Content-Transfer-Encoding", "List-Id", "List-Unsubscribe",
		"List-Unsubscribe-Post", "Feedback-ID", NULL
	};
	const char *over[] = {
		"From", "Subject", "Date", "To", "List-Unsubscribe", "List-Unsubscribe-Post",
		NULL
	};
	DKIM_LIB *lib = dkim_init(NULL, NULL);
	DKIM *h = NULL;
	DKIM_STAT st;
	u_char *hdr = NULL;
	size_t hlen = 0;
	char *field = NULL, *tags;

	if (lib == NULL ||
	    dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_SIGNHDRS, hdrs, sizeof(char **)) != 0 ||
	    dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_OVERSIGNHDRS, over,
	    sizeof(char **)) != 0 ||
	    dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_FIXEDTIME, &t, sizeof(t)) != 0 ||
	    (h = dkim_sign(lib, (const u_char *)"ref", NULL, (dkim_sigkey_t)k->pem,
	    (const u_char *)k->selector, (const u_char *)d->name, DKIM_CANON_RELAXED,
	    DKIM_CANON_RELAXED, DKIM_SIGN_RSASHA256, -1, &st)) == NULL ||
	    feed(h, msg, len) != DKIM_STAT_OK ||
	    dkim_getsighdr_d(h, strlen("DKIM-Signature: "), &hdr, &hlen) != DKIM_STAT_OK)
		hdr = NULL;
	if (hdr != NULL)
		field = xasprintf("DKIM-Signature: %s", (const char *)hdr);
	if (h)
		dkim_free(h);
	if (lib)
		dkim_close(lib);
	if (field == NULL)
		return NULL;
	tags = sig_tags(field, strlen(field));
	free(field);
	return tags;
}

/* without_b - unfolded tags without b=, which is last (libopendkim
 * folds elsewhere, and relaxed canonicalisation keeps a folded h='s
 * space in what b= signs) */
static char *
without_b(char *tags)
{
	char *b = strstr(tags, ";b=");

	if (b != NULL)
		b[1] = '\0';
	return tags;
}

/* test_rsa_as_libopendkim - our rsa-sha256 signature has the tags,
 * their order, h= and bh= that libopendkim writes for the same key,
 * message and time (only the folding differs, so b= does), and both
 * verify */
static void
test_rsa_as_libopendkim(struct dkim_signer *s, const char *keyfile)
{
	const struct dkim_domain *d = dkim_key_find(dkim_sign_keys(s), "example.com");
	char log[DKIM_SIGN_LOG_MAX], err[256], buf[64], *out, *ours, *ref, *m;
	size_t outlen, rsalen;
	const char *ed;
	int n;

	for (size_t i = 0; i < ARRAY_LEN(same_msgs); i++) {
		out = NULL;
		if (dkim_sign_message(s, d, "Q", same_msgs[i], strlen(same_msgs[i]), &out,
		    &outlen, log, sizeof(log), err, sizeof(err)) != 0 ||
		    (ed = nth_sig(out, 1)) == NULL) {
			ok(0, "message %zu signed: %s", i, err);
			free(out);
			continue;
		}
		rsalen = (size_t)(ed - out);
		ours = sig_tags(out, rsalen);
		ref = tag(ours, "t", buf, sizeof(buf)) == NULL ? NULL :
		    opendkim_rsa(d, &d->keys[0], same_msgs[i], strlen(same_msgs[i]),
		    strtoull(buf, NULL, 10));
		ok(ref != NULL, "message %zu: libopendkim signs it", i);
		if (ref != NULL)
			is_str(without_b(ours), without_b(ref),
			    "message %zu: RSA tags as libopendkim's, but b=", i);
		m = xmalloc(outlen);
		memcpy(m, out, rsalen);
		memcpy(m + rsalen, out + outlen - strlen(same_msgs[i]), strlen(same_msgs[i]));
		is_int(verify(keyfile, m, rsalen + strlen(same_msgs[i]), &n), 1,
		    "message %zu: the RSA signature alone verifies", i);
		free(m);
		free(ref);
		free(ours);
		free(out);
	}
}

/* test_rsa_parsed_once - the RSA key signs from the EVP_PKEY parsed at
 * dkim_sign_new: with every PEM text of the domain wiped, the same
 * message signs twice, both verify, and an RSA signature of the same
 * second is the same octets (PKCS#1 v1.5 is deterministic) */
static void
test_rsa_parsed_once(struct dkim_signer *s, const char *keyfile)
{
	const struct dkim_domain *d = dkim_key_find(dkim_sign_keys(s), "other.org");
	struct dkim_key *k = (struct dkim_key *)&d->keys[0];
	const char *one = "From: o@other.org\r\nTo: x@example.net\r\nSubject: twice\r\n"
	    "\r\nbody\r\n";
	char log[DKIM_SIGN_LOG_MAX], err[256], t1[64], t2[64], *out[2] = { NULL, NULL };
	char *pem = xmalloc(k->pemlen + 1), *tags[2];
	size_t outlen[2];
	int n;

	memcpy(pem, k->pem, k->pemlen + 1);
	memset(k->pem, 'x', k->pemlen);     /* no PEM left to parse */
	for (int i = 0; i < 2; i++) {
		is_int(dkim_sign_message(s, d, "Q", one, strlen(one), &out[i], &outlen[i], log,
		    sizeof(log), err, sizeof(err)), 0, "RSA without PEM text: signature %d", i);
		if (out[i] != NULL)
			is_int(verify(keyfile, out[i], outlen[i], &n), 1,
			    "RSA without PEM text: signature %d verifies", i);
	}
	memcpy(k->pem, pem, k->pemlen + 1);
	free(pem);
	if (out[0] != NULL && out[1] != NULL) {
		tags[0] = sig_tags(out[0], outlen[0]);
		tags[1] = sig_tags(out[1], outlen[1]);
		if (strcmp(tag(tags[0], "t", t1, sizeof(t1)), tag(tags[1], "t", t2,
		    sizeof(t2))) == 0)
			ok(outlen[0] == outlen[1] && memcmp(out[0], out[1], outlen[0]) == 0,
			    "the same second: the same signature");
		else
			ok(strcmp(tag(tags[0], "bh", t1, sizeof(t1)), tag(tags[1], "bh", t2,
			    sizeof(t2))) == 0, "another second: the same bh=");
		free(tags[0]);
		free(tags[1]);
	}
	free(out[0]);
	free(out[1]);
}

#define LEAK_THREADS 4
#define LEAK_EACH 50

struct leak_job {
	struct dkim_signer *s;
	const struct dkim_domain *d;
	int signed_ok;
};

/* leak_thread - Ed25519 signatures with the signer's shared EVP_PKEY */
static void *
leak_thread(void *arg)
{
	struct leak_job *j = arg;
	char log[DKIM_SIGN_LOG_MAX], err[256], *out;
	size_t outlen;

	for (int i = 0; i < LEAK_EACH; i++) {
		out = NULL;
		if (dkim_sign_message(j->s, j->d, "Q", MSG, strlen(MSG), &out, &outlen, log,
		    sizeof(log), err, sizeof(err)) == 0 && strstr(out, "a=ed25519-sha256;"))
			j->signed_ok++;
		free(out);
	}
	return NULL;
}

/* test_leak - 200 messages signed with Ed25519 (and RSA) by four threads
 * at once; LeakSanitizer fails the test at exit if anything of them is
 * left (libopendkim 2.11 lost ~470 bytes per Ed25519 signature) */
static void
test_leak(struct dkim_signer *s, const char *keyfile)
{
	struct leak_job jobs[LEAK_THREADS];
	pthread_t th[LEAK_THREADS];
	char log[DKIM_SIGN_LOG_MAX], err[256], *out = NULL;
	size_t outlen;
	int total = 0, n;

	for (int i = 0; i < LEAK_THREADS; i++) {
		jobs[i] = (struct leak_job){ s, dkim_key_find(dkim_sign_keys(s), "example.com"), 0 };
		if (pthread_create(&th[i], NULL, leak_thread, &jobs[i]) != 0)
			th[i] = 0;
	}
	for (int i = 0; i < LEAK_THREADS; i++)
		if (th[i] != 0 && pthread_join(th[i], NULL) == 0)
			total += jobs[i].signed_ok;
	is_int(total, LEAK_THREADS * LEAK_EACH, "200 Ed25519 signatures from 4 threads");
	if (dkim_sign_message(s, jobs[0].d, "Q", MSG, strlen(MSG), &out, &outlen, log,
	    sizeof(log), err, sizeof(err)) == 0)
		is_int(verify(keyfile, out, outlen, &n), 2, "and the key still signs right");
	free(out);
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
	struct dkim_signer *s;
	struct dkim_keyset *ks;
	struct conf *c = NULL;
	char err[256], keyfile[PATH_MAX], *want;
	int nerr = -1;

	if (tap_tmpdir(dir, sizeof(dir), "test_dkim") == NULL)
		return 99;
	snprintf(keyfile, sizeof(keyfile), "%s/keys", dir);
	test_canon_header();
	test_canon_split();
	test_canon_body();
	test_rfc8463();
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
			test_same_h(s, keyfile);
			test_rsa_as_libopendkim(s, keyfile);
			test_rsa_parsed_once(s, keyfile);
			test_leak(s, keyfile);
			dkim_sign_free(s);
		}
		test_canon_sign(keyfile);
	}
	conf_free(c);
	free(errs);
	nftw(dir, rm, 8, FTW_DEPTH | FTW_PHYS);
	return done();
}
