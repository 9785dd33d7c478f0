/*
 * outpostctl - the control tool. One table of verbs {name, handler,
 * usage}; main() only parses the global options (-c FILE, -h) and
 * dispatches, so new verbs are one row and one function each.
 *
 * Verbs so far:
 *   passwd USER [SENDERS]  print a users-file line; the password comes from
 *                          stdin (asked twice, without echo, on a terminal)
 *   check-config           load the config (and users file) like outpostd -n
 *
 * Exit codes: 0 success, 1 failure, 2 usage error.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "auth.h"
#include "conf.h"
#include "util.h"

#ifndef SYSCONFDIR
#define SYSCONFDIR "/etc"
#endif

#define DEFAULT_CONF SYSCONFDIR "/outpost/outpost.conf"
#define PASS_BUF (AUTH_PASS_MAX + 2)   /* password, newline, NUL */

struct verb {
	const char *name;
	int (*run)(const char *conf, int argc, char **argv);
	const char *args;
	const char *help;
};

static int verb_passwd(const char *conf, int argc, char **argv);
static int verb_check_config(const char *conf, int argc, char **argv);

static const struct verb verbs[] = {
	{ "passwd", verb_passwd, "USER [SENDERS]",
	  "print a users-file line; password from stdin, SENDERS like"
	  " alice@example.com,@example.com" },
	{ "check-config", verb_check_config, "",
	  "check the configuration and the users file, like outpostd -n" },
};

/* usage - the verbs and what they do */
static void
usage(FILE *f)
{
	fprintf(f, "usage: outpostctl [-c FILE] COMMAND [ARGS]\n"
	    "  -c FILE  configuration (default " DEFAULT_CONF ")\n"
	    "commands:\n");
	for (size_t i = 0; i < ARRAY_LEN(verbs); i++)
		fprintf(f, "  %s%s%s\n      %s\n", verbs[i].name, *verbs[i].args ? " " : "",
		    verbs[i].args, verbs[i].help);
}

/* verb_usage - one verb's synopsis; returns the usage exit code */
static int
verb_usage(const char *name)
{
	for (size_t i = 0; i < ARRAY_LEN(verbs); i++)
		if (strcmp(verbs[i].name, name) == 0)
			fprintf(stderr, "usage: outpostctl [-c FILE] %s %s\n", name, verbs[i].args);
	return 2;
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
	struct auth_db *db;
	int nerr;

	if (argc != 1)
		return verb_usage(argv[0]);
	if ((nerr = conf_load(conf, stderr, &c)) > 0) {
		fprintf(stderr, "outpostctl: %s: %d error%s\n", conf, nerr, nerr == 1 ? "" : "s");
		return 1;
	}
	if (c->server.users_file[0]) {
		db = auth_load(c->server.users_file, stderr, &nerr);
		if (db == NULL) {
			fprintf(stderr, "outpostctl: %s: %d error%s\n", c->server.users_file,
			    nerr, nerr == 1 ? "" : "s");
			conf_free(c);
			return 1;
		}
		auth_free(db);
	}
	printf("%s: OK\n", conf);
	conf_free(c);
	return 0;
}

/* main - global options, then the verb */
int
main(int argc, char **argv)
{
	const char *conf = DEFAULT_CONF;
	int ch;

	/* '+': options stop at the verb, which has its own arguments. */
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
	for (size_t i = 0; i < ARRAY_LEN(verbs); i++)
		if (strcmp(verbs[i].name, argv[0]) == 0)
			return verbs[i].run(conf, argc, argv);
	fprintf(stderr, "outpostctl: unknown command '%s'\n", argv[0]);
	return 2;
}
