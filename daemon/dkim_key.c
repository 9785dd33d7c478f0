/*
 * dkim_key - DKIM private keys: load and check every [domain]'s keys at
 * config load, find the keys for a From: domain, generate new keys, and
 * print the DNS TXT record of the public half.
 *
 * API: dkim_key_load / dkim_key_free, dkim_key_find, dkim_key_alg,
 * dkim_key_generate, dkim_key_txt_record (see dkim_key.h).
 *
 * Trust: key files are local and written by the administrator, but are
 * still read with a size bound, parsed by OpenSSL only, and refused when
 * group or others can read them. A passphrase callback that always fails
 * keeps OpenSSL from ever prompting on a terminal. The PEM text is kept
 * (dkim_sign, the ARC sealer and the TXT records parse it) and wiped
 * when freed; no key byte reaches a
 * message or a log line.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "dkim_key.h"
#include "util.h"

#define DKIM_KEY_FILE_MAX (64 * 1024)  /* a PEM key is a few KiB at most */
#define DKIM_KEY_RSA_MIN 1024           /* RFC 8301 3.2: verifiers refuse less */
#define DKIM_KEY_RSA_GOOD 2048          /* what receivers expect today */
#define DKIM_KEY_RSA_MAX 8192
#define DKIM_KEY_TXT_STR 255            /* RFC 1035 3.3.14 <character-string> */
#define DKIM_KEY_ERR_MAX (2 * PATH_MAX + 256) /* a message may name the path twice */

/* dkim_key_nopass - passphrase callback: DKIM keys are stored without
 * one, and OpenSSL's default would prompt on the terminal */
static int
dkim_key_nopass(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

/* dkim_key_parse - PEM text to an EVP_PKEY, or NULL */
EVP_PKEY *
dkim_key_parse(const char *pem, size_t len)
{
	BIO *bio;
	EVP_PKEY *pk;

	if (len > INT_MAX || (bio = BIO_new_mem_buf(pem, (int)len)) == NULL)
		return NULL;
	pk = PEM_read_bio_PrivateKey(bio, NULL, dkim_key_nopass, NULL);
	BIO_free(bio);
	ERR_clear_error();
	return pk;
}

/* dkim_key_read - open, check the mode, and read a key file (bounded).
 * Returns the NUL-terminated text or NULL with a reason in msg. */
static char *
dkim_key_read(const struct conf_dkim_key *ck, size_t *len, char *msg, size_t msglen)
{
	struct stat st;
	char *buf = NULL;
	size_t n = 0;
	ssize_t r;
	int fd;

	if ((fd = open(ck->path, O_RDONLY | O_CLOEXEC)) < 0) {
		snprintf(msg, msglen, "dkim_key %s: %s: %s", ck->selector, ck->path,
		    strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(msg, msglen, "dkim_key %s: %s: not a regular file", ck->selector,
		    ck->path);
		goto fail;
	}
	if ((st.st_mode & 077) != 0) {
		snprintf(msg, msglen, "dkim_key %s: %s is readable by group or others "
		    "(mode %04o); run chmod 600 %s", ck->selector, ck->path,
		    (unsigned)(st.st_mode & 07777), ck->path);
		goto fail;
	}
	buf = xmalloc(DKIM_KEY_FILE_MAX + 1);
	while ((r = read(fd, buf + n, DKIM_KEY_FILE_MAX + 1 - n)) != 0) {
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			snprintf(msg, msglen, "dkim_key %s: %s: %s", ck->selector, ck->path,
			    strerror(errno));
			goto fail;
		}
		n += (size_t)r;
		if (n > DKIM_KEY_FILE_MAX) {
			snprintf(msg, msglen, "dkim_key %s: %s: larger than %d KiB, not a "
			    "PEM private key", ck->selector, ck->path, DKIM_KEY_FILE_MAX / 1024);
			goto fail;
		}
	}
	close(fd);
	buf[n] = '\0';
	*len = n;
	return buf;
fail:
	if (buf) {
		util_wipe(buf, n);
		free(buf);
	}
	close(fd);
	return NULL;
}

/* dkim_key_check - parse k->pem and fill type and bits. Returns 0, 1
 * with a warning in msg, or -1 with an error in msg. */
static int
dkim_key_check(struct dkim_key *k, char *msg, size_t msglen)
{
	EVP_PKEY *pk;
	int id, rc = 0;

	if ((pk = dkim_key_parse(k->pem, k->pemlen)) == NULL) {
		if (strstr(k->pem, "ENCRYPTED") != NULL)
			snprintf(msg, msglen, "dkim_key %s: %s is encrypted; store DKIM keys "
			    "without a passphrase (mode 0600 protects them)", k->selector, k->path);
		else
			snprintf(msg, msglen, "dkim_key %s: %s: not a PEM private key",
			    k->selector, k->path);
		return -1;
	}
	id = EVP_PKEY_get_base_id(pk);
	k->bits = EVP_PKEY_get_bits(pk);
	if (id == EVP_PKEY_ED25519) {
		k->type = DKIM_KEY_ED25519;
		k->bits = 256;
	} else if (id == EVP_PKEY_RSA) {
		k->type = DKIM_KEY_RSA;
		if (k->bits < DKIM_KEY_RSA_MIN) {
			snprintf(msg, msglen, "dkim_key %s: %s: RSA key of %d bits is too weak "
			    "(%d at least, %d recommended)", k->selector, k->path, k->bits,
			    DKIM_KEY_RSA_MIN, DKIM_KEY_RSA_GOOD);
			rc = -1;
		} else if (k->bits < DKIM_KEY_RSA_GOOD) {
			snprintf(msg, msglen, "dkim_key %s: %s: RSA key of %d bits; %d "
			    "recommended", k->selector, k->path, k->bits, DKIM_KEY_RSA_GOOD);
			rc = 1;
		}
	} else {
		snprintf(msg, msglen, "dkim_key %s: %s: unsupported key type %s (RSA or "
		    "Ed25519 only)", k->selector, k->path,
		    OBJ_nid2sn(id) ? OBJ_nid2sn(id) : "unknown");
		rc = -1;
	}
	EVP_PKEY_free(pk);
	return rc;
}

/* dkim_key_wipe - forget one key's secret */
static void
dkim_key_wipe(struct dkim_key *k)
{
	if (k->pem) {
		util_wipe(k->pem, k->pemlen);
		free(k->pem);
		k->pem = NULL;
	}
}

/* dkim_key_domain - load the keys of one [domain]; errors counted in
 * *nerr. Returns the number of keys kept in out. */
static size_t
dkim_key_domain(const struct conf *c, const struct conf_domain *cd,
    struct dkim_domain *out, FILE *errs, int *nerr)
{
	char msg[DKIM_KEY_ERR_MAX];
	size_t nrsa = 0, nbad = 0;
	struct dkim_key *k;
	int rc;

	util_strlcpy(out->name, cd->name, sizeof(out->name));
	util_strlower(out->name);
	out->subdomains = cd->dkim_subdomains;
	out->keys = xcalloc(cd->ndkim_keys, sizeof(*out->keys));
	for (size_t i = 0; i < cd->ndkim_keys; i++) {
		k = &out->keys[out->nkeys];
		memset(k, 0, sizeof(*k));
		util_strlcpy(k->selector, cd->dkim_keys[i].selector, sizeof(k->selector));
		util_strlcpy(k->path, cd->dkim_keys[i].path, sizeof(k->path));
		if ((k->pem = dkim_key_read(&cd->dkim_keys[i], &k->pemlen, msg,
		    sizeof(msg))) == NULL)
			rc = -1;
		else
			rc = dkim_key_check(k, msg, sizeof(msg));
		if (rc < 0) {
			fprintf(errs, "%s:%d: %s\n", c->path, cd->dkim_keys[i].line, msg);
			(*nerr)++;
			nbad++;
			dkim_key_wipe(k);
			continue;
		}
		if (rc > 0)
			fprintf(errs, "%s:%d: warning: %s\n", c->path, cd->dkim_keys[i].line, msg);
		if (k->type == DKIM_KEY_RSA)
			nrsa++;
		out->nkeys++;
	}
	/* RFC 8463 is young: Gmail and others ignore ed25519-sha256, so an
	 * Ed25519-only domain is unsigned in their eyes. Said only when every
	 * key loaded, so a broken RSA key is not reported twice. */
	if (nbad == 0 && nrsa == 0 && out->nkeys > 0) {
		fprintf(errs, "%s:%d: domain %s: Ed25519 alone is not verified by large "
		    "receivers; add an RSA key (dual signing, RFC 8463)\n", c->path,
		    cd->dkim_line, out->name);
		(*nerr)++;
	}
	return out->nkeys;
}

/* dkim_key_load - the keys of every [domain] that has dkim_key */
struct dkim_keyset *
dkim_key_load(const struct conf *c, FILE *errs, int *nerr)
{
	struct dkim_keyset *ks = xcalloc(1, sizeof(*ks));
	struct dkim_domain *d;

	*nerr = 0;
	for (size_t i = 0; i < c->ndomains; i++) {
		if (c->domains[i].ndkim_keys == 0)
			continue;
		ks->domains = xreallocarray(ks->domains, ks->ndomains + 1, sizeof(*d));
		d = &ks->domains[ks->ndomains];
		memset(d, 0, sizeof(*d));
		if (dkim_key_domain(c, &c->domains[i], d, errs, nerr) > 0)
			ks->ndomains++;
		else
			free(d->keys);
	}
	return ks;
}

/* dkim_key_free - wipe and free a key set; NULL is fine */
void
dkim_key_free(struct dkim_keyset *ks)
{
	if (ks == NULL)
		return;
	for (size_t i = 0; i < ks->ndomains; i++) {
		for (size_t j = 0; j < ks->domains[i].nkeys; j++)
			dkim_key_wipe(&ks->domains[i].keys[j]);
		free(ks->domains[i].keys);
	}
	free(ks->domains);
	free(ks);
}

/* dkim_key_lookup - the domain named exactly `name` (case-insensitive) */
static const struct dkim_domain *
dkim_key_lookup(const struct dkim_keyset *ks, const char *name, size_t len)
{
	for (size_t i = 0; i < ks->ndomains; i++) {
		const struct dkim_domain *d = &ks->domains[i];

		if (strlen(d->name) == len && strncasecmp(d->name, name, len) == 0)
			return d;
	}
	return NULL;
}

/* dkim_key_find - own section first, then the nearest parent with
 * dkim_subdomains = yes; only whole labels are stripped, so
 * example.com.evil.org never reaches example.com */
const struct dkim_domain *
dkim_key_find(const struct dkim_keyset *ks, const char *domain)
{
	const struct dkim_domain *d;
	const char *p = domain;
	size_t len = strlen(domain);

	if (len > 0 && domain[len - 1] == '.')
		len--;          /* an absolute name */
	if (len == 0)
		return NULL;
	if ((d = dkim_key_lookup(ks, domain, len)) != NULL)
		return d->nkeys > 0 ? d : NULL;
	while ((p = memchr(p, '.', len - (size_t)(p - domain))) != NULL) {
		p++;
		d = dkim_key_lookup(ks, p, len - (size_t)(p - domain));
		if (d != NULL && d->subdomains)
			return d->nkeys > 0 ? d : NULL;
	}
	return NULL;
}

/* dkim_key_alg - the a= tag value for a key (RFC 6376 3.3, RFC 8463 3) */
const char *
dkim_key_alg(const struct dkim_key *k)
{
	return k->type == DKIM_KEY_ED25519 ? "ed25519-sha256" : "rsa-sha256";
}

/* dkim_key_write - PEM of pk into a new file (O_EXCL, 0600), synced */
static int
dkim_key_write(EVP_PKEY *pk, const char *path, char *err, size_t errlen)
{
	BIO *mem;
	char *data;
	long n;
	ssize_t w;
	size_t off = 0;
	int fd, rc = -1;

	/* secmem: the buffer is cleared when freed */
	if ((mem = BIO_new(BIO_s_secmem())) == NULL ||
	    !PEM_write_bio_PrivateKey(mem, pk, NULL, NULL, 0, NULL, NULL) ||
	    (n = BIO_get_mem_data(mem, &data)) <= 0) {
		snprintf(err, errlen, "cannot encode the key as PEM");
		BIO_free(mem);
		return -1;
	}
	if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) < 0) {
		if (errno == EEXIST)
			snprintf(err, errlen, "%s exists; choose a new selector or remove it",
			    path);
		else
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
		BIO_free(mem);
		return -1;
	}
	while (off < (size_t)n) {
		if ((w = write(fd, data + off, (size_t)n - off)) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		off += (size_t)w;
	}
	if (off == (size_t)n && fsync(fd) == 0)
		rc = 0;
	else
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
	if (close(fd) < 0 && rc == 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		rc = -1;
	}
	if (rc < 0)
		unlink(path);
	BIO_free(mem);
	return rc;
}

/* dkim_key_generate - a new key, written PKCS#8 PEM with mode 0600 */
int
dkim_key_generate(enum dkim_key_type type, int bits, const char *path,
    char *err, size_t errlen)
{
	EVP_PKEY *pk;
	int rc;

	if (type == DKIM_KEY_RSA && (bits < DKIM_KEY_RSA_MIN || bits > DKIM_KEY_RSA_MAX)) {
		snprintf(err, errlen, "RSA keys have %d to %d bits (%d recommended), not %d",
		    DKIM_KEY_RSA_MIN, DKIM_KEY_RSA_MAX, DKIM_KEY_RSA_GOOD, bits);
		return -1;
	}
	if (type == DKIM_KEY_RSA)
		pk = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
	else
		pk = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	if (pk == NULL) {
		snprintf(err, errlen, "key generation failed: %s",
		    ERR_reason_error_string(ERR_get_error()));
		ERR_clear_error();
		return -1;
	}
	rc = dkim_key_write(pk, path, err, errlen);
	EVP_PKEY_free(pk);
	return rc;
}

/* dkim_key_pubvalue - "v=DKIM1; k=...; p=..." for a private key: p= is
 * the base64 SubjectPublicKeyInfo for RSA (RFC 6376 3.6.1) and the raw
 * 32-byte public key for Ed25519 (RFC 8463 4) */
static char *
dkim_key_pubvalue(EVP_PKEY *pk, char *err, size_t errlen)
{
	unsigned char *der = NULL, raw[32];
	size_t rawlen = sizeof(raw);
	char *b64 = NULL, *value;
	int n;

	if (EVP_PKEY_get_base_id(pk) == EVP_PKEY_ED25519) {
		if (EVP_PKEY_get_raw_public_key(pk, raw, &rawlen) == 1)
			b64 = util_b64_encode(raw, rawlen);
	} else if (EVP_PKEY_get_base_id(pk) == EVP_PKEY_RSA) {
		if ((n = i2d_PUBKEY(pk, &der)) > 0)
			b64 = util_b64_encode(der, (size_t)n);
		OPENSSL_free(der);
	} else {
		snprintf(err, errlen, "not an RSA or Ed25519 key");
		return NULL;
	}
	if (b64 == NULL) {
		snprintf(err, errlen, "cannot encode the public key");
		ERR_clear_error();
		return NULL;
	}
	value = xasprintf("v=DKIM1; k=%s; p=%s",
	    EVP_PKEY_get_base_id(pk) == EVP_PKEY_ED25519 ? "ed25519" : "rsa", b64);
	free(b64);
	return value;
}

/* dkim_key_txt_record - the zone file line(s) for a key, strings of at
 * most 255 bytes, each continuation on its own line */
char *
dkim_key_txt_record(const char *domain, const char *selector, const char *pem,
    size_t pemlen, char *err, size_t errlen)
{
	EVP_PKEY *pk;
	char *value, *out, *p;
	size_t vlen, nstr, size, chunk;

	if ((pk = dkim_key_parse(pem, pemlen)) == NULL) {
		snprintf(err, errlen, "not a PEM private key");
		return NULL;
	}
	value = dkim_key_pubvalue(pk, err, errlen);
	EVP_PKEY_free(pk);
	if (value == NULL)
		return NULL;
	vlen = strlen(value);
	nstr = (vlen + DKIM_KEY_TXT_STR - 1) / DKIM_KEY_TXT_STR;
	/* name, " IN TXT ( ", per string "\n\t" and two quotes, " )" */
	size = strlen(selector) + strlen(domain) + 32 + vlen + nstr * 4 + 4;
	out = xmalloc(size);
	snprintf(out, size, "%s._domainkey.%s. IN TXT (", selector, domain);
	p = out + strlen(out);
	for (size_t off = 0; off < vlen; off += chunk) {
		chunk = vlen - off < DKIM_KEY_TXT_STR ? vlen - off : DKIM_KEY_TXT_STR;
		p += snprintf(p, size - (size_t)(p - out), "%s\"%.*s\"", off ? "\n\t" : " ",
		    (int)chunk, value + off);
	}
	util_strlcat(out, " )", size);
	free(value);
	return out;
}
