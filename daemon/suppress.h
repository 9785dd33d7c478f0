/*
 * suppress - the suppression list in memory: addresses that bounced as a
 * bad mailbox (or that the admin added), refused at RCPT until they
 * expire or are removed.
 *
 * API: suppress_new(max) / suppress_free; suppress_add() inserts or
 * refreshes one address (first_seen kept); suppress_find() answers
 * whether an address is suppressed now; suppress_load() fills a set from
 * the store's suppressions table (synchronous, see store.h).
 *
 * The same structure counts soft failures (a set of its own, kept by the
 * scheduler): suppress_soft_note() adds one temporary mailbox failure of
 * an address, suppress_remove() forgets it after a delivery, and
 * suppress_soft_load() reads the store's soft_failures table at start.
 *
 * The key is the whole address lower-cased: the domain is
 * case-insensitive (RFC 5321 2.4), and a relay that refuses Bob@x.org
 * but accepts bob@x.org would only confuse its users. Addresses and
 * replies are kept as given (reply text is the upstream's, untrusted:
 * whoever prints it escapes it). The set is bounded: beyond max entries
 * suppress_add refuses and logs once. Loop thread only.
 */
#ifndef OUTPOST_SUPPRESS_H
#define OUTPOST_SUPPRESS_H

#include <stddef.h>
#include <time.h>

struct store;
struct suppress;

#define SUPPRESS_MAX_DEFAULT 1000000
#define SUPPRESS_REASON_MAX 64
#define SUPPRESS_REPLY_MAX 512

struct suppress_entry {
	char *addr;                 /* lower-cased */
	char reason[SUPPRESS_REASON_MAX];
	char *reply;                /* "" if none */
	time_t first_seen;
	time_t expires_at;          /* 0: never */
	unsigned count;             /* soft failures: how many so far */
	time_t last_seen;           /* soft failures: the latest */
	struct suppress_entry *next;
};

struct suppress *suppress_new(size_t max);
void suppress_free(struct suppress *set);
/* Insert or refresh addr. Returns 0, or -1 when the set is full or the
 * address too long. */
int suppress_add(struct suppress *set, const char *addr, const char *reason,
    const char *reply, time_t first_seen, time_t expires_at);
/* The entry suppressing addr at time now, or NULL (also when expired). */
const struct suppress_entry *suppress_find(const struct suppress *set,
    const char *addr, time_t now);
size_t suppress_count(const struct suppress *set);
/* Add every unexpired row of the store's table: 0 or -1. */
int suppress_load(struct suppress *set, struct store *s);
/* Forget addr: 1 if it was there, else 0. */
int suppress_remove(struct suppress *set, const char *addr);

/* One more soft failure of addr at now. A run whose latest failure is
 * older than period is stale and starts again at one (first_seen = now).
 * Returns the entry (count, first_seen, last_seen), or NULL when the set
 * is full or the address too long. */
const struct suppress_entry *suppress_soft_note(struct suppress *soft,
    const char *addr, const char *reply, time_t now, long period);
/* The store's soft_failures rows into a soft set: 0 or -1. */
int suppress_soft_load(struct suppress *soft, struct store *s);

#endif
