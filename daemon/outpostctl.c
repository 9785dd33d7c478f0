/*
 * outpostctl - the control tool. One table of verbs {name, handler,
 * usage}; main() only parses the global options (-c FILE, -h) and
 * dispatches, so new verbs are one row and one function each.
 *
 * Verbs so far:
 *   passwd USER [SENDERS]  print a users-file line; the password comes from
 *                          stdin (asked twice, without echo, on a terminal)
 *   check-config           load the config, users file and DKIM keys like
 *                          outpostd -n
 *   dkim keygen DOMAIN SELECTOR [--type rsa|ed25519] [--bits N] [--dir DIR]
 *                          write DIR/DOMAIN.SELECTOR.pem (mode 0600; DIR
 *                          defaults to dkim/ beside the config file), print
 *                          its TXT record and the dkim_key line for the config
 *   dkim dns DOMAIN        the TXT records of DOMAIN's configured keys
 *   suppress list [--reason R] [--json|--csv]
 *                          the suppression list and the unsubscribes in
 *                          queue.db (read-only); export --csv likewise
 *   suppress add ADDR [--reason TEXT] [--expires 30d]
 *   check dns DOMAIN [--json]  the domain's sending setup, each finding
 *                          OK/WARN/FAIL with its fix (selfcheck.h)
 *   check rbl [IP] [--json]    the egress address in DNS block lists
 *   lint [FILE] [--json]   content score and findings (lint.h)
 *   queue [list] [--from A] [--to A] [--status S] [--older 2h] [--json]
 *   queue show ID | summary    read queue.db (qlist.h)
 *   queue hold|release|delete|retry ID... | retry --all
 *                          asked of the daemon on its control socket
 *   status [--json]        ask the running outpostd (control socket) for
 *                          its queue and upstream state
 *   suppress remove ADDR [--sender S]
 *                          edit queue.db (WAL, bound parameters), then
 *                          SIGHUP the running outpostd so it re-reads it
 *
 * Exit codes: 0 success, 1 failure, 2 usage error.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "conf.h"
#include "control.h"
#include "dkim_key.h"
#include "lint.h"
#include "log.h"
#include "priv.h"
#include "qlist.h"
#include "selfcheck.h"
#include "smtp_parse.h"
#include "store.h"
#include "util.h"

#ifndef SYSCONFDIR
#define SYSCONFDIR "/etc"
#endif

#define DEFAULT_CONF SYSCONFDIR "/outpost/outpost.conf"
#define PASS_BUF (AUTH_PASS_MAX + 2)   /* password, newline, NUL */
#define DKIM_DIR "dkim"                 /* default key directory, beside the config */
#define DKIM_PEM_MAX (64 * 1024)
#define SUPPRESS_JSON_MAX (4 * 1024 * 6 + 3)   /* an escaped reply, JSON-quoted */
#define CTL_REPLY_MAX (16 * 1024 * 1024)       /* bound on a control answer */
#define LINT_INPUT_MAX (64 * 1024 * 1024)      /* outpostctl lint reads at most this */

struct verb;
struct verb_group {
	const struct verb *verbs;
	size_t n;
};

struct verb {
	const char *name;
	int (*run)(const char *conf, int argc, char **argv);
	const char *args;
	const char *help;
	const struct verb_group *sub;   /* "dkim keygen": verbs under a verb */
};

static int verb_passwd(const char *conf, int argc, char **argv);
static int verb_check_config(const char *conf, int argc, char **argv);
static int verb_reload(const char *conf, int argc, char **argv);
static int verb_status(const char *conf, int argc, char **argv);
static int verb_dkim_keygen(const char *conf, int argc, char **argv);
static int verb_dkim_dns(const char *conf, int argc, char **argv);
static int verb_suppress_list(const char *conf, int argc, char **argv);
static int verb_suppress_add(const char *conf, int argc, char **argv);
static int verb_suppress_remove(const char *conf, int argc, char **argv);
static int verb_check_dns(const char *conf, int argc, char **argv);
static int verb_check_rbl(const char *conf, int argc, char **argv);
static int verb_lint(const char *conf, int argc, char **argv);
static struct conf *suppress_db(const char *conf, char *path, size_t len);
static int ctl_request(const char *conf, const char *request);
static int verb_queue_list(const char *conf, int argc, char **argv);
static int verb_queue_show(const char *conf, int argc, char **argv);
static int verb_queue_summary(const char *conf, int argc, char **argv);
static int verb_queue_change(const char *conf, int argc, char **argv);

static const struct verb queue_verbs[] = {
	{ "list", verb_queue_list,
	  "[--from ADDR] [--to ADDR] [--status queued|deferred|held|bounced] [--older 2h] [--json]",
	  "one line per message: id, age, size, sender, recipients and their state,"
	  " the last reply (queue.db, read-only)", NULL },
	{ "show", verb_queue_show, "ID [--json]",
	  "envelope, headers and every delivery attempt of one message", NULL },
	{ "summary", verb_queue_summary, "[--json]",
	  "pending recipients by domain and age, like qshape", NULL },
	{ "hold", verb_queue_change, "ID...", "stop delivering these messages", NULL },
	{ "release", verb_queue_change, "ID...", "deliver held messages again", NULL },
	{ "delete", verb_queue_change, "ID...", "remove messages from the queue (no DSN)",
	  NULL },
	{ "retry", verb_queue_change, "ID... | --all",
	  "try these (or all) deferred messages now", NULL },
};
static const struct verb_group queue_group = { queue_verbs, ARRAY_LEN(queue_verbs) };

static const struct verb check_verbs[] = {
	{ "dns", verb_check_dns, "DOMAIN [--json]",
	  "check DOMAIN's SPF, DKIM, DMARC, MX, PTR, MTA-STS and TLS-RPT records"
	  " against what receivers require, each finding with its fix; exit 1 on"
	  " any FAIL", NULL },
	{ "rbl", verb_check_rbl, "[IP] [--json]",
	  "look the egress address (or IP) up in the DNS block lists of [server]"
	  " rbl", NULL },
};
static const struct verb_group check_group = { check_verbs, ARRAY_LEN(check_verbs) };

static const struct verb dkim_verbs[] = {
	{ "keygen", verb_dkim_keygen,
	  "DOMAIN SELECTOR [--type rsa|ed25519] [--bits N] [--dir DIR]",
	  "write a new key to DIR/DOMAIN.SELECTOR.pem (mode 0600; default rsa,"
	  " 2048 bits, DIR = dkim/ beside the config file) and print its TXT"
	  " record", NULL },
	{ "dns", verb_dkim_dns, "DOMAIN",
	  "print the TXT records of every dkim_key of [domain DOMAIN]", NULL },
};
static const struct verb_group dkim_group = { dkim_verbs, ARRAY_LEN(dkim_verbs) };

static const struct verb suppress_verbs[] = {
	{ "list", verb_suppress_list, "[--reason R] [--json|--csv]",
	  "the suppressed addresses: since, expiry, reason, the upstream's reply;"
	  " and the unsubscribes (reason unsubscribed): recipient, sender, list",
	  NULL },
	{ "export", verb_suppress_list, "[--reason R] --csv",
	  "the same as CSV for a mailing tool (RFC 4180; header"
	  " address,sender,list,reason,since)", NULL },
	{ "add", verb_suppress_add, "ADDR [--reason TEXT] [--expires 30d]",
	  "refuse ADDR at RCPT (default reason manual, never expires)", NULL },
	{ "remove", verb_suppress_remove, "ADDR [--sender S]",
	  "accept ADDR again; with --sender, take back ADDR's unsubscribe from S"
	  " (a resubscribe)", NULL },
};
static const struct verb_group suppress_group = { suppress_verbs,
	ARRAY_LEN(suppress_verbs) };

static const struct verb verbs[] = {
	{ "passwd", verb_passwd, "USER [SENDERS]",
	  "print a users-file line; password from stdin, SENDERS like"
	  " alice@example.com,@example.com", NULL },
	{ "check-config", verb_check_config, "",
	  "check the configuration, the users file and the DKIM keys, like"
	  " outpostd -n", NULL },
	{ "reload", verb_reload, "",
	  "check the configuration, then make the running outpostd re-read the"
	  " users file and the DKIM keys", NULL },
	{ "status", verb_status, "[--json]",
	  "the running outpostd: queue counts, and per upstream its state, rate"
	  " (current and configured), suspension and daily volume", NULL },
	{ "lint", verb_lint, "[FILE.eml] [--json]",
	  "score a message's content (stdin without FILE) the way spam filters"
	  " see it, each finding explained", NULL },
	{ "queue", verb_queue_list, "", "", &queue_group },
	{ "check", NULL, "", "", &check_group },
	{ "dkim", NULL, "", "", &dkim_group },
	{ "suppress", NULL, "", "", &suppress_group },
};

/* check_all - the configuration, the users file and the DKIM keys, with
 * every problem on stderr as file:line; the loaded conf or NULL */
static struct conf *
check_all(const char *conf)
{
	struct conf *c;
	struct auth_db *db;
	int nerr;

	if ((nerr = conf_load(conf, stderr, &c)) > 0) {
		fprintf(stderr, "outpostctl: %s: %d error%s\n", conf, nerr, nerr == 1 ? "" : "s");
		return NULL;
	}
	if (c->server.users_file[0]) {
		db = auth_load(c->server.users_file, stderr, &nerr);
		if (db == NULL) {
			fprintf(stderr, "outpostctl: %s: %d error%s\n", c->server.users_file,
			    nerr, nerr == 1 ? "" : "s");
			conf_free(c);
			return NULL;
		}
		auth_free(db);
	}
	dkim_key_free(dkim_key_load(c, stderr, &nerr));
	if (nerr > 0) {
		fprintf(stderr, "outpostctl: %s: %d error%s\n", conf, nerr, nerr == 1 ? "" : "s");
		conf_free(c);
		return NULL;
	}
	return c;
}

/* usage - the verbs and what they do */
static void
usage(FILE *f)
{
	fprintf(f, "usage: outpostctl [-c FILE] COMMAND [ARGS]\n"
	    "  -c FILE  configuration (default " DEFAULT_CONF ")\n"
	    "commands:\n");
	for (size_t i = 0; i < ARRAY_LEN(verbs); i++) {
		const struct verb *v = verbs[i].sub ? verbs[i].sub->verbs : &verbs[i];
		size_t n = verbs[i].sub ? verbs[i].sub->n : 1;

		for (size_t j = 0; j < n; j++)
			fprintf(f, "  %s%s%s%s%s\n      %s\n", verbs[i].name,
			    verbs[i].sub ? " " : "", verbs[i].sub ? v[j].name : "",
			    *v[j].args ? " " : "", v[j].args, v[j].help);
	}
}

/* verb_usage - one verb's synopsis, sub-verbs included; returns the
 * usage exit code */
static int
verb_usage(const char *name)
{
	for (size_t i = 0; i < ARRAY_LEN(verbs); i++) {
		if (strcmp(verbs[i].name, name) == 0 && verbs[i].sub == NULL)
			fprintf(stderr, "usage: outpostctl [-c FILE] %s %s\n", name, verbs[i].args);
		for (size_t j = 0; verbs[i].sub && j < verbs[i].sub->n; j++)
			if (strcmp(verbs[i].sub->verbs[j].name, name) == 0 ||
			    strcmp(verbs[i].name, name) == 0)
				fprintf(stderr, "usage: outpostctl [-c FILE] %s %s %s\n",
				    verbs[i].name, verbs[i].sub->verbs[j].name,
				    verbs[i].sub->verbs[j].args);
	}
	return 2;
}

/* verb_find - a verb by name in a table, or NULL */
static const struct verb *
verb_find(const struct verb *table, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(table[i].name, name) == 0)
			return &table[i];
	return NULL;
}

/* read_secret_line - one line from fd 0 into buf without its newline.
 * Returns 0, or -1 on end of file, read error or a line too long. */
static int
read_secret_line(char *buf, size_t size)
{
	size_t n;

	if (fgets(buf, (int)size, stdin) == NULL)
		return -1;
	n = strlen(buf);
	if (n > 0 && buf[n - 1] == '\n')
		buf[--n] = '\0';
	else if (!feof(stdin))
		return -1;      /* longer than AUTH_PASS_MAX */
	if (n > 0 && buf[n - 1] == '\r')
		buf[--n] = '\0';
	return 0;
}

/* prompt_noecho - ask on the terminal with echo off */
static int
prompt_noecho(const char *prompt, char *buf, size_t size)
{
	struct termios old, quiet;
	int r;

	if (tcgetattr(STDIN_FILENO, &old) < 0)
		return -1;
	quiet = old;
	quiet.c_lflag &= ~(tcflag_t)ECHO;
	quiet.c_lflag |= ECHONL;
	fputs(prompt, stderr);
	fflush(stderr);
	if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) < 0)
		return -1;
	r = read_secret_line(buf, size);
	tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
	return r;
}

/* read_password - from the terminal (twice) or one line of stdin */
static int
read_password(char *pw, size_t size)
{
	char again[PASS_BUF];
	int r = -1;

	if (!isatty(STDIN_FILENO)) {
		if (read_secret_line(pw, size) < 0) {
			fprintf(stderr, "outpostctl: cannot read the password from"
			    " stdin (missing, or longer than %d bytes)\n", AUTH_PASS_MAX);
			return -1;
		}
		return 0;
	}
	errno = 0;
	if (prompt_noecho("Password: ", pw, size) < 0 ||
	    prompt_noecho("Retype password: ", again, sizeof(again)) < 0)
		fprintf(stderr, "outpostctl: cannot read the password: %s\n",
		    errno ? strerror(errno) : "too long or end of input");
	else if (strcmp(pw, again) != 0)
		fprintf(stderr, "outpostctl: passwords do not match\n");
	else
		r = 0;
	util_wipe(again, sizeof(again));
	return r;
}

/* valid_senders - every comma item is an address or @domain */
static int
valid_senders(const char *list)
{
	char *copy = xstrdup(list), *p = copy, *item, *comma;
	int ok = 1;

	while (ok && p) {
		if ((comma = strchr(p, ',')) != NULL)
			*comma++ = '\0';
		item = p;
		p = comma;
		if (*item == '\0' || !auth_sender_valid(item)) {
			fprintf(stderr, "outpostctl: invalid sender '%s' (expected"
			    " user@domain or @domain, separated by commas)\n", item);
			ok = 0;
		}
	}
	free(copy);
	return ok;
}

/* verb_passwd - print "USER:HASH:SENDERS" for the users file */
static int
verb_passwd(const char *conf, int argc, char **argv)
{
	char pw[PASS_BUF], *hash;
	const char *senders = argc > 2 ? argv[2] : "";

	if (argc < 2 || argc > 3)
		return verb_usage(argv[0]);
	if (!auth_name_valid(argv[1])) {
		fprintf(stderr, "outpostctl: invalid user name '%s' (printable,"
		    " no blanks or ':', at most %d characters)\n", argv[1], AUTH_NAME_MAX - 1);
		return 2;
	}
	if (*senders && !valid_senders(senders))
		return 2;
	if (read_password(pw, sizeof(pw)) < 0) {
		util_wipe(pw, sizeof(pw));
		return 1;
	}
	if (pw[0] == '\0') {
		fprintf(stderr, "outpostctl: empty password\n");
		return 1;
	}
	hash = auth_hash_password(pw);
	util_wipe(pw, sizeof(pw));
	if (hash == NULL) {
		fprintf(stderr, "outpostctl: cannot hash the password: %s\n", strerror(errno));
		return 1;
	}
	printf("%s:%s:%s\n", argv[1], hash, senders);
	free(hash);
	return fflush(stdout) == 0 ? 0 : 1;
}

/* verb_check_config - conf_load and the users file; errors to stderr */
static int
verb_check_config(const char *conf, int argc, char **argv)
{
	struct conf *c;

	if (argc != 1)
		return verb_usage(argv[0]);
	if ((c = check_all(conf)) == NULL)
		return 1;
	printf("%s: OK\n", conf);
	conf_free(c);
	return 0;
}

/* signal_daemon - SIGHUP to the outpostd named by STATE_DIR/outpostd.pid:
 * its pid, or -1 (not running) with why in buf */
static long
signal_daemon(const char *state_dir, char *why, size_t len)
{
	char path[PATH_MAX + 16], *text;
	long pid;

	snprintf(path, sizeof(path), "%s/outpostd.pid", state_dir);
	if ((text = util_read_file(path, 64, NULL)) == NULL) {
		snprintf(why, len, "%s: %s", path, strerror(errno));
		return -1;
	}
	pid = strtol(text, NULL, 10);
	free(text);
	if (pid <= 1 || kill((pid_t)pid, SIGHUP) < 0) {
		snprintf(why, len, "pid %ld from %s: %s", pid, path,
		    pid <= 1 ? "invalid" : strerror(errno));
		return -1;
	}
	return pid;
}

/* verb_reload - SIGHUP to the daemon, only after the same checks as
 * check-config passed */
static int
verb_reload(const char *conf, int argc, char **argv)
{
	struct conf *c;

	if (argc != 1)
		return verb_usage(argv[0]);
	if ((c = check_all(conf)) == NULL) {
		fprintf(stderr, "outpostctl: not reloading; the running outpostd keeps its settings\n");
		return 1;
	}
	conf_free(c);
	/* the daemon checks again and answers with what it loaded, or with
	 * its own file:line errors (the files may change in between) */
	return ctl_request(conf, "reload");
}

/* ctl_request - one request on the daemon's control socket; the answer's
 * text goes to stdout, an "error:" answer to stderr. 0, or 1 on failure. */
static int
ctl_request(const char *conf, const char *request)
{
	struct sockaddr_un sun;
	struct conf *c;
	char buf[4096], *nl;
	size_t have = 0, total = 0;
	int fd, nerr, rc = 1, head = 1;
	ssize_t n;

	if ((nerr = conf_load(conf, stderr, &c)) > 0) {
		fprintf(stderr, "outpostctl: %s: %d error%s\n", conf, nerr, nerr == 1 ? "" : "s");
		return 1;
	}
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if ((size_t)snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/" CONTROL_NAME,
	    c->server.state_dir) >= sizeof(sun.sun_path)) {
		fprintf(stderr, "outpostctl: %s/%s: path too long\n", c->server.state_dir,
		    CONTROL_NAME);
		conf_free(c);
		return 1;
	}
	conf_free(c);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		if (errno == ENOENT || errno == ECONNREFUSED)
			fprintf(stderr, "outpostctl: outpostd is not running (no control socket"
			    " at %s)\n", sun.sun_path);
		else
			fprintf(stderr, "outpostctl: %s: %s\n", sun.sun_path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return 1;
	}
	if (write(fd, request, strlen(request)) != (ssize_t)strlen(request) ||
	    write(fd, "\n", 1) != 1) {
		fprintf(stderr, "outpostctl: %s: %s\n", sun.sun_path, strerror(errno));
		close(fd);
		return 1;
	}
	/* "ok" or "error: ..." first, then the answer until the daemon closes */
	while (total < CTL_REPLY_MAX && (n = read(fd, buf + have, sizeof(buf) - 1 - have)) > 0) {
		total += (size_t)n;
		have += (size_t)n;
		buf[have] = '\0';
		if (head) {
			if ((nl = strchr(buf, '\n')) == NULL && have < sizeof(buf) - 1)
				continue;
			if (nl)
				*nl = '\0';
			if (strcmp(buf, "ok") != 0) {
				fprintf(stderr, "outpostctl: %s\n", strncmp(buf, "error: ", 7) == 0 ?
				    buf + 7 : "unexpected answer from outpostd");
				close(fd);
				return 1;
			}
			head = 0;
			rc = 0;
			fputs(nl ? nl + 1 : "", stdout);
		} else {
			fputs(buf, stdout);
		}
		have = 0;
	}
	close(fd);
	if (head)
		fprintf(stderr, "outpostctl: outpostd closed the control connection without"
		    " an answer\n");
	return fflush(stdout) == 0 ? rc : 1;
}

/* verb_status - the running daemon's state */
static int
verb_status(const char *conf, int argc, char **argv)
{
	if (argc > 2 || (argc == 2 && strcmp(argv[1], "--json") != 0))
		return verb_usage(argv[0]);
	return ctl_request(conf, argc == 2 ? "status --json" : "status");
}

/* json_flag - drop a trailing --json from argv; 1 if it was there */
static int
json_flag(int *argc, char **argv)
{
	for (int i = 1; i < *argc; i++) {
		if (strcmp(argv[i], "--json") == 0) {
			for (int k = i; k < *argc - 1; k++)
				argv[k] = argv[k + 1];
			(*argc)--;
			return 1;
		}
	}
	return 0;
}

/* queue_db - queue.db of the configuration into path; 0 or 1 */
static int
queue_db(const char *conf, char *path, size_t len)
{
	struct conf *c;

	if ((c = suppress_db(conf, path, len)) == NULL)
		return 1;
	conf_free(c);
	return 0;
}

/* verb_queue_list - the queue, filtered */
static int
verb_queue_list(const char *conf, int argc, char **argv)
{
	struct qlist_filter f;
	char path[PATH_MAX + 16], err[512];
	int i = 1;

	memset(&f, 0, sizeof(f));
	if (argc > 0 && strcmp(argv[0], "queue") == 0 && argc > 1 && strcmp(argv[1], "list") == 0)
		i = 2;          /* "queue list ..." reached through the default */
	for (; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0) {
			f.json = 1;
		} else if (i + 1 < argc && strcmp(argv[i], "--from") == 0) {
			f.from = argv[++i];
		} else if (i + 1 < argc && strcmp(argv[i], "--to") == 0) {
			f.to = argv[++i];
		} else if (i + 1 < argc && strcmp(argv[i], "--status") == 0) {
			f.status = argv[++i];
			if (strcmp(f.status, "queued") != 0 && strcmp(f.status, "deferred") != 0 &&
			    strcmp(f.status, "held") != 0 && strcmp(f.status, "bounced") != 0)
				return verb_usage("queue");
		} else if (i + 1 < argc && strcmp(argv[i], "--older") == 0) {
			if (util_parse_duration(argv[++i], &f.older) < 0)
				return verb_usage("queue");
		} else {
			return verb_usage("queue");
		}
	}
	if (queue_db(conf, path, sizeof(path)) != 0)
		return 1;
	if (qlist_list(path, &f, stdout, err, sizeof(err)) < 0) {
		fprintf(stderr, "outpostctl: %s\n", err);
		return 1;
	}
	return fflush(stdout) == 0 ? 0 : 1;
}

/* verb_queue_show - one message in full */
static int
verb_queue_show(const char *conf, int argc, char **argv)
{
	char path[PATH_MAX + 16], err[512];
	int json = json_flag(&argc, argv), rc;

	if (argc != 2)
		return verb_usage("queue");
	if (queue_db(conf, path, sizeof(path)) != 0)
		return 1;
	if ((rc = qlist_show(path, argv[1], json, stdout, err, sizeof(err))) != 0) {
		if (rc > 0)
			fprintf(stderr, "outpostctl: %s: no such message in the queue\n", argv[1]);
		else
			fprintf(stderr, "outpostctl: %s\n", err);
		return 1;
	}
	return fflush(stdout) == 0 ? 0 : 1;
}

/* verb_queue_summary - pending recipients by domain and age */
static int
verb_queue_summary(const char *conf, int argc, char **argv)
{
	char path[PATH_MAX + 16], err[512];
	int json = json_flag(&argc, argv);

	if (argc != 1)
		return verb_usage("queue");
	if (queue_db(conf, path, sizeof(path)) != 0)
		return 1;
	if (qlist_summary(path, json, stdout, err, sizeof(err)) < 0) {
		fprintf(stderr, "outpostctl: %s\n", err);
		return 1;
	}
	return fflush(stdout) == 0 ? 0 : 1;
}

/* verb_queue_change - hold, release, delete, retry: the daemon does it */
static int
verb_queue_change(const char *conf, int argc, char **argv)
{
	char req[CONTROL_LINE_MAX];
	size_t n;

	if (argc < 2)
		return verb_usage("queue");
	n = (size_t)snprintf(req, sizeof(req), "queue %s", argv[0]);
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--all") == 0 ? strcmp(argv[0], "retry") != 0 || argc != 2 :
		    !util_queue_id_valid(argv[i]))
			return verb_usage("queue");
		n += (size_t)snprintf(req + n, n < sizeof(req) ? sizeof(req) - n : 0, " %s",
		    argv[i]);
		if (n >= sizeof(req)) {
			fprintf(stderr, "outpostctl: too many queue ids at once\n");
			return 2;
		}
	}
	return ctl_request(conf, req);
}

/* check_run - a self-check's report printed; 1 on any FAIL */
static int
check_run(const char *conf, const char *arg, int json,
    int (*fn)(const struct conf *, const char *, struct selfcheck_report *, char *, size_t))
{
	struct selfcheck_report r;
	struct conf *c;
	char err[512];
	int nerr, rc;

	if ((nerr = conf_load(conf, stderr, &c)) > 0) {
		fprintf(stderr, "outpostctl: %s: %d error%s\n", conf, nerr, nerr == 1 ? "" : "s");
		return 1;
	}
	memset(&r, 0, sizeof(r));
	if (fn(c, arg, &r, err, sizeof(err)) < 0) {
		fprintf(stderr, "outpostctl: %s\n", err);
		conf_free(c);
		return 1;
	}
	selfcheck_print(&r, json, stdout);
	rc = selfcheck_failed(&r);
	selfcheck_report_free(&r);
	conf_free(c);
	return fflush(stdout) == 0 ? rc : 1;
}

/* verb_check_dns - the sending setup of one domain */
static int
verb_check_dns(const char *conf, int argc, char **argv)
{
	int json = json_flag(&argc, argv);

	if (argc != 2 || argv[1][0] == '-')
		return verb_usage(argv[0]);
	return check_run(conf, argv[1], json, selfcheck_dns);
}

/* verb_check_rbl - the egress addresses (or one) against block lists */
static int
verb_check_rbl(const char *conf, int argc, char **argv)
{
	int json = json_flag(&argc, argv);

	if (argc > 2 || (argc == 2 && argv[1][0] == '-'))
		return verb_usage(argv[0]);
	return check_run(conf, argc == 2 ? argv[1] : NULL, json, selfcheck_rbl);
}

/* verb_lint - score a message's content */
static int
verb_lint(const char *conf, int argc, char **argv)
{
	struct lint_report r;
	FILE *f = stdin;
	char *buf = NULL;
	size_t len = 0, cap = 0, n;
	int json = json_flag(&argc, argv);

	(void)conf;
	if (argc > 2 || (argc == 2 && argv[1][0] == '-' && argv[1][1] != '\0'))
		return verb_usage(argv[0]);
	if (argc == 2 && strcmp(argv[1], "-") != 0 && (f = fopen(argv[1], "rb")) == NULL) {
		fprintf(stderr, "outpostctl: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	do {
		if (len + 65536 > cap) {
			cap = cap ? cap * 2 : 1 << 20;
			buf = xrealloc(buf, cap + 1);
		}
		n = fread(buf + len, 1, cap - len, f);
		len += n;
	} while (n > 0 && len <= LINT_INPUT_MAX);
	if (ferror(f) || len > LINT_INPUT_MAX) {
		fprintf(stderr, "outpostctl: %s: %s\n", argc == 2 ? argv[1] : "stdin",
		    ferror(f) ? strerror(errno) : "larger than 64 MB");
		if (f != stdin)
			fclose(f);
		free(buf);
		return 1;
	}
	if (f != stdin)
		fclose(f);
	buf[len] = '\0';
	memset(&r, 0, sizeof(r));
	if (lint_message(buf, len, &r) < 0) {
		fprintf(stderr, "outpostctl: %s: not a message (no header)\n",
		    argc == 2 ? argv[1] : "stdin");
		free(buf);
		return 1;
	}
	free(buf);
	lint_print(&r, json, stdout);
	lint_report_free(&r);
	return fflush(stdout) == 0 ? 0 : 1;
}

/* dkim_name_valid - a domain or selector: dot-separated labels of
 * letters, digits and inner '-' (RFC 6376 3.1); also keeps the key file
 * name DOMAIN.SELECTOR.pem inside its directory */
static int
dkim_name_valid(const char *s, size_t max)
{
	size_t label = 0, len = strlen(s);

	if (len == 0 || len >= max)
		return 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '.') {
			if (label == 0 || s[i - 1] == '-')
				return 0;
			label = 0;
		} else if (isalnum((unsigned char)s[i]) || (s[i] == '-' && label > 0)) {
			label++;
		} else {
			return 0;
		}
	}
	return label > 0 && s[len - 1] != '-';
}

/* dkim_print_txt - the TXT record of the key in `path` */
static int
dkim_print_txt(const char *domain, const char *selector, const char *path)
{
	char err[256], *pem, *txt;
	size_t len;

	if ((pem = util_read_file(path, DKIM_PEM_MAX, &len)) == NULL) {
		fprintf(stderr, "outpostctl: %s: %s\n", path, strerror(errno));
		return -1;
	}
	txt = dkim_key_txt_record(domain, selector, pem, len, err, sizeof(err));
	util_wipe(pem, len);
	free(pem);
	if (txt == NULL) {
		fprintf(stderr, "outpostctl: %s: %s\n", path, err);
		return -1;
	}
	printf("%s\n", txt);
	free(txt);
	return 0;
}

/* dkim_key_owner - run as root, the files keygen makes go to the
 * account outpostd runs as ([server] user), which reads them again at
 * every reload; 0 with *pu set, -1 when not root or after a warning */
static int
dkim_key_owner(const char *conf, struct priv_user *pu)
{
	char err[256];
	const char *name = "outpost";
	struct conf *c = NULL;
	FILE *devnull;
	int rc;

	if (geteuid() != 0)
		return -1;
	if ((devnull = fopen("/dev/null", "w")) != NULL) {
		if (conf_load(conf, devnull, &c) == 0)
			name = c->server.user;
		fclose(devnull);
	}
	rc = priv_lookup(name, pu, err, sizeof(err));
	if (rc < 0)
		fprintf(stderr, "outpostctl: warning: %s; the key stays root's, and outpostd"
		    " will not read it again at a reload until it is chowned\n", err);
	conf_free(c);
	return rc;
}

/* dkim_key_dir - DIR made absolute, created 0700 when missing (for the
 * daemon's account, when root runs us); the default is dkim/ beside the
 * config file */
static int
dkim_key_dir(const char *conf, const char *dir, char *out, const struct priv_user *owner)
{
	char def[PATH_MAX];
	const char *slash;

	if (dir == NULL) {
		slash = strrchr(conf, '/');
		if (slash == NULL)
			snprintf(def, sizeof(def), "%s", DKIM_DIR);
		else if ((size_t)snprintf(def, sizeof(def), "%.*s/%s", (int)(slash - conf),
		    conf, DKIM_DIR) >= sizeof(def))
			def[0] = '\0';
		dir = def;
	}
	if (*dir == '\0') {
		fprintf(stderr, "outpostctl: key directory: path too long\n");
		return -1;
	}
	if (mkdir(dir, 0700) == 0) {
		if (owner != NULL && chown(dir, owner->uid, owner->gid) < 0) {
			fprintf(stderr, "outpostctl: key directory %s: chown: %s\n", dir,
			    strerror(errno));
			return -1;
		}
	} else if (errno != EEXIST) {
		fprintf(stderr, "outpostctl: key directory %s: %s\n", dir, strerror(errno));
		return -1;
	}
	if (realpath(dir, out) == NULL) {
		fprintf(stderr, "outpostctl: key directory %s: %s\n", dir, strerror(errno));
		return -1;
	}
	return 0;
}

/* dkim_keygen_args - keygen's two names and --type, --bits, --dir
 * (also as --opt=VALUE); returns 0 or the usage exit code */
static int
dkim_keygen_args(int argc, char **argv, const char **pos, enum dkim_key_type *type,
    int *bits, const char **dir)
{
	int npos = 0, gotbits = 0;
	const char *opt, *val, *eq;
	size_t namelen;
	char *end;
	long b;

	for (int i = 1; i < argc; i++) {
		if (strncmp(argv[i], "--", 2) != 0) {
			if (npos == 2)
				return 2;
			pos[npos++] = argv[i];
			continue;
		}
		opt = argv[i];
		eq = strchr(opt, '=');
		namelen = eq ? (size_t)(eq - opt) : strlen(opt);
		if (eq)
			val = eq + 1;
		else if (i + 1 < argc)
			val = argv[++i];
		else
			return 2;
		if (namelen == 6 && strncmp(opt, "--type", 6) == 0) {
			if (strcmp(val, "rsa") == 0)
				*type = DKIM_KEY_RSA;
			else if (strcmp(val, "ed25519") == 0)
				*type = DKIM_KEY_ED25519;
			else
				return 2;
		} else if (namelen == 6 && strncmp(opt, "--bits", 6) == 0) {
			errno = 0;
			b = strtol(val, &end, 10);
			if (errno || *end || end == val || b <= 0 || b > INT_MAX)
				return 2;
			*bits = (int)b;
			gotbits = 1;
		} else if (namelen == 5 && strncmp(opt, "--dir", 5) == 0) {
			*dir = val;
		} else {
			return 2;
		}
	}
	if (npos != 2 || (gotbits && *type != DKIM_KEY_RSA))
		return 2;
	return 0;
}

/* verb_dkim_keygen - new key file, its TXT record, the config line */
static int
verb_dkim_keygen(const char *conf, int argc, char **argv)
{
	const char *pos[2], *dir = NULL;
	enum dkim_key_type type = DKIM_KEY_RSA;
	char domain[HOST_MAX], absdir[PATH_MAX], path[PATH_MAX], err[PATH_MAX + 128];
	struct priv_user pu;
	int bits = 2048, owned;

	if (dkim_keygen_args(argc, argv, pos, &type, &bits, &dir) != 0)
		return verb_usage(argv[0]);
	util_strlcpy(domain, pos[0], sizeof(domain));
	util_strlower(domain);
	if (!dkim_name_valid(domain, sizeof(domain))) {
		fprintf(stderr, "outpostctl: invalid domain '%s'\n", pos[0]);
		return 2;
	}
	if (!dkim_name_valid(pos[1], CONF_SELECTOR_MAX)) {
		fprintf(stderr, "outpostctl: invalid selector '%s' (letters, digits, '-'"
		    " and '.', at most %d characters)\n", pos[1], CONF_SELECTOR_MAX - 1);
		return 2;
	}
	owned = dkim_key_owner(conf, &pu) == 0;
	if (dkim_key_dir(conf, dir, absdir, owned ? &pu : NULL) < 0)
		return 1;
	if ((size_t)snprintf(path, sizeof(path), "%s/%s.%s.pem", absdir, domain,
	    pos[1]) >= sizeof(path)) {
		fprintf(stderr, "outpostctl: key path too long\n");
		return 1;
	}
	if (dkim_key_generate(type, bits, path, err, sizeof(err)) < 0) {
		fprintf(stderr, "outpostctl: %s\n", err);
		return 1;
	}
	if (owned && chown(path, pu.uid, pu.gid) < 0) {
		fprintf(stderr, "outpostctl: %s: chown %s: %s\n", path, pu.name, strerror(errno));
		return 1;
	}
	printf("wrote %s (mode 0600%s%s)\n", path, owned ? ", owner " : "", owned ? pu.name : "");
	if (dkim_print_txt(domain, pos[1], path) < 0)
		return 1;
	printf("\n# add to %s:\n", conf);
	if (type == DKIM_KEY_ED25519)
		printf("# (Ed25519 signs next to an RSA key: list both on one dkim_key"
		    " line, comma-separated)\n");
	printf("[domain %s]\ndkim_key = %s:%s\n", domain, pos[1], path);
	return fflush(stdout) == 0 ? 0 : 1;
}

/* verb_dkim_dns - the TXT records of one configured domain's keys,
 * from the keys as outpostd loads them */
static int
verb_dkim_dns(const char *conf, int argc, char **argv)
{
	const struct conf_domain *cd;
	const struct dkim_domain *d = NULL;
	struct dkim_keyset *ks = NULL;
	struct conf *c;
	char err[256], *txt;
	int nerr, rc = 1;

	if (argc != 2)
		return verb_usage(argv[0]);
	if ((nerr = conf_load(conf, stderr, &c)) > 0) {
		fprintf(stderr, "outpostctl: %s: %d error%s\n", conf, nerr, nerr == 1 ? "" : "s");
		return 1;
	}
	ks = dkim_key_load(c, stderr, &nerr);
	if (nerr > 0)
		fprintf(stderr, "outpostctl: %s: %d error%s\n", conf, nerr, nerr == 1 ? "" : "s");
	else if ((cd = conf_domain_find(c, argv[1])) == NULL)
		fprintf(stderr, "outpostctl: %s: no [domain %s] section\n", conf, argv[1]);
	else if (cd->ndkim_keys == 0)
		fprintf(stderr, "outpostctl: %s:%d: [domain %s] has no dkim_key\n", conf,
		    cd->line, cd->name);
	else if ((d = dkim_key_find(ks, cd->name)) != NULL)
		rc = 0;
	for (size_t i = 0; rc == 0 && i < d->nkeys; i++) {
		txt = dkim_key_txt_record(d->name, d->keys[i].selector, d->keys[i].pem,
		    d->keys[i].pemlen, err, sizeof(err));
		if (txt == NULL) {
			fprintf(stderr, "outpostctl: %s: %s\n", d->keys[i].path, err);
			rc = 1;
		} else {
			printf("%s\n", txt);
			free(txt);
		}
	}
	dkim_key_free(ks);
	conf_free(c);
	return rc == 0 && fflush(stdout) == 0 ? 0 : 1;
}

/* suppress_db - queue.db of the configured state_dir into path; the
 * loaded conf, or NULL after reporting */
static struct conf *
suppress_db(const char *conf, char *path, size_t len)
{
	struct conf *c;
	int nerr;

	if ((nerr = conf_load(conf, stderr, &c)) > 0) {
		fprintf(stderr, "outpostctl: %s: %d error%s\n", conf, nerr, nerr == 1 ? "" : "s");
		return NULL;
	}
	snprintf(path, len, "%s/queue.db", c->server.state_dir);
	return c;
}

/* suppress_time - "2026-11-22 18:44:36" UTC, or "never" for 0 */
static const char *
suppress_time(time_t t, char *buf, size_t len)
{
	struct tm tm;

	if (t == 0 || gmtime_r(&t, &tm) == NULL ||
	    strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm) == 0)
		util_strlcpy(buf, t == 0 ? "never" : "?", len);
	return buf;
}

/* json_str - s as a JSON string (RFC 8259 7) */
static void
json_str(const char *s)
{
	char buf[SUPPRESS_JSON_MAX];

	fputs(util_json_str(s, buf, sizeof(buf)), stdout);
}

#define SUPPRESS_UNSUBSCRIBED "unsubscribed"

struct suppress_print {
	int json, csv;
	const char *reason;         /* only these, or NULL */
	size_t n;
};

/* csv_field - one RFC 4180 field: quoted when it holds a comma, a quote
 * or a line break, quotes doubled; control characters escaped first */
static void
csv_field(const char *s, int last)
{
	char esc[2048];

	log_esc(s, esc, sizeof(esc));
	if (strpbrk(esc, ",\"\r\n") == NULL) {
		fputs(esc, stdout);
	} else {
		putchar('"');
		for (const char *p = esc; *p; p++) {
			if (*p == '"')
				putchar('"');
			putchar(*p);
		}
		putchar('"');
	}
	fputs(last ? "\r\n" : ",", stdout);
}

/* csv_row - address,sender,list,reason,since */
static void
csv_row(const char *addr, const char *sender, const char *list, const char *reason,
    time_t since)
{
	char t[32];

	csv_field(addr, 0);
	csv_field(sender, 0);
	csv_field(list, 0);
	csv_field(reason, 0);
	csv_field(since ? suppress_time(since, t, sizeof(t)) : "since", 1);
}

/* suppress_print_one - one row, as text, CSV or a JSON array element */
static void
suppress_print_one(const struct store_suppression *e, void *arg)
{
	struct suppress_print *p = arg;
	char t1[32], t2[32], esc[2048];

	if (p->reason != NULL && strcmp(p->reason, e->reason) != 0)
		return;
	if (p->csv) {
		csv_row(e->address, "", "", e->reason, e->first_seen);
	} else if (p->json) {
		printf("%s\n  {\"address\": ", p->n ? "," : "");
		json_str(e->address);
		printf(", \"reason\": ");
		json_str(e->reason);
		printf(", \"reply\": ");
		json_str(log_esc(e->reply, esc, sizeof(esc)));   /* upstream text */
		printf(", \"first_seen\": %lld, \"last_seen\": %lld, \"expires_at\": %lld}",
		    (long long)e->first_seen, (long long)e->last_seen,
		    (long long)e->expires_at);
	} else {
		printf("%s  since %s  expires %s  %s%s%s\n", e->address,
		    suppress_time(e->first_seen, t1, sizeof(t1)),
		    suppress_time(e->expires_at, t2, sizeof(t2)), e->reason,
		    e->reply[0] ? ": " : "", log_esc(e->reply, esc, sizeof(esc)));
	}
	p->n++;
}

/* suppress_print_unsub - one unsubscribe (reason "unsubscribed") */
static void
suppress_print_unsub(const struct store_unsub_row *r, void *arg)
{
	struct suppress_print *p = arg;
	char t[32], rc[2048], sd[2048], ls[2048];

	if (p->reason != NULL && strcmp(p->reason, SUPPRESS_UNSUBSCRIBED) != 0)
		return;
	if (p->csv) {
		csv_row(r->rcpt, r->sender, r->list, SUPPRESS_UNSUBSCRIBED, r->at);
	} else if (p->json) {
		printf("%s\n  {\"address\": ", p->n ? "," : "");
		json_str(log_esc(r->rcpt, rc, sizeof(rc)));
		printf(", \"reason\": \"" SUPPRESS_UNSUBSCRIBED "\", \"sender\": ");
		json_str(log_esc(r->sender, sd, sizeof(sd)));
		printf(", \"list\": ");
		json_str(log_esc(r->list, ls, sizeof(ls)));
		printf(", \"reply\": \"\", \"first_seen\": %lld, \"last_seen\": %lld,"
		    " \"expires_at\": 0}", (long long)r->at, (long long)r->at);
	} else {
		printf("%s  since %s  expires never  " SUPPRESS_UNSUBSCRIBED
		    " from %s (list %s)\n", log_esc(r->rcpt, rc, sizeof(rc)),
		    suppress_time(r->at, t, sizeof(t)), log_esc(r->sender, sd, sizeof(sd)),
		    r->list[0] ? log_esc(r->list, ls, sizeof(ls)) : "-");
	}
	p->n++;
}

/* verb_suppress_list - list|export [--reason R] [--json|--csv]: the
 * unexpired suppressions and the unsubscribes, read-only */
static int
verb_suppress_list(const char *conf, int argc, char **argv)
{
	struct suppress_print p = { 0, 0, NULL, 0 };
	struct store *st;
	struct conf *c;
	char path[PATH_MAX + 16], err[PATH_MAX + 256];
	int rc;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			p.json = 1;
		else if (strcmp(argv[i], "--csv") == 0)
			p.csv = 1;
		else if (strcmp(argv[i], "--reason") == 0 && i + 1 < argc)
			p.reason = argv[++i];
		else
			return verb_usage(argv[0]);
	}
	if ((p.json && p.csv) || (strcmp(argv[0], "export") == 0 && !p.csv))
		return verb_usage(argv[0]);
	if ((c = suppress_db(conf, path, sizeof(path))) == NULL)
		return 1;
	conf_free(c);
	if (p.csv)
		csv_row("address", "sender", "list", "reason", 0);
	if (access(path, F_OK) < 0 && errno == ENOENT) {
		printf(p.json ? "[]\n" : "");
		return fflush(stdout) == 0 ? 0 : 1;
	}
	if ((st = store_open(path, 1, err, sizeof(err))) == NULL) {
		fprintf(stderr, "outpostctl: %s\n", err);
		return 1;
	}
	if (p.json)
		printf("[");
	rc = store_load_suppressions(st, suppress_print_one, &p);
	if (rc == 0)
		rc = store_load_unsubs(st, suppress_print_unsub, &p);
	store_close(st);
	if (p.json)
		printf("%s]\n", p.n ? "\n" : "");
	if (rc < 0) {
		fprintf(stderr, "outpostctl: %s: cannot read the suppression list\n", path);
		return 1;
	}
	return fflush(stdout) == 0 ? 0 : 1;
}

/* suppress_apply - open queue.db read-write, run the change, then tell
 * the running daemon; add: reason != NULL; remove an unsubscribe:
 * sender != NULL */
static int
suppress_apply(const char *conf, const char *addr, const char *reason,
    time_t expires_at, const char *sender)
{
	struct store *st;
	struct conf *c;
	char path[PATH_MAX + 16], err[PATH_MAX + 256], why[PATH_MAX + 128];
	long pid;
	int rc;

	if (!smtp_addr_valid(addr, 1)) {
		fprintf(stderr, "outpostctl: invalid address '%s'\n", addr);
		return 2;
	}
	if ((c = suppress_db(conf, path, sizeof(path))) == NULL)
		return 1;
	if ((st = store_open(path, 0, err, sizeof(err))) == NULL) {
		fprintf(stderr, "outpostctl: %s\n", err);
		conf_free(c);
		return 1;
	}
	if (sender != NULL && !smtp_addr_valid(sender, 1)) {
		fprintf(stderr, "outpostctl: invalid address '%s'\n", sender);
		store_close(st);
		conf_free(c);
		return 2;
	}
	if (reason != NULL)
		rc = store_suppress_put(st, addr, reason, "", expires_at);
	else if (sender != NULL)
		rc = store_unsub_remove(st, sender, addr);
	else
		rc = store_suppress_remove(st, addr);
	store_close(st);
	if (rc < 0) {
		fprintf(stderr, "outpostctl: %s: cannot change the suppression list\n", path);
		conf_free(c);
		return 1;
	}
	if (reason != NULL)
		printf("%s suppressed\n", addr);
	else if (sender != NULL)
		printf(rc >= 1 ? "%s removed: mail from %s reaches it again\n" :
		    "%s was not unsubscribed from %s\n", addr, sender);
	else
		printf(rc == 1 ? "%s removed\n" : "%s was not suppressed\n", addr);
	pid = signal_daemon(c->server.state_dir, why, sizeof(why));
	conf_free(c);
	if (pid < 0)
		printf("outpostd is not running; the change applies at its next start\n");
	else
		printf("outpostd (pid %ld): reload requested\n", pid);
	return fflush(stdout) == 0 ? 0 : 1;
}

/* suppress_reason_valid - 1..63 printable ASCII characters: the reason
 * goes into an SMTP reply */
static int
suppress_reason_valid(const char *r)
{
	size_t n = strlen(r);

	if (n == 0 || n >= 64)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (r[i] < 0x20 || r[i] > 0x7e)
			return 0;
	return 1;
}

/* verb_suppress_add - ADDR [--reason TEXT] [--expires DURATION] */
static int
verb_suppress_add(const char *conf, int argc, char **argv)
{
	const char *addr = NULL, *reason = "manual";
	time_t expires_at = 0;
	long d;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--reason") == 0 && i + 1 < argc) {
			reason = argv[++i];
			if (!suppress_reason_valid(reason))
				return verb_usage(argv[0]);
		} else if (strcmp(argv[i], "--expires") == 0 && i + 1 < argc) {
			if (util_parse_duration(argv[++i], &d) < 0 || d < 0)
				return verb_usage(argv[0]);
			expires_at = d > 0 ? util_now() + d : 0;
		} else if (addr == NULL && strncmp(argv[i], "--", 2) != 0) {
			addr = argv[i];
		} else {
			return verb_usage(argv[0]);
		}
	}
	if (addr == NULL)
		return verb_usage(argv[0]);
	return suppress_apply(conf, addr, reason, expires_at, NULL);
}

/* verb_suppress_remove - ADDR [--sender S] */
static int
verb_suppress_remove(const char *conf, int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[2], "--sender") == 0)
		return suppress_apply(conf, argv[1], NULL, 0, argv[3]);
	if (argc == 4 && strcmp(argv[1], "--sender") == 0)
		return suppress_apply(conf, argv[3], NULL, 0, argv[2]);
	if (argc != 2)
		return verb_usage(argv[0]);
	return suppress_apply(conf, argv[1], NULL, 0, NULL);
}

/* main - global options, then the verb */
int
main(int argc, char **argv)
{
	const char *conf = DEFAULT_CONF;
	const struct verb *v, *sub;
	int ch;

	/* --help as GNU tools take it; '+': options stop at the verb, which
	 * has its own arguments. */
	if (argc > 1 && strcmp(argv[1], "--help") == 0) {
		usage(stdout);
		return 0;
	}
	while ((ch = getopt(argc, argv, "+c:h")) != -1) {
		switch (ch) {
		case 'c':
			conf = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	argc -= optind;
	argv += optind;
	if (argc == 0) {
		usage(stderr);
		return 2;
	}
	if ((v = verb_find(verbs, ARRAY_LEN(verbs), argv[0])) == NULL) {
		fprintf(stderr, "outpostctl: unknown command '%s'\n", argv[0]);
		return 2;
	}
	if (v->sub == NULL)
		return v->run(conf, argc, argv);
	/* a group with a default ("queue" is "queue list") */
	if (v->run != NULL && (argc < 2 || argv[1][0] == '-'))
		return v->run(conf, argc, argv);
	if (argc < 2)
		return verb_usage(argv[0]);
	if ((sub = verb_find(v->sub->verbs, v->sub->n, argv[1])) == NULL) {
		fprintf(stderr, "outpostctl: unknown command '%s %s'\n", argv[0], argv[1]);
		return 2;
	}
	return sub->run(conf, argc - 1, argv + 1);
}
