/*
 * classify - upstream replies into delivery classes, by a rule table.
 *
 * Each rule is {reply code (exact, or class digit), enhanced code (exact,
 * "x.y." prefix, absent, or any), text patterns (any one, ASCII
 * case-insensitive substring), class}; the first rule that matches wins.
 * The order is the point of the table, from the costliest mistake down:
 *
 *  1. 2xx is success whatever it says.
 *  2. Throttling before everything else that could bounce: a provider
 *     that limits us (421, 4.7.x, "rate limit", Microsoft 4.7.650, Yahoo
 *     TSxx) must slow us down, and a 5xx *sending-quota* answer (Gmail
 *     "550 5.4.5 Daily user sending quota exceeded", Microsoft
 *     SubmissionQuotaExceeded, 5.7.0 "quota") is about our account, not
 *     the recipient: bouncing it would lose mail a later retry delivers.
 *     "452 4.5.3 Too many recipients" comes before the 4xx texts: it says
 *     "split the transaction" (RFC 5321 4.5.3.1.10), not "slow down", and
 *     its text contains "too many".
 *  3. Remaining 4xx are plain temporary failures.
 *  4. For 5xx the enhanced code (RFC 3463) outranks the text: it is
 *     machine-meant, the text is prose. 5.2.3 (message length exceeds
 *     limit) precedes the 5.2.x mailbox rule; the auth codes of RFC 7372
 *     and Microsoft's 5.7.5xx/5.7.60x precede the 5.7.x text rules.
 *  5. Text rules for 5xx: authentication before block lists (a DNS fix in
 *     our hands is the most useful advice), block lists before content
 *     ("Spamhaus" contains "spam"; "unusual rate of unsolicited mail" is
 *     reputation), then size, then "user unknown" prose, which is trusted
 *     only when no enhanced code (or 5.0.0) says otherwise.
 *  6. Any other 5xx is "other permanent".
 *
 * The reply text is untrusted: searched with an explicit length, bounded
 * by CLASSIFY_TEXT_MAX, never copied out.
 */
#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "classify.h"

#define ENH_ANY NULL    /* rule ignores the enhanced code */
#define ENH_NONE ""     /* rule wants no enhanced code at all */
#define TEXTS_MAX 12
#define HOST_NAME_CHARS 255 /* RFC 1035 2.3.4, the most of a domain we echo */

struct classify_rule {
	int code;               /* 2..5: reply class; 200..599: exact code */
	const char *enh;        /* ENH_ANY, ENH_NONE, "5.2." prefix or "5.1.1" */
	const char *text[TEXTS_MAX]; /* lower-case; none listed: no condition */
	enum classify_class cls;
};

#define THROTTLE_TEXTS { "rate limit", "ratelimit", "too many", "try again later", \
	"throttl", "4.7.650", "tss04", "[ts01]", "[ts02]", "[ts03]", "temporarily deferred" }
#define QUOTA5_TEXTS { "sending quota", "sending limit", "submissionquotaexceeded", \
	"rate limit", "ratelimit" }
#define AUTH_TEXTS { "spf", "dkim", "dmarc", "authenticat", "ptr record", "reverse dns" }
#define BLOCK_TEXTS { "block list", "blocklist", "blacklist", "spamhaus", "rbl", \
	"reputation", "listed", "blocked using", "spamcop", "banned sending ip", \
	"unusual rate", "tss09" }
#define CONTENT_TEXTS { "spam", "content", "virus", "malware", "phish", \
	"unsolicited", "infected" }
#define SIZE_TEXTS { "size", "too big", "too large", "exceeds" }
#define SIZE5_TEXTS { "message too big", "message too large", "message size exceeds", \
	"size limit" }
#define MAILBOX_TEXTS { "user unknown", "unknown user", "no such user", \
	"mailbox unavailable", "no mailbox here", "does not exist", \
	"recipient unknown", "unknown recipient", "no such mailbox", \
	"mailbox not found", "invalid recipient" }

static const struct classify_rule rules[] = {
	/* 1 */
	{ 2, ENH_ANY, { NULL }, CLASSIFY_OK },
	/* 2 */
	{ 421, ENH_ANY, { NULL }, CLASSIFY_THROTTLE },
	{ 452, "4.5.3", { NULL }, CLASSIFY_TEMPORARY },
	{ 452, ENH_ANY, { "too many recipients" }, CLASSIFY_TEMPORARY },
	{ 450, "4.7.", { NULL }, CLASSIFY_THROTTLE },
	{ 451, "4.7.", { NULL }, CLASSIFY_THROTTLE },
	{ 452, "4.7.", { NULL }, CLASSIFY_THROTTLE },
	{ 4, ENH_ANY, THROTTLE_TEXTS, CLASSIFY_THROTTLE },
	{ 5, ENH_ANY, QUOTA5_TEXTS, CLASSIFY_THROTTLE },
	{ 5, "5.4.5", { NULL }, CLASSIFY_THROTTLE },
	{ 5, "5.7.0", { "quota" }, CLASSIFY_THROTTLE },
	/* 3 */
	{ 4, ENH_ANY, { NULL }, CLASSIFY_TEMPORARY },
	/* 4 */
	{ 5, "5.1.1", { NULL }, CLASSIFY_BAD_MAILBOX },
	{ 5, "5.1.10", { NULL }, CLASSIFY_BAD_MAILBOX },
	{ 5, "5.1.2", { NULL }, CLASSIFY_BAD_MAILBOX },
	{ 5, "5.1.3", { NULL }, CLASSIFY_BAD_MAILBOX },
	{ 5, "5.2.3", { NULL }, CLASSIFY_TOO_BIG },
	{ 5, "5.2.", { NULL }, CLASSIFY_MAILBOX_FULL_OR_DISABLED },
	{ 5, "5.3.4", { NULL }, CLASSIFY_TOO_BIG },
	{ 5, "5.7.20", { NULL }, CLASSIFY_POLICY_AUTH },   /* RFC 7372: no passing DKIM */
	{ 5, "5.7.21", { NULL }, CLASSIFY_POLICY_AUTH },
	{ 5, "5.7.22", { NULL }, CLASSIFY_POLICY_AUTH },
	{ 5, "5.7.23", { NULL }, CLASSIFY_POLICY_AUTH },   /* SPF validation failed */
	{ 5, "5.7.24", { NULL }, CLASSIFY_POLICY_AUTH },
	{ 5, "5.7.25", { NULL }, CLASSIFY_POLICY_AUTH },   /* reverse DNS */
	{ 5, "5.7.26", { NULL }, CLASSIFY_POLICY_AUTH },   /* multiple checks failed */
	{ 5, "5.7.27", { NULL }, CLASSIFY_POLICY_AUTH },   /* RFC 7505: null MX sender */
	{ 5, "5.7.509", { NULL }, CLASSIFY_POLICY_AUTH },  /* Microsoft: DMARC reject */
	{ 5, "5.7.515", { NULL }, CLASSIFY_POLICY_AUTH },  /* Microsoft: auth level */
	{ 5, "5.7.606", { NULL }, CLASSIFY_BLOCKLIST },    /* Microsoft: banned IP */
	{ 5, "5.7.607", { NULL }, CLASSIFY_BLOCKLIST },
	{ 5, "5.7.608", { NULL }, CLASSIFY_BLOCKLIST },
	/* 5 */
	{ 5, ENH_ANY, AUTH_TEXTS, CLASSIFY_POLICY_AUTH },
	{ 5, ENH_ANY, BLOCK_TEXTS, CLASSIFY_BLOCKLIST },
	{ 5, ENH_ANY, CONTENT_TEXTS, CLASSIFY_CONTENT },
	{ 552, ENH_ANY, SIZE_TEXTS, CLASSIFY_TOO_BIG },
	{ 5, ENH_ANY, SIZE5_TEXTS, CLASSIFY_TOO_BIG },
	{ 5, ENH_NONE, MAILBOX_TEXTS, CLASSIFY_BAD_MAILBOX },
	{ 5, "5.0.0", MAILBOX_TEXTS, CLASSIFY_BAD_MAILBOX },
	/* 6 */
	{ 5, ENH_ANY, { NULL }, CLASSIFY_OTHER_PERMANENT },
};

/* enh_valid - RFC 3463 2: class "." 1*3digit "." 1*3digit, class 2/4/5.
 * Returns the length of the code or 0. */
static size_t
enh_valid(const char *s, size_t len)
{
	size_t i = 0, n;

	if (len < 5 || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.')
		return 0;
	i = 2;
	for (int part = 0; part < 2; part++) {
		for (n = 0; i < len && isdigit((unsigned char)s[i]) && n < 3; i++)
			n++;
		if (n == 0)
			return 0;
		if (part == 0) {
			if (i >= len || s[i] != '.')
				return 0;
			i++;
		}
	}
	if (i < len && isdigit((unsigned char)s[i]))
		return 0;
	return i;
}

/* has_text - ASCII case-insensitive search of a lower-case needle in
 * len bytes of untrusted text (NUL is an ordinary byte here). */
static int
has_text(const char *text, size_t len, const char *needle)
{
	size_t n = strlen(needle);

	if (n == 0 || n > len)
		return 0;
	for (size_t i = 0; i + n <= len; i++) {
		size_t j;

		for (j = 0; j < n; j++)
			if (tolower((unsigned char)text[i + j]) != (unsigned char)needle[j])
				break;
		if (j == n)
			return 1;
	}
	return 0;
}

static int
rule_matches(const struct classify_rule *r, int code, const char *enh,
    const char *text, size_t textlen)
{
	if (r->code < 10 ? code / 100 != r->code : code != r->code)
		return 0;
	if (r->enh != ENH_ANY) {
		size_t pl = strlen(r->enh);

		if (pl == 0) {
			if (enh[0] != '\0')
				return 0;
		} else if (r->enh[pl - 1] == '.') {
			if (strncmp(enh, r->enh, pl) != 0)
				return 0;
		} else if (strcmp(enh, r->enh) != 0)
			return 0;
	}
	if (r->text[0] == NULL)
		return 1;
	for (size_t i = 0; i < TEXTS_MAX && r->text[i] != NULL; i++)
		if (has_text(text, textlen, r->text[i]))
			return 1;
	return 0;
}

/* strncasecmp_ascii - locale-free prefix comparison of n bytes */
static int
strncasecmp_ascii(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int ca = tolower((unsigned char)a[i]), cb = tolower((unsigned char)b[i]);

		if (ca != cb || ca == 0)
			return ca - cb;
	}
	return 0;
}

/* classify_reply - first matching rule of the table */
enum classify_class
classify_reply(int code, const char *enh, const char *text, size_t textlen)
{
	char e[16] = "";
	size_t el;

	if (code < 200 || code > 599 || code / 100 == 3)
		return CLASSIFY_TEMPORARY;
	/* A malformed enhanced code, or one of another class than the reply
	 * code (RFC 3463 2 says they must agree), is ignored. */
	if (enh != NULL && (el = enh_valid(enh, strnlen(enh, sizeof(e)))) > 0 &&
	    enh[el] == '\0' && enh[0] - '0' == code / 100) {
		memcpy(e, enh, el);
		e[el] = '\0';
	}
	if (text == NULL)
		textlen = 0;
	if (textlen > CLASSIFY_TEXT_MAX)
		textlen = CLASSIFY_TEXT_MAX;
	for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++)
		if (rule_matches(&rules[i], code, e, text, textlen))
			return rules[i].cls;
	return CLASSIFY_OTHER_PERMANENT;   /* not reached: the last rule takes every 5xx */
}

/* classify_diagnostic - "smtp; 550 5.1.1 text", "550-5.1.1 text", or
 * prose with only an RFC 3464 status beside it */
enum classify_class
classify_diagnostic(const char *diag, const char *status)
{
	const char *p = diag != NULL ? diag : "";
	char enh[16] = "";
	size_t el;
	int code = 0;

	while (*p == ' ' || *p == '\t')
		p++;
	if (strncasecmp_ascii(p, "smtp;", 5) == 0) {
		p += 5;
		while (*p == ' ' || *p == '\t')
			p++;
	}
	if (isdigit((unsigned char)p[0]) && isdigit((unsigned char)p[1]) &&
	    isdigit((unsigned char)p[2]) &&
	    (p[3] == ' ' || p[3] == '-' || p[3] == '\0')) {
		code = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
		p += 3;
		if (*p == ' ' || *p == '-')
			p++;
		el = enh_valid(p, strnlen(p, sizeof(enh)));
		if (el > 0 && (p[el] == ' ' || p[el] == '\0')) {
			memcpy(enh, p, el);
			enh[el] = '\0';
			p += el;
		}
	}
	/* The status beside the diagnostic fills in what the text lacks. */
	if (status != NULL && (el = enh_valid(status, strnlen(status, sizeof(enh)))) > 0 &&
	    status[el] == '\0') {
		if (code == 0)
			code = (status[0] - '0') * 100;
		if (enh[0] == '\0' && status[0] - '0' == code / 100)
			memcpy(enh, status, el + 1);
	}
	if (code == 0)
		return CLASSIFY_TEMPORARY;
	return classify_reply(code, enh, p, strnlen(p, CLASSIFY_TEXT_MAX));
}

int
classify_is_permanent(enum classify_class c)
{
	return c >= CLASSIFY_BAD_MAILBOX && c <= CLASSIFY_OTHER_PERMANENT;
}

int
classify_suppresses(enum classify_class c)
{
	return c == CLASSIFY_BAD_MAILBOX;
}

int
classify_alerts(enum classify_class c)
{
	return c == CLASSIFY_POLICY_AUTH || c == CLASSIFY_BLOCKLIST;
}

const char *
classify_name(enum classify_class c)
{
	switch (c) {
	case CLASSIFY_OK: return "ok";
	case CLASSIFY_TEMPORARY: return "temporary";
	case CLASSIFY_THROTTLE: return "throttle";
	case CLASSIFY_BAD_MAILBOX: return "bad-mailbox";
	case CLASSIFY_MAILBOX_FULL_OR_DISABLED: return "mailbox-full";
	case CLASSIFY_POLICY_AUTH: return "policy-auth";
	case CLASSIFY_BLOCKLIST: return "blocklist";
	case CLASSIFY_CONTENT: return "content";
	case CLASSIFY_TOO_BIG: return "too-big";
	case CLASSIFY_OTHER_PERMANENT: return "other-permanent";
	}
	return "unknown";
}

const char *
classify_describe(enum classify_class c)
{
	switch (c) {
	case CLASSIFY_OK:
		return "the message was delivered";
	case CLASSIFY_TEMPORARY:
		return "the receiving system reported a temporary problem";
	case CLASSIFY_THROTTLE:
		return "the provider is limiting how fast we may send";
	case CLASSIFY_BAD_MAILBOX:
		return "the recipient address does not exist at the receiving system";
	case CLASSIFY_MAILBOX_FULL_OR_DISABLED:
		return "the recipient's mailbox is full or disabled";
	case CLASSIFY_POLICY_AUTH:
		return "the receiving system did not accept our sender authentication (SPF, DKIM or DMARC)";
	case CLASSIFY_BLOCKLIST:
		return "the receiving system refused mail from our sending IP address or domain (block list or reputation)";
	case CLASSIFY_CONTENT:
		return "the receiving system rejected the content of the message as spam or malware";
	case CLASSIFY_TOO_BIG:
		return "the message is larger than the receiving system accepts";
	case CLASSIFY_OTHER_PERMANENT:
		return "the receiving system refused the message permanently";
	}
	return "the message could not be delivered";
}

/* clean_domain - keep only host-name characters of a caller's domain, so
 * the advice can go into a header or a log line as it is */
static void
clean_domain(const char *in, char *out, size_t len)
{
	size_t o = 0;

	for (; in != NULL && *in != '\0' && o + 1 < len && o < HOST_NAME_CHARS; in++) {
		unsigned char ch = (unsigned char)*in;

		if (isalnum(ch) || ch == '.' || ch == '-' || ch == '_' ||
		    ch == '[' || ch == ']' || ch == ':')
			out[o++] = (char)ch;
	}
	out[o] = '\0';
}

const char *
classify_advice(enum classify_class c, const char *domain, char *buf, size_t len)
{
	char d[HOST_NAME_CHARS + 1];
	const char *dn;

	if (len == 0)
		return buf;
	clean_domain(domain, d, sizeof(d));
	dn = d[0] != '\0' ? d : "your domain";
	switch (c) {
	case CLASSIFY_OK:
		snprintf(buf, len, "nothing to do");
		break;
	case CLASSIFY_TEMPORARY:
		snprintf(buf, len, "nothing to do yet: outpost retries on its schedule; "
		    "if this lasts, ask the receiving system's postmaster");
		break;
	case CLASSIFY_THROTTLE:
		snprintf(buf, len, "outpost slows down and retries by itself; if this "
		    "persists, lower rate or daily_limit of the upstream, or ask the "
		    "provider to raise the sending limit for %s", dn);
		break;
	case CLASSIFY_BAD_MAILBOX:
		snprintf(buf, len, "check the address for typing errors, or remove it "
		    "from your list");
		break;
	case CLASSIFY_MAILBOX_FULL_OR_DISABLED:
		snprintf(buf, len, "reach the recipient another way; they must free "
		    "space or reactivate the mailbox before mail can be delivered");
		break;
	case CLASSIFY_POLICY_AUTH:
		if (d[0] != '\0')
			snprintf(buf, len, "SPF/DKIM/DMARC failed for %s; run outpostctl "
			    "check dns %s", d, d);
		else
			snprintf(buf, len, "SPF/DKIM/DMARC failed for your domain; run "
			    "outpostctl check dns <domain>");
		break;
	case CLASSIFY_BLOCKLIST:
		snprintf(buf, len, "the sending IP address or %s is listed or has a poor "
		    "reputation; check the lists named in the diagnostic, find what sent "
		    "unwanted mail, then request delisting", dn);
		break;
	case CLASSIFY_CONTENT:
		snprintf(buf, len, "review the content, links and attachments of the "
		    "message (the receiver took it for spam or malware), then send it again");
		break;
	case CLASSIFY_TOO_BIG:
		snprintf(buf, len, "make the message smaller (share large attachments "
		    "as a link) and send it again");
		break;
	case CLASSIFY_OTHER_PERMANENT:
	default:
		snprintf(buf, len, "read the diagnostic of the receiving system; if it "
		    "is unclear, ask the recipient's postmaster");
		break;
	}
	return buf;
}
