/*
 * conf_value - one setting's value from text into its field. See
 * conf_int.h.
 *
 * conf_value_set() parses a value by the type of its row in conf.c's
 * settings table: booleans, numbers, sizes and durations within the row's
 * range, enums, paths (relative to the config file), listen and upstream
 * addresses, trusted networks, upstream names, retry lists, DKIM key
 * lists, rates and decimals. On failure it returns -1 with the message
 * that conf.c reports as "file:line: key: message". The
 * conf_value_check_* validators are the .check of string settings; conf.c
 * also uses them for section names.
 *
 * Input is the admin's file, trusted no further than that: every number
 * is range-checked and every copy bounded; nothing here does I/O.
 */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "conf_int.h"
#include "log.h"
#include "util.h"

#define DECIMAL_FRAC_MAX 6      /* digits after the point in a T_DECIMAL */

static char *next_item(char **cursor);

/* is_hostchar - letters, digits, '-' and '.' (RFC 1123 names) */
static int
is_hostchar(int ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	    (ch >= '0' && ch <= '9') || ch == '-' || ch == '.';
}

/* conf_value_check_host - a plausible DNS name or address literal */
int
conf_value_check_host(const char *v)
{
	unsigned char a[16];

	if (*v == '\0' || inet_pton(AF_INET6, v, a) == 1)
		return 0;
	if (*v == '.' || *v == '-')
		return -1;
	for (; *v; v++)
		if (!is_hostchar((unsigned char)*v))
			return -1;
	return 0;
}

/* conf_value_check_hostlist - a comma list of DNS names (may be empty) */
int
conf_value_check_hostlist(const char *v)
{
	char copy[CONF_RBL_MAX], *cursor = copy, *item;

	util_strlcpy(copy, v, sizeof(copy));
	while ((item = next_item(&cursor)) != NULL)
		if (*item == '\0' || conf_value_check_host(item) < 0 || strlen(item) >= HOST_MAX)
			return -1;
	return 0;
}

/* conf_value_check_ip - "" or an IPv4/IPv6 address literal */
int
conf_value_check_ip(const char *v)
{
	unsigned char a[16];

	if (*v == '\0' || inet_pton(AF_INET, v, a) == 1 || inet_pton(AF_INET6, v, a) == 1)
		return 0;
	return -1;
}

/* conf_value_check_dns - "" or an IP address, optionally with a port */
int
conf_value_check_dns(const char *v)
{
	unsigned char a[16];
	char host[HOST_MAX];
	int port;

	if (*v == '\0' || inet_pton(AF_INET, v, a) == 1 || inet_pton(AF_INET6, v, a) == 1)
		return 0;
	if (util_parse_hostport(v, host, sizeof(host), &port) < 0)
		return -1;
	if (inet_pton(AF_INET, host, a) == 1 || inet_pton(AF_INET6, host, a) == 1)
		return 0;
	return -1;
}

/* conf_value_check_user - an account name (POSIX portable characters),
 * never root: whether it exists is checked when the daemon starts */
int
conf_value_check_user(const char *v)
{
	if (*v == '\0' || *v == '-' || strcmp(v, "root") == 0)
		return -1;
	for (; *v; v++)
		if (!isalnum((unsigned char)*v) && *v != '_' && *v != '-' && *v != '.')
			return -1;
	return 0;
}

/* conf_value_check_metrics - "no", or an IP address literal with a port
 * ("127.0.0.1:9587", "[::1]:9587") */
int
conf_value_check_metrics(const char *v)
{
	unsigned char a[16];
	char host[HOST_MAX];
	int port;

	if (strcmp(v, "no") == 0)
		return 0;
	if (util_parse_hostport(v, host, sizeof(host), &port) < 0 || port <= 0)
		return -1;
	if (inet_pton(AF_INET, host, a) == 1 || inet_pton(AF_INET6, host, a) == 1)
		return 0;
	return -1;
}

/* conf_value_check_url - "" or an https:// (or http://) base URL with a
 * host and no query, fragment, space or quote: it is pasted into headers */
int
conf_value_check_url(const char *v)
{
	const char *host;

	if (*v == '\0')
		return 0;
	if (strncmp(v, "https://", 8) == 0)
		host = v + 8;
	else if (strncmp(v, "http://", 7) == 0)
		host = v + 7;
	else
		return -1;
	if (!is_hostchar((unsigned char)*host))
		return -1;
	for (; *v; v++)
		if ((unsigned char)*v <= ' ' || (unsigned char)*v >= 0x7f || strchr("?#<>\"'\\,", *v))
			return -1;
	return 0;
}

/* conf_value_check_mailaddr - "" (computed default) or local@domain */
int
conf_value_check_mailaddr(const char *v)
{
	const char *at = strrchr(v, '@');

	if (*v == '\0')
		return 0;
	if (at == NULL || at == v || conf_value_check_host(at + 1) < 0 || at[1] == '\0')
		return -1;
	for (; *v; v++)
		if ((unsigned char)*v <= ' ' || *v == '<' || *v == '>' || *v == 0x7f)
			return -1;
	return 0;
}

/* conf_value_check_name - section names: letters, digits, '.', '-', '_' */
int
conf_value_check_name(const char *v)
{
	for (; *v; v++)
		if (!is_hostchar((unsigned char)*v) && *v != '_')
			return -1;
	return 0;
}

/* fmt_num - a size or duration the way a human would write it */
static const char *
fmt_num(enum type t, long long n, char *buf, size_t len)
{
	static const struct { long long mul; char unit; } dur[] = {
		{ DAY, 'd' }, { 3600, 'h' }, { 60, 'm' }, { 1, 's' } };
	static const struct { long long mul; char unit; } size[] = {
		{ 1024 * MEG, 'G' }, { MEG, 'M' }, { 1024, 'k' } };

	if (t == T_DUR || t == T_DURS) {
		for (size_t i = 0; i < ARRAY_LEN(dur); i++)
			if (n % dur[i].mul == 0 && (n != 0 || dur[i].unit == 's')) {
				snprintf(buf, len, "%lld%c", n / dur[i].mul, dur[i].unit);
				return buf;
			}
	} else if (t == T_SIZE) {
		for (size_t i = 0; i < ARRAY_LEN(size); i++)
			if (n != 0 && n % size[i].mul == 0) {
				snprintf(buf, len, "%lld%c", n / size[i].mul, size[i].unit);
				return buf;
			}
	}
	snprintf(buf, len, "%lld", n);
	return buf;
}

/* expect_range - "expected WHAT between MIN and MAX, got 'V'" */
static int
expect_range(const struct setting *s, const char *what, const char *v, char *msg, size_t len)
{
	char lo[32], hi[32];

	snprintf(msg, len, "expected %s between %s and %s, got '%s'", what,
	    fmt_num(s->type, s->min, lo, sizeof(lo)),
	    fmt_num(s->type, s->max, hi, sizeof(hi)), v);
	return -1;
}

/* copy_str - bounded copy into a struct field */
static int
copy_str(char *dst, size_t size, const char *v, char *msg, size_t len)
{
	if (util_strlcpy(dst, v, size) >= size) {
		dst[0] = '\0';
		snprintf(msg, len, "value too long (at most %zu characters)", size - 1);
		return -1;
	}
	return 0;
}

/* resolve_path - relative paths are relative to the config file */
static int
resolve_path(struct ctx *x, const char *v, char *dst, size_t size, char *msg, size_t len)
{
	int n;

	if (*v == '\0' || *v == '/')
		return copy_str(dst, size, v, msg, len);
	n = snprintf(dst, size, "%s/%s", x->dir, v);
	if (n < 0 || (size_t)n >= size) {
		dst[0] = '\0';
		snprintf(msg, len, "path too long once made absolute, got '%s'", v);
		return -1;
	}
	return 0;
}

/* conf_value_parse_ll - a whole decimal number, sign allowed */
int
conf_value_parse_ll(const char *v, long long *out)
{
	char *end;

	if (*v == '\0')
		return -1;
	errno = 0;
	*out = strtoll(v, &end, 10);
	return (errno || *end != '\0') ? -1 : 0;
}

/* next_item - split a comma list in place; returns trimmed item or NULL */
static char *
next_item(char **cursor)
{
	char *p = *cursor, *comma;

	if (p == NULL)
		return NULL;
	comma = strchr(p, ',');
	if (comma) {
		*comma = '\0';
		*cursor = comma + 1;
	} else {
		*cursor = NULL;
	}
	return util_strtrim(p);
}

/* set_nets - T_NETS: comma list of networks, may be empty */
static int
set_nets(const struct setting *s, void *base, const char *v, char *msg, size_t len)
{
	struct conf_net **nets = (struct conf_net **)((char *)base + s->off);
	size_t *n = (size_t *)((char *)base + s->noff);
	char *copy = xstrdup(v), *cursor = copy, *item;
	struct conf_net *list = NULL;
	size_t count = 0;

	if (*util_strtrim(copy) == '\0')
		cursor = NULL;
	while ((item = next_item(&cursor)) != NULL) {
		list = xreallocarray(list, count + 1, sizeof(*list));
		if (conf_parse_net(item, &list[count]) < 0) {
			snprintf(msg, len, "expected a comma list of addresses or networks"
			    " such as 10.0.0.0/8, ::1, got '%s'", item);
			free(list);
			free(copy);
			return -1;
		}
		count++;
	}
	free(copy);
	free(*nets);
	*nets = list;
	*n = count;
	return 0;
}

/* set_names - T_NAMES: comma list of upstream names, may be empty */
static int
set_names(const struct setting *s, void *base, const char *v, char *msg, size_t len)
{
	char ***names = (char ***)((char *)base + s->off);
	size_t *n = (size_t *)((char *)base + s->noff);
	char *copy = xstrdup(v), *cursor = copy, *item;
	char **list = NULL;
	size_t count = 0;
	int bad = 0;

	if (*util_strtrim(copy) == '\0')
		cursor = NULL;
	while (!bad && (item = next_item(&cursor)) != NULL) {
		if (*item == '\0' || conf_value_check_name(item) < 0 || strlen(item) >= CONF_NAME_MAX) {
			snprintf(msg, len, "expected a comma list of upstream names, got '%s'", item);
			bad = 1;
			break;
		}
		list = xreallocarray(list, count + 1, sizeof(*list));
		list[count++] = xstrdup(item);
	}
	free(copy);
	if (bad) {
		for (size_t i = 0; i < count; i++)
			free(list[i]);
		free(list);
		return -1;
	}
	for (size_t i = 0; i < *n; i++)
		free((*names)[i]);
	free(*names);
	*names = list;
	*n = count;
	return 0;
}

/* check_selector - RFC 6376 3.1: dot-separated labels of letters,
 * digits and '-' */
static int
check_selector(const char *v)
{
	size_t label = 0;

	if (*v == '\0' || strlen(v) >= CONF_SELECTOR_MAX)
		return -1;
	for (; *v; v++) {
		if (*v == '.') {
			if (label == 0)
				return -1;
			label = 0;
		} else if (isalnum((unsigned char)*v) || (*v == '-' && label > 0)) {
			label++;
		} else {
			return -1;
		}
	}
	return label > 0 ? 0 : -1;
}

/* set_dkim_keys - T_DKIM_KEYS: "SELECTOR:PATH, SELECTOR:PATH"; a
 * repeated dkim_key line adds its keys to those of the earlier lines, so
 * long paths need not share one line (libinih's limit is 199 characters) */
static int
set_dkim_keys(struct ctx *x, const struct setting *s, void *base, const char *v,
    char *msg, size_t len)
{
	struct conf_dkim_key **keys = (struct conf_dkim_key **)((char *)base + s->off);
	size_t *n = (size_t *)((char *)base + s->noff);
	char *copy = xstrdup(v), *cursor = copy, *item, *colon;
	struct conf_dkim_key *list = NULL;
	size_t count = *n, first = *n;
	int bad = 0;

	if (count > 0) {
		list = xreallocarray(NULL, count, sizeof(*list));
		memcpy(list, *keys, count * sizeof(*list));
	}

	if (*util_strtrim(copy) == '\0')
		cursor = NULL;
	while (!bad && (item = next_item(&cursor)) != NULL) {
		colon = strchr(item, ':');
		if (colon == NULL || colon == item || colon[1] == '\0') {
			snprintf(msg, len, "expected SELECTOR:PATH[, SELECTOR:PATH...], got '%s'", item);
			bad = 1;
			break;
		}
		*colon = '\0';
		item = util_strtrim(item);
		if (check_selector(item) < 0) {
			snprintf(msg, len, "'%s' is not a DKIM selector (letters, digits, '-' "
			    "and '.', at most %d characters)", item, CONF_SELECTOR_MAX - 1);
			bad = 1;
			break;
		}
		for (size_t i = 0; i < count; i++) {
			if (util_strcaseeq(list[i].selector, item)) {
				snprintf(msg, len, "selector '%s' is given twice", item);
				bad = 1;
			}
		}
		if (!bad && count == CONF_DKIM_KEYS_MAX) {
			snprintf(msg, len, "at most %d keys per domain", CONF_DKIM_KEYS_MAX);
			bad = 1;
		}
		if (bad)
			break;
		list = xreallocarray(list, count + 1, sizeof(*list));
		memset(&list[count], 0, sizeof(list[count]));
		util_strlcpy(list[count].selector, item, sizeof(list[count].selector));
		list[count].line = x->lineno;
		if (resolve_path(x, util_strtrim(colon + 1), list[count].path,
		    sizeof(list[count].path), msg, len) < 0) {
			bad = 1;
			break;
		}
		count++;
	}
	free(copy);
	if (bad) {
		free(list);
		return -1;
	}
	free(*keys);
	*keys = list;
	*n = count;
	if (first == 0)
		((struct conf_domain *)base)->dkim_line = x->lineno;
	return 0;
}

/* set_durs - T_DURS: comma list of durations into a fixed array */
static int
set_durs(const struct setting *s, void *base, const char *v, char *msg, size_t len)
{
	long *arr = (long *)((char *)base + s->off), tmp[CONF_RETRY_MAX];
	size_t *n = (size_t *)((char *)base + s->noff), cap = s->size / sizeof(long);
	char *copy = xstrdup(v), *cursor = copy, *item;
	size_t count = 0;
	int r = 0;

	while ((item = next_item(&cursor)) != NULL) {
		if (count == cap || count == ARRAY_LEN(tmp)) {
			snprintf(msg, len, "expected at most %zu durations, got '%s'", cap, v);
			r = -1;
			break;
		}
		if (util_parse_duration(item, &tmp[count]) < 0 ||
		    tmp[count] < s->min || tmp[count] > s->max) {
			r = expect_range(s, "a comma list of durations such as 1m, 5m, 1h,"
			    " each", item, msg, len);
			break;
		}
		count++;
	}
	free(copy);
	if (r == 0) {
		memcpy(arr, tmp, count * sizeof(long));
		*n = count;
	}
	return r;
}

/* set_listen_addr - "[::]:587", "0.0.0.0:587", "*:587" */
static int
set_listen_addr(struct conf_listen *l, const char *v, char *msg, size_t len)
{
	char host[HOST_MAX];
	int port;

	if (util_parse_hostport(v, host, sizeof(host), &port) < 0 ||
	    (strcmp(host, "*") != 0 && conf_value_check_host(host) < 0)) {
		snprintf(msg, len, "expected host:port, [v6]:port or *:port, got '%s'", v);
		return -1;
	}
	util_strlcpy(l->host, host, sizeof(l->host));
	l->port = port;
	return 0;
}

/* set_upstream_addr - "smtp.example.com:587" or "maildir:DIR" */
static int
set_upstream_addr(struct ctx *x, struct conf_upstream *u, const char *v, char *msg, size_t len)
{
	char host[HOST_MAX];
	int port;

	if (strncmp(v, "maildir:", 8) == 0) {
		if (v[8] == '\0') {
			snprintf(msg, len, "expected maildir:DIR with a directory, got '%s'", v);
			return -1;
		}
		if (resolve_path(x, v + 8, u->maildir, sizeof(u->maildir), msg, len) < 0)
			return -1;
		u->is_maildir = 1;
		u->host[0] = '\0';
		u->port = 0;
		return 0;
	}
	if (util_parse_hostport(v, host, sizeof(host), &port) < 0 || host[0] == '\0' ||
	    conf_value_check_host(host) < 0) {
		snprintf(msg, len, "expected host:port or maildir:DIR, got '%s'", v);
		return -1;
	}
	util_strlcpy(u->host, host, sizeof(u->host));
	u->port = port;
	u->is_maildir = 0;
	u->maildir[0] = '\0';
	return 0;
}

/* parse_decimal - "2", "2.0", "1.25": digits with at most one point and
 * DECIMAL_FRAC_MAX digits after it. Built by hand rather than with
 * strtod, which also takes exponents, hex, inf/nan and follows the
 * locale's decimal separator. */
static int
parse_decimal(const char *v, double *out)
{
	double ip = 0, frac = 0, scale = 1;
	size_t ndig = 0, nfrac = 0;
	const char *p = v;

	for (; *p >= '0' && *p <= '9'; p++, ndig++) {
		if (ndig >= 9)
			return -1;
		ip = ip * 10 + (*p - '0');
	}
	if (*p == '.') {
		for (p++; *p >= '0' && *p <= '9'; p++, nfrac++) {
			if (nfrac >= DECIMAL_FRAC_MAX)
				return -1;
			frac = frac * 10 + (*p - '0');
			scale *= 10;
		}
		if (nfrac == 0)
			return -1;
	}
	if (*p != '\0' || ndig == 0)
		return -1;
	*out = ip + frac / scale;
	return 0;
}

/* set_rates - T_RATES: "gmail.com:20/minute, yahoo.com:10/minute" */
static int
set_rates(const struct setting *s, void *base, const char *v, char *msg, size_t len)
{
	struct throttle_domain_rate **list =
	    (struct throttle_domain_rate **)((char *)base + s->off);
	size_t *n = (size_t *)((char *)base + s->noff);
	struct throttle_domain_rate *tmp;
	size_t count;

	if (throttle_parse_domain_rates(v, &tmp, &count, msg, len) < 0)
		return -1;
	free(*list);
	*list = tmp;
	*n = count;
	return 0;
}

/* set_enum - T_ENUM: one of the names in s->enums */
static int
set_enum(const struct setting *s, int *dst, const char *v, char *msg, size_t len)
{
	char names[256] = "";
	size_t n = 0;

	for (const struct enumval *e = s->enums; e->name; e++, n++)
		if (strcmp(e->name, v) == 0) {
			*dst = e->value;
			return 0;
		}
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			util_strlcat(names, i + 1 == n ? " or " : ", ", sizeof(names));
		util_strlcat(names, s->enums[i].name, sizeof(names));
	}
	snprintf(msg, len, "expected %s, got '%s'", names, v);
	return -1;
}

/* conf_value_set - parse `v` as setting `s` into the section struct at base */
int
conf_value_set(struct ctx *x, const struct setting *s, void *base, const char *v,
    char *msg, size_t len)
{
	char *field = (char *)base + s->off;
	long long ll;
	size_t sz;
	long d;

	switch (s->type) {
	case T_STR:
		if (s->check && s->check(v) < 0) {
			snprintf(msg, len, "expected %s, got '%s'", s->expect, v);
			return -1;
		}
		return copy_str(field, s->size, v, msg, len);
	case T_PATH:
		return resolve_path(x, v, field, s->size, msg, len);
	case T_BOOL:
		if (util_strcaseeq(v, "yes") || util_strcaseeq(v, "true") || strcmp(v, "1") == 0)
			*(int *)field = 1;
		else if (util_strcaseeq(v, "no") || util_strcaseeq(v, "false") || strcmp(v, "0") == 0)
			*(int *)field = 0;
		else {
			snprintf(msg, len, "expected yes or no, got '%s'", v);
			return -1;
		}
		return 0;
	case T_INT:
		if (conf_value_parse_ll(v, &ll) < 0 || ll < s->min || ll > s->max)
			return expect_range(s, "a number", v, msg, len);
		*(int *)field = (int)ll;
		return 0;
	case T_SIZE:
		if (util_parse_size(v, &sz) < 0 || (long long)sz < s->min ||
		    (long long)sz > s->max)
			return expect_range(s, "a size such as 512k or 25M", v, msg, len);
		*(size_t *)field = sz;
		return 0;
	case T_DUR:
		if (util_parse_duration(v, &d) < 0 || d < s->min || d > s->max)
			return expect_range(s, "a duration such as 30s, 5m, 1h or 5d", v, msg, len);
		*(long *)field = d;
		return 0;
	case T_ENUM:
		return set_enum(s, (int *)field, v, msg, len);
	case T_LISTEN_ADDR:
		return set_listen_addr(base, v, msg, len);
	case T_UPSTREAM_ADDR:
		return set_upstream_addr(x, base, v, msg, len);
	case T_NETS:
		return set_nets(s, base, v, msg, len);
	case T_NAMES:
		return set_names(s, base, v, msg, len);
	case T_DURS:
		return set_durs(s, base, v, msg, len);
	case T_DKIM_KEYS:
		return set_dkim_keys(x, s, base, v, msg, len);
	case T_COUNT:
		if (conf_value_parse_ll(v, &ll) < 0 || ll < s->min || ll > s->max ||
		    strspn(v, "0123456789") != strlen(v))
			return expect_range(s, "a whole number (0 = no limit)", v, msg, len);
		*(unsigned long *)field = (unsigned long)ll;
		return 0;
	case T_DECIMAL: {
		double dv;
		if (parse_decimal(v, &dv) < 0 || (dv != 0 && (dv < (double)s->min ||
		    dv > (double)s->max)))
			return expect_range(s, "0 (off) or a decimal such as 2.0,", v,
			    msg, len);
		*(double *)field = dv;
		return 0;
	}
	case T_RATE:
		return throttle_parse_rate(v, (struct throttle_rate *)field, msg, len);
	case T_RATES:
		return set_rates(s, base, v, msg, len);
	}
	fatalx("conf: setting %s has an unknown type", s->key);
}
