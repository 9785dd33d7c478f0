/*
 * test_classify - table-driven tests of daemon/classify.c: real replies
 * of Gmail, Microsoft 365, Yahoo, Postfix, Exim, qmail and Sendmail, the
 * stored-diagnostic form, hostile text (NUL, 8-bit, over-long), and the
 * predicates and human strings.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "classify.h"
#include "tap.h"

static void
test_replies(void)
{
	static const struct {
		int code;
		const char *enh;
		const char *text;
		enum classify_class want;
	} t[] = {
		/* success */
		{ 250, "2.0.0", "OK 1700000000 a1-20020a05.123 - gsmtp", CLASSIFY_OK },
		{ 250, "", "Ok: queued as 3F2A1B", CLASSIFY_OK },
		{ 251, "2.1.5", "User not local; will forward", CLASSIFY_OK },
		/* throttling, 4xx */
		{ 421, "4.7.0", "[192.0.2.1] Our system has detected an unusual rate of unsolicited mail originating from your IP address. To protect our users from spam, mail sent from your IP address has been temporarily rate limited.", CLASSIFY_THROTTLE },
		{ 421, "4.7.0", "[TSS04] Messages from 192.0.2.1 temporarily deferred due to unexpected volume or user complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes", CLASSIFY_THROTTLE },
		{ 421, "", "Service not available, closing transmission channel", CLASSIFY_THROTTLE },
		{ 421, "4.3.2", "System not accepting network messages", CLASSIFY_THROTTLE },
		{ 451, "4.7.650", "The mail server [192.0.2.1] has been temporarily rate limited due to IP reputation.", CLASSIFY_THROTTLE },
		{ 450, "4.7.1", "Client host rejected: cannot find your hostname, try again later", CLASSIFY_THROTTLE },
		{ 452, "4.7.0", "Rate limit exceeded", CLASSIFY_THROTTLE },
		{ 451, "", "Too many messages from your account, slow down", CLASSIFY_THROTTLE },
		{ 450, "4.2.1", "The user you are trying to contact is receiving mail at a rate that prevents additional messages from being delivered. Please resend your message at a later time.", CLASSIFY_TEMPORARY },
		{ 451, "4.4.2", "Throttled: too many connections", CLASSIFY_THROTTLE },
		{ 451, "", "Temporary local problem - please try again later", CLASSIFY_THROTTLE },
		{ 451, "4.3.0", "Mail server temporarily rejected message. 4.7.650", CLASSIFY_THROTTLE },
		{ 451, "", "[TS01] Messages from 192.0.2.1 temporarily deferred due to user complaints", CLASSIFY_THROTTLE },
		{ 451, "", "[TS03] All messages from 192.0.2.1 will be permanently deferred", CLASSIFY_THROTTLE },
		/* quota answers sent as 5xx are throttling, never bounces */
		{ 550, "5.4.5", "Daily user sending quota exceeded. a1sor.123 - gsmtp", CLASSIFY_THROTTLE },
		{ 550, "5.4.5", "Daily SMTP relay sending limit exceeded for customer", CLASSIFY_THROTTLE },
		{ 550, "", "Daily user sending quota exceeded", CLASSIFY_THROTTLE },
		{ 554, "5.2.0", "STOREDRV.Submission.Exception:SubmissionQuotaExceededException; Failed to process message due to a permanent exception", CLASSIFY_THROTTLE },
		{ 550, "5.7.0", "Sending quota exhausted for this account", CLASSIFY_THROTTLE },
		{ 554, "5.7.0", "Your message could not be sent. The limit on the number of allowed outgoing messages was exceeded (quota)", CLASSIFY_THROTTLE },
		/* recipient-count split signal: temporary, not throttle */
		{ 452, "4.5.3", "Too many recipients", CLASSIFY_TEMPORARY },
		{ 452, "", "Too many recipients received this session", CLASSIFY_TEMPORARY },
		/* plain temporary */
		{ 450, "4.2.2", "The email account that you tried to reach is over quota.", CLASSIFY_TEMPORARY },
		{ 451, "4.3.0", "Mail server temporarily rejected message.", CLASSIFY_TEMPORARY },
		{ 450, "", "Requested mail action not taken: mailbox unavailable", CLASSIFY_TEMPORARY },
		{ 452, "4.3.1", "Insufficient system storage", CLASSIFY_TEMPORARY },
		{ 451, "4.4.1", "No answer from host", CLASSIFY_TEMPORARY },
		/* bad mailbox */
		{ 550, "5.1.1", "The email account that you tried to reach does not exist. Please try double-checking the recipient's email address for typos or unnecessary spaces. https://support.google.com/mail/?p=NoSuchUser", CLASSIFY_BAD_MAILBOX },
		{ 550, "5.1.10", "RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup", CLASSIFY_BAD_MAILBOX },
		{ 550, "5.1.2", "Host unknown (Name server: nosuch.example: host not found)", CLASSIFY_BAD_MAILBOX },
		{ 553, "5.1.3", "Bad recipient address syntax", CLASSIFY_BAD_MAILBOX },
		{ 550, "5.1.1", "<b@example.com>: Recipient address rejected: User unknown in virtual mailbox table", CLASSIFY_BAD_MAILBOX },
		{ 554, "5.1.1", "Delivery error: dd This user doesn't have a yahoo.com account", CLASSIFY_BAD_MAILBOX },
		{ 550, "", "No such user here", CLASSIFY_BAD_MAILBOX },
		{ 550, "", "<x@example.com>... User unknown", CLASSIFY_BAD_MAILBOX },
		{ 550, "", "Requested action not taken: mailbox unavailable", CLASSIFY_BAD_MAILBOX },
		{ 550, "", "sorry, no mailbox here by that name. (#5.1.1)", CLASSIFY_BAD_MAILBOX },
		{ 550, "5.0.0", "Unknown user", CLASSIFY_BAD_MAILBOX },
		/* mailbox full or disabled */
		{ 552, "5.2.2", "Mailbox full", CLASSIFY_MAILBOX_FULL_OR_DISABLED },
		{ 552, "5.2.2", "The email account that you tried to reach is over quota and inbox is out of storage space.", CLASSIFY_MAILBOX_FULL_OR_DISABLED },
		{ 550, "5.2.1", "The email account that you tried to reach is disabled.", CLASSIFY_MAILBOX_FULL_OR_DISABLED },
		{ 550, "5.2.1", "Mailbox disabled for this recipient", CLASSIFY_MAILBOX_FULL_OR_DISABLED },
		/* policy / authentication */
		{ 550, "5.7.26", "This mail has been blocked because the sender is unauthenticated. Gmail requires all senders to authenticate with either SPF or DKIM.", CLASSIFY_POLICY_AUTH },
		{ 550, "5.7.26", "Unauthenticated email from example.com is not accepted due to domain's DMARC policy.", CLASSIFY_POLICY_AUTH },
		{ 550, "5.7.1", "Email rejected per DMARC policy for example.com", CLASSIFY_POLICY_AUTH },
		{ 550, "5.7.1", "Message rejected due to SPF failure", CLASSIFY_POLICY_AUTH },
		{ 550, "5.7.1", "DKIM signature verification failed", CLASSIFY_POLICY_AUTH },
		{ 550, "5.7.1", "Sender authentication failed", CLASSIFY_POLICY_AUTH },
		{ 550, "5.7.509", "Access denied, sending domain example.com does not pass DMARC verification and has a DMARC policy of reject.", CLASSIFY_POLICY_AUTH },
		{ 550, "5.7.515", "Access denied, sending domain example.com doesn't meet the required authentication level.", CLASSIFY_POLICY_AUTH },
		{ 550, "5.7.25", "The IP address sending this message does not have a PTR record setup.", CLASSIFY_POLICY_AUTH },
		{ 550, "5.7.23", "The message was rejected because of Sender Policy Framework violation", CLASSIFY_POLICY_AUTH },
		/* block lists and reputation */
		{ 550, "5.7.1", "Service unavailable; Client host [192.0.2.1] blocked using Spamhaus. To request removal from this list see https://www.spamhaus.org/query/ip/192.0.2.1", CLASSIFY_BLOCKLIST },
		{ 554, "5.7.1", "Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org", CLASSIFY_BLOCKLIST },
		{ 550, "5.7.1", "Unfortunately, messages from [192.0.2.1] weren't sent. Please contact your Internet service provider since part of their network is on our block list (S3150).", CLASSIFY_BLOCKLIST },
		{ 550, "5.7.1", "Our system has detected an unusual rate of unsolicited mail originating from your IP address. To protect our users from spam, mail sent from your IP address has been blocked.", CLASSIFY_BLOCKLIST },
		{ 550, "5.7.1", "Mail from 192.0.2.1 refused, listed in bl.spamcop.net", CLASSIFY_BLOCKLIST },
		{ 554, "5.7.1", "Rejected because 192.0.2.1 is in a black list at b.barracudacentral.org (blacklisted)", CLASSIFY_BLOCKLIST },
		{ 550, "5.7.1", "Poor reputation of the sending domain", CLASSIFY_BLOCKLIST },
		{ 550, "5.7.606", "Access denied, banned sending IP [192.0.2.1].", CLASSIFY_BLOCKLIST },
		{ 554, "", "Rejected: RBL check failed", CLASSIFY_BLOCKLIST },
		{ 553, "5.7.2", "[TSS09] All messages from 192.0.2.1 will be permanently deferred; Retrying will NOT succeed.", CLASSIFY_BLOCKLIST },
		/* content */
		{ 554, "5.7.1", "Message rejected as spam", CLASSIFY_CONTENT },
		{ 550, "5.7.1", "[192.0.2.1] Gmail has detected that this message is likely unsolicited mail.", CLASSIFY_CONTENT },
		{ 552, "5.7.0", "This message was blocked because its content presents a potential security issue.", CLASSIFY_CONTENT },
		{ 554, "5.7.1", "Virus found: Eicar-Test-Signature", CLASSIFY_CONTENT },
		{ 550, "", "Message content rejected", CLASSIFY_CONTENT },
		/* too big */
		{ 552, "5.3.4", "Message size exceeds fixed limit", CLASSIFY_TOO_BIG },
		{ 552, "", "Message size exceeds maximum permitted", CLASSIFY_TOO_BIG },
		{ 552, "5.2.3", "Message length exceeds administrative limit", CLASSIFY_TOO_BIG },
		{ 554, "5.3.4", "Message too big for system", CLASSIFY_TOO_BIG },
		{ 550, "", "Message too large", CLASSIFY_TOO_BIG },
		/* other permanent */
		{ 554, "5.7.1", "<b@example.com>: Relay access denied", CLASSIFY_OTHER_PERMANENT },
		{ 550, "5.7.1", "Requested action not taken: mailbox unavailable", CLASSIFY_OTHER_PERMANENT },
		{ 554, "5.7.9", "Message not accepted for policy reasons.", CLASSIFY_OTHER_PERMANENT },
		{ 550, "5.1.8", "Sender address rejected: Domain not found", CLASSIFY_OTHER_PERMANENT },
		{ 554, "", "Transaction failed", CLASSIFY_OTHER_PERMANENT },
		{ 500, "5.5.1", "Command unrecognized", CLASSIFY_OTHER_PERMANENT },
		/* AUTH replies are the scheduler's business (defer, alert); as a
		 * reply to a message they are just permanent */
		{ 535, "5.7.8", "Username and Password not accepted.", CLASSIFY_OTHER_PERMANENT },
		/* malformed or odd codes never bounce */
		{ 0, "", "", CLASSIFY_TEMPORARY },
		{ 354, "", "Start mail input", CLASSIFY_TEMPORARY },
		{ 199, "", "", CLASSIFY_TEMPORARY },
		{ 600, "5.1.1", "", CLASSIFY_TEMPORARY },
		{ -550, "5.1.1", "", CLASSIFY_TEMPORARY },
		/* enhanced code of another class than the reply code is ignored */
		{ 450, "5.1.1", "User unknown", CLASSIFY_TEMPORARY },
		{ 550, "4.7.0", "Rate limit exceeded", CLASSIFY_THROTTLE },
		{ 550, "4.2.2", "Mailbox full", CLASSIFY_OTHER_PERMANENT },
		/* malformed enhanced codes are ignored */
		{ 550, "5.1.1x", "", CLASSIFY_OTHER_PERMANENT },
		{ 550, "5.1111.1", "", CLASSIFY_OTHER_PERMANENT },
		{ 550, "5..1", "User unknown", CLASSIFY_BAD_MAILBOX },
		{ 550, NULL, "User unknown", CLASSIFY_BAD_MAILBOX },
		{ 550, "5.1.1", NULL, CLASSIFY_BAD_MAILBOX },
		/* case does not matter */
		{ 550, "5.7.1", "BLOCKED USING SPAMHAUS", CLASSIFY_BLOCKLIST },
		{ 451, "", "TRY AGAIN LATER", CLASSIFY_THROTTLE },
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		is_int(classify_reply(t[i].code, t[i].enh, t[i].text,
		    t[i].text ? strlen(t[i].text) : 0), t[i].want,
		    "%d %s %.50s -> %s", t[i].code, t[i].enh ? t[i].enh : "(null)",
		    t[i].text ? t[i].text : "(null)", classify_name(t[i].want));
}

static void
test_diagnostic(void)
{
	static const struct {
		const char *diag, *status;
		enum classify_class want;
	} t[] = {
		{ "smtp; 550 5.1.1 <a@b.example>: Recipient address rejected", "5.1.1", CLASSIFY_BAD_MAILBOX },
		{ "smtp;550-5.1.1 The email account that you tried to reach does not exist", NULL, CLASSIFY_BAD_MAILBOX },
		{ "SMTP; 550 5.7.26 This mail has been blocked because the sender is unauthenticated", "5.7.26", CLASSIFY_POLICY_AUTH },
		{ "550 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using Spamhaus", NULL, CLASSIFY_BLOCKLIST },
		{ "552 Mailbox full", "5.2.2", CLASSIFY_MAILBOX_FULL_OR_DISABLED },
		{ "smtp; 554 Message rejected as spam", NULL, CLASSIFY_CONTENT },
		{ "X-Postfix; host nosuch.example not found", "5.1.2", CLASSIFY_BAD_MAILBOX },
		{ "delivery time expired", "4.4.7", CLASSIFY_TEMPORARY },
		{ "smtp; 421 4.7.0 Try again later", "4.7.0", CLASSIFY_THROTTLE },
		{ "", "5.3.4", CLASSIFY_TOO_BIG },
		{ NULL, "5.0.0", CLASSIFY_OTHER_PERMANENT },
		{ NULL, NULL, CLASSIFY_TEMPORARY },
		{ "garbage", "x.y.z", CLASSIFY_TEMPORARY },
		{ "55", NULL, CLASSIFY_TEMPORARY },
		{ "5501 5.1.1 x", NULL, CLASSIFY_TEMPORARY },
		{ "550", NULL, CLASSIFY_OTHER_PERMANENT },
		{ "550 5.1.1", NULL, CLASSIFY_BAD_MAILBOX },
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		is_int(classify_diagnostic(t[i].diag, t[i].status), t[i].want,
		    "diagnostic %.50s / %s -> %s", t[i].diag ? t[i].diag : "(null)",
		    t[i].status ? t[i].status : "(null)", classify_name(t[i].want));
}

static void
test_hostile(void)
{
	static const char nul[] = "User\0unknown spam\0 blocked using spamhaus";
	char *big;
	size_t n = 1 << 20;

	/* NUL is an ordinary byte: the text after it is still searched */
	is_int(classify_reply(550, "5.7.1", nul, sizeof(nul) - 1), CLASSIFY_BLOCKLIST,
	    "text with NUL bytes searched by length");
	is_int(classify_reply(550, "5.7.1", "\xff\xfe\x80spam\x01", 8), CLASSIFY_CONTENT,
	    "8-bit and control bytes");
	/* a pattern beyond CLASSIFY_TEXT_MAX is not seen; no overread */
	big = malloc(n);
	memset(big, 'x', n);
	memcpy(big + n - 8, "spamhaus", 8);
	is_int(classify_reply(550, "5.7.1", big, n), CLASSIFY_OTHER_PERMANENT,
	    "only CLASSIFY_TEXT_MAX bytes are searched");
	memcpy(big + 10, "spamhaus", 8);
	is_int(classify_reply(550, "5.7.1", big, n), CLASSIFY_BLOCKLIST,
	    "pattern inside the searched window");
	big[n - 1] = '\0';
	is_int(classify_diagnostic(big, "5.1.1"), CLASSIFY_BAD_MAILBOX,
	    "1 MiB diagnostic without a code: the status decides");
	is_int(classify_diagnostic(big, NULL), CLASSIFY_TEMPORARY,
	    "1 MiB diagnostic without code or status");
	free(big);
	is_int(classify_reply(550, "5.1.1\r\nX", "", 0), CLASSIFY_OTHER_PERMANENT,
	    "enhanced code with trailing junk ignored");
	is_int(classify_reply(550, "5.1.1", "spam", 0), CLASSIFY_BAD_MAILBOX,
	    "textlen 0 ignores the text");
}

static void
test_predicates(void)
{
	static const struct {
		enum classify_class c;
		int perm, supp, alert;
		const char *name;
	} t[] = {
		{ CLASSIFY_OK, 0, 0, 0, "ok" },
		{ CLASSIFY_TEMPORARY, 0, 0, 0, "temporary" },
		{ CLASSIFY_THROTTLE, 0, 0, 0, "throttle" },
		{ CLASSIFY_BAD_MAILBOX, 1, 1, 0, "bad-mailbox" },
		{ CLASSIFY_MAILBOX_FULL_OR_DISABLED, 1, 0, 0, "mailbox-full" },
		{ CLASSIFY_POLICY_AUTH, 1, 0, 1, "policy-auth" },
		{ CLASSIFY_BLOCKLIST, 1, 0, 1, "blocklist" },
		{ CLASSIFY_CONTENT, 1, 0, 0, "content" },
		{ CLASSIFY_TOO_BIG, 1, 0, 0, "too-big" },
		{ CLASSIFY_OTHER_PERMANENT, 1, 0, 0, "other-permanent" },
	};
	char buf[CLASSIFY_ADVICE_MAX], dom[300];

	is_int(sizeof(t) / sizeof(t[0]), CLASSIFY_NCLASSES, "every class tested");
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		is_int(classify_is_permanent(t[i].c), t[i].perm, "%s permanent", t[i].name);
		is_int(classify_suppresses(t[i].c), t[i].supp, "%s suppresses", t[i].name);
		is_int(classify_alerts(t[i].c), t[i].alert, "%s alerts", t[i].name);
		is_str(classify_name(t[i].c), t[i].name, "name %s", t[i].name);
		ok(strlen(classify_describe(t[i].c)) > 10, "%s described", t[i].name);
		ok(strlen(classify_advice(t[i].c, "example.com", buf, sizeof(buf))) > 10,
		    "%s advised", t[i].name);
	}
	is_str(classify_name((enum classify_class)99), "unknown", "out-of-range name");
	is_str(classify_advice(CLASSIFY_POLICY_AUTH, "example.com", buf, sizeof(buf)),
	    "SPF/DKIM/DMARC failed for example.com; run outpostctl check dns example.com",
	    "5.7.26 advice names the domain and the command");
	is_str(classify_advice(CLASSIFY_POLICY_AUTH, "ex\r\nample.com; rm -rf /", buf, sizeof(buf)),
	    "SPF/DKIM/DMARC failed for example.comrm-rf; run outpostctl check dns example.comrm-rf",
	    "hostile domain reduced to host-name characters");
	is_str(classify_advice(CLASSIFY_POLICY_AUTH, NULL, buf, sizeof(buf)),
	    "SPF/DKIM/DMARC failed for your domain; run outpostctl check dns <domain>",
	    "no domain");
	ok(strstr(classify_advice(CLASSIFY_BAD_MAILBOX, NULL, buf, sizeof(buf)),
	    "check the address") != NULL, "bad mailbox: check the address");
	memset(dom, 'a', sizeof(dom) - 1);
	dom[sizeof(dom) - 1] = '\0';
	classify_advice(CLASSIFY_BLOCKLIST, dom, buf, sizeof(buf));
	ok(strlen(buf) < sizeof(buf) - 1, "longest advice fits CLASSIFY_ADVICE_MAX");
	classify_advice(CLASSIFY_POLICY_AUTH, "example.com", buf, 10);
	is_str(buf, "SPF/DKIM/", "short buffer truncated and terminated");
	buf[0] = 'Z';
	classify_advice(CLASSIFY_POLICY_AUTH, "example.com", buf, 0);
	is_int(buf[0], 'Z', "zero-length buffer untouched");
}

int
main(void)
{
	test_replies();
	test_diagnostic();
	test_hostile();
	test_predicates();
	return done();
}
