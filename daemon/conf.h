/*
 * conf - the configuration file (INI, parsed with libinih).
 *
 * Every setting is declared once in a table in conf.c (section, name, type,
 * default, range). Errors read "file:line: message", one per problem, and
 * conf_load() reports them all rather than stopping at the first, so
 * `outpostd -n` shows everything to fix in one run.
 *
 * Sections: [server] (one), [listen NAME]... (at least one),
 * [upstream NAME]... (none given: an embedded default "local" with
 * address = maildir:STATE_DIR/outbox), [domain NAME]..., [queue].
 *
 * The struct is immutable once loaded; a reload builds a new one.
 */
#ifndef OUTPOST_CONF_H
#define OUTPOST_CONF_H

#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/socket.h>
#include "throttle.h"
#include "util.h"

#define CONF_NAME_MAX 64
#define CONF_RETRY_MAX 32

enum conf_tls { CONF_TLS_NONE, CONF_TLS_STARTTLS, CONF_TLS_IMPLICIT };
enum conf_auth { CONF_AUTH_REQUIRED, CONF_AUTH_OPTIONAL };
enum conf_unsigned { CONF_UNSIGNED_REJECT, CONF_UNSIGNED_RELAY };
/* [domain] arc: seal forwarded mail only, all mail, or none (RFC 8617) */
enum conf_arc { CONF_ARC_AUTO, CONF_ARC_ALWAYS, CONF_ARC_NEVER };
/* [server] bulk_without_unsubscribe: bulk mail nobody can unsubscribe from */
enum conf_bulk_policy { CONF_BULK_WARN, CONF_BULK_REJECT };

/* One trusted_networks entry: address family, network bytes, prefix. */
struct conf_net {
	int family;                 /* AF_INET or AF_INET6 */
	unsigned char addr[16];
	int prefix;
};

struct conf_listen {
	char name[CONF_NAME_MAX];
	char host[HOST_MAX];        /* "" or "*" = any; "::" = any v6 */
	int port;
	enum conf_tls tls;          /* default starttls */
	enum conf_auth auth;        /* default required */
	char cert[PATH_MAX];        /* required unless tls = none */
	char key[PATH_MAX];
	int forward;                /* every user here forwards (issue 5) */
	int line;                   /* line of the section header */
};

struct conf_upstream {
	char name[CONF_NAME_MAX];
	int is_maildir;             /* address = maildir:DIR */
	char maildir[PATH_MAX];     /* absolute or relative to the cwd */
	char host[HOST_MAX];        /* otherwise host and port */
	int port;
	enum conf_tls tls;          /* default starttls */
	int tls_verify;             /* default yes */
	char ca_file[PATH_MAX];     /* "" = system store */
	char tls_name[HOST_MAX];    /* name to verify; default host */
	char username[256];         /* "" = no AUTH */
	char password_file[PATH_MAX];
	char *password;             /* read from password_file at load; secret */
	char helo[HOST_MAX];        /* default server hostname */
	int max_connections;        /* default 4 */
	int max_messages_per_connection; /* default 100 */
	long idle_timeout;          /* seconds a pooled connection may idle, 30 */
	long down_time;             /* unreachable: avoided this long (doubling on
	                             * repeats, at most 10 min), default 30 */
	/* RFC 5321 4.5.3.2 client timeouts, seconds */
	long connect_timeout;       /* 30 */
	long greeting_timeout;      /* 300 */
	long command_timeout;       /* 300: EHLO, AUTH, MAIL, RCPT, RSET, QUIT */
	long data_timeout;          /* 120: DATA initiation */
	long data_block_timeout;    /* 180: each block of the body */
	long data_done_timeout;     /* 600: reply to the final dot */
	/* Throttling (throttle.h); zero means no limit. */
	struct throttle_rate rate;  /* messages, "N/second|minute|hour" */
	struct throttle_rate recipient_rate;
	unsigned long daily_limit;  /* messages per rolling 24 h */
	unsigned long daily_rcpt_limit; /* recipients per rolling 24 h */
	struct throttle_domain_rate *domain_rates; /* per recipient domain */
	size_t ndomain_rates;
	double max_daily_growth;    /* spike guard factor, 0 = off */
	unsigned long growth_seed;  /* daily volume assumed without history */
	long throttle_cooldown;     /* first suspension on a throttling reply, 30 */
	int recover_after;          /* deliveries in a row per recovery step, 20 */
	char egress_ip[IP_STR_MAX]; /* the address receivers see; "" = resolve
	                             * the upstream host (SPF, PTR, RBL checks) */
	int line;
};

#define CONF_URL_MAX 512          /* [unsubscribe] url */
#define CONF_RBL_MAX 1024         /* [server] rbl, the whole list */
#define CONF_SELECTOR_MAX 64     /* DKIM selector (RFC 6376 3.1) */
#define CONF_DKIM_KEYS_MAX 8

/* One `dkim_key = SELECTOR:PATH` entry; the key itself is loaded and
 * checked by dkim_key.c, so that -n and outpostctl see the same errors. */
struct conf_dkim_key {
	char selector[CONF_SELECTOR_MAX];
	char path[PATH_MAX];        /* absolute */
	int line;                   /* of its dkim_key line, for key errors */
};

struct conf_domain {
	char name[HOST_MAX];        /* lower case */
	char **upstreams;           /* names, in failover order; may be empty */
	size_t nupstreams;
	struct conf_dkim_key *dkim_keys; /* dkim_key (may repeat): one signature per key */
	size_t ndkim_keys;
	int dkim_line;              /* first dkim_key line, for domain-wide errors */
	int dkim_subdomains;        /* also sign for *.NAME (relaxed alignment) */
	enum conf_arc arc;          /* default auto: seal forwarded mail */
	int refuse_when_failing;    /* 451 4.7.26 while SPF and DKIM both fail */
	int unsubscribe;            /* default no: bulk mail gets one copy per
	                             * recipient with its own RFC 8058 one-click
	                             * List-Unsubscribe (needs [unsubscribe]) */
	int bulk;                   /* default no: all of this domain's mail is
	                             * bulk (a newsletter domain) */
	char forward_return_path[ADDR_MAX + 1]; /* envelope sender of mail this
	                             * domain's accounts forward; "" = their own */
	int line;
};

struct conf_queue {
	long retry[CONF_RETRY_MAX]; /* seconds between attempts; last repeats */
	size_t nretry;              /* default 1m, 5m, 15m, 30m, 1h */
	long max_lifetime;          /* default 5d: then the message bounces */
	long delay_warning;         /* default 4h: then a delay DSN (NOTIFY=DELAY) */
	long scan_interval;         /* default 1s: how often the scheduler wakes */
	long suppress_expiry;       /* default 90d: a bad-mailbox suppression
	                             * lasts this long; 0 = for ever */
	int soft_bounce_limit;      /* default 5: a recipient whose mailbox
	                             * failed temporarily (4.1.x, 4.2.x) this
	                             * many times ... 0 = never suppress */
	long soft_bounce_period;    /* default 3d: ... across at least this
	                             * long, with no delivery in between, is
	                             * suppressed like a bad mailbox */
};

struct conf_server {
	char hostname[HOST_MAX];    /* default gethostname() */
	char state_dir[PATH_MAX];   /* default LOCALSTATEDIR/lib/outpost */
	char users_file[PATH_MAX];  /* "" = no users, AUTH always fails */
	char user[CONF_NAME_MAX];   /* default outpost: started as root, the
	                             * daemon runs as this account once its
	                             * ports are bound (never as root) */
	char metrics_listen[HOST_MAX]; /* default 127.0.0.1:9587; "no" = off:
	                             * Prometheus /metrics over HTTP */
	struct conf_net *trusted;   /* trusted_networks; default 127.0.0.0/8, ::1 */
	size_t ntrusted;
	size_t max_message_size;    /* default 25M */
	int max_recipients;         /* default 100 */
	size_t max_header_size;     /* default 256k */
	int max_connections;        /* default 1000 */
	int max_connections_per_ip; /* default 50 */
	/* RFC 5321 4.5.3.2 server timeouts, seconds */
	long timeout_command;       /* default 300: waiting for the next command */
	long timeout_data;          /* default 180: between DATA blocks */
	long timeout_tls;           /* default 30: TLS handshake */
	int auth_max_failures;      /* default 3: then 421 4.7.0 and close */
	long auth_failure_delay;    /* default 2: seconds added per failure per IP */
	long auth_penalty_window;   /* default 600: failures remembered per IP */
	char postmaster[ADDR_MAX];  /* default postmaster@hostname */
	char default_upstream[CONF_NAME_MAX]; /* default: the first upstream */
	char rbl[CONF_RBL_MAX];     /* DNS block lists for outpostctl check rbl:
	                             * comma list of zones */
	long check_interval;        /* default 6h: the daemon's own check dns of
	                             * every [domain]; 0 = never */
	enum conf_unsigned unsigned_policy;   /* default reject (DKIM issue) */
	char dns_server[HOST_MAX];  /* "" = system resolver; else ip[:port] */
	int signer_threads;         /* default: number of cores */
	int debug;                  /* log_level = debug */
	/* Per authenticated user, counted at RCPT; zero means no limit. */
	struct throttle_rate user_rate;     /* recipients */
	unsigned long user_daily_limit;     /* recipients per rolling 24 h */
	/* Bulk mail (issue 10) */
	int bulk_threshold;         /* default 100: one body from one sender to
	                             * more recipients in 24 h is bulk; 0 = off */
	enum conf_bulk_policy bulk_without_unsubscribe; /* default warn */
};

/* [unsubscribe]: the RFC 8058 endpoint outpost serves (issue 10) */
struct conf_unsubscribe {
	char listen[HOST_MAX];      /* "no" (default) or ip:port, plain HTTP
	                             * behind the office's HTTPS reverse proxy */
	char url[CONF_URL_MAX];     /* public base, "https://lists.example.com":
	                             * links are URL/u/TOKEN */
	long token_lifetime;        /* default 365d: a link works this long */
	int line;                   /* of the section header, 0 if absent */
};

struct conf {
	char path[PATH_MAX];
	struct conf_server server;
	struct conf_listen *listens;
	size_t nlistens;
	struct conf_upstream *upstreams;
	size_t nupstreams;
	struct conf_domain *domains;
	size_t ndomains;
	struct conf_queue queue;
	struct conf_unsubscribe unsub;
};

/* Parse `path`. On success returns 0 and *out; otherwise writes one
 * "path:line: message" line per error to errs, returns the error count
 * (> 0) and *out is NULL. Warnings go to errs as "path:line: warning: ...". */
int conf_load(const char *path, FILE *errs, struct conf **out);
void conf_free(struct conf *c);

const struct conf_upstream *conf_upstream_find(const struct conf *c, const char *name);
/* [domain] section for a domain (case-insensitive), or NULL. */
const struct conf_domain *conf_domain_find(const struct conf *c, const char *domain);
/* Is this peer address inside trusted_networks? v4-mapped v6 counts as v4. */
int conf_is_trusted(const struct conf *c, const struct sockaddr *sa);
/* Parse "10.0.0.0/8" or "::1" into a conf_net. Returns 0 or -1. */
int conf_parse_net(const char *s, struct conf_net *out);
int conf_net_match(const struct conf_net *n, const struct sockaddr *sa);

#endif
