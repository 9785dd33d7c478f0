/*
 * test_arc - dkim_verify and arc against keys made here and against
 * dkimpy, an independent implementation (tests/unit/arc_check.py, run
 * with /usr/bin/python3; its absence is a failure, not a skip).
 *
 * dkim_verify: key names of DKIM and ARC fields; RSA and Ed25519
 * signatures from dkimpy (relaxed and simple) and dkim_canon pass; a
 * changed body or Subject fails with its reason; a missing key is
 * permerror, an unfetched one temperror, an empty p= "key revoked";
 * three signatures keep their order; the Authentication-Results text;
 * the EVP verifier (ARC's) on dkimpy's signatures; four threads sharing
 * one verifier, 100 Ed25519 verifications by libopendkim, which
 * LeakSanitizer checks in sanitizer builds.
 *
 * arc: a table of broken chains (missing AMS, duplicate, gap, i=51,
 * cv=fail at the top, cv=pass on i=1, no i=) and what the sealer does
 * with each; the seal's shape (order, tags, folding, no ARC field in
 * h=); refusal of an Ed25519 key; instances 1, 2, 3 checked by dkimpy;
 * a dkimpy i=1 chain validated here and sealed to i=2; tampered chains
 * (AAR changed, body changed) failing here, sealed with cv=fail, and
 * reported failed by dkimpy. Prints the time per seal and verification.
 */
#include "config.h"

#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "arc.h"
#include "dkim_canon.h"
#include "dkim_verify.h"
#include "tap.h"
#include "util.h"

#define T0 1790000000           /* a fixed t= */
#define NOW 1790000100

static char dir[200];
static char python_script[512];
static EVP_PKEY *k_orig, *k_fwd, *k_hop, *k_ed;

/* name, TXT: what both sides' "DNS" answers */
static struct dkim_verify_keyent keys[8];
static size_t nkeys;
static struct dkim_verify_keytab tab;
static const struct dkim_verify_lookup lk = { dkim_verify_keytab_lookup, &tab };
static struct dkim_verifier *ver;

static const char *msg0 =
	"Received: from a.orig.example by mx.orig.example; Sun, 22 Nov 2026 10:00:00 +0000\r\n"
	"From: Alice <alice@orig.example>\r\n"
	"To: list@lists.fwd.example\r\n"
	"Subject: ARC test   message\r\n"
	"Date: Sun, 22 Nov 2026 10:00:00 +0000\r\n"
	"Message-ID: <arc-test-1@orig.example>\r\n"
	"MIME-Version: 1.0\r\n"
	"Content-Type: text/plain; charset=us-ascii\r\n"
	"\r\n"
	"Hello,  this is the body.\r\n"
	"\r\n"
	"Second paragraph\t with tabs.  \r\n"
	"\r\n";

/* path - a file under the test directory (four rotating buffers: a py()
 * call names up to four files) */
static const char *
path(const char *name)
{
	static char p[4][PATH_MAX];
	static int which;

	which = (which + 1) % 4;
	snprintf(p[which], sizeof(p[which]), "%s/%s", dir, name);
	return p[which];
}

/* put - write a file under the test directory */
static void
put(const char *name, const char *text, size_t len)
{
	FILE *f = fopen(path(name), "wb");

	if (f == NULL || fwrite(text, 1, len, f) != len || fclose(f) != 0) {
		perror(name);
		exit(99);
	}
}

/* slurp_raw - like slurp but keeps the final CRLF */
static char *
slurp_raw(const char *name)
{
	FILE *f = fopen(path(name), "rb");
	char *buf = xmalloc(1 << 20);
	size_t n;

	if (f == NULL) {
		free(buf);
		return NULL;
	}
	n = fread(buf, 1, (1 << 20) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

/* py - run arc_check.py; its one line of output into out */
static int
py(char *out, size_t outlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int
py(char *out, size_t outlen, const char *fmt, ...)
{
	char cmd[4096], args[1536];
	va_list ap;
	FILE *p;
	int rc;

	va_start(ap, fmt);
	vsnprintf(args, sizeof(args), fmt, ap);
	va_end(ap);
	snprintf(cmd, sizeof(cmd), "/usr/bin/python3 %s %s %s 2>&1", python_script,
	    path("keys.txt"), args);
	out[0] = '\0';
	if ((p = popen(cmd, "r")) == NULL)
		return -1;
	if (fgets(out, (int)outlen, p) != NULL)
		out[strcspn(out, "\n")] = '\0';
	while (fgetc(p) != EOF)
		;
	rc = pclose(p);
	return rc;
}

/* txt_of - the TXT record of a key's public half (RFC 6376 3.6.1) */
static char *
txt_of(EVP_PKEY *pk)
{
	unsigned char raw[64], *der = NULL;
	size_t rawlen = sizeof(raw);
	char *b64, *txt;
	int n;

	if (EVP_PKEY_get_base_id(pk) == EVP_PKEY_ED25519) {
		EVP_PKEY_get_raw_public_key(pk, raw, &rawlen);
		b64 = util_b64_encode(raw, rawlen);
		txt = xasprintf("v=DKIM1; k=ed25519; p=%s", b64);
	} else {
		n = i2d_PUBKEY(pk, &der);
		b64 = util_b64_encode(der, (size_t)n);
		OPENSSL_free(der);
		txt = xasprintf("v=DKIM1; k=rsa; p=%s", b64);
	}
	free(b64);
	return txt;
}

/* add_key - publish pk as sel._domainkey.dom (txt NULL: not found) */
static void
add_key(const char *name, char *txt, int tempfail)
{
	keys[nkeys].name = name;
	keys[nkeys].txt = txt;
	keys[nkeys].tempfail = tempfail;
	nkeys++;
	tab.ents = keys;
	tab.n = nkeys;
}

/* write_keys - keys.txt for dkimpy, and the private keys it signs with */
static void
write_keys(void)
{
	FILE *f = fopen(path("keys.txt"), "w");
	unsigned char raw[64];
	size_t rawlen = sizeof(raw);
	char *b64;

	for (size_t i = 0; f && i < nkeys; i++)
		if (keys[i].txt != NULL && !keys[i].tempfail)
			fprintf(f, "%s %s\n", keys[i].name, keys[i].txt);
	fclose(f);
	f = fopen(path("orig.pem"), "w");
	PEM_write_PrivateKey(f, k_orig, NULL, NULL, 0, NULL, NULL);
	fclose(f);
	f = fopen(path("hop.pem"), "w");
	PEM_write_PrivateKey(f, k_hop, NULL, NULL, 0, NULL, NULL);
	fclose(f);
	EVP_PKEY_get_raw_private_key(k_ed, raw, &rawlen);
	b64 = util_b64_encode(raw, rawlen);
	put("ed.key", b64, strlen(b64));
	free(b64);
}

/* verify - dkim_verify_message on text; the count */
static size_t
verify(const char *text, struct dkim_verify_sig *sigs, size_t max)
{
	size_t n = 0;
	char err[256];

	if (dkim_verify_message(ver, text, strlen(text), &lk, sigs, max, &n, err,
	    sizeof(err)) != 0)
		printf("# dkim_verify_message: %s\n", err);
	return n;
}

/* canon_sign - a DKIM-Signature by dkim_canon, prepended; malloc'd */
static char *
canon_sign(EVP_PKEY *pk, const char *d, const char *s, const char *text)
{
	static const char *hdrs[] = { "From", "To", "Subject", "Date", "Message-ID", NULL };
	const struct dkim_canon_sig sig = {
		.hdrname = "DKIM-Signature", .first_tags = "v=1", .domain = d,
		.selector = s, .sign = hdrs, .t = T0,
	};
	char *field = NULL, err[256], *out;

	if (dkim_canon_sign(pk, &sig, text, strlen(text), &field, err, sizeof(err)) != 0) {
		printf("# dkim_canon_sign: %s\n", err);
		return xstrdup(text);
	}
	out = xasprintf("%s%s", field, text);
	free(field);
	return out;
}

/* replace - text with the first `from` replaced by `to`; malloc'd */
static char *
replace(const char *text, const char *from, const char *to)
{
	const char *p = strstr(text, from);

	if (p == NULL)
		return xstrdup(text);
	return xasprintf("%.*s%s%s", (int)(p - text), text, to, p + strlen(from));
}

/* evp_field - dkim_verify_field on the top field of file name */
static enum dkim_verify_res
evp_field(const char *text, char *reason, size_t len)
{
	struct dkim_canon_msg m;
	struct dkim_verify_sig s;

	dkim_canon_split(text, strlen(text), &m);
	dkim_verify_field(&m, 0, 0, &lk, NOW, &s);
	dkim_canon_msg_free(&m);
	util_strlcpy(reason, s.reason, len);
	return s.res;
}

/* test_evp - the EVP verifier (ARC's) on dkimpy's DKIM signatures:
 * RSA relaxed, Ed25519 relaxed and simple, and a changed body */
static void
test_evp(void)
{
	static const char *files[] = { "m1.eml", "m2.eml", "m3.eml" };
	char why[DKIM_VERIFY_REASON_MAX], *m, *t;

	for (size_t i = 0; i < ARRAY_LEN(files); i++) {
		if ((m = slurp_raw(files[i])) == NULL) {
			ok(0, "EVP: %s missing", files[i]);
			continue;
		}
		is_str(dkim_verify_res_str(evp_field(m, why, sizeof(why))), "pass",
		    "EVP: dkimpy %s passes (%s)", files[i], why);
		t = replace(m, "this is the body", "this is the b0dy");
		is_str(dkim_verify_res_str(evp_field(t, why, sizeof(why))), "fail",
		    "EVP: dkimpy %s, body changed, fails", files[i]);
		is_str(why, "body hash mismatch", "EVP: %s: reason", files[i]);
		free(t);
		free(m);
	}
}

/* test_keynames - d= and s= of every signature kind, once each */
static void
test_keynames(void)
{
	const char *m =
		"ARC-Seal: i=1; a=rsa-sha256; cv=none; d=Fwd.Example; s=arc; b=AAAA\r\n"
		"ARC-Message-Signature: i=1; a=rsa-sha256; d=fwd.example; s=arc;\r\n"
		"\th=from; bh=AAAA; b=AAAA\r\n"
		"DKIM-Signature: v=1; a=rsa-sha256; d=orig.example; s=sel; h=from; bh=A; b=A\r\n"
		"DKIM-Signature: v=1; a=rsa-sha256; d=bad domain; s=x; h=from; bh=A; b=A\r\n"
		"DKIM-Signature: v=1; a=ed25519-sha256; d=orig.example; s=ed; b=A\r\n"
		"From: a@orig.example\r\n\r\nbody\r\n";
	struct dkim_verify_keyname kn[8];
	size_t n = dkim_verify_keynames(m, strlen(m), kn, 8);

	is_int(n, 3, "keynames: three names, the duplicate and the bad domain dropped");
	is_str(n > 0 ? kn[0].name : NULL, "arc._domainkey.fwd.example", "keynames: lower case");
	is_str(n > 1 ? kn[1].name : NULL, "sel._domainkey.orig.example", "keynames: DKIM");
	is_str(n > 2 ? kn[2].name : NULL, "ed._domainkey.orig.example", "keynames: Ed25519");
	is_int(dkim_verify_keynames(m, strlen(m), kn, 2), 2, "keynames: bounded by max");
}

/* test_dkim - dkim_verify against dkimpy's and dkim_canon's signatures */
static void
test_dkim(void)
{
	struct dkim_verify_sig s[4];
	char out[512], buf[1024], *m, *t, *m2;
	size_t n;

	put("m0.eml", msg0, strlen(msg0));
	is_int(py(out, sizeof(out), "sign %s %s sel orig.example %s rsa-sha256 relaxed/relaxed",
	    path("m0.eml"), path("m1.eml"), path("orig.pem")), 0, "dkimpy signs (RSA)");
	m = slurp_raw("m1.eml");
	ok(m != NULL, "dkimpy's signed message");
	if (m == NULL)
		return;
	n = verify(m, s, 4);
	is_int(n, 1, "dkimpy RSA: one signature");
	is_str(dkim_verify_res_str(s[0].res), "pass", "dkimpy RSA: pass (%s)", s[0].reason);
	is_str(s[0].domain, "orig.example", "dkimpy RSA: d=");
	is_str(s[0].selector, "sel", "dkimpy RSA: s=");
	is_str(s[0].alg, "rsa-sha256", "dkimpy RSA: a=");
	is_int(strlen(s[0].b), DKIM_VERIFY_B_PREFIX, "dkimpy RSA: header.b prefix");
	is_int(py(out, sizeof(out), "verify %s", path("m1.eml")), 0, "dkimpy verifies its own");
	is_str(out, "dkim pass", "dkimpy: its own signature passes");

	t = replace(m, "this is the body", "this is the b0dy");
	n = verify(t, s, 4);
	ok(n == 1 && s[0].res == DKIM_VERIFY_FAIL, "changed body: fail");
	is_str(s[0].reason, "body hash mismatch", "changed body: reason");
	free(t);
	t = replace(m, "Subject: ARC test", "Subject: ARC best");
	n = verify(t, s, 4);
	ok(n == 1 && s[0].res == DKIM_VERIFY_FAIL, "changed Subject: fail");
	is_str(s[0].reason, "signature mismatch", "changed Subject: reason");
	free(t);

	/* dkim_canon's RSA signature, through libopendkim */
	t = canon_sign(k_orig, "orig.example", "sel", msg0);
	n = verify(t, s, 4);
	ok(n == 1 && s[0].res == DKIM_VERIFY_PASS, "dkim_canon RSA: pass (%s)", s[0].reason);
	free(t);

	/* key lookups */
	t = canon_sign(k_orig, "orig.example", "gone", msg0);
	n = verify(t, s, 4);
	ok(n == 1 && s[0].res == DKIM_VERIFY_PERMERROR, "key not found: permerror");
	is_str(s[0].reason, "key not found", "key not found: reason");
	free(t);
	t = canon_sign(k_orig, "orig.example", "unfetched", msg0);
	n = verify(t, s, 4);
	ok(n == 1 && s[0].res == DKIM_VERIFY_TEMPERROR, "key not prefetched: temperror");
	is_str(s[0].reason, "key lookup failed", "temperror: reason");
	free(t);
	t = canon_sign(k_orig, "orig.example", "dnsfail", msg0);
	n = verify(t, s, 4);
	ok(n == 1 && s[0].res == DKIM_VERIFY_TEMPERROR, "key lookup SERVFAIL: temperror");
	m2 = canon_sign(k_orig, "orig.example", "sel", t);
	free(t);
	t = canon_sign(k_orig, "orig.example", "gone", m2);
	free(m2);
	n = verify(t, s, 4);
	ok(n == 3 && s[0].res == DKIM_VERIFY_PERMERROR && s[1].res == DKIM_VERIFY_PASS &&
	    s[2].res == DKIM_VERIFY_TEMPERROR,
	    "three RSA signatures: permerror, pass, temperror, in field order");
	free(t);
	t = canon_sign(k_orig, "orig.example", "revoked", msg0);
	n = verify(t, s, 4);
	ok(n == 1 && s[0].res == DKIM_VERIFY_FAIL, "empty p=: fail (%s)", s[0].reason);
	free(t);

	/* Ed25519: dkim_canon and dkimpy, relaxed and simple, on EVP */
	t = canon_sign(k_ed, "orig.example", "ed", msg0);
	n = verify(t, s, 4);
	ok(n == 1 && s[0].res == DKIM_VERIFY_PASS, "dkim_canon Ed25519: pass (%s)", s[0].reason);
	is_str(s[0].alg, "ed25519-sha256", "Ed25519: a=");
	free(t);
	is_int(py(out, sizeof(out), "sign %s %s ed orig.example %s ed25519-sha256 "
	    "relaxed/relaxed", path("m0.eml"), path("m2.eml"), path("ed.key")), 0,
	    "dkimpy signs (Ed25519, relaxed)");
	free(m);
	m = slurp_raw("m2.eml");
	n = m ? verify(m, s, 4) : 0;
	ok(n == 1 && s[0].res == DKIM_VERIFY_PASS, "dkimpy Ed25519 relaxed: pass (%s)",
	    n ? s[0].reason : "no signature");
	t = m ? replace(m, "Second paragraph", "Third paragraph") : xstrdup("");
	n = verify(t, s, 4);
	ok(n == 1 && s[0].res == DKIM_VERIFY_FAIL &&
	    strcmp(s[0].reason, "body hash mismatch") == 0, "dkimpy Ed25519, body changed: fail");
	free(t);
	free(m);
	is_int(py(out, sizeof(out), "sign %s %s ed orig.example %s ed25519-sha256 "
	    "simple/simple", path("m0.eml"), path("m3.eml"), path("ed.key")), 0,
	    "dkimpy signs (Ed25519, simple)");
	m = slurp_raw("m3.eml");
	n = m ? verify(m, s, 4) : 0;
	ok(n == 1 && s[0].res == DKIM_VERIFY_PASS, "dkimpy Ed25519 simple: pass (%s)",
	    n ? s[0].reason : "no signature");
	free(m);

	/* two signatures, results in field order, and the A-R text */
	t = canon_sign(k_orig, "orig.example", "sel", msg0);
	m = canon_sign(k_ed, "orig.example", "ed", t);
	free(t);
	t = replace(m, "this is the body", "this is the b0dy");
	n = verify(t, s, 4);
	ok(n == 2 && s[0].res == DKIM_VERIFY_FAIL && s[1].res == DKIM_VERIFY_FAIL &&
	    strcmp(s[0].alg, "ed25519-sha256") == 0, "two signatures, top first, both fail");
	free(t);
	n = verify(m, s, 4);
	ok(n == 2 && s[0].res == DKIM_VERIFY_PASS && s[1].res == DKIM_VERIFY_PASS,
	    "two signatures pass");
	dkim_verify_format(s, n, buf, sizeof(buf));
	printf("# %s\n", buf);
	ok(strncmp(buf, "dkim=pass header.d=orig.example header.s=ed header.b=", 53) == 0 &&
	    strstr(buf, "; dkim=pass header.d=orig.example header.s=sel header.b=") != NULL,
	    "format: two resinfo");
	s[1].res = DKIM_VERIFY_FAIL;
	util_strlcpy(s[1].reason, "body hash mismatch", sizeof(s[1].reason));
	dkim_verify_format(s, n, buf, sizeof(buf));
	ok(strstr(buf, "; dkim=fail (body hash mismatch) header.d=orig.example") != NULL,
	    "format: fail with reason");
	is_int(dkim_verify_format(s, n, buf, 20), strlen(out) + 0 * dkim_verify_format(s, n,
	    out, sizeof(out)), "format: returns the length needed");
	ok(strlen(buf) == 0, "format: truncated at a whole resinfo");
	free(m);
	is_int(verify(msg0, s, 4), 0, "unsigned: no result");
	dkim_verify_format(s, 0, buf, sizeof(buf));
	is_str(buf, "dkim=none", "format: dkim=none");
}

struct thr {
	const char *msg;
	int bad;
};

/* thr_main - 25 verifications on the shared verifier */
static void *
thr_main(void *arg)
{
	struct thr *t = arg;
	struct dkim_verify_sig s[4];

	for (int i = 0; i < 25; i++)
		if (verify(t->msg, s, 4) != 2 || s[0].res != DKIM_VERIFY_PASS ||
		    s[1].res != DKIM_VERIFY_PASS)
			t->bad++;
	return NULL;
}

/* test_threads - one DKIM_LIB, four threads, RSA and Ed25519 */
static void
test_threads(void)
{
	char *t = canon_sign(k_orig, "orig.example", "sel", msg0);
	char *m = canon_sign(k_ed, "orig.example", "ed", t);
	pthread_t th[4];
	struct thr a[4];
	int bad = 0;

	for (int i = 0; i < 4; i++) {
		a[i].msg = m;
		a[i].bad = 0;
		pthread_create(&th[i], NULL, thr_main, &a[i]);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		bad += a[i].bad;
	}
	is_int(bad, 0, "threads: 100 verifications, all pass");
	free(m);
	free(t);
}

/* chain cases: structure only, so the signatures need not be real */
static const struct {
	const char *name;
	const char *fields;
	const char *reason;         /* a part of it */
	int instances;
	int ended;
	int seal;                   /* arc_seal's answer */
} chain_cases[] = {
	{ "missing AMS",
	  "ARC-Seal: i=1; a=rsa-sha256; cv=none; d=x.example; s=s; b=AAAA\r\n"
	  "ARC-Authentication-Results: i=1; x.example; spf=pass\r\n",
	  "i=1 has no ARC-Message-Signature", 1, 0, 0 },
	{ "duplicate instance",
	  "ARC-Seal: i=1; a=rsa-sha256; cv=none; d=x.example; s=s; b=AAAA\r\n"
	  "ARC-Seal: i=1; a=rsa-sha256; cv=none; d=y.example; s=s; b=AAAA\r\n"
	  "ARC-Message-Signature: i=1; a=rsa-sha256; d=x.example; s=s; h=from; bh=A; b=A\r\n"
	  "ARC-Authentication-Results: i=1; x.example; spf=pass\r\n",
	  "i=1 has 2 ARC-Seal fields", 1, 0, 0 },
	{ "gap",
	  "ARC-Seal: i=3; a=rsa-sha256; cv=pass; d=x.example; s=s; b=AAAA\r\n"
	  "ARC-Message-Signature: i=3; a=rsa-sha256; d=x.example; s=s; h=from; bh=A; b=A\r\n"
	  "ARC-Authentication-Results: i=3; x.example; spf=pass\r\n"
	  "ARC-Seal: i=1; a=rsa-sha256; cv=none; d=x.example; s=s; b=AAAA\r\n"
	  "ARC-Message-Signature: i=1; a=rsa-sha256; d=x.example; s=s; h=from; bh=A; b=A\r\n"
	  "ARC-Authentication-Results: i=1; x.example; spf=pass\r\n",
	  "i=2 has no ARC-Authentication-Results", 3, 0, 0 },
	{ "i=51",
	  "ARC-Seal: i=51; a=rsa-sha256; cv=pass; d=x.example; s=s; b=AAAA\r\n"
	  "ARC-Message-Signature: i=51; a=rsa-sha256; d=x.example; s=s; h=from; bh=A; b=A\r\n"
	  "ARC-Authentication-Results: i=51; x.example; spf=pass\r\n",
	  "i= above 50", 51, 0, ARC_SEAL_SKIP },
	{ "cv=fail in the latest",
	  "ARC-Seal: i=2; a=rsa-sha256; cv=fail; d=x.example; s=s; b=AAAA\r\n"
	  "ARC-Message-Signature: i=2; a=rsa-sha256; d=x.example; s=s; h=from; bh=A; b=A\r\n"
	  "ARC-Authentication-Results: i=2; x.example; spf=pass\r\n"
	  "ARC-Seal: i=1; a=rsa-sha256; cv=none; d=x.example; s=s; b=AAAA\r\n"
	  "ARC-Message-Signature: i=1; a=rsa-sha256; d=x.example; s=s; h=from; bh=A; b=A\r\n"
	  "ARC-Authentication-Results: i=1; x.example; spf=pass\r\n",
	  "ARC-Seal i=2 has cv=fail", 2, 1, ARC_SEAL_SKIP },
	{ "cv=pass on i=1",
	  "ARC-Seal: i=1; a=rsa-sha256; cv=pass; d=x.example; s=s; b=AAAA\r\n"
	  "ARC-Message-Signature: i=1; a=rsa-sha256; d=x.example; s=s; h=from; bh=A; b=A\r\n"
	  "ARC-Authentication-Results: i=1; x.example; spf=pass\r\n",
	  "ARC-Seal i=1 has cv=pass", 1, 0, 0 },
	{ "cv=none on i=2",
	  "ARC-Seal: i=2; a=rsa-sha256; cv=none; d=x.example; s=s; b=AAAA\r\n"
	  "ARC-Message-Signature: i=2; a=rsa-sha256; d=x.example; s=s; h=from; bh=A; b=A\r\n"
	  "ARC-Authentication-Results: i=2; x.example; spf=pass\r\n"
	  "ARC-Seal: i=1; a=rsa-sha256; cv=none; d=x.example; s=s; b=AAAA\r\n"
	  "ARC-Message-Signature: i=1; a=rsa-sha256; d=x.example; s=s; h=from; bh=A; b=A\r\n"
	  "ARC-Authentication-Results: i=1; x.example; spf=pass\r\n",
	  "ARC-Seal i=2 has cv=none", 2, 0, 0 },
	{ "no i=",
	  "ARC-Seal: a=rsa-sha256; cv=none; d=x.example; s=s; b=AAAA\r\n"
	  "ARC-Message-Signature: i=1; a=rsa-sha256; d=x.example; s=s; h=from; bh=A; b=A\r\n"
	  "ARC-Authentication-Results: i=1; x.example; spf=pass\r\n",
	  "without a valid i=", 1, 0, 0 },
	{ "i=0 in the AAR",
	  "ARC-Seal: i=1; a=rsa-sha256; cv=none; d=x.example; s=s; b=AAAA\r\n"
	  "ARC-Message-Signature: i=1; a=rsa-sha256; d=x.example; s=s; h=from; bh=A; b=A\r\n"
	  "ARC-Authentication-Results: i=0; x.example; spf=pass\r\n",
	  "without a valid i=", 1, 0, 0 },
	{ "bad signatures",
	  "ARC-Seal: i=1; a=rsa-sha256; cv=none; d=fwd.example; s=arc; b=AAAA\r\n"
	  "ARC-Message-Signature: i=1; a=rsa-sha256; d=fwd.example; s=arc; h=from;\r\n"
	  " bh=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=; b=AAAA\r\n"
	  "ARC-Authentication-Results: i=1; x.example; spf=pass\r\n",
	  "ARC-Message-Signature i=1: body hash mismatch", 1, 0, 0 },
};

/* seal_params - the forwarder's parameters */
static struct arc_seal_params
seal_params(EVP_PKEY *key, const char *results)
{
	struct arc_seal_params p = {
		.key = key, .domain = "fwd.example", .selector = "arc",
		.authserv_id = "mx.fwd.example", .results = results, .t = T0,
	};

	return p;
}

/* test_chains - the table */
static void
test_chains(void)
{
	struct arc_result r;
	struct arc_seal_params p = seal_params(k_fwd, "dkim=none; arc=fail");
	char *m, *out, err[256];
	int rc;

	for (size_t i = 0; i < ARRAY_LEN(chain_cases); i++) {
		m = xasprintf("%s%s", chain_cases[i].fields, msg0);
		arc_validate(m, strlen(m), &lk, NOW, &r);
		is_str(arc_status_str(r.status), "fail", "chain %s: fail", chain_cases[i].name);
		if (!ok(strstr(r.reason, chain_cases[i].reason) != NULL, "chain %s: reason",
		    chain_cases[i].name))
			printf("#   got \"%s\"\n", r.reason);
		is_int(r.instances, chain_cases[i].instances, "chain %s: instances",
		    chain_cases[i].name);
		is_int(r.ended, chain_cases[i].ended, "chain %s: ended", chain_cases[i].name);
		rc = arc_seal(&p, &r, m, strlen(m), &out, err, sizeof(err));
		is_int(rc, chain_cases[i].seal, "chain %s: seal %s", chain_cases[i].name,
		    rc == 0 ? "with cv=fail" : err);
		if (rc == 0) {
			char want[64];

			snprintf(want, sizeof(want), "ARC-Seal: i=%d; a=rsa-sha256; t=%d; cv=fail;",
			    chain_cases[i].instances + 1, T0);
			ok(strncmp(out, want, strlen(want)) == 0,
			    "chain %s: sealed as i=%d cv=fail",
			    chain_cases[i].name, chain_cases[i].instances + 1);
		}
		free(out);
		free(m);
	}
	arc_validate(msg0, strlen(msg0), &lk, NOW, &r);
	ok(r.status == ARC_NONE && r.instances == 0, "no ARC fields: none");
	r.instances = 50;
	r.status = ARC_PASS;
	is_int(arc_seal(&p, &r, msg0, strlen(msg0), &out, err, sizeof(err)), ARC_SEAL_SKIP,
	    "50 sets: not sealed (%s)", err);
	r.instances = 3;
	r.status = ARC_TEMPERROR;
	is_int(arc_seal(&p, &r, msg0, strlen(msg0), &out, err, sizeof(err)), ARC_SEAL_SKIP,
	    "temperror: not sealed (%s)", err);
	memset(&r, 0, sizeof(r));
	p.key = k_ed;
	is_int(arc_seal(&p, &r, msg0, strlen(msg0), &out, err, sizeof(err)), -1,
	    "Ed25519 key refused");
	is_str(err, "ARC seals with an RSA key only (rsa-sha256)", "Ed25519: reason");
	p.key = k_fwd;
	p.results = "dkim=pass\r\nX-Evil: 1";
	is_int(arc_seal(&p, &r, msg0, strlen(msg0), &out, err, sizeof(err)), -1,
	    "results with CRLF refused");
}

#define HLIST "h=DKIM-Signature:From:To:Subject:Date:Message-ID:"

/* check_shape - three fields AS, AMS, AAR; lines <= 78 and CRLF */
static void
check_shape(const char *out, int i)
{
	struct dkim_canon_msg m;
	char want[128], *h;
	int longest = 0, bare = 0;
	const char *p, *q;

	dkim_canon_split(out, strlen(out), &m);
	is_int(m.nfields, 3, "seal i=%d: three fields", i);
	if (m.nfields == 3) {
		snprintf(want, sizeof(want), "ARC-Seal: i=%d; a=rsa-sha256; t=%d; cv=%s;", i, T0,
		    i == 1 ? "none" : "pass");
		ok(strncmp(m.fields[0].text, want, strlen(want)) == 0, "seal i=%d: ARC-Seal first",
		    i);
		snprintf(want, sizeof(want), "ARC-Message-Signature: i=%d; a=rsa-sha256; "
		    "c=relaxed/relaxed;", i);
		ok(strncmp(m.fields[1].text, want, strlen(want)) == 0, "seal i=%d: then the AMS",
		    i);
		snprintf(want, sizeof(want), "ARC-Authentication-Results: i=%d; mx.fwd.example;",
		    i);
		ok(strncmp(m.fields[2].text, want, strlen(want)) == 0, "seal i=%d: then the AAR",
		    i);
		if ((h = strstr(m.fields[1].text, "\th=")) == NULL)   /* not bh= */
			h = strstr(m.fields[1].text, " h=");
		h = h ? h + 1 : NULL;
		ok(h != NULL && strncmp(h, HLIST, strlen(HLIST)) == 0 &&
		    memmem(h, strcspn(h, ";"), "ARC-", 4) == NULL,
		    "seal i=%d: AMS h= signs no ARC field", i);
		ok(strstr(m.fields[1].text, "v=") == NULL, "seal i=%d: AMS has no v=", i);
	}
	for (p = out; *p != '\0'; p = q + 1) {
		if ((q = strchr(p, '\n')) == NULL)
			break;
		if (q == p || q[-1] != '\r')
			bare++;
		if (q - p - 1 > longest)
			longest = (int)(q - p - 1);
	}
	ok(longest <= DKIM_CANON_FOLD && bare == 0, "seal i=%d: CRLF lines of <= 78 (%d)", i,
	    longest);
	dkim_canon_msg_free(&m);
}

/* seal_file - validate name, seal it, write out; the result */
static int
seal_file(const char *in, const char *outname, struct arc_result *r, int shape)
{
	char *m = slurp_raw(in), *out = NULL, err[256], ar[256], results[1024];
	struct dkim_verify_sig s[4];
	size_t n;
	struct arc_seal_params p;
	char *sealed;
	int rc;

	if (m == NULL)
		return -1;
	arc_validate(m, strlen(m), &lk, NOW, r);
	n = verify(m, s, 4);
	dkim_verify_format(s, n, results, sizeof(results));
	arc_ar_result(r, ar, sizeof(ar));
	util_strlcat(results, "; ", sizeof(results));
	util_strlcat(results, ar, sizeof(results));
	p = seal_params(k_fwd, results);
	rc = arc_seal(&p, r, m, strlen(m), &out, err, sizeof(err));
	if (rc != 0) {
		printf("# arc_seal: %s\n", err);
		free(m);
		return rc;
	}
	if (shape)
		check_shape(out, r->instances + 1);
	sealed = xasprintf("%s%s", out, m);
	put(outname, sealed, strlen(sealed));
	free(sealed);
	free(out);
	free(m);
	return 0;
}

/* test_seal - our seals, checked by dkimpy and by ourselves */
static void
test_seal(void)
{
	struct arc_result r;
	char out[512], *m;

	/* i=1 on a DKIM-signed message */
	if (!ok(seal_file("m1.eml", "s1.eml", &r, 1) == 0, "seal i=1"))
		return;
	ok(r.status == ARC_NONE, "before sealing: arc=none");
	py(out, sizeof(out), "arc %s", path("s1.eml"));
	ok(strncmp(out, "arc pass", 8) == 0, "dkimpy: our i=1 seal passes (%s)", out);
	m = slurp_raw("s1.eml");
	arc_validate(m, strlen(m), &lk, NOW, &r);
	ok(r.status == ARC_PASS && r.instances == 1, "ours: i=1 passes (%s)", r.reason);
	free(m);

	/* i=2 and i=3 on top */
	ok(seal_file("s1.eml", "s2.eml", &r, 1) == 0 && r.status == ARC_PASS, "seal i=2");
	py(out, sizeof(out), "arc %s", path("s2.eml"));
	ok(strncmp(out, "arc pass", 8) == 0, "dkimpy: our i=2 seal passes (%s)", out);
	ok(seal_file("s2.eml", "s3.eml", &r, 1) == 0 && r.status == ARC_PASS, "seal i=3");
	py(out, sizeof(out), "arc %s", path("s3.eml"));
	ok(strncmp(out, "arc pass", 8) == 0, "dkimpy: our i=3 seal passes (%s)", out);
	m = slurp_raw("s3.eml");
	arc_validate(m, strlen(m), &lk, NOW, &r);
	ok(r.status == ARC_PASS && r.instances == 3, "ours: i=3 passes (%s)", r.reason);
	free(m);
}

/* test_dkimpy_chain - a chain dkimpy started */
static void
test_dkimpy_chain(void)
{
	struct arc_result r;
	char out[512], *m, *t;

	m = slurp_raw("m1.eml");
	t = xasprintf("Authentication-Results: hop.example; dkim=pass header.d=orig.example\r\n%s",
	    m ? m : "");
	put("h0.eml", t, strlen(t));
	free(t);
	free(m);
	is_int(py(out, sizeof(out), "seal %s %s arc1 hop.example %s hop.example %d",
	    path("h0.eml"), path("h1.eml"), path("hop.pem"), T0), 0, "dkimpy seals i=1 (%s)", out);
	py(out, sizeof(out), "arc %s", path("h1.eml"));
	ok(strncmp(out, "arc pass", 8) == 0, "dkimpy: its i=1 passes (%s)", out);
	if ((m = slurp_raw("h1.eml")) == NULL)
		return;
	arc_validate(m, strlen(m), &lk, NOW, &r);
	ok(r.status == ARC_PASS && r.instances == 1, "ours: dkimpy's i=1 passes (%s)", r.reason);

	ok(seal_file("h1.eml", "h2.eml", &r, 1) == 0 && r.status == ARC_PASS,
	    "our i=2 on dkimpy's chain");
	py(out, sizeof(out), "arc %s", path("h2.eml"));
	ok(strncmp(out, "arc pass", 8) == 0, "dkimpy: our i=2 on its chain passes (%s)", out);

	/* the AAR i=1, signed by the AS i=1, changed */
	t = replace(m, "i=1; hop.example; dkim=pass", "i=1; hop.example; dkim=fail");
	ok(strcmp(t, m) != 0, "tamper: AAR i=1 changed");
	put("x1.eml", t, strlen(t));
	arc_validate(t, strlen(t), &lk, NOW, &r);
	ok(r.status == ARC_FAIL && r.fail_instance == 1 &&
	    strstr(r.reason, "ARC-Seal i=1: signature mismatch") != NULL,
	    "ours: changed AAR fails at the seal (%s)", r.reason);
	free(t);
	ok(seal_file("x1.eml", "x2.eml", &r, 0) == 0 && r.status == ARC_FAIL,
	    "changed AAR: sealed anyway");
	t = slurp_raw("x2.eml");
	ok(t != NULL && strncmp(t, "ARC-Seal: i=2; a=rsa-sha256; t=", 31) == 0 &&
	    strstr(t, "cv=fail;") != NULL, "changed AAR: our seal says i=2 cv=fail");
	py(out, sizeof(out), "arc %s", path("x2.eml"));
	ok(strncmp(out, "arc None", 8) == 0 || strncmp(out, "arc fail", 8) == 0,
	    "dkimpy: our cv=fail seal is a failed chain (%s)", out);
	arc_validate(t ? t : "", t ? strlen(t) : 0, &lk, NOW, &r);
	ok(r.status == ARC_FAIL && r.ended, "ours: a cv=fail seal ends the chain");
	ok(seal_file("x2.eml", "x3.eml", &r, 0) == ARC_SEAL_SKIP, "an ended chain is not sealed");
	free(t);

	/* the body, signed by the AMS i=1, changed */
	t = replace(m, "Second paragraph", "Changed paragraph");
	put("y1.eml", t, strlen(t));
	arc_validate(t, strlen(t), &lk, NOW, &r);
	ok(r.status == ARC_FAIL && r.fail_instance == 1 &&
	    strstr(r.reason, "body hash mismatch") != NULL,
	    "ours: changed body fails at the AMS (%s)", r.reason);
	free(t);
	ok(seal_file("y1.eml", "y2.eml", &r, 0) == 0, "changed body: sealed with cv=fail");
	py(out, sizeof(out), "arc %s", path("y2.eml"));
	ok(strncmp(out, "arc None", 8) == 0 || strncmp(out, "arc fail", 8) == 0,
	    "dkimpy: fails it too (%s)", out);
	free(m);

	/* a key that cannot be fetched for now */
	m = slurp_raw("h2.eml");
	keys[nkeys - 1].tempfail = 1;           /* arc1._domainkey.hop.example */
	arc_validate(m, strlen(m), &lk, NOW, &r);
	ok(r.status == ARC_TEMPERROR && strstr(r.reason, "key lookup failed") != NULL,
	    "ours: an unfetched key is temperror (%s)", r.reason);
	keys[nkeys - 1].tempfail = 0;
	free(m);
}

/* ms - wall clock milliseconds */
static double
ms(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return tv.tv_sec * 1e3 + tv.tv_usec / 1e3;
}

/* test_speed - a rough measure, printed, not judged */
static void
test_speed(void)
{
	char *m = slurp_raw("s2.eml"), *out, err[256];
	struct arc_result r;
	struct arc_seal_params p = seal_params(k_fwd, "dkim=pass header.d=orig.example");
	struct dkim_verify_sig s[4];
	double t0;
	int bad = 0, n = 20;

	if (m == NULL)
		return;
	t0 = ms();
	for (int i = 0; i < n; i++) {
		arc_validate(m, strlen(m), &lk, NOW, &r);
		bad += r.status != ARC_PASS;
	}
	printf("# arc_validate, 2 sets (3 RSA-2048 checks): %.2f ms each\n", (ms() - t0) / n);
	t0 = ms();
	for (int i = 0; i < n; i++) {
		bad += arc_seal(&p, &r, m, strlen(m), &out, err, sizeof(err)) != 0;
		free(out);
	}
	printf("# arc_seal (2 RSA-2048 signatures): %.2f ms each\n", (ms() - t0) / n);
	t0 = ms();
	for (int i = 0; i < n; i++)
		bad += verify(m, s, 4) != 1 || s[0].res != DKIM_VERIFY_PASS;
	printf("# dkim_verify_message, 1 RSA-2048 signature: %.2f ms each\n", (ms() - t0) / n);
	is_int(bad, 0, "speed loops: every result as expected");
	free(m);
}

/* rm_one - nftw callback */
static int
rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(p);
}

int
main(void)
{
	const char *top = getenv("top_srcdir");
	char err[256], out[256];

	if (tap_tmpdir(dir, sizeof(dir), "test_arc") == NULL)
		return 99;
	snprintf(python_script, sizeof(python_script), "%s/tests/unit/arc_check.py",
	    top && *top ? top : ".");
	ok(access(python_script, R_OK) == 0, "arc_check.py is there (%s)", python_script);
	k_orig = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	k_fwd = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	k_hop = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	k_ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	add_key("sel._domainkey.orig.example", txt_of(k_orig), 0);
	add_key("ed._domainkey.orig.example", txt_of(k_ed), 0);
	add_key("arc._domainkey.fwd.example", txt_of(k_fwd), 0);
	add_key("gone._domainkey.orig.example", NULL, 0);
	add_key("dnsfail._domainkey.orig.example", NULL, 1);
	add_key("revoked._domainkey.orig.example", xstrdup("v=DKIM1; k=rsa; p="), 0);
	add_key("arc1._domainkey.hop.example", txt_of(k_hop), 0);   /* last: see above */
	write_keys();
	is_int(py(out, sizeof(out), "probe /dev/null"), 0, "arc_check.py runs");
	is_str(out, "dkim authres ok", "/usr/bin/python3 has dkim and authres");
	if ((ver = dkim_verify_new(err, sizeof(err))) == NULL) {
		printf("# %s\n", err);
		return 99;
	}

	test_keynames();
	test_dkim();
	test_evp();
	test_threads();
	test_chains();
	test_seal();
	test_dkimpy_chain();
	test_speed();

	dkim_verify_free(ver);
	for (size_t i = 0; i < nkeys; i++)
		free((char *)keys[i].txt);
	EVP_PKEY_free(k_orig);
	EVP_PKEY_free(k_fwd);
	EVP_PKEY_free(k_hop);
	EVP_PKEY_free(k_ed);
	if (getenv("TEST_KEEP") == NULL)
		nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	else
		printf("# kept %s\n", dir);
	return done();
}
