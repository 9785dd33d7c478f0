/*
 * unsub - recipients who unsubscribed from one sender (one-click
 * unsubscribe, RFC 8058, issue 10), in memory: mail from that sender to
 * that recipient is refused at RCPT; mail from other senders is not.
 *
 * API: unsub_new(max) / unsub_free; unsub_add() inserts a (sender,
 * recipient) pair, keeping the first date (a second unsubscribe changes
 * nothing); unsub_find() answers whether sender may no longer write to
 * rcpt; unsub_remove() forgets a pair; unsub_load() fills a set from the
 * store's unsubscribes table (synchronous, see store.h).
 *
 * Keys are both addresses lower-cased (RFC 5321 2.4, as suppress.h).
 * The list name is kept as given (it came from our own token ledger).
 * Bounded: beyond max entries unsub_add refuses and logs once. Loop
 * thread only.
 */
#ifndef OUTPOST_UNSUB_H
#define OUTPOST_UNSUB_H

#include <stddef.h>
#include <time.h>

struct store;
struct unsub;

#define UNSUB_MAX_DEFAULT 1000000
#define UNSUB_LIST_MAX 128

struct unsub_entry {
	char *sender;               /* lower-cased */
	char *rcpt;                 /* lower-cased */
	char list[UNSUB_LIST_MAX];  /* "" if none */
	time_t at;                  /* when it was recorded */
	struct unsub_entry *next;
};

struct unsub *unsub_new(size_t max);
void unsub_free(struct unsub *set);
/* Insert (sender, rcpt): 1 added, 0 already there (its date kept), -1
 * when the set is full or an address too long. */
int unsub_add(struct unsub *set, const char *sender, const char *rcpt,
    const char *list, time_t at);
/* The entry when rcpt unsubscribed from sender, or NULL. */
const struct unsub_entry *unsub_find(const struct unsub *set, const char *sender,
    const char *rcpt);
/* Forget (sender, rcpt): 1 if it was there, else 0. */
int unsub_remove(struct unsub *set, const char *sender, const char *rcpt);
size_t unsub_count(const struct unsub *set);
/* Add every row of the store's table: 0 or -1. */
int unsub_load(struct unsub *set, struct store *s);

#endif
