/*
 * bulk - bulk mail detection. See bulk.h.
 *
 * The volume table is keyed by SHA-256(lower-cased envelope sender, NUL,
 * body hash): 32 bytes whatever the client sent. Each pair counts its
 * recipients in 24 hourly slots (the rolling day, to the hour); a slot
 * older than the day is reused. The pairs sit in a hash table and on a
 * list ordered by last update, so expired pairs and, when the table is
 * full, the one updated longest ago leave from its tail.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

#include "bulk.h"
#include "log.h"
#include "util.h"

#define BULK_SLOTS 24
#define BULK_SLOT_SECS (BULK_WINDOW / BULK_SLOTS)
#define BULK_BUCKETS 4096       /* power of two */

struct bulk_pair {
	unsigned char key[BULK_HASH_LEN];
	uint32_t count[BULK_SLOTS];
	int64_t slot_of[BULK_SLOTS];    /* which hour each slot counts */
	time_t updated;
	struct bulk_pair *chain;        /* hash bucket */
	struct bulk_pair *newer, *older; /* update order */
};

struct bulk {
	struct bulk_pair *bucket[BULK_BUCKETS];
	struct bulk_pair *newest, *oldest;
	size_t n, max;
	unsigned long unsubless;
	char last_sender[ADDR_MAX + 1];
};

/* bulk_reason - the signs in the message and the configuration */
enum bulk_reason
bulk_reason(const struct message_info *info, int forwarded, int account_bulk,
    int domain_bulk)
{
	if (forwarded)
		return info->has_list_header ? BULK_LIST_HEADER : BULK_NO;
	if (info->precedence == MESSAGE_PREC_BULK || info->precedence == MESSAGE_PREC_LIST)
		return BULK_PRECEDENCE;
	if (info->has_list_header)
		return BULK_LIST_HEADER;
	if (account_bulk)
		return BULK_ACCOUNT;
	if (domain_bulk)
		return BULK_DOMAIN;
	return BULK_NO;
}

/* bulk_unsub_mode - the sender's own link, ours, or none */
enum bulk_unsub
bulk_unsub_mode(const struct message_info *info, int forwarded, int domain_unsubscribe,
    int have_key)
{
	if (info->has_list_unsubscribe)
		return BULK_UNSUB_SENDER;
	if (!forwarded && domain_unsubscribe && have_key)
		return BULK_UNSUB_ONE_CLICK;
	return BULK_UNSUB_NONE;
}

const char *
bulk_reason_name(enum bulk_reason r)
{
	switch (r) {
	case BULK_PRECEDENCE: return "precedence";
	case BULK_LIST_HEADER: return "list-header";
	case BULK_ACCOUNT: return "account";
	case BULK_DOMAIN: return "domain";
	case BULK_VOLUME: return "volume";
	case BULK_NO: break;
	}
	return "no";
}

const char *
bulk_unsub_name(enum bulk_unsub u)
{
	return u == BULK_UNSUB_ONE_CLICK ? "one-click per recipient" :
	    u == BULK_UNSUB_SENDER ? "sender's own" : "none";
}

/* bulk_body_hash - SHA-256 of the body octets */
void
bulk_body_hash(const char *body, size_t len, unsigned char out[BULK_HASH_LEN])
{
	SHA256((const unsigned char *)body, len, out);
}

/* bulk_new - an empty table of at most max_entries pairs (0: the default) */
struct bulk *
bulk_new(size_t max_entries)
{
	struct bulk *b = xcalloc(1, sizeof(*b));

	b->max = max_entries ? max_entries : BULK_TABLE_MAX;
	return b;
}

/* bulk_free - the table and its pairs; NULL is fine */
void
bulk_free(struct bulk *b)
{
	struct bulk_pair *p, *next;

	if (b == NULL)
		return;
	for (p = b->newest; p != NULL; p = next) {
		next = p->older;
		free(p);
	}
	free(b);
}

/* bulk_bucket - the hash bucket of a key (the key is a digest already) */
static size_t
bulk_bucket(const unsigned char key[BULK_HASH_LEN])
{
	return ((size_t)key[0] | (size_t)key[1] << 8) & (BULK_BUCKETS - 1);
}

/* bulk_unlink - take p off the update list */
static void
bulk_unlink(struct bulk *b, struct bulk_pair *p)
{
	if (p->newer)
		p->newer->older = p->older;
	else
		b->newest = p->older;
	if (p->older)
		p->older->newer = p->newer;
	else
		b->oldest = p->newer;
	p->newer = p->older = NULL;
}

/* bulk_drop - remove p from the table */
static void
bulk_drop(struct bulk *b, struct bulk_pair *p)
{
	struct bulk_pair **pp = &b->bucket[bulk_bucket(p->key)];

	while (*pp != p)
		pp = &(*pp)->chain;
	*pp = p->chain;
	bulk_unlink(b, p);
	free(p);
	b->n--;
}

/* bulk_key - SHA-256(lower-cased sender, NUL, body hash) */
static void
bulk_key(const char *sender, const unsigned char hash[BULK_HASH_LEN],
    unsigned char key[BULK_HASH_LEN])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned char c;

	if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
		fatalx("bulk: SHA-256 unavailable");
	for (const char *p = sender; *p; p++) {
		c = (unsigned char)(*p >= 'A' && *p <= 'Z' ? *p + ('a' - 'A') : *p);
		EVP_DigestUpdate(ctx, &c, 1);
	}
	c = 0;
	EVP_DigestUpdate(ctx, &c, 1);
	EVP_DigestUpdate(ctx, hash, BULK_HASH_LEN);
	EVP_DigestFinal_ex(ctx, key, NULL);
	EVP_MD_CTX_free(ctx);
}

/* bulk_volume_add - count recipients, return the rolling day's total */
unsigned long
bulk_volume_add(struct bulk *b, const char *sender, const unsigned char hash[BULK_HASH_LEN],
    unsigned long nrcpt, time_t now)
{
	unsigned char key[BULK_HASH_LEN];
	struct bulk_pair *p;
	int64_t hour = (int64_t)now / BULK_SLOT_SECS;
	unsigned long total = 0;
	size_t k, slot = (size_t)(hour % BULK_SLOTS);

	/* Pairs not updated for a day count nothing any more. */
	while (b->oldest != NULL && now - b->oldest->updated >= BULK_WINDOW)
		bulk_drop(b, b->oldest);
	bulk_key(sender, hash, key);
	k = bulk_bucket(key);
	for (p = b->bucket[k]; p != NULL; p = p->chain)
		if (memcmp(p->key, key, BULK_HASH_LEN) == 0)
			break;
	if (p == NULL) {
		if (b->n >= b->max)
			bulk_drop(b, b->oldest);
		p = xcalloc(1, sizeof(*p));
		memcpy(p->key, key, BULK_HASH_LEN);
		p->chain = b->bucket[k];
		b->bucket[k] = p;
		b->n++;
	} else {
		bulk_unlink(b, p);
	}
	p->older = b->newest;
	if (b->newest)
		b->newest->newer = p;
	b->newest = p;
	if (b->oldest == NULL)
		b->oldest = p;
	p->updated = now;
	if (p->slot_of[slot] != hour) {
		p->slot_of[slot] = hour;
		p->count[slot] = 0;
	}
	p->count[slot] = nrcpt > UINT32_MAX - p->count[slot] ? UINT32_MAX :
	    p->count[slot] + (uint32_t)nrcpt;
	for (size_t i = 0; i < BULK_SLOTS; i++)
		if (p->slot_of[i] > hour - BULK_SLOTS && p->slot_of[i] <= hour)
			total += p->count[i];
	return total;
}

size_t
bulk_volume_size(const struct bulk *b)
{
	return b->n;
}

/* bulk_note_unsubless - one more bulk message nobody can unsubscribe from */
void
bulk_note_unsubless(struct bulk *b, const char *sender)
{
	b->unsubless++;
	util_strlcpy(b->last_sender, sender, sizeof(b->last_sender));
}

unsigned long
bulk_unsubless(const struct bulk *b, const char **last_sender)
{
	if (last_sender)
		*last_sender = b->last_sender;
	return b->unsubless;
}
