/*
 * dmarc - DMARC (RFC 7489, RFC 9091 np=) without DNS: organizational
 * domains from the Public Suffix List, record parsing and selection,
 * identifier alignment, evaluation and the Authentication-Results text.
 *
 * The caller fetches the TXT records of _dmarc.DOMAIN (and of the
 * organizational domain when there are none) and passes their text here.
 * Everything is pure; nothing here touches the event loop or a clock.
 *
 * API
 *   dmarc_psl_load / _free / _rules   the Public Suffix List, loaded once
 *   dmarc_org_domain                  RFC 7489 3.2 organizational domain
 *   dmarc_parse / dmarc_select        one record / several TXT at one name
 *   dmarc_aligned                     RFC 7489 3.1 identifier alignment
 *   dmarc_evaluate                    pass / fail / none and the policy
 *   dmarc_format_ar                   "dmarc=pass (p=reject) header.from=..."
 *   dmarc_suggest                     a starter record for the self-check
 *
 * Input trusted: none. Record text and domains come from DNS or from a
 * message header and are checked and bounded here. The PSL file is the
 * administrator's (a Debian package) but is still parsed defensively.
 *
 * Threads: a loaded struct dmarc_psl is never written again, so any number
 * of threads may use it at once without locking.
 */
#ifndef OUTPOST_DMARC_H
#define OUTPOST_DMARC_H

#include <stddef.h>

/* Debian's package `publicsuffix` installs the list here. */
#define DMARC_PSL_PATH "/usr/share/publicsuffix/public_suffix_list.dat"
/* RFC 1035 2.3.4: 253 octets of text form without the trailing dot. */
#define DMARC_DOMAIN_MAX 253
/* Longest TXT text (all strings of one record concatenated) we parse. */
#define DMARC_RECORD_MAX 2048
/* rua= and ruf= keep at most this many URIs of at most this length. */
#define DMARC_URI_MAX 8
#define DMARC_URI_LEN 256
/* Room for one error or warning message. */
#define DMARC_ERR_MAX 256

/* ---- organizational domain --------------------------------------------- */

struct dmarc_psl;

/* Load the Public Suffix List (both its ICANN and PRIVATE sections, see
 * dmarc.c). Returns NULL with a message in err when the file cannot be
 * read or holds no rule. A NULL list is valid everywhere below and means
 * "fallback mode": the organizational domain is the last two labels, and
 * relaxed alignment additionally requires one domain to be the other or
 * a subdomain of it (so evil.co.uk never aligns with bank.co.uk). The
 * caller should log err once when it gets NULL. */
struct dmarc_psl *dmarc_psl_load(const char *path, char *err, size_t errlen);
void dmarc_psl_free(struct dmarc_psl *psl);
/* Rules loaded (0 for NULL); for the startup log line. */
size_t dmarc_psl_rules(const struct dmarc_psl *psl);

/* Organizational domain of `domain` into out, lower case, no trailing dot.
 * A domain that is itself a public suffix ("co.uk", "com") is its own
 * organizational domain. Case-insensitive; one trailing dot is accepted;
 * labels are ASCII letters, digits, '-' and '_' (A-labels of IDNs are
 * plain ASCII; U-labels are refused). Returns 0, or -1 for a malformed
 * domain or an out buffer too small (DMARC_DOMAIN_MAX + 1 always fits). */
int dmarc_org_domain(const struct dmarc_psl *psl, const char *domain,
    char *out, size_t outlen);

/* ---- records ----------------------------------------------------------- */

enum dmarc_policy {
	DMARC_POLICY_UNSET = 0,         /* sp= / np= absent */
	DMARC_POLICY_NONE,
	DMARC_POLICY_QUARANTINE,
	DMARC_POLICY_REJECT,
};

struct dmarc_record {
	enum dmarc_policy p;            /* always set in a parsed record */
	enum dmarc_policy sp, np;       /* UNSET when absent */
	int adkim_strict, aspf_strict;  /* 0: r (default), 1: s */
	int pct;                        /* 0..100, default 100 */
	unsigned long ri;               /* seconds, default 86400 */
	char fo[16];                    /* default "0" */
	char rf[32];                    /* default "afrf" */
	size_t nrua, nruf;
	char rua[DMARC_URI_MAX][DMARC_URI_LEN];
	char ruf[DMARC_URI_MAX][DMARC_URI_LEN];
	/* p= was missing or invalid (or sp= invalid) and a valid rua= made
	 * the record count as p=none (RFC 7489 6.6.3). */
	int p_fallback;
	/* Non-fatal problems, "; "-separated, "" when none: values replaced
	 * by defaults (RFC 7489 6.3), URIs dropped. For "check dns". */
	char warning[DMARC_ERR_MAX];
};

/* Parse the text of one TXT record. It must start with v=DMARC1 ("v" in
 * any case, "DMARC1" exactly; blanks around '=' and a leading blank are
 * accepted). Tag names and the p/sp/np/adkim/aspf values are
 * case-insensitive. A duplicated known tag makes the record invalid.
 * Returns 0 (possibly with rec->warning set), or -1 with a message in err
 * that says what to fix. */
int dmarc_parse(const char *txt, struct dmarc_record *rec,
    char *err, size_t errlen);

enum dmarc_select_rc {
	DMARC_SELECT_OK = 0,            /* exactly one valid record in *rec */
	DMARC_SELECT_NONE,              /* no TXT starts with v=DMARC1 */
	DMARC_SELECT_MULTIPLE,          /* more than one: no policy applies */
	DMARC_SELECT_INVALID,           /* one, but invalid: message in err */
};

/* RFC 7489 6.6.3: of the TXT records at one name, discard those that do
 * not start with v=DMARC1; exactly one must remain. NULL entries are
 * skipped. err (may be NULL) explains every result but OK, naming the fix
 * for a near miss such as "v=dmarc1"; *rec is zeroed unless OK. */
enum dmarc_select_rc dmarc_select(const char *const *txts, size_t ntxt,
    struct dmarc_record *rec, char *err, size_t errlen);

/* ---- alignment and evaluation ------------------------------------------ */

/* RFC 7489 3.1: strict: the two domains are equal; relaxed: their
 * organizational domains are equal. 1 aligned, 0 not (or malformed). */
int dmarc_aligned(const char *from_domain, const char *auth_domain,
    int strict, const struct dmarc_psl *psl);

enum dmarc_result {
	DMARC_NONE = 0,                 /* no record: no policy */
	DMARC_PASS,
	DMARC_FAIL,
	DMARC_TEMPERROR,                /* for the caller's DNS failures; */
	DMARC_PERMERROR,                /* dmarc_evaluate never returns these */
};

#define DMARC_ALIGNED_DKIM 1
#define DMARC_ALIGNED_SPF 2

struct dmarc_query {
	const char *from_domain;        /* RFC5322.From domain */
	const struct dmarc_record *rec; /* NULL: no usable record */
	/* Name the record was found under (without "_dmarc."): the From
	 * domain, or its organizational domain (then sp=/np= apply).
	 * NULL means the From domain. */
	const char *rec_domain;
	const char *const *dkim_pass;   /* d= of each verified signature */
	size_t ndkim;
	const char *spf_pass;           /* domain SPF passed for, or NULL */
	int from_nonexistent;           /* From domain is NXDOMAIN (RFC 9091) */
};

struct dmarc_verdict {
	enum dmarc_result result;
	enum dmarc_policy policy;       /* the one that applies; UNSET if none */
	char policy_tag[3];             /* "p", "sp" or "np" ("" if none) */
	enum dmarc_policy p;            /* the record's p=, for the A-R comment */
	int aligned;                    /* DMARC_ALIGNED_* bits */
	const char *dkim_domain;        /* the first aligned d= (from q), or NULL */
	int pct;                        /* sampling is the caller's (RFC 7489 6.6.4) */
};

/* Every DKIM domain and the SPF domain are checked, so `aligned` tells
 * all that aligned. Returns v->result. */
enum dmarc_result dmarc_evaluate(const struct dmarc_psl *psl,
    const struct dmarc_query *q, struct dmarc_verdict *v);

/* RFC 8601 / RFC 7489 11.2 result for Authentication-Results:
 * "dmarc=pass (p=reject) header.from=example.com",
 * "dmarc=fail (p=reject sp=none) header.from=a.example.com",
 * "dmarc=none header.from=example.com". For temperror/permerror the caller
 * fills only v->result. A From domain that is not a plain domain is
 * quoted. Returns the length it needed, like snprintf. */
size_t dmarc_format_ar(const struct dmarc_verdict *v, const char *from_domain,
    char *out, size_t outlen);

const char *dmarc_policy_name(enum dmarc_policy p);
const char *dmarc_result_name(enum dmarc_result r);

/* A starter record: "v=DMARC1; p=none; rua=mailto:dmarc@DOMAIN". rua may
 * be NULL (then dmarc@DOMAIN), an address (mailto: is added) or a URI.
 * Returns 0, or -1 for a malformed domain, an unusable rua or a short
 * buffer. */
int dmarc_suggest(const char *domain, const char *rua, char *out,
    size_t outlen);

#endif
