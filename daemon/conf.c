/*
 * conf - load outpost.conf (INI) into a struct conf. See conf.h.
 *
 * Every key is declared once in `settings[]` below: section kind, name,
 * type, default (as text, parsed by the same code as a value from the
 * file: conf_value.c), range and where it lands in the struct. libinih
 * does the INI tokenising; we feed it lines through our own reader so we
 * know the line number of everything (this libinih passes no line to the
 * handler), can refuse over-long lines instead of letting inih split them,
 * and can see section headers ourselves (inih does not report empty
 * sections).
 *
 * Input is trusted to the extent that the admin wrote it, but every value
 * is range-checked and every buffer is bounded: a bad file yields one
 * "path:line: message" per problem, never a crash or a silent default.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ini.h>

#include "conf.h"
#include "conf_int.h"
#include "log.h"
#include "util.h"

#ifndef LOCALSTATEDIR
#define LOCALSTATEDIR "/var"
#endif

#define SECRET_MAX 4096         /* upstream password file */
#define LABEL_MAX (HOST_MAX + 16) /* "[upstream NAME]" for messages */
#define MSG_MAX 512

static const char *const kind_names[] = {
	[K_SERVER] = "server", [K_LISTEN] = "listen", [K_UPSTREAM] = "upstream",
	[K_DOMAIN] = "domain", [K_QUEUE] = "queue", [K_UNSUBSCRIBE] = "unsubscribe",
};

/* The whole file as we met it: one entry per section instance. */
struct sect {
	enum kind kind;
	size_t idx;             /* in listens/upstreams/domains */
	int line;
	char label[LABEL_MAX];
	int *keyline;           /* per setting: line where it was set, or 0 */
};

#define CUR_NONE  (-1)      /* before any section header */
#define CUR_SKIP  (-2)      /* inside a bad section: keys are ignored */

static const struct enumval tls_vals[] = {
	{ "starttls", CONF_TLS_STARTTLS }, { "implicit", CONF_TLS_IMPLICIT },
	{ "none", CONF_TLS_NONE }, { NULL, 0 } };
static const struct enumval auth_vals[] = {
	{ "required", CONF_AUTH_REQUIRED }, { "optional", CONF_AUTH_OPTIONAL },
	{ NULL, 0 } };
static const struct enumval unsigned_vals[] = {
	{ "reject", CONF_UNSIGNED_REJECT }, { "relay", CONF_UNSIGNED_RELAY },
	{ NULL, 0 } };
static const struct enumval arc_vals[] = {
	{ "auto", CONF_ARC_AUTO }, { "always", CONF_ARC_ALWAYS }, { "never", CONF_ARC_NEVER },
	{ NULL, 0 } };
static const struct enumval bulk_vals[] = {
	{ "warn", CONF_BULK_WARN }, { "reject", CONF_BULK_REJECT }, { NULL, 0 } };
static const struct enumval level_vals[] = {
	{ "info", 0 }, { "debug", 1 }, { NULL, 0 } };

_Static_assert(sizeof(enum conf_tls) == sizeof(int), "enums are stored as int");
_Static_assert(sizeof(enum conf_auth) == sizeof(int), "enums are stored as int");
_Static_assert(sizeof(enum conf_unsigned) == sizeof(int), "enums are stored as int");
_Static_assert(sizeof(enum conf_arc) == sizeof(int), "enums are stored as int");
_Static_assert(sizeof(enum conf_bulk_policy) == sizeof(int), "enums are stored as int");

#define FIELD(st, f) .off = offsetof(st, f), .size = sizeof(((st *)0)->f)
#define SRV(f)  .kind = K_SERVER, FIELD(struct conf_server, f)
#define LSN(f)  .kind = K_LISTEN, FIELD(struct conf_listen, f)
#define UPS(f)  .kind = K_UPSTREAM, FIELD(struct conf_upstream, f)
#define DOM(f)  .kind = K_DOMAIN, FIELD(struct conf_domain, f)
#define QUE(f)  .kind = K_QUEUE, FIELD(struct conf_queue, f)
#define UNS(f)  .kind = K_UNSUBSCRIBE, FIELD(struct conf_unsubscribe, f)
#define HOSTNAME .check = conf_value_check_host, \
	.expect = "a host name such as relay.example.com"
#define COUNT_MAX 1000000000LL  /* daily limits: far above any provider's */

static const struct setting settings[] = {
	/* [server] */
	{ SRV(hostname), .key = "hostname", .type = T_STR, HOSTNAME },
	{ SRV(state_dir), .key = "state_dir", .type = T_PATH,
	  .def = LOCALSTATEDIR "/lib/outpost" },
	{ SRV(users_file), .key = "users_file", .type = T_PATH },
	{ SRV(user), .key = "user", .type = T_STR, .def = "outpost",
	  .check = conf_value_check_user,
	  .expect = "the name of an existing account other than root, such as outpost" },
	{ SRV(metrics_listen), .key = "metrics_listen", .type = T_STR,
	  .def = "127.0.0.1:9587", .check = conf_value_check_metrics,
	  .expect = "an IP address and port such as 127.0.0.1:9587, or no" },
	{ SRV(trusted), .key = "trusted_networks", .type = T_NETS,
	  .noff = offsetof(struct conf_server, ntrusted), .def = "127.0.0.0/8, ::1" },
	{ SRV(max_message_size), .key = "max_message_size", .type = T_SIZE,
	  .def = "25M", .min = 1024, .max = 512 * MEG },
	{ SRV(max_recipients), .key = "max_recipients", .type = T_INT,
	  .def = "100", .min = 1, .max = 100000 },
	{ SRV(max_header_size), .key = "max_header_size", .type = T_SIZE,
	  .def = "256k", .min = 1024, .max = 16 * MEG },
	{ SRV(max_connections), .key = "max_connections", .type = T_INT,
	  .def = "1000", .min = 1, .max = 1000000 },
	{ SRV(max_connections_per_ip), .key = "max_connections_per_ip", .type = T_INT,
	  .def = "50", .min = 1, .max = 1000000 },
	{ SRV(timeout_command), .key = "timeout_command", .type = T_DUR,
	  .def = "300", .min = 1, .max = DAY },
	{ SRV(timeout_data), .key = "timeout_data", .type = T_DUR,
	  .def = "180", .min = 1, .max = DAY },
	{ SRV(timeout_tls), .key = "timeout_tls", .type = T_DUR,
	  .def = "30", .min = 1, .max = DAY },
	{ SRV(auth_max_failures), .key = "auth_max_failures", .type = T_INT,
	  .def = "3", .min = 1, .max = 1000 },
	{ SRV(auth_failure_delay), .key = "auth_failure_delay", .type = T_DUR,
	  .def = "2", .min = 0, .max = 60 },
	{ SRV(auth_penalty_window), .key = "auth_penalty_window", .type = T_DUR,
	  .def = "600", .min = 1, .max = DAY },
	{ SRV(postmaster), .key = "postmaster", .type = T_STR,
	  .check = conf_value_check_mailaddr,
	  .expect = "an address such as admin@example.com" },
	{ SRV(rbl), .key = "rbl", .type = T_STR, .check = conf_value_check_hostlist,
	  .expect = "a comma list of DNS block list zones",
	  .def = "zen.spamhaus.org, bl.spamcop.net, b.barracudacentral.org,"
	  " dnsbl-1.uceprotect.net" },
	{ SRV(check_interval), .key = "check_interval", .type = T_DUR,
	  .def = "6h", .min = 0, .max = 30 * DAY },
	{ SRV(default_upstream), .key = "default_upstream", .type = T_STR,
	  .check = conf_value_check_name, .expect = "an upstream name" },
	{ SRV(unsigned_policy), .key = "unsigned", .type = T_ENUM,
	  .def = "reject", .enums = unsigned_vals },
	{ SRV(dns_server), .key = "dns_server", .type = T_STR, .check = conf_value_check_dns,
	  .expect = "an IP address with an optional port, such as 127.0.0.1:53" },
	{ SRV(signer_threads), .key = "signer_threads", .type = T_INT,
	  .def = "0", .min = 0, .max = 64 },
	{ SRV(debug), .key = "log_level", .type = T_ENUM, .def = "info",
	  .enums = level_vals },
	{ SRV(user_rate), .key = "user_rate", .type = T_RATE },
	{ SRV(user_daily_limit), .key = "user_daily_limit", .type = T_COUNT,
	  .def = "0", .min = 0, .max = COUNT_MAX },
	{ SRV(bulk_threshold), .key = "bulk_threshold", .type = T_INT,
	  .def = "100", .min = 0, .max = 1000000 },
	{ SRV(bulk_without_unsubscribe), .key = "bulk_without_unsubscribe", .type = T_ENUM,
	  .def = "warn", .enums = bulk_vals },

	/* [listen NAME] */
	{ LSN(host), .key = "address", .type = T_LISTEN_ADDR, .required = 1 },
	{ LSN(tls), .key = "tls", .type = T_ENUM, .def = "starttls", .enums = tls_vals },
	{ LSN(auth), .key = "auth", .type = T_ENUM, .def = "required", .enums = auth_vals },
	{ LSN(cert), .key = "cert", .type = T_PATH },
	{ LSN(key), .key = "key", .type = T_PATH },
	{ LSN(forward), .key = "forward", .type = T_BOOL, .def = "no" },

	/* [upstream NAME] */
	{ UPS(host), .key = "address", .type = T_UPSTREAM_ADDR, .required = 1 },
	{ UPS(tls), .key = "tls", .type = T_ENUM, .def = "starttls", .enums = tls_vals },
	{ UPS(tls_verify), .key = "tls_verify", .type = T_BOOL, .def = "yes" },
	{ UPS(ca_file), .key = "ca_file", .type = T_PATH },
	{ UPS(tls_name), .key = "tls_name", .type = T_STR, HOSTNAME },
	{ UPS(username), .key = "username", .type = T_STR },
	{ UPS(password_file), .key = "password_file", .type = T_PATH },
	{ UPS(helo), .key = "helo", .type = T_STR, HOSTNAME },
	{ UPS(max_connections), .key = "max_connections", .type = T_INT,
	  .def = "4", .min = 1, .max = 1000 },
	{ UPS(max_messages_per_connection), .key = "max_messages_per_connection",
	  .type = T_INT, .def = "100", .min = 1, .max = 100000 },
	{ UPS(idle_timeout), .key = "idle_timeout", .type = T_DUR,
	  .def = "30", .min = 1, .max = DAY },
	{ UPS(down_time), .key = "down_time", .type = T_DUR,
	  .def = "30", .min = 1, .max = 3600 },
	{ UPS(connect_timeout), .key = "connect_timeout", .type = T_DUR,
	  .def = "30", .min = 1, .max = DAY },
	{ UPS(greeting_timeout), .key = "greeting_timeout", .type = T_DUR,
	  .def = "300", .min = 1, .max = DAY },
	{ UPS(command_timeout), .key = "command_timeout", .type = T_DUR,
	  .def = "300", .min = 1, .max = DAY },
	{ UPS(data_timeout), .key = "data_timeout", .type = T_DUR,
	  .def = "120", .min = 1, .max = DAY },
	{ UPS(data_block_timeout), .key = "data_block_timeout", .type = T_DUR,
	  .def = "180", .min = 1, .max = DAY },
	{ UPS(data_done_timeout), .key = "data_done_timeout", .type = T_DUR,
	  .def = "600", .min = 1, .max = DAY },
	{ UPS(rate), .key = "rate", .type = T_RATE },
	{ UPS(recipient_rate), .key = "recipient_rate", .type = T_RATE },
	{ UPS(daily_limit), .key = "daily_limit", .type = T_COUNT,
	  .def = "0", .min = 0, .max = COUNT_MAX },
	{ UPS(daily_rcpt_limit), .key = "daily_rcpt_limit", .type = T_COUNT,
	  .def = "0", .min = 0, .max = COUNT_MAX },
	{ UPS(domain_rates), .key = "domain_rate", .type = T_RATES,
	  .noff = offsetof(struct conf_upstream, ndomain_rates) },
	{ UPS(max_daily_growth), .key = "max_daily_growth", .type = T_DECIMAL,
	  .def = "0", .min = 1, .max = 100 },
	{ UPS(growth_seed), .key = "growth_seed", .type = T_COUNT,
	  .def = "0", .min = 0, .max = COUNT_MAX },
	{ UPS(throttle_cooldown), .key = "throttle_cooldown", .type = T_DUR,
	  .def = "30", .min = 1, .max = 3600 },
	{ UPS(egress_ip), .key = "egress_ip", .type = T_STR, .check = conf_value_check_ip,
	  .expect = "an IPv4 or IPv6 address" },
	{ UPS(recover_after), .key = "recover_after", .type = T_INT,
	  .def = "20", .min = 1, .max = 100000 },

	/* [domain NAME] */
	{ DOM(upstreams), .key = "upstream", .type = T_NAMES,
	  .noff = offsetof(struct conf_domain, nupstreams) },
	{ DOM(dkim_keys), .key = "dkim_key", .type = T_DKIM_KEYS, .repeat = 1,
	  .noff = offsetof(struct conf_domain, ndkim_keys) },
	{ DOM(dkim_subdomains), .key = "dkim_subdomains", .type = T_BOOL, .def = "no" },
	{ DOM(refuse_when_failing), .key = "refuse_when_failing", .type = T_BOOL,
	  .def = "no" },
	{ DOM(arc), .key = "arc", .type = T_ENUM, .def = "auto", .enums = arc_vals },
	{ DOM(unsubscribe), .key = "unsubscribe", .type = T_BOOL, .def = "no" },
	{ DOM(bulk), .key = "bulk", .type = T_BOOL, .def = "no" },
	{ DOM(forward_return_path), .key = "forward_return_path", .type = T_STR,
	  .check = conf_value_check_mailaddr,
	  .expect = "an address such as bounces@example.com" },

	/* [queue] */
	{ QUE(retry), .key = "retry", .type = T_DURS,
	  .noff = offsetof(struct conf_queue, nretry),
	  .def = "1m, 5m, 15m, 30m, 1h", .min = 1, .max = 7 * DAY },
	/* 1s minimums: tests and trials see expiry and delay DSNs in seconds */
	{ QUE(max_lifetime), .key = "max_lifetime", .type = T_DUR,
	  .def = "5d", .min = 1, .max = 60 * DAY },
	{ QUE(delay_warning), .key = "delay_warning", .type = T_DUR,
	  .def = "4h", .min = 1, .max = 60 * DAY },
	{ QUE(scan_interval), .key = "scan_interval", .type = T_DUR,
	  .def = "1s", .min = 1, .max = 3600 },
	/* 0: a suppression never expires */
	{ QUE(suppress_expiry), .key = "suppress_expiry", .type = T_DUR,
	  .def = "90d", .min = 0, .max = 3650 * DAY },
	{ QUE(soft_bounce_limit), .key = "soft_bounce_limit", .type = T_INT,
	  .def = "5", .min = 0, .max = 1000 },
	{ QUE(soft_bounce_period), .key = "soft_bounce_period", .type = T_DUR,
	  .def = "3d", .min = 1, .max = 365 * DAY },

	/* [unsubscribe] */
	{ UNS(listen), .key = "listen", .type = T_STR, .def = "no",
	  .check = conf_value_check_metrics,
	  .expect = "an IP address and port such as 127.0.0.1:8025, or no" },
	{ UNS(url), .key = "url", .type = T_STR, .check = conf_value_check_url,
	  .expect = "a base URL such as https://lists.example.com" },
	{ UNS(token_lifetime), .key = "token_lifetime", .type = T_DUR,
	  .def = "365d", .min = 60, .max = 3650 * DAY },
};

#define NSETTINGS ARRAY_LEN(settings)

static void conf_report(struct ctx *x, int line, const char *tag, const char *fmt,
    va_list ap) PRINTF_LIKE(4, 0);
static void conf_err(struct ctx *x, int line, const char *fmt, ...) PRINTF_LIKE(3, 4);
static void conf_warn(struct ctx *x, int line, const char *fmt, ...) PRINTF_LIKE(3, 4);

/* conf_report - one "path:line: message" (line 0: "path: message") */
static void
conf_report(struct ctx *x, int line, const char *tag, const char *fmt, va_list ap)
{
	char msg[1024];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (x->errs == NULL)
		return;
	if (line > 0)
		fprintf(x->errs, "%s:%d: %s%s\n", x->path, line, tag, msg);
	else
		fprintf(x->errs, "%s: %s%s\n", x->path, tag, msg);
}

/* conf_err - report an error and count it */
static void
conf_err(struct ctx *x, int line, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	conf_report(x, line, "", fmt, ap);
	va_end(ap);
	x->nerr++;
}

/* conf_warn - report something legal but unwise; not counted */
static void
conf_warn(struct ctx *x, int line, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	conf_report(x, line, "warning: ", fmt, ap);
	va_end(ap);
}

/* sect_base - the struct a section instance fills */
static void *
sect_base(struct conf *c, enum kind kind, size_t idx)
{
	switch (kind) {
	case K_SERVER: return &c->server;
	case K_LISTEN: return &c->listens[idx];
	case K_UPSTREAM: return &c->upstreams[idx];
	case K_DOMAIN: return &c->domains[idx];
	case K_QUEUE: return &c->queue;
	case K_UNSUBSCRIBE: return &c->unsub;
	}
	return NULL;
}

/* apply_defaults - every default of a section kind; they must parse */
static void
apply_defaults(struct ctx *x, enum kind kind, void *base)
{
	char msg[MSG_MAX];

	for (size_t i = 0; i < NSETTINGS; i++) {
		const struct setting *s = &settings[i];
		if (s->kind == kind && s->def != NULL &&
		    conf_value_set(x, s, base, s->def, msg, sizeof(msg)) < 0)
			fatalx("conf: default of %s does not parse: %s", s->key, msg);
	}
}

/* sect_add - record a section instance */
static struct sect *
sect_add(struct ctx *x, enum kind kind, size_t idx, int line, const char *name)
{
	struct sect *s;

	x->sects = xreallocarray(x->sects, x->nsects + 1, sizeof(*x->sects));
	s = &x->sects[x->nsects];
	x->cur = (long)x->nsects++;
	s->kind = kind;
	s->idx = idx;
	s->line = line;
	s->keyline = xcalloc(NSETTINGS, sizeof(int));
	if (name && *name)
		snprintf(s->label, sizeof(s->label), "[%s %s]", kind_names[kind], name);
	else
		snprintf(s->label, sizeof(s->label), "[%s]", kind_names[kind]);
	return s;
}

/* sect_find - an earlier instance of the same kind and name */
static struct sect *
sect_find(struct ctx *x, enum kind kind, const char *name)
{
	for (size_t i = 0; i < x->nsects; i++) {
		struct sect *s = &x->sects[i];
		const char *n = NULL;
		if (s->kind != kind)
			continue;
		switch (kind) {
		case K_LISTEN: n = x->c->listens[s->idx].name; break;
		case K_UPSTREAM: n = x->c->upstreams[s->idx].name; break;
		case K_DOMAIN: n = x->c->domains[s->idx].name; break;
		default: return s;
		}
		if (util_strcaseeq(n, name))
			return s;
	}
	return NULL;
}

/* new_instance - grow the array for a repeatable section; returns index */
static size_t
new_instance(struct ctx *x, enum kind kind, const char *name, int line)
{
	struct conf *c = x->c;
	size_t i;

	switch (kind) {
	case K_LISTEN:
		i = c->nlistens++;
		c->listens = xreallocarray(c->listens, c->nlistens, sizeof(*c->listens));
		memset(&c->listens[i], 0, sizeof(c->listens[i]));
		util_strlcpy(c->listens[i].name, name, sizeof(c->listens[i].name));
		c->listens[i].line = line;
		break;
	case K_UPSTREAM:
		i = c->nupstreams++;
		c->upstreams = xreallocarray(c->upstreams, c->nupstreams, sizeof(*c->upstreams));
		memset(&c->upstreams[i], 0, sizeof(c->upstreams[i]));
		util_strlcpy(c->upstreams[i].name, name, sizeof(c->upstreams[i].name));
		c->upstreams[i].line = line;
		break;
	case K_DOMAIN:
		i = c->ndomains++;
		c->domains = xreallocarray(c->domains, c->ndomains, sizeof(*c->domains));
		memset(&c->domains[i], 0, sizeof(c->domains[i]));
		util_strlcpy(c->domains[i].name, name, sizeof(c->domains[i].name));
		util_strlower(c->domains[i].name);
		c->domains[i].line = line;
		break;
	default:
		return 0;
	}
	apply_defaults(x, kind, sect_base(c, kind, i));
	return i;
}

/* section_begin - a "[kind name]" header; text is what is inside [] */
static void
section_begin(struct ctx *x, char *text)
{
	char *kw = util_strtrim(text), *name = kw;
	struct sect *prev;
	size_t max;
	int kind = -1;

	x->cur = CUR_SKIP;
	while (*name && *name != ' ' && *name != '\t')
		name++;
	if (*name)
		*name++ = '\0';
	name = util_strtrim(name);
	for (size_t i = 0; i < ARRAY_LEN(kind_names); i++)
		if (strcmp(kw, kind_names[i]) == 0)
			kind = (int)i;
	if (kind < 0) {
		conf_err(x, x->lineno, "unknown section [%s]", kw);
		return;
	}
	if (kind == K_SERVER || kind == K_QUEUE || kind == K_UNSUBSCRIBE) {
		if (*name)
			conf_err(x, x->lineno, "[%s] takes no name", kw);
		if ((prev = sect_find(x, (enum kind)kind, "")) != NULL) {
			conf_err(x, x->lineno, "duplicate section [%s] (first on line %d)",
			    kw, prev->line);
			x->cur = prev - x->sects;
			return;
		}
		sect_add(x, (enum kind)kind, 0, x->lineno, NULL);
		return;
	}
	if (*name == '\0') {
		conf_err(x, x->lineno, "[%s] needs a name, as in [%s NAME]", kw, kw);
		return;
	}
	max = kind == K_DOMAIN ? HOST_MAX : CONF_NAME_MAX;
	if (strlen(name) >= max || (kind == K_DOMAIN ? conf_value_check_host(name) :
	    conf_value_check_name(name)) < 0) {
		conf_err(x, x->lineno, "[%s %s]: bad name: use at most %zu letters,"
		    " digits, '.', '-'%s", kw, name, max - 1, kind == K_DOMAIN ? "" : " and '_'");
		return;
	}
	if ((prev = sect_find(x, (enum kind)kind, name)) != NULL) {
		conf_err(x, x->lineno, "duplicate section [%s %s] (first on line %d)",
		    kw, name, prev->line);
		return;
	}
	sect_add(x, (enum kind)kind, new_instance(x, (enum kind)kind, name, x->lineno),
	    x->lineno, name);
}

/* finish_line - a key line inih could not parse never reached the handler */
static void
finish_line(struct ctx *x)
{
	if (x->line_is_key && x->handled != x->lineno)
		conf_err(x, x->lineno, "expected 'key = value' or '[section]'");
	x->line_is_key = 0;
}

/* conf_reader - fgets for inih that counts lines and sees section headers.
 * inih calls it once per line with its INI_MAX_LINE buffer. */
static char *
conf_reader(char *str, int num, void *stream)
{
	struct ctx *x = stream;
	char *p, *end;
	size_t n = 0;
	int ch = EOF, nul = 0;

	finish_line(x);
	if (num < 3)
		return NULL;
	/* getc rather than fgets: the same, but a NUL byte cannot hide the
	 * end of the line from us. */
	while (n + 1 < (size_t)num && (ch = getc(x->f)) != EOF) {
		nul |= ch == '\0';
		str[n++] = (char)ch;
		if (ch == '\n')
			break;
	}
	str[n] = '\0';
	if (n == 0)
		return NULL;
	x->lineno++;
	if (ch != '\n' && ch != EOF && (ch = getc(x->f)) != EOF && ch != '\n') {
		/* Longer than inih's INI_MAX_LINE: skip it whole rather than
		 * let inih parse the tail as a line of its own. */
		while ((ch = getc(x->f)) != EOF && ch != '\n')
			;
		conf_err(x, x->lineno, "line too long (at most %d characters)", num - 1);
		str[0] = '\0';
		return str;
	}
	if (nul) {
		conf_err(x, x->lineno, "NUL byte in line");
		str[0] = '\0';
		return str;
	}
	/* A UTF-8 BOM, then leading blanks: gone, so that an indented key is
	 * a key and never an inih continuation line. */
	p = str;
	if (x->lineno == 1 && memcmp(p, "\xEF\xBB\xBF", 3) == 0)
		p += 3;
	while (*p == ' ' || *p == '\t')
		p++;
	memmove(str, p, strlen(p) + 1);
	if (str[0] == '[') {
		/* Mirror inih: the header ends at ']' unless a " ;" comment
		 * comes first. */
		for (end = str + 1; *end && *end != ']'; end++)
			if (*end == ';' && (end[-1] == ' ' || end[-1] == '\t'))
				break;
		if (*end != ']') {
			conf_err(x, x->lineno, "expected ']' at the end of the section header");
			x->cur = CUR_SKIP;
			str[0] = '\0';
			return str;
		}
		*end = '\0';
		section_begin(x, str + 1);
		str[0] = '\0';  /* inih need not see it: we track sections */
		return str;
	}
	p = util_strtrim(str);
	x->line_is_key = *p != '\0' && *p != ';' && *p != '#';
	return str;
}

/* setting_find - the table row for a key in a section kind */
static long
setting_find(enum kind kind, const char *key)
{
	for (size_t i = 0; i < NSETTINGS; i++)
		if (settings[i].kind == kind && strcmp(settings[i].key, key) == 0)
			return (long)i;
	return -1;
}

/* conf_handler - one "key = value" from inih */
static int
conf_handler(void *user, const char *section, const char *name, const char *value)
{
	struct ctx *x = user;
	struct sect *s;
	char msg[MSG_MAX];
	long i;

	x->handled = x->lineno;
	if (x->cur == CUR_SKIP)
		return 1;
	if (x->cur == CUR_NONE) {
		conf_err(x, x->lineno, "key '%s' outside of a section", name);
		return 1;
	}
	s = &x->sects[x->cur];
	if (*name == '\0') {
		conf_err(x, x->lineno, "missing key name before '='");
		return 1;
	}
	if ((i = setting_find(s->kind, name)) < 0) {
		conf_err(x, x->lineno, "unknown key '%s' in %s", name, s->label);
		return 1;
	}
	if (s->keyline[i] && !settings[i].repeat) {
		conf_err(x, x->lineno, "duplicate key '%s' in %s (first on line %d)",
		    name, s->label, s->keyline[i]);
		return 1;
	}
	if (s->keyline[i] == 0)
		s->keyline[i] = x->lineno;
	if (conf_value_set(x, &settings[i], sect_base(x->c, s->kind, s->idx), value,
	    msg, sizeof(msg)) < 0)
		conf_err(x, x->lineno, "%s: %s", name, msg);
	return 1;
}

/* key_line - where a key was set in a section, else the header's line */
static int
key_line(const struct sect *s, const char *key)
{
	long i = setting_find(s->kind, key);

	return (i >= 0 && s->keyline[i]) ? s->keyline[i] : s->line;
}

/* key_set - was the key given in this section instance? */
static int
key_set(const struct sect *s, const char *key)
{
	long i = setting_find(s->kind, key);

	return i >= 0 && s->keyline[i] != 0;
}

/* check_file - can we open it for reading, and is it a file? */
static int
check_file(struct ctx *x, int line, const char *key, const char *path)
{
	struct stat st;
	int fd, e = 0;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) < 0)
		e = errno;
	else if (fstat(fd, &st) < 0)
		e = errno;
	else if (S_ISDIR(st.st_mode))
		e = EISDIR;
	if (fd >= 0)
		close(fd);
	if (e) {
		conf_err(x, line, "%s %s: %s", key, path, strerror(e));
		return -1;
	}
	return 0;
}

/* finish_server - computed defaults for [server] */
static void
finish_server(struct ctx *x)
{
	struct conf_server *sv = &x->c->server;
	long n;

	if (sv->hostname[0] == '\0') {
		if (gethostname(sv->hostname, sizeof(sv->hostname)) < 0 ||
		    sv->hostname[0] == '\0')
			util_strlcpy(sv->hostname, "localhost", sizeof(sv->hostname));
		sv->hostname[sizeof(sv->hostname) - 1] = '\0';
	}
	if (sv->postmaster[0] == '\0') {
		util_strlcpy(sv->postmaster, "postmaster@", sizeof(sv->postmaster));
		util_strlcat(sv->postmaster, sv->hostname, sizeof(sv->postmaster));
	}
	if (sv->signer_threads == 0) {
		n = sysconf(_SC_NPROCESSORS_ONLN);
		sv->signer_threads = n < 1 ? 1 : n > 64 ? 64 : (int)n;
	}
}

/* finish_listen - address given, TLS material present and readable */
static void
finish_listen(struct ctx *x, const struct sect *s)
{
	struct conf_listen *l = &x->c->listens[s->idx];

	if (l->tls == CONF_TLS_NONE)
		return;
	if (l->cert[0] == '\0')
		conf_err(x, s->line, "%s: cert is required unless tls = none", s->label);
	else
		check_file(x, key_line(s, "cert"), "cert", l->cert);
	if (l->key[0] == '\0')
		conf_err(x, s->line, "%s: key is required unless tls = none", s->label);
	else
		check_file(x, key_line(s, "key"), "key", l->key);
}

/* finish_upstream - credentials, TLS policy, computed defaults */
static void
finish_upstream(struct ctx *x, const struct sect *s)
{
	struct conf_upstream *u = &x->c->upstreams[s->idx];
	int line;

	if (u->helo[0] == '\0')
		util_strlcpy(u->helo, x->c->server.hostname, sizeof(u->helo));
	if (u->is_maildir)
		return;
	if (u->tls_name[0] == '\0')
		util_strlcpy(u->tls_name, u->host, sizeof(u->tls_name));
	if (u->ca_file[0])
		check_file(x, key_line(s, "ca_file"), "ca_file", u->ca_file);
	if (u->username[0] == '\0') {
		if (u->password_file[0])
			conf_warn(x, key_line(s, "password_file"), "upstream %s:"
			    " password_file without username is not used", u->name);
	} else if (u->tls == CONF_TLS_NONE) {
		/* RFC 4954 14: never send a password without TLS. */
		conf_err(x, key_line(s, "username"), "upstream %s: AUTH over an"
		    " unencrypted connection is refused; set tls = starttls or implicit",
		    u->name);
	} else if (u->password_file[0] == '\0') {
		conf_err(x, key_line(s, "username"), "upstream %s: password_file is"
		    " required when username is set", u->name);
	} else {
		line = key_line(s, "password_file");
		u->password = util_read_file(u->password_file, SECRET_MAX, NULL);
		if (u->password == NULL)
			conf_err(x, line, "password_file %s: %s", u->password_file,
			    errno == EFBIG ? "file too large" : strerror(errno));
		else if (u->password[0] == '\0')
			conf_err(x, line, "password_file %s: file is empty", u->password_file);
	}
	if (u->tls == CONF_TLS_NONE && u->username[0] == '\0')
		conf_warn(x, key_line(s, "tls"), "upstream %s: tls = none sends mail"
		    " and passwords in clear", u->name);
}

/* add_local_upstream - the embedded default: a Maildir under state_dir */
static void
add_local_upstream(struct ctx *x)
{
	struct conf *c = x->c;
	struct conf_upstream *u;
	size_t i = new_instance(x, K_UPSTREAM, "local", 0);

	u = &c->upstreams[i];
	u->is_maildir = 1;
	if ((size_t)snprintf(u->maildir, sizeof(u->maildir), "%s/outbox",
	    c->server.state_dir) >= sizeof(u->maildir))
		conf_err(x, 0, "state_dir too long for the default upstream's Maildir");
	util_strlcpy(u->helo, c->server.hostname, sizeof(u->helo));
}

/* finish - cross-section checks once the whole file is read */
static void
finish(struct ctx *x)
{
	struct conf *c = x->c;
	const struct sect *srv = NULL;

	finish_server(x);
	if (c->nlistens == 0)
		conf_err(x, 0, "no [listen] section");
	if (c->nupstreams == 0)
		add_local_upstream(x);
	for (size_t i = 0; i < x->nsects; i++) {
		const struct sect *s = &x->sects[i];

		for (size_t k = 0; k < NSETTINGS; k++)
			if (settings[k].kind == s->kind && settings[k].required &&
			    !s->keyline[k])
				conf_err(x, s->line, "%s: %s is required", s->label,
				    settings[k].key);
		if (s->kind == K_SERVER)
			srv = s;
		else if (s->kind == K_LISTEN && key_set(s, "address"))
			finish_listen(x, s);
		else if (s->kind == K_UPSTREAM && key_set(s, "address"))
			finish_upstream(x, s);
		else if (s->kind == K_UNSUBSCRIBE)
			c->unsub.line = s->line;
		else if (s->kind == K_DOMAIN) {
			const struct conf_domain *d = &c->domains[s->idx];
			for (size_t j = 0; j < d->nupstreams; j++)
				if (conf_upstream_find(c, d->upstreams[j]) == NULL)
					conf_err(x, key_line(s, "upstream"),
					    "unknown upstream '%s'", d->upstreams[j]);
		}
	}
	/* One-click unsubscribe needs the endpoint and the public URL. */
	for (size_t i = 0; i < x->nsects; i++) {
		const struct sect *s = &x->sects[i];

		if (s->kind == K_DOMAIN && c->domains[s->idx].unsubscribe &&
		    (strcmp(c->unsub.listen, "no") == 0 || c->unsub.url[0] == '\0'))
			conf_err(x, key_line(s, "unsubscribe"), "%s: unsubscribe = yes needs"
			    " [unsubscribe] listen and url (the endpoint outpost serves and"
			    " its public https:// address)", s->label);
	}
	for (size_t i = 0; i < c->nlistens; i++)
		for (size_t j = 0; j < i; j++)
			if (c->listens[i].port && c->listens[i].port == c->listens[j].port &&
			    strcmp(c->listens[i].host, c->listens[j].host) == 0)
				conf_err(x, c->listens[i].line, "[listen %s]: same address"
				    " as [listen %s]", c->listens[i].name, c->listens[j].name);
	if (c->server.default_upstream[0] == '\0')
		util_strlcpy(c->server.default_upstream, c->upstreams[0].name,
		    sizeof(c->server.default_upstream));
	else if (conf_upstream_find(c, c->server.default_upstream) == NULL)
		conf_err(x, srv ? key_line(srv, "default_upstream") : 0,
		    "default_upstream: unknown upstream '%s'", c->server.default_upstream);
}

/* config_dir - absolute directory of the config file, symlinks kept */
static int
config_dir(const char *path, char *dir, size_t len)
{
	char cwd[PATH_MAX];
	const char *slash = strrchr(path, '/');
	int n;

	if (path[0] == '/') {
		n = snprintf(dir, len, "%.*s", slash == path ? 1 : (int)(slash - path), path);
	} else {
		if (getcwd(cwd, sizeof(cwd)) == NULL)
			return -1;
		if (slash)
			n = snprintf(dir, len, "%s/%.*s", cwd, (int)(slash - path), path);
		else
			n = snprintf(dir, len, "%s", cwd);
	}
	return (n < 0 || (size_t)n >= len) ? -1 : 0;
}

/* conf_load - parse, check, resolve; all errors reported */
int
conf_load(const char *path, FILE *errs, struct conf **out)
{
	struct ctx x;
	struct conf *c;
	int r;

	*out = NULL;
	memset(&x, 0, sizeof(x));
	x.path = path;
	x.errs = errs;
	x.cur = CUR_NONE;
	if (strlen(path) >= sizeof(c->path) || config_dir(path, x.dir, sizeof(x.dir)) < 0) {
		conf_err(&x, 0, "path too long");
		return x.nerr;
	}
	if ((x.f = fopen(path, "re")) == NULL) {
		conf_err(&x, 0, "%s", strerror(errno));
		return x.nerr;
	}
	c = x.c = xcalloc(1, sizeof(*c));
	util_strlcpy(c->path, path, sizeof(c->path));
	apply_defaults(&x, K_SERVER, &c->server);
	apply_defaults(&x, K_QUEUE, &c->queue);
	apply_defaults(&x, K_UNSUBSCRIBE, &c->unsub);

	r = ini_parse_stream(conf_reader, &x, conf_handler, &x);
	finish_line(&x);
	if (ferror(x.f))
		conf_err(&x, 0, "read error: %s", strerror(errno));
	else if (r < 0)
		conf_err(&x, 0, "out of memory while parsing");
	fclose(x.f);
	finish(&x);

	for (size_t i = 0; i < x.nsects; i++)
		free(x.sects[i].keyline);
	free(x.sects);
	if (x.nerr) {
		conf_free(c);
		return x.nerr;
	}
	*out = c;
	return 0;
}

/* conf_free - release a loaded config, wiping the secrets */
void
conf_free(struct conf *c)
{
	if (c == NULL)
		return;
	free(c->server.trusted);
	free(c->listens);
	for (size_t i = 0; i < c->nupstreams; i++) {
		char *pw = c->upstreams[i].password;
		if (pw) {
			util_wipe(pw, strlen(pw));
			free(pw);
		}
		free(c->upstreams[i].domain_rates);
	}
	free(c->upstreams);
	for (size_t i = 0; i < c->ndomains; i++) {
		for (size_t j = 0; j < c->domains[i].nupstreams; j++)
			free(c->domains[i].upstreams[j]);
		free(c->domains[i].upstreams);
		free(c->domains[i].dkim_keys);
	}
	free(c->domains);
	free(c);
}

/* conf_upstream_find - an upstream by name (case-insensitive) */
const struct conf_upstream *
conf_upstream_find(const struct conf *c, const char *name)
{
	for (size_t i = 0; i < c->nupstreams; i++)
		if (util_strcaseeq(c->upstreams[i].name, name))
			return &c->upstreams[i];
	return NULL;
}

/* conf_domain_find - a [domain] section by name (case-insensitive) */
const struct conf_domain *
conf_domain_find(const struct conf *c, const char *domain)
{
	for (size_t i = 0; i < c->ndomains; i++)
		if (util_strcaseeq(c->domains[i].name, domain))
			return &c->domains[i];
	return NULL;
}

/* conf_parse_net - "10.0.0.0/8", "::1", "::ffff:10.0.0.0/104" into a conf_net */
int
conf_parse_net(const char *s, struct conf_net *out)
{
	static const unsigned char v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	char buf[INET6_ADDRSTRLEN + 8], *slash;
	struct conf_net n;
	long long prefix = -1;
	int max;

	if (util_strlcpy(buf, s, sizeof(buf)) >= sizeof(buf))
		return -1;
	memset(&n, 0, sizeof(n));
	if ((slash = strchr(buf, '/')) != NULL) {
		*slash++ = '\0';
		if (strlen(slash) > 3 || *slash < '0' || *slash > '9' ||
		    conf_value_parse_ll(slash, &prefix) < 0)
			return -1;
	}
	if (inet_pton(AF_INET, buf, n.addr) == 1) {
		n.family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, buf, n.addr) == 1) {
		n.family = AF_INET6;
		max = 128;
	} else {
		return -1;
	}
	if (prefix > max)
		return -1;
	n.prefix = prefix < 0 ? max : (int)prefix;
	/* ::ffff:a.b.c.d/N is a v4 network: peers are matched as v4. */
	if (n.family == AF_INET6 && n.prefix >= 96 &&
	    memcmp(n.addr, v4mapped, sizeof(v4mapped)) == 0) {
		memmove(n.addr, n.addr + 12, 4);
		memset(n.addr + 4, 0, 12);
		n.family = AF_INET;
		n.prefix -= 96;
	}
	/* Clear host bits so matching compares whole bytes. */
	for (int bit = n.prefix; bit < (n.family == AF_INET ? 32 : 128); bit++)
		n.addr[bit / 8] &= (unsigned char)~(0x80u >> (bit % 8));
	*out = n;
	return 0;
}

/* conf_net_match - is this peer inside the network? v4-mapped peers as v4 */
int
conf_net_match(const struct conf_net *n, const struct sockaddr *sa)
{
	const unsigned char *a;
	int family, full, rest;

	if (sa->sa_family == AF_INET) {
		a = (const unsigned char *)&((const struct sockaddr_in *)(const void *)sa)->sin_addr;
		family = AF_INET;
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)(const void *)sa;
		a = s6->sin6_addr.s6_addr;
		family = AF_INET6;
		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
			a += 12;
			family = AF_INET;
		}
	} else {
		return 0;
	}
	if (family != n->family)
		return 0;
	full = n->prefix / 8;
	rest = n->prefix % 8;
	if (memcmp(a, n->addr, (size_t)full) != 0)
		return 0;
	if (rest == 0)
		return 1;
	return ((a[full] ^ n->addr[full]) & (0xff00u >> rest) & 0xff) == 0;
}

/* conf_is_trusted - is the peer inside trusted_networks? */
int
conf_is_trusted(const struct conf *c, const struct sockaddr *sa)
{
	for (size_t i = 0; i < c->server.ntrusted; i++)
		if (conf_net_match(&c->server.trusted[i], sa))
			return 1;
	return 0;
}
