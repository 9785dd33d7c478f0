/*
 * message - the RFC 5322 checks and fixes applied to every submitted
 * message before it is signed and queued.
 *
 * Checks (Gmail's and Yahoo's sender requirements): exactly one From:
 * holding exactly one mailbox; each single-instance header (From, Sender,
 * To, Cc, Bcc, Subject, Date, Message-ID, Reply-To, In-Reply-To,
 * References; RFC 5322 3.6) at most once; no line over 998 octets; a
 * header section no larger than the limit. Fixes: Bcc: removed, Date: and
 * Message-ID: added when missing, a Received: header prepended.
 *
 * Input: the message exactly as received in DATA, dot-unstuffed, every
 * line ending in CRLF (the session has already refused bare CR/LF). Pure
 * function of its inputs; runs in a signer thread.
 */
#ifndef OUTPOST_MESSAGE_H
#define OUTPOST_MESSAGE_H

#include <stddef.h>
#include <time.h>
#include "util.h"

#define MESSAGE_LINE_MAX 998    /* RFC 5322 2.1.1, without CRLF */

struct message_params {
	const char *hostname;       /* "by" and the Message-ID domain */
	const char *helo;           /* client's EHLO argument (escaped already) */
	const char *client_ip;      /* "192.0.2.7" */
	const char *protocol;       /* "ESMTPSA", "ESMTPS", "ESMTP", "SMTP" */
	const char *tls;            /* "TLSv1.3 TLS_AES_256_GCM_SHA384" or NULL */
	const char *queue_id;
	const char *rcpt_for;       /* single recipient for "for <...>", or NULL */
	time_t now;
	size_t max_header_size;
};

#define MESSAGE_LIST_ID_MAX 256

/* Precedence: (RFC 2076 3.9, de facto): what bulk detection reads. */
enum message_precedence {
	MESSAGE_PREC_NONE,          /* no Precedence: field */
	MESSAGE_PREC_OTHER,         /* one with another value ("first-class") */
	MESSAGE_PREC_BULK,
	MESSAGE_PREC_LIST,
	MESSAGE_PREC_JUNK,
};

struct message_info {
	char from_addr[ADDR_MAX + 1];   /* the one From: mailbox, lower-cased domain */
	char from_domain[HOST_MAX];
	char sender_addr[ADDR_MAX + 1]; /* Sender: mailbox, "" if absent */
	char message_id[ADDR_MAX + 3];  /* with <>, as found or as added */
	int added_date;
	int added_message_id;
	int removed_bcc;
	size_t header_len;              /* of the output, blank line included */
	/* Bulk signs (issue 10), as the client sent them */
	enum message_precedence precedence;
	int has_list_header;            /* any List-* field (RFC 2369, 2919, 8058) */
	int has_list_unsubscribe;       /* List-Unsubscribe: (the sender's own) */
	char list_id[MESSAGE_LIST_ID_MAX]; /* List-Id's <id> (RFC 2919), or "" */
};

/* Check and fix `in`. On success returns 0 and sets *out (malloc'd) and
 * *outlen to the final message. On failure returns -1 and writes the full
 * SMTP reply, e.g. "550 5.6.0 Message has 2 From: headers", into err. */
int message_prepare(const char *in, size_t inlen, const struct message_params *p,
    struct message_info *info, char **out, size_t *outlen, char *err, size_t errlen);

/* Extract the single addr-spec of a mailbox-list header value
 * ("Alice <a@b.example>", "a@b.example (comment)"). Returns the number of
 * mailboxes found (only the first is copied), or -1 if unparseable. */
int message_parse_mailbox(const char *value, size_t len, char *addr, size_t addrlen);

#endif
