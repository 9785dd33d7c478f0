/*
 * unsub - the per-sender unsubscribes in memory. See unsub.h.
 *
 * A chained hash table keyed by the pair (FNV-1a over sender NUL rcpt,
 * both lower-cased), doubled when it holds more entries than buckets,
 * so the check at RCPT is one short chain walk, like suppress.c.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "store.h"
#include "unsub.h"
#include "util.h"

#define UNSUB_BUCKETS_MIN 64

struct unsub {
	struct unsub_entry **buckets;
	size_t nbuckets;
	size_t n, max;
	int warned;                 /* the "set full" line was logged */
};

/* unsub_key - addr lower-cased into key; -1 if it does not fit */
static int
unsub_key(const char *addr, char key[ADDR_MAX + 1])
{
	if (addr == NULL || strlen(addr) > ADDR_MAX)
		return -1;
	util_strlcpy(key, addr, ADDR_MAX + 1);
	util_strlower(key);
	return 0;
}

/* unsub_hash - FNV-1a over sender, a NUL, and rcpt */
static size_t
unsub_hash(const char *sender, const char *rcpt)
{
	uint64_t h = 1469598103934665603ULL;

	for (const char *p = sender; ; p++) {
		h ^= (unsigned char)*p;
		h *= 1099511628211ULL;
		if (*p == '\0')
			break;
	}
	for (const char *p = rcpt; *p; p++) {
		h ^= (unsigned char)*p;
		h *= 1099511628211ULL;
	}
	return (size_t)h;
}

/* unsub_new - an empty set of at most max pairs */
struct unsub *
unsub_new(size_t max)
{
	struct unsub *set = xcalloc(1, sizeof(*set));

	set->nbuckets = UNSUB_BUCKETS_MIN;
	set->buckets = xcalloc(set->nbuckets, sizeof(*set->buckets));
	set->max = max;
	return set;
}

/* unsub_entry_free - one entry */
static void
unsub_entry_free(struct unsub_entry *e)
{
	free(e->sender);
	free(e->rcpt);
	free(e);
}

/* unsub_free - the set and every entry */
void
unsub_free(struct unsub *set)
{
	struct unsub_entry *e, *next;

	if (set == NULL)
		return;
	for (size_t i = 0; i < set->nbuckets; i++) {
		for (e = set->buckets[i]; e; e = next) {
			next = e->next;
			unsub_entry_free(e);
		}
	}
	free(set->buckets);
	free(set);
}

/* unsub_slot - where the pair's entry is (or would be linked) */
static struct unsub_entry **
unsub_slot(const struct unsub *set, const char *sender, const char *rcpt)
{
	struct unsub_entry **e;

	for (e = &set->buckets[unsub_hash(sender, rcpt) % set->nbuckets]; *e; e = &(*e)->next)
		if (strcmp((*e)->rcpt, rcpt) == 0 && strcmp((*e)->sender, sender) == 0)
			break;
	return e;
}

/* unsub_grow - double the buckets and rehash */
static void
unsub_grow(struct unsub *set)
{
	size_t n = set->nbuckets * 2;
	struct unsub_entry **b = xcalloc(n, sizeof(*b)), *e, *next;

	for (size_t i = 0; i < set->nbuckets; i++) {
		for (e = set->buckets[i]; e; e = next) {
			size_t h = unsub_hash(e->sender, e->rcpt) % n;

			next = e->next;
			e->next = b[h];
			b[h] = e;
		}
	}
	free(set->buckets);
	set->buckets = b;
	set->nbuckets = n;
}

/* unsub_add - insert one pair, or leave the one there */
int
unsub_add(struct unsub *set, const char *sender, const char *rcpt, const char *list,
    time_t at)
{
	char ks[ADDR_MAX + 1], kr[ADDR_MAX + 1];
	struct unsub_entry *e, **slot;

	if (unsub_key(sender, ks) < 0 || unsub_key(rcpt, kr) < 0)
		return -1;
	if (*(slot = unsub_slot(set, ks, kr)) != NULL)
		return 0;
	if (set->n >= set->max) {
		if (!set->warned)
			log_warn("unsubscribes: %zu entries, the limit: no more are kept"
			    " in memory", set->max);
		set->warned = 1;
		return -1;
	}
	e = xcalloc(1, sizeof(*e));
	e->sender = xstrdup(ks);
	e->rcpt = xstrdup(kr);
	util_strlcpy(e->list, list ? list : "", sizeof(e->list));
	e->at = at;
	*slot = e;
	if (++set->n > set->nbuckets)
		unsub_grow(set);
	return 1;
}

/* unsub_find - the entry of (sender, rcpt), or NULL */
const struct unsub_entry *
unsub_find(const struct unsub *set, const char *sender, const char *rcpt)
{
	char ks[ADDR_MAX + 1], kr[ADDR_MAX + 1];

	if (set == NULL || set->n == 0 || unsub_key(sender, ks) < 0 ||
	    unsub_key(rcpt, kr) < 0)
		return NULL;
	return *unsub_slot(set, ks, kr);
}

/* unsub_remove - forget one pair */
int
unsub_remove(struct unsub *set, const char *sender, const char *rcpt)
{
	char ks[ADDR_MAX + 1], kr[ADDR_MAX + 1];
	struct unsub_entry *e, **slot;

	if (unsub_key(sender, ks) < 0 || unsub_key(rcpt, kr) < 0)
		return 0;
	if ((e = *(slot = unsub_slot(set, ks, kr))) == NULL)
		return 0;
	*slot = e->next;
	unsub_entry_free(e);
	set->n--;
	return 1;
}

size_t
unsub_count(const struct unsub *set)
{
	return set ? set->n : 0;
}

/* unsub_load_one - store callback: one row into the set */
static void
unsub_load_one(const struct store_unsub_row *r, void *arg)
{
	unsub_add(arg, r->sender, r->rcpt, r->list, r->at);
}

/* unsub_load - the store's unsubscribes into set */
int
unsub_load(struct unsub *set, struct store *s)
{
	return store_load_unsubs(s, unsub_load_one, set);
}
