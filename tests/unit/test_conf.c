/*
 * test_conf - conf_load() on files written to a temporary directory:
 * defaults, every kind of value, relative paths, the embedded default
 * upstream, the exact "file:line: message" of each error, and the
 * trusted_networks matcher (v4, v6, v4-mapped).
 */
#include "config.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf.h"
#include "tap.h"

#ifndef LOCALSTATEDIR
#define LOCALSTATEDIR "/var"
#endif

static char dir[200];         /* short, so expected messages fit */
static char cpath[256];
static char *errs;

/* put - write a file under the test directory */
static void
put(const char *name, const char *text)
{
	char p[PATH_MAX + 64];
	FILE *f;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	if ((f = fopen(p, "w")) == NULL || fputs(text, f) < 0 || fclose(f) != 0) {
		perror(p);
		exit(99);
	}
}

/* load - write outpost.conf, load it, keep what went to errs */
static int
load(const char *text, struct conf **c)
{
	size_t len;
	FILE *f;
	int n;

	put("outpost.conf", text);
	free(errs);
	errs = NULL;
	f = open_memstream(&errs, &len);
	n = conf_load(cpath, f, c);
	fclose(f);
	return n;
}

/* msg - the expected "path:line: text\n" */
static const char *
msg(int line, const char *text)
{
	static char buf[8][1024];
	static int i;

	i = (i + 1) % 8;
	if (line > 0)
		snprintf(buf[i], sizeof(buf[i]), "%s:%d: %s\n", cpath, line, text);
	else
		snprintf(buf[i], sizeof(buf[i]), "%s: %s\n", cpath, text);
	return buf[i];
}

/* sub - "dir/name" */
static const char *
sub(const char *name)
{
	static char buf[4][PATH_MAX + 64];
	static int i;

	i = (i + 1) % 4;
	snprintf(buf[i], sizeof(buf[i]), "%s/%s", dir, name);
	return buf[i];
}

/* one_error - the file yields exactly this one error */
static void
one_error(const char *text, int line, const char *want, const char *what)
{
	struct conf *c = (struct conf *)1;
	int n = load(text, &c);

	is_int(n, 1, "%s: one error", what);
	ok(c == NULL, "%s: no conf on error", what);
	is_str(errs, msg(line, want), "%s: message", what);
	conf_free(c);
}

#define LISTEN "[listen test]\naddress = 127.0.0.1:2587\ntls = none\n"

/* test_defaults - a minimal file gets every documented default */
static void
test_defaults(void)
{
	struct conf *c = NULL;
	char host[HOST_MAX] = "", want[512];
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	const struct conf_upstream *u;

	is_int(load(LISTEN, &c), 0, "minimal config loads");
	is_str(errs, "", "no messages");
	if (c == NULL)
		return;
	gethostname(host, sizeof(host));
	is_str(c->server.hostname, host, "hostname defaults to gethostname()");
	is_str(c->server.state_dir, LOCALSTATEDIR "/lib/outpost", "state_dir default");
	is_str(c->server.users_file, "", "users_file default empty");
	is_int(c->server.ntrusted, 2, "trusted_networks default has two entries");
	is_int(c->server.max_message_size, 25 * 1024 * 1024, "max_message_size 25M");
	is_int(c->server.max_recipients, 100, "max_recipients 100");
	is_int(c->server.max_header_size, 256 * 1024, "max_header_size 256k");
	is_int(c->server.max_connections, 1000, "max_connections 1000");
	is_int(c->server.max_connections_per_ip, 50, "max_connections_per_ip 50");
	is_int(c->server.timeout_command, 300, "timeout_command 300");
	is_int(c->server.timeout_data, 180, "timeout_data 180");
	is_int(c->server.timeout_tls, 30, "timeout_tls 30");
	is_int(c->server.auth_max_failures, 3, "auth_max_failures 3");
	is_int(c->server.auth_failure_delay, 2, "auth_failure_delay 2");
	is_int(c->server.auth_penalty_window, 600, "auth_penalty_window 600");
	snprintf(want, sizeof(want), "postmaster@%s", host);
	is_str(c->server.postmaster, want, "postmaster defaults to postmaster@hostname");
	is_str(c->server.default_upstream, "local", "default_upstream is the embedded one");
	is_int(c->server.unsigned_policy, CONF_UNSIGNED_REJECT, "unsigned = reject");
	is_str(c->server.dns_server, "", "dns_server empty");
	is_int(c->server.signer_threads, cores < 1 ? 1 : cores > 64 ? 64 : cores,
	    "signer_threads = online cores");
	is_int(c->server.debug, 0, "log_level info");
	is_str(c->server.user, "outpost", "user = outpost");
	is_str(c->server.metrics_listen, "127.0.0.1:9587", "metrics_listen 127.0.0.1:9587");

	is_int(c->nlistens, 1, "one listener");
	is_str(c->listens[0].name, "test", "listener name");
	is_str(c->listens[0].host, "127.0.0.1", "listener host");
	is_int(c->listens[0].port, 2587, "listener port");
	is_int(c->listens[0].tls, CONF_TLS_NONE, "listener tls none");
	is_int(c->listens[0].auth, CONF_AUTH_REQUIRED, "listener auth default required");
	is_int(c->listens[0].line, 1, "listener line");

	is_int(c->nupstreams, 1, "embedded upstream created");
	u = conf_upstream_find(c, "local");
	ok(u != NULL, "upstream 'local' found");
	if (u) {
		ok(u->is_maildir, "local is a maildir");
		is_str(u->maildir, LOCALSTATEDIR "/lib/outpost/outbox", "local maildir under state_dir");
		is_str(u->helo, host, "helo defaults to hostname");
		is_int(u->line, 0, "embedded upstream has no line");
	}
	ok(conf_upstream_find(c, "nope") == NULL, "unknown upstream not found");

	is_int(c->queue.nretry, 5, "five retry steps");
	is_int(c->queue.retry[0], 60, "retry[0] 1m");
	is_int(c->queue.retry[1], 300, "retry[1] 5m");
	is_int(c->queue.retry[2], 900, "retry[2] 15m");
	is_int(c->queue.retry[3], 1800, "retry[3] 30m");
	is_int(c->queue.retry[4], 3600, "retry[4] 1h");
	is_int(c->queue.max_lifetime, 5 * 86400, "max_lifetime 5d");
	is_int(c->queue.delay_warning, 4 * 3600, "delay_warning 4h");
	is_int(c->queue.scan_interval, 1, "scan_interval 1s");
	is_int(c->queue.suppress_expiry, 90 * 86400, "suppress_expiry 90d");
	conf_free(c);
}

/* test_full - every key set, relative paths made absolute */
static void
test_full(void)
{
	struct conf *c = NULL;
	const struct conf_upstream *u;
	const struct conf_domain *d;
	static char text[8192];

	put("cert.pem", "cert\n");
	put("key.pem", "key\n");
	put("ca.pem", "ca\n");
	put("main.secret", "s3cret pass\n");
	snprintf(text, sizeof(text),
	    "; a comment\n"
	    "[server]\n"
	    "hostname = relay.example.com\n"
	    "state_dir = state\n"
	    "users_file = users\n"
	    "trusted_networks = 10.0.0.0/8, 2001:db8::/32 , 192.168.1.7\n"
	    "max_message_size = 10M\n"
	    "max_recipients = 7\n"
	    "max_header_size = 64k\n"
	    "max_connections = 20\n"
	    "max_connections_per_ip = 5\n"
	    "timeout_command = 5m\n"
	    "timeout_data = 2m\n"
	    "timeout_tls = 10s\n"
	    "auth_max_failures = 5\n"
	    "auth_failure_delay = 0\n"
	    "auth_penalty_window = 1h\n"
	    "postmaster = admin@example.com\n"
	    "default_upstream = backup\n"
	    "unsigned = relay\n"
	    "dns_server = 127.0.0.1:5353\n"
	    "signer_threads = 3\n"
	    "log_level = debug\n"
	    "user = mail-relay\n"
	    "metrics_listen = [::1]:9100\n"
	    "\n"
	    "[listen submission]\n"
	    "address = [::]:587\n"
	    "cert = cert.pem\n"
	    "key = key.pem\n"
	    "[listen smtps]\n"
	    "address = *:465\n"
	    "tls = implicit\n"
	    "auth = optional\n"
	    "cert = %s\n"
	    "key = key.pem\n"
	    "[upstream main]\n"
	    "address = smtp.provider.example:587\n"
	    "tls = implicit\n"
	    "tls_verify = no\n"
	    "ca_file = ca.pem\n"
	    "tls_name = mx.provider.example\n"
	    "username = relay@example.com\n"
	    "password_file = main.secret\n"
	    "helo = out.example.com\n"
	    "max_connections = 2\n"
	    "max_messages_per_connection = 50\n"
	    "idle_timeout = 1m\n"
	    "connect_timeout = 10\n"
	    "greeting_timeout = 20\n"
	    "command_timeout = 30\n"
	    "data_timeout = 40\n"
	    "data_block_timeout = 50\n"
	    "data_done_timeout = 60\n"
	    "[upstream backup]\n"
	    "address = maildir:out/box\n"
	    "[upstream third]\n"
	    "address = [2001:db8::25]:25\n"
	    "[domain Example.COM]\n"
	    "upstream = main, backup\n"
	    "[domain other.example]\n"
	    "upstream =\n"
	    "[queue]\n"
	    "retry = 30s, 2m, 1h\n"
	    "max_lifetime = 2d\n"
	    "delay_warning = 2h\n"
	    "scan_interval = 5s\n"
	    "suppress_expiry = 0\n", sub("cert.pem"));
	is_int(load(text, &c), 0, "full config loads");
	is_str(errs, "", "full config: no messages");
	if (c == NULL)
		return;
	is_str(c->server.hostname, "relay.example.com", "hostname");
	is_str(c->server.state_dir, sub("state"), "relative state_dir made absolute");
	is_str(c->server.users_file, sub("users"), "relative users_file made absolute");
	is_int(c->server.ntrusted, 3, "three trusted networks");
	is_int(c->server.max_message_size, 10 * 1024 * 1024, "max_message_size");
	is_int(c->server.max_recipients, 7, "max_recipients");
	is_int(c->server.max_header_size, 64 * 1024, "max_header_size");
	is_int(c->server.max_connections, 20, "max_connections");
	is_int(c->server.max_connections_per_ip, 5, "max_connections_per_ip");
	is_int(c->server.timeout_command, 300, "timeout_command");
	is_int(c->server.timeout_data, 120, "timeout_data");
	is_int(c->server.timeout_tls, 10, "timeout_tls");
	is_int(c->server.auth_max_failures, 5, "auth_max_failures");
	is_int(c->server.auth_failure_delay, 0, "auth_failure_delay");
	is_int(c->server.auth_penalty_window, 3600, "auth_penalty_window");
	is_str(c->server.postmaster, "admin@example.com", "postmaster");
	is_str(c->server.default_upstream, "backup", "default_upstream");
	is_int(c->server.unsigned_policy, CONF_UNSIGNED_RELAY, "unsigned relay");
	is_str(c->server.dns_server, "127.0.0.1:5353", "dns_server");
	is_str(c->server.user, "mail-relay", "user");
	is_str(c->server.metrics_listen, "[::1]:9100", "metrics_listen");
	is_int(c->server.signer_threads, 3, "signer_threads");
	is_int(c->server.debug, 1, "log_level debug");

	is_int(c->nlistens, 2, "two listeners");
	is_str(c->listens[0].host, "::", "[::] host");
	is_int(c->listens[0].port, 587, "port 587");
	is_int(c->listens[0].tls, CONF_TLS_STARTTLS, "tls default starttls");
	is_str(c->listens[0].cert, sub("cert.pem"), "relative cert made absolute");
	is_str(c->listens[0].key, sub("key.pem"), "relative key made absolute");
	is_int(c->listens[0].line, 27, "listener line is its header");
	is_str(c->listens[1].host, "*", "* host");
	is_int(c->listens[1].port, 465, "port 465");
	is_int(c->listens[1].tls, CONF_TLS_IMPLICIT, "tls implicit");
	is_int(c->listens[1].auth, CONF_AUTH_OPTIONAL, "auth optional");
	is_str(c->listens[1].cert, sub("cert.pem"), "absolute cert kept");

	is_int(c->nupstreams, 3, "three upstreams, no embedded one");
	ok(conf_upstream_find(c, "local") == NULL, "no 'local' when upstreams are given");
	u = conf_upstream_find(c, "main");
	ok(u != NULL, "upstream main");
	if (u) {
		ok(!u->is_maildir, "main is not a maildir");
		is_str(u->host, "smtp.provider.example", "main host");
		is_int(u->port, 587, "main port");
		is_int(u->tls, CONF_TLS_IMPLICIT, "main tls");
		is_int(u->tls_verify, 0, "tls_verify no");
		is_str(u->ca_file, sub("ca.pem"), "ca_file absolute");
		is_str(u->tls_name, "mx.provider.example", "tls_name");
		is_str(u->username, "relay@example.com", "username");
		is_str(u->password_file, sub("main.secret"), "password_file absolute");
		is_str(u->password, "s3cret pass", "password read, newline stripped");
		is_str(u->helo, "out.example.com", "helo");
		is_int(u->max_connections, 2, "max_connections");
		is_int(u->max_messages_per_connection, 50, "max_messages_per_connection");
		is_int(u->idle_timeout, 60, "idle_timeout");
		is_int(u->connect_timeout, 10, "connect_timeout");
		is_int(u->greeting_timeout, 20, "greeting_timeout");
		is_int(u->command_timeout, 30, "command_timeout");
		is_int(u->data_timeout, 40, "data_timeout");
		is_int(u->data_block_timeout, 50, "data_block_timeout");
		is_int(u->data_done_timeout, 60, "data_done_timeout");
	}
	u = conf_upstream_find(c, "backup");
	ok(u && u->is_maildir, "backup is a maildir");
	if (u) {
		is_str(u->maildir, sub("out/box"), "relative maildir made absolute");
		is_str(u->helo, "relay.example.com", "helo defaults to hostname");
		is_int(u->max_connections, 4, "upstream max_connections default 4");
		is_int(u->max_messages_per_connection, 100, "default 100 per connection");
		is_int(u->tls_verify, 1, "tls_verify default yes");
		is_int(u->idle_timeout, 30, "idle_timeout default");
		is_int(u->connect_timeout, 30, "connect_timeout default");
		is_int(u->greeting_timeout, 300, "greeting_timeout default");
		is_int(u->command_timeout, 300, "command_timeout default");
		is_int(u->data_timeout, 120, "data_timeout default");
		is_int(u->data_block_timeout, 180, "data_block_timeout default");
		is_int(u->data_done_timeout, 600, "data_done_timeout default");
		ok(u->password == NULL, "no password without username");
	}
	u = conf_upstream_find(c, "third");
	ok(u != NULL, "upstream third");
	if (u) {
		is_str(u->host, "2001:db8::25", "bracketed v6 host");
		is_int(u->port, 25, "port 25");
		is_str(u->tls_name, "2001:db8::25", "tls_name defaults to host");
		is_int(u->tls, CONF_TLS_STARTTLS, "upstream tls default starttls");
	}

	is_int(c->ndomains, 2, "two domains");
	d = conf_domain_find(c, "EXAMPLE.com");
	ok(d != NULL, "domain found case-insensitively");
	if (d) {
		is_str(d->name, "example.com", "domain name lower-cased");
		is_int(d->nupstreams, 2, "two upstreams for the domain");
		if (d->nupstreams == 2) {
			is_str(d->upstreams[0], "main", "first upstream");
			is_str(d->upstreams[1], "backup", "second upstream");
		}
	}
	d = conf_domain_find(c, "other.example");
	ok(d && d->nupstreams == 0, "empty upstream list allowed");
	ok(conf_domain_find(c, "sub.example.com") == NULL, "subdomain has no section");

	is_int(c->queue.nretry, 3, "three retries");
	is_int(c->queue.retry[0], 30, "retry 30s");
	is_int(c->queue.retry[1], 120, "retry 2m");
	is_int(c->queue.retry[2], 3600, "retry 1h");
	is_int(c->queue.max_lifetime, 2 * 86400, "max_lifetime");
	is_int(c->queue.delay_warning, 7200, "delay_warning");
	is_int(c->queue.scan_interval, 5, "scan_interval");
	is_int(c->queue.suppress_expiry, 0, "suppress_expiry 0 = never");
	conf_free(c);
}

/* test_errors - exact "file:line: message" for each kind of mistake */
static void
test_errors(void)
{
	struct conf *c = NULL;
	char want[2048], line[400];
	int n;

	one_error("[server]\nmax_recipients = abc\n" LISTEN, 2,
	    "max_recipients: expected a number between 1 and 100000, got 'abc'", "bad int");
	one_error("[server]\nmax_recipients = 100001\n" LISTEN, 2,
	    "max_recipients: expected a number between 1 and 100000, got '100001'", "int above max");
	one_error("[server]\nmax_recipients = 0\n" LISTEN, 2,
	    "max_recipients: expected a number between 1 and 100000, got '0'", "int below min");
	one_error("[server]\nmax_message_size = 512\n" LISTEN, 2,
	    "max_message_size: expected a size such as 512k or 25M between 1k and 512M,"
	    " got '512'", "size below 1k");
	one_error("[server]\ntimeout_tls = 5x\n" LISTEN, 2,
	    "timeout_tls: expected a duration such as 30s, 5m, 1h or 5d between 1s and 1d,"
	    " got '5x'", "bad duration");
	one_error(LISTEN "tls_verify = maybe\n", 4, "unknown key 'tls_verify' in [listen test]",
	    "upstream key in a listener");
	one_error("[upstream u]\naddress = h.example:25\ntls_verify = maybe\n" LISTEN, 3,
	    "tls_verify: expected yes or no, got 'maybe'", "bad bool");
	one_error("[server]\nunsigned = sometimes\n" LISTEN, 2,
	    "unsigned: expected reject or relay, got 'sometimes'", "bad enum");
	one_error(LISTEN "[upstream u]\naddress = h.example:25\ntls = ssl\n", 6,
	    "tls: expected starttls, implicit or none, got 'ssl'", "bad tls enum");
	one_error("[server]\nuser = root\n" LISTEN, 2, "user: expected the name of an existing"
	    " account other than root, such as outpost, got 'root'", "user root refused");
	one_error("[server]\nuser = a b\n" LISTEN, 2, "user: expected the name of an existing"
	    " account other than root, such as outpost, got 'a b'", "user with a space");
	one_error("[server]\nmetrics_listen = 9587\n" LISTEN, 2, "metrics_listen: expected an IP"
	    " address and port such as 127.0.0.1:9587, or no, got '9587'", "metrics without host");
	one_error("[server]\nmetrics_listen = localhost:9587\n" LISTEN, 2, "metrics_listen:"
	    " expected an IP address and port such as 127.0.0.1:9587, or no, got"
	    " 'localhost:9587'", "metrics host name");
	one_error("[server]\nbogus = 1\n" LISTEN, 2, "unknown key 'bogus' in [server]",
	    "unknown key");
	one_error("[server]\nmax_recipients = 5\n\nmax_recipients = 6\n" LISTEN, 4,
	    "duplicate key 'max_recipients' in [server] (first on line 2)", "duplicate key");
	one_error("[server]\nhostname = a\n[server]\nmax_recipients = 3\n" LISTEN, 3,
	    "duplicate section [server] (first on line 1)", "duplicate [server]");
	one_error("[bogus]\nx = 1\n" LISTEN, 1, "unknown section [bogus]", "unknown section");
	one_error("[listen]\naddress = 1.2.3.4:5\n" LISTEN, 1,
	    "[listen] needs a name, as in [listen NAME]", "listen without a name");
	one_error(LISTEN "[listen test]\naddress = 127.0.0.1:2588\ntls = none\n", 4,
	    "duplicate section [listen test] (first on line 1)", "duplicate listener name");
	one_error("[server]\nthis line has no equals\n" LISTEN, 2,
	    "expected 'key = value' or '[section]'", "syntax error");
	one_error("[server\nhostname = x\n" LISTEN, 1,
	    "expected ']' at the end of the section header", "unclosed section header");
	one_error("hostname = x\n" LISTEN, 1, "key 'hostname' outside of a section",
	    "key before any section");
	one_error("[server]\n", 0, "no [listen] section", "missing listener");
	one_error("[listen a]\ntls = none\n", 1, "[listen a]: address is required",
	    "listener without address");
	one_error("[listen a]\naddress = 587\ntls = none\n", 2,
	    "address: expected host:port, [v6]:port or *:port, got '587'", "bad listen address");
	one_error("[listen a]\naddress = 127.0.0.1:2587\ncert = nope.pem\nkey = nope.key\n"
	    "tls = none\n[upstream u]\naddress = nowhere\n", 7,
	    "address: expected host:port or maildir:DIR, got 'nowhere'", "bad upstream address");
	snprintf(want, sizeof(want), "cert %s: No such file or directory", sub("missing.pem"));
	put("k.pem", "k\n");
	one_error("[listen a]\naddress = 127.0.0.1:2587\ncert = missing.pem\nkey = k.pem\n", 3,
	    want, "unreadable cert");
	snprintf(want, sizeof(want), "key %s: Is a directory", dir);
	put("c.pem", "c\n");
	snprintf(line, sizeof(line), "[listen a]\naddress = 127.0.0.1:2587\ncert = c.pem\nkey = %s\n", dir);
	one_error(line, 4, want, "key is a directory");
	one_error("[listen a]\naddress = 127.0.0.1:2587\ncert = c.pem\n", 1,
	    "[listen a]: key is required unless tls = none", "missing key");
	one_error("[domain example.com]\nupstream = main, nope\n" LISTEN
	    "[upstream main]\naddress = maildir:/tmp/x\n", 2, "unknown upstream 'nope'",
	    "unknown upstream in a domain");
	one_error("[domain example.com]\nupstream = main\n" LISTEN, 2,
	    "unknown upstream 'main'", "domain names an upstream while only 'local' exists");
	one_error("[server]\nhostname = h.example\ndefault_upstream = main\n" LISTEN, 3,
	    "default_upstream: unknown upstream 'main'", "default_upstream must exist");
	one_error("[server]\ntrusted_networks = 10.0.0.0/8, 10.0.0.0/33\n" LISTEN, 2,
	    "trusted_networks: expected a comma list of addresses or networks such as"
	    " 10.0.0.0/8, ::1, got '10.0.0.0/33'", "bad network");
	one_error("[queue]\nretry = 1m, 0, 5m\n" LISTEN, 2,
	    "retry: expected a comma list of durations such as 1m, 5m, 1h, each between"
	    " 1s and 7d, got '0'", "zero retry");
	one_error("[queue]\nretry = 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,"
	    "23,24,25,26,27,28,29,30,31,32,33\n" LISTEN, 2,
	    "retry: expected at most 32 durations, got '1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,"
	    "16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,33'", "too many retries");
	one_error("[queue]\nmax_lifetime = 0\n" LISTEN, 2,
	    "max_lifetime: expected a duration such as 30s, 5m, 1h or 5d between 1s and 60d,"
	    " got '0'", "max_lifetime below 1s");
	one_error("[queue]\nscan_interval = 0\n" LISTEN, 2,
	    "scan_interval: expected a duration such as 30s, 5m, 1h or 5d between 1s and 1h,"
	    " got '0'", "scan_interval below 1s");
	one_error("[server]\nsigner_threads = 65\n" LISTEN, 2,
	    "signer_threads: expected a number between 0 and 64, got '65'", "too many threads");
	one_error("[server]\npostmaster = nobody\n" LISTEN, 2,
	    "postmaster: expected an address such as admin@example.com, got 'nobody'",
	    "postmaster without a domain");
	one_error("[upstream u]\naddress = h.example:587\nusername = me\n" LISTEN, 3,
	    "upstream u: password_file is required when username is set",
	    "username without password_file");
	snprintf(want, sizeof(want), "password_file %s: No such file or directory",
	    sub("no.secret"));
	one_error("[upstream u]\naddress = h.example:587\nusername = me\n"
	    "password_file = no.secret\n" LISTEN, 4, want, "unreadable password_file");
	put("u.secret", "pw\n");
	one_error("[upstream u]\naddress = h.example:25\ntls = none\nusername = me\n"
	    "password_file = u.secret\n" LISTEN, 4,
	    "upstream u: AUTH over an unencrypted connection is refused;"
	    " set tls = starttls or implicit", "AUTH without TLS refused");

	/* A value of exactly 199 characters fits inih's line; 200 do not. */
	memset(line, 0, sizeof(line));
	strcpy(line, "[server]\nhostname = ");
	memset(line + strlen(line), 'a', 199 - strlen("hostname = "));
	strcat(line, "\n" LISTEN);
	is_int(load(line, &c), 0, "199-character line accepted");
	ok(c && strlen(c->server.hostname) == 188, "whole value kept");
	conf_free(c);
	memset(line, 0, sizeof(line));
	strcpy(line, "[server]\nhostname = ");
	memset(line + strlen(line), 'a', 200 - strlen("hostname = "));
	strcat(line, "\nmax_recipients = x\n" LISTEN);
	n = load(line, &c);
	is_int(n, 2, "200-character line: two errors");
	snprintf(want, sizeof(want), "%s%s", msg(2, "line too long (at most 199 characters)"),
	    msg(3, "max_recipients: expected a number between 1 and 100000, got 'x'"));
	is_str(errs, want, "long line reported, next line still parsed");

	/* Everything is reported, in order, not just the first problem. */
	n = load("[server]\n"
	    "max_recipients = abc\n"
	    "bogus = 1\n"
	    "max_recipients = 5\n"
	    "[domain example.com]\n"
	    "upstream = nope\n"
	    "[queue]\n"
	    "retry = soon\n", &c);
	is_int(n, 6, "all errors counted");
	ok(c == NULL, "no conf");
	snprintf(want, sizeof(want), "%s%s%s%s%s%s",
	    msg(2, "max_recipients: expected a number between 1 and 100000, got 'abc'"),
	    msg(3, "unknown key 'bogus' in [server]"),
	    msg(4, "duplicate key 'max_recipients' in [server] (first on line 2)"),
	    msg(8, "retry: expected a comma list of durations such as 1m, 5m, 1h, each"
	    " between 1s and 7d, got 'soon'"),
	    msg(0, "no [listen] section"),
	    msg(6, "unknown upstream 'nope'"));
	is_str(errs, want, "every error with its line");
}

/* test_syntax - warnings, BOM, CRLF, indentation, comments, empty lists */
static void
test_syntax(void)
{
	struct conf *c = NULL;

	/* tls = none to a host: allowed, with a warning. */
	is_int(load("[upstream u]\naddress = h.example:25\ntls = none\n" LISTEN, &c), 0,
	    "tls = none upstream loads");
	is_str(errs, msg(3, "warning: upstream u: tls = none sends mail and passwords in clear"),
	    "tls = none warned about");
	conf_free(c);
	c = NULL;
	is_int(load("[upstream u]\naddress = maildir:/tmp/m\ntls = none\n" LISTEN, &c), 0,
	    "maildir with tls = none loads");
	is_str(errs, "", "no warning for a maildir");
	conf_free(c);
	c = NULL;

	/* Indented keys are keys (no inih continuation lines), CRLF line
	 * ends and " ;" comments are fine, and '#' comments too. */
	is_int(load("\xEF\xBB\xBF[server]\r\n"
	    "  hostname = relay.example.com ; inline comment\r\n"
	    "\tmax_recipients = 9\r\n"
	    "# comment\n"
	    "   ; indented comment\n"
	    "[ listen  a ]\n"
	    "address: 127.0.0.1:25\n"
	    "tls = none\n", &c), 0, "BOM, CRLF, indentation, comments, ':'");
	is_str(errs, "", "no messages");
	if (c) {
		is_str(c->server.hostname, "relay.example.com", "inline comment stripped");
		is_int(c->server.max_recipients, 9, "indented key read as a key");
		is_str(c->listens[0].name, "a", "section name trimmed");
		is_int(c->listens[0].port, 25, "name: value accepted");
	}
	conf_free(c);
	c = NULL;
	is_int(load("[server]\ntrusted_networks =\n" LISTEN, &c), 0, "empty trusted_networks");
	ok(c && c->server.ntrusted == 0, "no trusted networks");
	conf_free(c);
	c = NULL;
	is_int(load(LISTEN "[upstream x]\naddress = maildir:/tmp/x\n"
	    "[upstream y]\naddress = maildir:/tmp/y\n", &c), 0, "two upstreams");
	ok(c && strcmp(c->server.default_upstream, "x") == 0, "default_upstream is the first");
	conf_free(c);
}

/* test_relative_config - a config named relative to the cwd */
static void
test_relative_config(void)
{
	struct conf *c = NULL;
	FILE *f;
	int cwd = open(".", O_RDONLY | O_DIRECTORY);
	char *text = NULL;
	size_t len;
	int n;

	put("outpost.conf", "[server]\nstate_dir = st\n" LISTEN);
	if (cwd < 0 || chdir(dir) < 0) {
		ok(0, "chdir to the test directory");
		return;
	}
	f = open_memstream(&text, &len);
	n = conf_load("outpost.conf", f, &c);
	fclose(f);
	is_int(n, 0, "config given by a relative path loads");
	ok(c && strcmp(c->server.state_dir, sub("st")) == 0,
	    "relative path resolved against the cwd-relative config's directory");
	ok(c && strcmp(c->path, "outpost.conf") == 0, "path kept as given");
	if (c)
		is_str(c->upstreams[0].maildir, sub("st/outbox"), "embedded maildir under state_dir");
	conf_free(c);
	free(text);
	if (fchdir(cwd) < 0)
		perror("fchdir");
	close(cwd);
}

/* v4 / v6 socket addresses for the matcher */
static const struct sockaddr *
addr(const char *ip)
{
	static struct sockaddr_storage ss[4];
	static int i;
	struct sockaddr_storage *s = &ss[i = (i + 1) % 4];

	memset(s, 0, sizeof(*s));
	if (strchr(ip, ':')) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)s;
		s6->sin6_family = AF_INET6;
		if (inet_pton(AF_INET6, ip, &s6->sin6_addr) != 1)
			fprintf(stderr, "bad test address %s\n", ip);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)s;
		s4->sin_family = AF_INET;
		if (inet_pton(AF_INET, ip, &s4->sin_addr) != 1)
			fprintf(stderr, "bad test address %s\n", ip);
	}
	return (const struct sockaddr *)s;
}

/* match - parse `net`, match `ip` */
static int
match(const char *net, const char *ip)
{
	struct conf_net n;

	if (conf_parse_net(net, &n) < 0)
		return -1;
	return conf_net_match(&n, addr(ip));
}

/* test_networks - conf_parse_net and conf_net_match, v4, v6 and v4-mapped */
static void
test_networks(void)
{
	static const struct { const char *net, *ip; int want; } cases[] = {
		{ "10.0.0.0/8", "10.1.2.3", 1 },
		{ "10.0.0.0/8", "11.0.0.1", 0 },
		{ "10.0.16.0/20", "10.0.31.255", 1 },
		{ "10.0.16.0/20", "10.0.32.0", 0 },
		{ "10.0.16.0/20", "10.0.15.255", 0 },
		{ "192.168.1.7", "192.168.1.7", 1 },
		{ "192.168.1.7", "192.168.1.8", 0 },
		{ "10.1.2.3/8", "10.200.0.1", 1 },      /* host bits ignored */
		{ "0.0.0.0/0", "203.0.113.9", 1 },
		{ "0.0.0.0/0", "2001:db8::1", 0 },      /* v4 net, v6 peer */
		{ "::1", "::1", 1 },
		{ "::1", "::2", 0 },
		{ "2001:db8::/32", "2001:db8:ffff::1", 1 },
		{ "2001:db8::/32", "2001:db9::1", 0 },
		{ "2001:db8::/33", "2001:db8:8000::1", 0 },
		{ "::/0", "10.0.0.1", 0 },              /* v6 net, v4 peer */
		{ "127.0.0.0/8", "::ffff:127.0.0.2", 1 }, /* v4-mapped peer */
		{ "127.0.0.0/8", "::ffff:128.0.0.1", 0 },
		{ "::ffff:10.0.0.0/104", "10.9.9.9", 1 }, /* v4-mapped net */
		{ "::ffff:10.0.0.0/104", "::ffff:10.9.9.9", 1 },
		{ "::ffff:10.0.0.0/104", "11.0.0.1", 0 },
	};
	static const char *bad[] = { "10.0.0.0/33", "::/129", "abc", "10.0.0.0/",
	    "10.0.0.0/-1", "", "10.0.0.0/8x", "1.2.3", "10.0.0.0/+8",
	    "0000:0000:0000:0000:0000:0000:0000:0000:0000/1" };
	struct conf_net n;
	struct conf *c = NULL;

	for (size_t i = 0; i < ARRAY_LEN(cases); i++)
		is_int(match(cases[i].net, cases[i].ip), cases[i].want, "%s %s %s",
		    cases[i].net, cases[i].want ? "matches" : "does not match", cases[i].ip);
	for (size_t i = 0; i < ARRAY_LEN(bad); i++)
		is_int(conf_parse_net(bad[i], &n), -1, "'%s' rejected", bad[i]);
	ok(conf_parse_net("::ffff:10.0.0.0/104", &n) == 0 && n.family == AF_INET &&
	    n.prefix == 8, "v4-mapped network stored as v4/8");
	ok(conf_parse_net("2001:db8::/32", &n) == 0 && n.family == AF_INET6 &&
	    n.prefix == 32, "v6 network");
	ok(conf_parse_net("10.0.0.1", &n) == 0 && n.prefix == 32, "bare v4 is /32");

	if (load(LISTEN, &c) != 0 || c == NULL) {
		ok(0, "default config for conf_is_trusted");
		return;
	}
	ok(conf_is_trusted(c, addr("127.0.0.1")), "127.0.0.1 trusted by default");
	ok(conf_is_trusted(c, addr("127.255.0.9")), "127/8 trusted by default");
	ok(!conf_is_trusted(c, addr("10.0.0.1")), "10.0.0.1 not trusted by default");
	ok(conf_is_trusted(c, addr("::1")), "::1 trusted by default");
	ok(!conf_is_trusted(c, addr("::2")), "::2 not trusted");
	ok(conf_is_trusted(c, addr("::ffff:127.0.0.1")), "v4-mapped loopback trusted");
	ok(!conf_is_trusted(c, addr("::ffff:10.0.0.1")), "v4-mapped 10.0.0.1 not trusted");
	conf_free(c);
}

/* test_example - conf/outpost.conf stays valid once its files exist */
static void
test_example(void)
{
	const char *top = getenv("top_srcdir");
	char path[PATH_MAX], prefix[PATH_MAX + 16], *text = NULL, buf[1024], *p;
	struct conf *c = NULL;
	size_t len;
	FILE *in, *out;

	snprintf(path, sizeof(path), "%s/conf/outpost.conf", top ? top : ".");
	if ((in = fopen(path, "r")) == NULL) {
		ok(0, "open %s", path);
		return;
	}
	/* Point /etc/outpost/... at files made in the test directory. */
	snprintf(prefix, sizeof(prefix), "%s/", dir);
	out = open_memstream(&text, &len);
	while (fgets(buf, sizeof(buf), in)) {
		for (p = buf; (p = strstr(buf, "/etc/outpost/")) != NULL; ) {
			fwrite(buf, 1, (size_t)(p - buf), out);
			fputs(prefix, out);
			memmove(buf, p + 13, strlen(p + 13) + 1);
		}
		fputs(buf, out);
	}
	fclose(in);
	fclose(out);
	mkdir(sub("tls"), 0700);
	put("tls/cert.pem", "c\n");
	put("tls/key.pem", "k\n");
	put("upstream-main.secret", "main\n");
	put("upstream-backup.secret", "backup\n");
	is_int(load(text, &c), 0, "conf/outpost.conf loads");
	is_str(errs, "", "conf/outpost.conf: no errors or warnings");
	free(text);
	if (c == NULL)
		return;
	is_int(c->nlistens, 2, "example: two listeners");
	is_int(c->nupstreams, 2, "example: two upstreams");
	is_str(c->server.default_upstream, "main", "example: default_upstream");
	ok(conf_domain_find(c, "example.com") != NULL, "example: domain section");
	is_str(c->upstreams[0].password, "main", "example: password read");
	conf_free(c);
}

/* rm - nftw callback */
/* error_at - exactly one error, on `line`, whose text contains `part` */
static void
error_at(const char *text, int line, const char *part, const char *what)
{
	struct conf *c = (struct conf *)1;
	char prefix[PATH_MAX + 32];
	int n = load(text, &c);

	snprintf(prefix, sizeof(prefix), "%s:%d: ", cpath, line);
	is_int(n, 1, "%s: one error", what);
	ok(c == NULL, "%s: no conf on error", what);
	ok(errs && strncmp(errs, prefix, strlen(prefix)) == 0 && strstr(errs, part) != NULL,
	    "%s: '%s' at line %d (%s)", what, part, line, errs ? errs : "");
	conf_free(c);
}

/* test_throttle_keys - rate, daily limits, domain_rate, growth, user limits */
static void
test_throttle_keys(void)
{
	struct conf *c = NULL;
	const struct conf_upstream *u;

	is_int(load(LISTEN "[upstream u]\naddress = h.example:25\n", &c), 0,
	    "throttle: defaults load");
	if (c && (u = conf_upstream_find(c, "u")) != NULL) {
		ok(u->rate.n == 0 && u->recipient_rate.n == 0, "throttle: no rates by default");
		ok(u->daily_limit == 0 && u->daily_rcpt_limit == 0, "throttle: no daily limits");
		ok(u->ndomain_rates == 0 && u->domain_rates == NULL, "throttle: no domain_rate");
		ok(u->max_daily_growth == 0 && u->growth_seed == 0, "throttle: spike guard off");
		is_int(u->throttle_cooldown, 30, "throttle: throttle_cooldown 30s");
		ok(c->server.user_rate.n == 0 && c->server.user_daily_limit == 0,
		    "throttle: no user limits");
	}
	conf_free(c);

	is_int(load("[server]\nuser_rate = 30/minute\nuser_daily_limit = 500\n" LISTEN
	    "[upstream u]\naddress = h.example:25\nrate = 10/second\n"
	    "recipient_rate = 250/hour\ndaily_limit = 2000\ndaily_rcpt_limit = 10000\n"
	    "domain_rate = gmail.com:20/minute, Yahoo.com:10/m\nmax_daily_growth = 2.5\n"
	    "growth_seed = 1000\nthrottle_cooldown = 1s\n", &c), 0, "throttle: every key loads");
	is_str(errs, "", "throttle: no messages");
	if (c && (u = conf_upstream_find(c, "u")) != NULL) {
		ok(u->rate.n == 10 && u->rate.period == 1, "throttle: rate 10/second");
		ok(u->recipient_rate.n == 250 && u->recipient_rate.period == 3600,
		    "throttle: recipient_rate 250/hour");
		ok(u->daily_limit == 2000, "throttle: daily_limit");
		ok(u->daily_rcpt_limit == 10000, "throttle: daily_rcpt_limit");
		is_int(u->ndomain_rates, 2, "throttle: two domain rates");
		if (u->ndomain_rates == 2) {
			is_str(u->domain_rates[0].domain, "gmail.com", "throttle: first domain");
			ok(u->domain_rates[0].rate.n == 20 && u->domain_rates[0].rate.period == 60,
			    "throttle: gmail.com 20/minute");
			is_str(u->domain_rates[1].domain, "yahoo.com",
			    "throttle: domain lower-cased");
		}
		ok(u->max_daily_growth == 2.5, "throttle: max_daily_growth 2.5");
		ok(u->growth_seed == 1000, "throttle: growth_seed");
		is_int(u->throttle_cooldown, 1, "throttle: throttle_cooldown 1s");
		ok(c->server.user_rate.n == 30 && c->server.user_rate.period == 60,
		    "throttle: user_rate 30/minute");
		ok(c->server.user_daily_limit == 500, "throttle: user_daily_limit");
	}
	conf_free(c);

	is_int(load(LISTEN "[upstream u]\naddress = h.example:25\nmax_daily_growth = 0\n"
	    "domain_rate =\n", &c), 0, "throttle: growth 0 and an empty domain_rate load");
	if (c && (u = conf_upstream_find(c, "u")) != NULL)
		ok(u->max_daily_growth == 0 && u->ndomain_rates == 0,
		    "throttle: both mean off");
	conf_free(c);

#define UPU LISTEN "[upstream u]\naddress = h.example:25\n"
	error_at(UPU "rate = 10/fortnight\n", 6, "rate: ", "throttle: bad rate unit");
	error_at(UPU "rate = ten/second\n", 6, "rate: ", "throttle: bad rate number");
	error_at(UPU "recipient_rate = 0/second\n", 6, "recipient_rate: ",
	    "throttle: zero rate");
	error_at("[server]\nuser_rate = 5\n" LISTEN, 2, "user_rate: ",
	    "throttle: rate without a period");
	error_at(UPU "domain_rate = gmail.com\n", 6, "domain_rate: ",
	    "throttle: domain_rate without a rate");
	error_at(UPU "domain_rate = a.com:1/s, A.com:2/s\n", 6, "domain_rate: ",
	    "throttle: domain named twice");
	error_at(UPU "daily_limit = -1\n", 6,
	    "daily_limit: expected a whole number (0 = no limit) between 0 and 1000000000,"
	    " got '-1'", "throttle: negative daily_limit");
	error_at(UPU "daily_rcpt_limit = 1e3\n", 6, "daily_rcpt_limit: expected a whole number",
	    "throttle: exponent in a count");
	error_at("[server]\nuser_daily_limit = +5\n" LISTEN, 2,
	    "user_daily_limit: expected a whole number", "throttle: sign in a count");
	error_at(UPU "growth_seed = 1000000001\n", 6, "growth_seed: expected a whole number",
	    "throttle: growth_seed above max");
	{
		static const char *const bad[] = { "2,5", "1e1", "0.5", ".5", "2.", "inf",
		    "nan", "0x2", "-2", "+2", "2.0000001", "101", " ", "2 .0" };
		char text[256];
		for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
			snprintf(text, sizeof(text), UPU "max_daily_growth = %s\n", bad[i]);
			error_at(text, 6, "max_daily_growth: expected 0 (off) or a decimal such as"
			    " 2.0, between 1 and 100", bad[i]);
		}
	}
	error_at(UPU "throttle_cooldown = 0\n", 6, "throttle_cooldown: expected a duration",
	    "throttle: cooldown 0");
#undef UPU
}

/* test_dkim_keys - dkim_key syntax; the keys themselves are dkim_key.c's */
static void
test_dkim_keys(void)
{
	struct conf *c = NULL;
	const struct conf_domain *d;

	is_int(load(LISTEN "[domain Example.COM]\n"
	    "dkim_key = s2026:keys/rsa.pem, e2026 : /etc/outpost/ed.pem\n"
	    "dkim_subdomains = yes\n", &c), 0, "dkim_key list loads");
	is_str(errs, "", "dkim_key: no messages");
	if (c == NULL)
		return;
	d = conf_domain_find(c, "example.com");
	ok(d != NULL, "domain found case-insensitively");
	if (d) {
		is_int(d->ndkim_keys, 2, "two keys");
		is_str(d->dkim_keys[0].selector, "s2026", "first selector");
		is_str(d->dkim_keys[0].path, sub("keys/rsa.pem"),
		    "relative key path resolved against the config directory");
		is_str(d->dkim_keys[1].selector, "e2026", "second selector, blanks trimmed");
		is_str(d->dkim_keys[1].path, "/etc/outpost/ed.pem", "absolute path kept");
		is_int(d->dkim_line, 5, "line of dkim_key kept for key errors");
		is_int(d->dkim_subdomains, 1, "dkim_subdomains = yes");
	}
	conf_free(c);

	is_int(load(LISTEN "[domain example.org]\nupstream = local\n", &c), 0,
	    "domain without keys loads");
	if (c) {
		d = conf_domain_find(c, "example.org");
		ok(d && d->ndkim_keys == 0 && d->dkim_subdomains == 0,
		    "no keys, dkim_subdomains defaults to no");
		conf_free(c);
	}

	one_error(LISTEN "[domain example.com]\ndkim_key = /etc/key.pem\n", 5,
	    "dkim_key: expected SELECTOR:PATH[, SELECTOR:PATH...], got '/etc/key.pem'",
	    "dkim_key without selector");
	one_error(LISTEN "[domain example.com]\ndkim_key = bad_sel:/k.pem\n", 5,
	    "dkim_key: 'bad_sel' is not a DKIM selector (letters, digits, '-' and '.', "
	    "at most 63 characters)", "selector with '_'");
	one_error(LISTEN "[domain example.com]\ndkim_key = -x:/k.pem\n", 5,
	    "dkim_key: '-x' is not a DKIM selector (letters, digits, '-' and '.', "
	    "at most 63 characters)", "selector starting with '-'");
	one_error(LISTEN "[domain example.com]\ndkim_key = s1:/a.pem, S1:/b.pem\n", 5,
	    "dkim_key: selector 'S1' is given twice", "duplicate selector");
	one_error(LISTEN "[domain example.com]\ndkim_key = s1:\n", 5,
	    "dkim_key: expected SELECTOR:PATH[, SELECTOR:PATH...], got 's1:'",
	    "selector without path");
	is_int(load(LISTEN "[domain example.com]\ndkim_key = s1:/k/a.pem\n"
	    "upstream = local\ndkim_key = s2:/k/b.pem, s3:/k/c.pem\n", &c), 0,
	    "dkim_key may be repeated");
	is_str(errs, "", "repeated dkim_key: no messages");
	if (c) {
		d = conf_domain_find(c, "example.com");
		ok(d && d->ndkim_keys == 3, "repeated lines add up to three keys");
		if (d && d->ndkim_keys == 3) {
			is_str(d->dkim_keys[2].selector, "s3", "keys in file order");
			is_int(d->dkim_keys[0].line, 5, "first key's line");
			is_int(d->dkim_keys[1].line, 7, "second line's key remembers its line");
			is_int(d->dkim_line, 5, "dkim_line is the first dkim_key line");
		}
		conf_free(c);
	}
	one_error(LISTEN "[domain example.com]\ndkim_key = s1:/a.pem\ndkim_key = s1:/b.pem\n", 6,
	    "dkim_key: selector 's1' is given twice", "duplicate selector across lines");
	one_error(LISTEN "[domain example.com]\ndkim_subdomains = perhaps\n", 5,
	    "dkim_subdomains: expected yes or no, got 'perhaps'", "dkim_subdomains not a bool");
}

static int
rm(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(p);
}

/* main - run every group in a fresh temporary directory */
int
main(void)
{
	if (tap_tmpdir(dir, sizeof(dir), "test_conf") == NULL)
		return 99;
	snprintf(cpath, sizeof(cpath), "%s/outpost.conf", dir);
	test_defaults();
	test_full();
	test_errors();
	test_syntax();
	test_relative_config();
	test_networks();
	test_example();
	test_dkim_keys();
	test_throttle_keys();
	free(errs);
	nftw(dir, rm, 8, FTW_DEPTH | FTW_PHYS);
	return done();
}
