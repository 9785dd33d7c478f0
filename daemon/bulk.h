/*
 * bulk - is this submitted message bulk mail, and can its recipients
 * unsubscribe with one click (RFC 8058)?
 *
 * A message is bulk when it says so (Precedence: bulk or list, any List-*
 * field: RFC 2369, RFC 2919), when its account (users-file option `bulk`)
 * or its From: domain (`[domain] bulk = yes`) is configured so, or by
 * volume: the same body (SHA-256 of the octets after the header block)
 * from one envelope sender to more than `[server] bulk_threshold`
 * recipients within a rolling 24 hours. Forwarded mail is bulk only
 * through its List-* fields and is never changed (its ARC seal covers it
 * as it is).
 *
 * API: bulk_reason (pure), bulk_unsub_mode (pure), bulk_body_hash (any
 * thread), and the volume table struct bulk (loop only): bulk_new,
 * bulk_volume_add, bulk_free; it also keeps the count of bulk messages
 * relayed without any unsubscribe option for `outpostctl status`.
 *
 * Input: the message_info of message_prepare (client text already
 * parsed and bounded); envelope senders as the session accepted them.
 */
#ifndef OUTPOST_BULK_H
#define OUTPOST_BULK_H

#include <stddef.h>
#include <time.h>

#include "message.h"
#include "util.h"

#define BULK_HASH_LEN 32        /* SHA-256 */
#define BULK_TABLE_MAX 8192     /* (sender, body) pairs remembered; oldest out */
#define BULK_WINDOW (24 * 3600) /* the rolling day of the volume rule */

enum bulk_reason {
	BULK_NO,
	BULK_PRECEDENCE,            /* Precedence: bulk | list */
	BULK_LIST_HEADER,           /* a List-* field */
	BULK_ACCOUNT,               /* users-file option bulk */
	BULK_DOMAIN,                /* [domain] bulk = yes */
	BULK_VOLUME,                /* one body, > bulk_threshold recipients / 24 h */
};

enum bulk_unsub {
	BULK_UNSUB_ONE_CLICK,       /* outpost splits and adds List-Unsubscribe */
	BULK_UNSUB_SENDER,          /* the sender's own List-Unsubscribe */
	BULK_UNSUB_NONE,            /* nobody can unsubscribe: warn or reject */
};

struct bulk;

/* The reason found in the message and the configuration (not volume),
 * in the order above; BULK_NO if none. Forwarded mail: List-* only. */
enum bulk_reason bulk_reason(const struct message_info *info, int forwarded,
    int account_bulk, int domain_bulk);
/* How the recipients of a bulk message can unsubscribe: the sender's own
 * List-Unsubscribe wins; else one-click copies when the From: domain has
 * unsubscribe = yes and the key is loaded (never for forwarded mail). */
enum bulk_unsub bulk_unsub_mode(const struct message_info *info, int forwarded,
    int domain_unsubscribe, int have_key);
/* "precedence", "list-header", "account", "domain", "volume" ("no") */
const char *bulk_reason_name(enum bulk_reason r);
/* "one-click per recipient", "sender's own", "none" (the log line) */
const char *bulk_unsub_name(enum bulk_unsub u);

/* SHA-256 of body (the octets after the header block) */
void bulk_body_hash(const char *body, size_t len, unsigned char out[BULK_HASH_LEN]);

struct bulk *bulk_new(size_t max_entries);
void bulk_free(struct bulk *b);
/* Count nrcpt more recipients of (sender, body hash) at now; returns the
 * total over the last 24 hours, these included. The table keeps at most
 * max_entries pairs: the one updated longest ago goes first. */
unsigned long bulk_volume_add(struct bulk *b, const char *sender,
    const unsigned char hash[BULK_HASH_LEN], unsigned long nrcpt, time_t now);
/* Pairs in the table (tests) */
size_t bulk_volume_size(const struct bulk *b);
/* Bulk relayed without any unsubscribe option: note one, read the count
 * since start and the last sender ("" if none). */
void bulk_note_unsubless(struct bulk *b, const char *sender);
unsigned long bulk_unsubless(const struct bulk *b, const char **last_sender);

#endif
