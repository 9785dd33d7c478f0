/*
 * suppress - the in-memory suppression list. See suppress.h.
 *
 * A chained hash table keyed by the lower-cased address (FNV-1a), doubled
 * when it holds more entries than buckets, so a lookup at RCPT is one
 * short chain walk. Expired entries stay until the next load (a reload
 * or restart skips them); suppress_find treats them as absent.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "store.h"
#include "suppress.h"
#include "util.h"

#define SUPPRESS_BUCKETS_MIN 64

struct suppress {
	struct suppress_entry **buckets;
	size_t nbuckets;
	size_t n, max;
	int warned;                 /* the "list full" line was logged */
};

/* suppress_key - addr lower-cased into key; -1 if it does not fit */
static int
suppress_key(const char *addr, char key[ADDR_MAX + 1])
{
	if (strlen(addr) > ADDR_MAX)
		return -1;
	util_strlcpy(key, addr, ADDR_MAX + 1);
	util_strlower(key);
	return 0;
}

/* suppress_hash - FNV-1a over the key */
static size_t
suppress_hash(const char *key)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *key; key++) {
		h ^= (unsigned char)*key;
		h *= 1099511628211ULL;
	}
	return (size_t)h;
}

/* suppress_new - an empty set of at most max addresses */
struct suppress *
suppress_new(size_t max)
{
	struct suppress *set = xcalloc(1, sizeof(*set));

	set->nbuckets = SUPPRESS_BUCKETS_MIN;
	set->buckets = xcalloc(set->nbuckets, sizeof(*set->buckets));
	set->max = max;
	return set;
}

/* suppress_free - the set and every entry */
void
suppress_free(struct suppress *set)
{
	struct suppress_entry *e, *next;

	if (set == NULL)
		return;
	for (size_t i = 0; i < set->nbuckets; i++) {
		for (e = set->buckets[i]; e; e = next) {
			next = e->next;
			free(e->addr);
			free(e->reply);
			free(e);
		}
	}
	free(set->buckets);
	free(set);
}

/* suppress_lookup - the entry for a key, expired or not */
static struct suppress_entry *
suppress_lookup(const struct suppress *set, const char *key)
{
	struct suppress_entry *e;

	for (e = set->buckets[suppress_hash(key) % set->nbuckets]; e; e = e->next)
		if (strcmp(e->addr, key) == 0)
			return e;
	return NULL;
}

/* suppress_grow - double the buckets and rehash */
static void
suppress_grow(struct suppress *set)
{
	size_t n = set->nbuckets * 2;
	struct suppress_entry **b = xcalloc(n, sizeof(*b)), *e, *next;

	for (size_t i = 0; i < set->nbuckets; i++) {
		for (e = set->buckets[i]; e; e = next) {
			size_t h = suppress_hash(e->addr) % n;

			next = e->next;
			e->next = b[h];
			b[h] = e;
		}
	}
	free(set->buckets);
	set->buckets = b;
	set->nbuckets = n;
}

/* suppress_reply_dup - a bounded copy of the reply */
static char *
suppress_reply_dup(const char *reply)
{
	size_t n = reply ? strlen(reply) : 0;
	char *r;

	if (n >= SUPPRESS_REPLY_MAX)
		n = SUPPRESS_REPLY_MAX - 1;
	r = xmalloc(n + 1);
	if (n)
		memcpy(r, reply, n);
	r[n] = '\0';
	return r;
}

/* suppress_add - insert or refresh one address */
int
suppress_add(struct suppress *set, const char *addr, const char *reason,
    const char *reply, time_t first_seen, time_t expires_at)
{
	char key[ADDR_MAX + 1];
	struct suppress_entry *e;
	size_t h;

	if (suppress_key(addr, key) < 0)
		return -1;
	if ((e = suppress_lookup(set, key)) != NULL) {
		util_strlcpy(e->reason, reason ? reason : "", sizeof(e->reason));
		free(e->reply);
		e->reply = suppress_reply_dup(reply);
		e->expires_at = expires_at;
		return 0;
	}
	if (set->n >= set->max) {
		if (!set->warned)
			log_warn("suppression list full (%zu addresses); further"
			    " addresses are not suppressed", set->max);
		set->warned = 1;
		return -1;
	}
	if (set->n >= set->nbuckets)
		suppress_grow(set);
	e = xcalloc(1, sizeof(*e));
	e->addr = xstrdup(key);
	util_strlcpy(e->reason, reason ? reason : "", sizeof(e->reason));
	e->reply = suppress_reply_dup(reply);
	e->first_seen = first_seen;
	e->expires_at = expires_at;
	h = suppress_hash(key) % set->nbuckets;
	e->next = set->buckets[h];
	set->buckets[h] = e;
	set->n++;
	return 0;
}

/* suppress_remove - unlink and free addr's entry */
int
suppress_remove(struct suppress *set, const char *addr)
{
	char key[ADDR_MAX + 1];
	struct suppress_entry **pp, *e;

	if (set == NULL || set->n == 0 || suppress_key(addr, key) < 0)
		return 0;
	for (pp = &set->buckets[suppress_hash(key) % set->nbuckets]; (e = *pp);
	    pp = &e->next) {
		if (strcmp(e->addr, key) == 0) {
			*pp = e->next;
			free(e->addr);
			free(e->reply);
			free(e);
			set->n--;
			return 1;
		}
	}
	return 0;
}

/* suppress_soft_note - count one more soft failure of addr */
const struct suppress_entry *
suppress_soft_note(struct suppress *soft, const char *addr, const char *reply,
    time_t now, long period)
{
	char key[ADDR_MAX + 1];
	struct suppress_entry *e;

	if (suppress_key(addr, key) < 0)
		return NULL;
	if ((e = suppress_lookup(soft, key)) == NULL) {
		if (suppress_add(soft, key, "soft-bounce", reply, now, 0) < 0)
			return NULL;
		e = suppress_lookup(soft, key);
	} else {
		free(e->reply);
		e->reply = suppress_reply_dup(reply);
		if (now - e->last_seen > period) {
			/* a gap longer than the period: not the same outage */
			e->count = 0;
			e->first_seen = now;
		}
	}
	e->count++;
	e->last_seen = now;
	return e;
}

/* suppress_find - the unexpired entry for addr, or NULL */
const struct suppress_entry *
suppress_find(const struct suppress *set, const char *addr, time_t now)
{
	char key[ADDR_MAX + 1];
	const struct suppress_entry *e;

	if (set == NULL || set->n == 0 || suppress_key(addr, key) < 0)
		return NULL;
	if ((e = suppress_lookup(set, key)) == NULL)
		return NULL;
	if (e->expires_at != 0 && e->expires_at <= now)
		return NULL;
	return e;
}

/* suppress_count - entries held, expired ones included */
size_t
suppress_count(const struct suppress *set)
{
	return set ? set->n : 0;
}

/* suppress_load_one - store callback: one row into the set */
static void
suppress_load_one(const struct store_suppression *r, void *arg)
{
	suppress_add(arg, r->address, r->reason, r->reply, r->first_seen,
	    r->expires_at);
}

/* suppress_load - every unexpired row of the store's table */
int
suppress_load(struct suppress *set, struct store *s)
{
	return store_load_suppressions(s, suppress_load_one, set);
}

/* suppress_soft_one - store callback: one soft_failures row */
static void
suppress_soft_one(const struct store_suppression *r, void *arg)
{
	struct suppress *soft = arg;
	char key[ADDR_MAX + 1];
	struct suppress_entry *e;

	if (suppress_add(soft, r->address, "soft-bounce", r->reply, r->first_seen, 0) < 0 ||
	    suppress_key(r->address, key) < 0 || (e = suppress_lookup(soft, key)) == NULL)
		return;
	e->count = r->count;
	e->last_seen = r->last_seen;
}

/* suppress_soft_load - the soft failures counted before a restart */
int
suppress_soft_load(struct suppress *soft, struct store *s)
{
	return store_load_soft_failures(s, suppress_soft_one, soft);
}
