/*
 * throttle - pacing of outbound mail toward one upstream: rate specs, token
 * buckets, rolling-day counters with a warm-up (spike) guard, adaptive
 * backoff on throttling replies, per-user limits and the retry schedule.
 *
 * The module is pure: no event loop, no SQLite, no clock of its own. Every
 * function takes `now`, wall-clock seconds since the epoch as a double (the
 * rolling-day counters are persisted and must survive a reboot, so a
 * monotonic clock would not do). A clock that steps back is tolerated: time
 * simply does not advance until it catches up.
 *
 * API
 *   throttle_parse_rate / throttle_parse_domain_rates  config values
 *   throttle_bucket_*        token bucket (continuous refill)
 *   throttle_new / _when / _commit / _on_throttled / _on_success / _state
 *                            per-upstream controller
 *   throttle_daily_export / _import    rolling-day counters for SQLite
 *   throttle_users_*         per-authenticated-user limits (hash table)
 *   throttle_retry_delay     [queue] retry schedule
 *
 * Input trusted: config text is checked here; reply texts passed to
 * throttle_on_throttled come from the upstream and are sanitized before
 * they are kept.
 */
#ifndef OUTPOST_THROTTLE_H
#define OUTPOST_THROTTLE_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

/* ---- rate specs ------------------------------------------------------- */

/* "N/second" etc.: N events per `period` seconds (1, 60 or 3600). N is a
 * positive integer; n == 0 means "no limit" in a config struct. */
struct throttle_rate {
	unsigned long n;
	long period;
};

/* Accepts "N/second", "N/sec", "N/s", "N/minute", "N/min", "N/m",
 * "N/hour", "N/h" (case-insensitive, blanks around the parts allowed).
 * Returns 0, or -1 with a message in err. */
int throttle_parse_rate(const char *s, struct throttle_rate *out,
    char *err, size_t errlen);
/* Events per second; 0 for an unset rate. */
double throttle_rate_per_sec(const struct throttle_rate *r);
/* Default bucket capacity for a rate: one second's worth, at least 1.
 * So 10/second bursts 10, 600/minute bursts 10, 20/minute and 250/hour
 * burst 1 (strict pacing: a slow limit is usually a provider's hard one). */
double throttle_rate_burst(const struct throttle_rate *r);

struct throttle_domain_rate {
	char domain[HOST_MAX];          /* lower case */
	struct throttle_rate rate;
};

/* "gmail.com:20/minute, yahoo.com:10/minute" -> malloc'd array in *out
 * (free() it), count in *n. An empty list gives *out = NULL, *n = 0.
 * A domain named twice is an error. Returns 0 or -1 with err set. */
int throttle_parse_domain_rates(const char *s,
    struct throttle_domain_rate **out, size_t *n, char *err, size_t errlen);

/* ---- token bucket ----------------------------------------------------- */

struct throttle_bucket {
	double rate;            /* tokens per second; 0 = unlimited */
	double burst;           /* capacity */
	double tokens;
	double last;            /* time of the last refill */
};

/* A new bucket starts full. */
void throttle_bucket_init(struct throttle_bucket *b, double rate,
    double burst, double now);
/* Change the refill rate (adaptive backoff); the capacity becomes one
 * second's worth (at least 1), tokens earned so far are kept up to it. */
void throttle_bucket_set_rate(struct throttle_bucket *b, double rate,
    double now);
/* Seconds until n tokens are available (0 = now); consumes nothing.
 * A request larger than the capacity is granted when the bucket is full
 * and then drives it negative, so the long-run rate still holds. */
double throttle_bucket_wait(struct throttle_bucket *b, double n, double now);
/* 0 if n tokens were available and are now consumed, else the wait in
 * seconds until they will be (nothing consumed). */
double throttle_bucket_take(struct throttle_bucket *b, double n, double now);

/* ---- per-upstream controller ------------------------------------------ */

/* Adaptive backoff knobs. Defaults (throttle_params_default):
 *   backoff_factor    0.5     rate multiplier on a throttling reply
 *   floor             1/minute  the rate never goes below this
 *   cooldown_initial  30 s    first suspension
 *   cooldown_max      3600 s  suspension cap
 *   cooldown_window   3600 s  an event within this time of the previous
 *                             one doubles the suspension, else it resets
 *   success_streak    20      successes needed for one recovery step
 *   recover_step      0.25    step, as a fraction of the configured rate
 */
struct throttle_params {
	double backoff_factor;
	struct throttle_rate floor;
	double cooldown_initial;
	double cooldown_max;
	double cooldown_window;
	unsigned success_streak;
	double recover_step;
};

void throttle_params_default(struct throttle_params *p);

/* One [upstream] section's limits. Zero/unset fields mean "no limit".
 * domain_rates is copied by throttle_new. */
struct throttle_config {
	struct throttle_rate rate;              /* messages */
	struct throttle_rate recipient_rate;    /* recipients */
	unsigned long daily_limit;              /* messages per rolling 24 h */
	unsigned long daily_rcpt_limit;         /* recipients per rolling 24 h */
	const struct throttle_domain_rate *domain_rates; /* recipients */
	size_t ndomain_rates;
	double max_daily_growth;        /* e.g. 2.0; 0 = no spike guard */
	unsigned long growth_seed;      /* daily volume assumed without
					 * history, and the least cap */
	struct throttle_params params;
};

/* Rolling-day counters: 5-minute slots over 24 h. A slot is counted until
 * it lies entirely outside the last 24 h, so no true 24 h window ever
 * holds more than the limit; a send is released 24 h to 24 h 5 min later. */
#define THROTTLE_SLOT_SEC 300
#define THROTTLE_DAY_SEC 86400
#define THROTTLE_SLOTS (THROTTLE_DAY_SEC / THROTTLE_SLOT_SEC + 1)
/* Spike guard: average over this many completed UTC days. */
#define THROTTLE_HISTORY_DAYS 7
#define THROTTLE_REASON_MAX 200

struct throttle;

struct throttle *throttle_new(const struct throttle_config *cfg, double now);
void throttle_free(struct throttle *t);

/* May a message with nrcpt recipients start now? rcpt_domains holds the
 * domain of each recipient (nrcpt entries, duplicates allowed; may be
 * NULL to skip domain pacing). Returns 0 if yes, else the absolute time
 * (> now) at which it may. Never consumes. */
double throttle_when(struct throttle *t, const char *const *rcpt_domains,
    size_t nrcpt, double now);
/* Account for a message handed to the upstream. */
void throttle_commit(struct throttle *t, const char *const *rcpt_domains,
    size_t nrcpt, double now);

/* A throttling reply (421, 4xx 4.7.x, "rate limit"...): the current rate
 * is multiplied by backoff_factor (not below floor) and the upstream is
 * suspended for a cool-down. Replies that arrive while it is already
 * suspended come from transactions started before and only update the
 * reason. The recipient rate scales with the message rate. A floor at or
 * above the configured rate leaves the rate alone (the suspension still
 * applies). Without a configured rate the rate sent over the last minute
 * is taken as the refused one, and recovery lifts the limit again once
 * back there. Returns the end of the suspension. */
double throttle_on_throttled(struct throttle *t, const char *reason,
    double now);
/* A delivered message: every success_streak of them raises the current
 * rate by recover_step of the configured rate, up to exactly it. */
void throttle_on_success(struct throttle *t, double now);

struct throttle_status {
	double rate_configured;         /* messages/s; 0 = unlimited */
	double rate_current;            /* messages/s; 0 = unlimited */
	double suspended_until;         /* 0 = not suspended */
	char reason[THROTTLE_REASON_MAX]; /* last throttling reply, or "" */
	unsigned long day_msgs;         /* rolling 24 h */
	unsigned long day_rcpts;
	unsigned long day_limit;        /* effective message limit, 0 = none */
	unsigned long day_rcpt_limit;   /* 0 = none */
	unsigned long growth_cap;       /* spike guard's share; 0 = off */
	int cooldown_level;             /* 0 first, +1 per repeat */
	double cooldown;                /* length of the last suspension */
	unsigned long throttle_events;
	unsigned success_streak;
};

void throttle_state(struct throttle *t, double now,
    struct throttle_status *st);

/* ---- persistence of the day counters ---------------------------------- */

struct throttle_slot {
	int64_t start;          /* seconds, a multiple of THROTTLE_SLOT_SEC */
	unsigned long msgs, rcpts;
};

struct throttle_day {
	int64_t day;            /* UTC days since the epoch */
	unsigned long msgs;
};

struct throttle_daily {
	struct throttle_slot slots[THROTTLE_SLOTS];
	size_t nslots;
	struct throttle_day days[THROTTLE_HISTORY_DAYS + 1]; /* today too */
	size_t ndays;
	int64_t first_day;      /* first day with history; -1 = none */
};

/* Only non-empty slots and days still relevant at `now` are exported. */
void throttle_daily_export(struct throttle *t, double now,
    struct throttle_daily *out);
/* Replaces the counters; entries too old for `now` are ignored, starts
 * are aligned down to a slot. */
void throttle_daily_import(struct throttle *t, const struct throttle_daily *in,
    double now);

/* ---- per-user limits --------------------------------------------------- */

struct throttle_user_config {
	struct throttle_rate user_rate;         /* recipients; n == 0: none */
	unsigned long user_daily_limit;         /* recipients per rolling day */
	double alert_window;    /* one alert per user per this; default 86400 */
	size_t max_users;       /* table size; default 4096 */
};

struct throttle_user;
struct throttle_users;

/* alert_window and max_users of 0 take their defaults. */
struct throttle_users *throttle_users_new(const struct throttle_user_config *c);
void throttle_users_free(struct throttle_users *tbl);
/* nrcpt more recipients for `user` at RCPT time: returns 1 (allowed and
 * counted) or 0 (answer 451 4.7.1; nothing counted). *alert is set to 1
 * on a refusal when the admin has not been alerted about this user within
 * alert_window, else 0. */
int throttle_user_check(struct throttle_users *tbl, const char *user,
    unsigned nrcpt, double now, int *alert);
/* Drop entries idle for a day (their state equals a fresh one).
 * Returns how many were dropped. Also done when the table is full. */
size_t throttle_users_expire(struct throttle_users *tbl, double now);
size_t throttle_users_count(const struct throttle_users *tbl);

/* ---- retry schedule ---------------------------------------------------- */

#define THROTTLE_RETRY_CAP 14400L       /* 4 h */
#define THROTTLE_RETRY_BASE 60L         /* first delay when no steps */

/* Delay in seconds before retry number `attempt` (0 = first retry):
 * steps[attempt] while listed (exact), then the last step doubled per
 * further attempt, capped at max(THROTTLE_RETRY_CAP, last step), with
 * +-20% jitter from jitter_unit in [0, 1] (0.5 = none); jitter never
 * takes a delay above the cap. */
long throttle_retry_delay(const long *steps, size_t nsteps, int attempt,
    double jitter_unit);

#endif
