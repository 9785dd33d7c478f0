/*
 * conf_int - internal to conf.c and conf_value.c; not for other modules
 * (they use conf.h).
 *
 * conf.c owns the settings table and the loading: the line reader fed to
 * libinih, sections, the key handler, defaults, the checks once the file
 * is read and the "file:line: message" reports. conf_value.c turns one
 * value's text into its field, by the setting's type, and holds the
 * validators that the table names in .check. The table's row (struct
 * setting) and the load context (struct ctx) are defined here because
 * both work on them: a value parser needs the row for its type, range and
 * field, and the context for the config file's directory and line.
 */
#ifndef OUTPOST_CONF_INT_H
#define OUTPOST_CONF_INT_H

#include <limits.h>
#include <stddef.h>
#include <stdio.h>

struct conf;
struct sect;

#define DAY 86400LL
#define MEG (1024LL * 1024)

enum kind { K_SERVER, K_LISTEN, K_UPSTREAM, K_DOMAIN, K_QUEUE, K_UNSUBSCRIBE };

enum type {
	T_STR,          /* char[size], optionally checked by .check */
	T_PATH,         /* char[size], relative -> config file's directory */
	T_BOOL,         /* int: yes/no/true/false/1/0 */
	T_INT,          /* int in [min, max] */
	T_SIZE,         /* size_t in [min, max], "25M" */
	T_DUR,          /* long seconds in [min, max], "5m" */
	T_ENUM,         /* int from .enums */
	T_LISTEN_ADDR,  /* conf_listen host + port */
	T_UPSTREAM_ADDR, /* conf_upstream host + port, or maildir */
	T_NETS,         /* struct conf_net * at off, size_t count at noff */
	T_NAMES,        /* char ** at off, size_t count at noff */
	T_DURS,         /* long[] at off (size bytes), size_t count at noff */
	T_DKIM_KEYS,    /* struct conf_dkim_key * at off, size_t count at noff */
	T_COUNT,        /* unsigned long in [min, max], plain digits */
	T_DECIMAL,      /* double, "2" or "1.5", 0 or in [min, max] */
	T_RATE,         /* struct throttle_rate, "N/second|minute|hour" */
	T_RATES,        /* struct throttle_domain_rate * at off, count at noff */
};

struct enumval {
	const char *name;
	int value;
};

struct setting {
	enum kind kind;
	const char *key;
	enum type type;
	const char *def;        /* default, parsed as a value; NULL: none or computed */
	size_t off, size, noff;
	long long min, max;
	const struct enumval *enums;
	int (*check)(const char *v);    /* T_STR: 0 if acceptable */
	const char *expect;     /* T_STR: what check wants, for the message */
	int required;
	int repeat;             /* may be given on several lines; each adds */
};

struct ctx {
	struct conf *c;
	const char *path;
	FILE *errs;
	FILE *f;
	char dir[PATH_MAX];     /* absolute directory of the config file */
	int lineno;
	int line_is_key;        /* current line should have reached the handler */
	int handled;            /* line number the handler last ran for */
	struct sect *sects;
	size_t nsects;
	long cur;               /* index in sects, or CUR_* (conf.c) */
	int nerr;
};

/* conf_value.c: validators for T_STR (.check); 0 if acceptable */
int conf_value_check_host(const char *v);
int conf_value_check_hostlist(const char *v);
int conf_value_check_ip(const char *v);
int conf_value_check_dns(const char *v);
int conf_value_check_user(const char *v);
int conf_value_check_metrics(const char *v);
int conf_value_check_url(const char *v);
int conf_value_check_mailaddr(const char *v);
int conf_value_check_name(const char *v);

/* conf_value.c: parsers */
int conf_value_parse_ll(const char *v, long long *out);
int conf_value_set(struct ctx *x, const struct setting *s, void *base, const char *v,
    char *msg, size_t len);

#endif
