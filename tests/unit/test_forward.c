/*
 * test_forward - which submitted messages are forwarded, the envelope
 * they leave with, List-Id, [domain] arc, and the DNS names a seal needs
 * (forward_prepare). Sealing itself is covered by test_arc and, end to
 * end with dkimpy, by tests/integration/test_arc.py.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "conf.h"
#include "dmarc.h"
#include "forward.h"
#include "log.h"
#include "tap.h"
#include "util.h"

static char tmpdir[256];

/* write - a file under tmpdir */
static void
write_file(const char *name, const char *text, char *path, size_t len)
{
	FILE *f;

	snprintf(path, len, "%s/%s", tmpdir, name);
	if ((f = fopen(path, "w")) == NULL || fputs(text, f) < 0 || fclose(f) != 0)
		fatal("%s", path);
}

struct fcase {
	const char *what;
	const char *user;
	int listener_forward;
	const char *from;               /* header From: address */
	const char *extra;              /* more header fields, CRLF-ended */
	int rc;
	int forwarded, seal;
	const char *via;
	const char *envelope;           /* "" when not forwarded */
	const char *domain;             /* d= of the seal / signature */
	const char *list_id;            /* the List-Id field expected, or NULL */
	size_t nkeys;
};

static const struct fcase cases[] = {
	{ "own From: not forwarded", "alice", 0, "alice@example.com", "", 0, 0, 0, NULL, "",
	  "", NULL, 0 },
	{ "foreign From:, Resent-From: the user's", "alice", 0, "ext@origin.example",
	  "Resent-From: Alice <alice@example.com>\r\n"
	  "DKIM-Signature: v=1; a=rsa-sha256; d=origin.example; s=sel; h=from; bh=x; b=y\r\n",
	  0, 1, 1, "resent", "alice@example.com", "example.com", NULL, 1 },
	{ "Resent-Sender: counts too", "alice", 0, "ext@origin.example",
	  "Resent-Sender: alice@example.com\r\n", 0, 1, 1, "resent", "alice@example.com",
	  "example.com", NULL, 0 },
	{ "Resent-From: not the user's: not forwarded", "alice", 0, "ext@origin.example",
	  "Resent-From: mallory@evil.example\r\n", 0, 0, 0, NULL, "", "", NULL, 0 },
	{ "forward account: own address", "fwd", 0, "ext@origin.example", "", 0, 1, 1,
	  "account", "fwd@example.com", "example.com", NULL, 0 },
	{ "forward account, own From: not forwarded", "fwd", 0, "fwd@example.com", "", 0, 0, 0,
	  NULL, "", "", NULL, 0 },
	{ "list account: List-Id from its address", "team", 0, "ext@origin.example", "", 0,
	  1, 1, "account", "team@example.com", "example.com", "List-Id: <team.example.com>\r\n",
	  0 },
	{ "list account keeps a List-Id", "team", 0, "ext@origin.example",
	  "List-Id: Old <old.list.example>\r\n", 0, 1, 1, "account", "team@example.com",
	  "example.com", "List-Id: Old <old.list.example>\r\n", 0 },
	{ "list=ID", "news", 0, "ext@origin.example", "", 0, 1, 1, "account",
	  "bounces@news.example", "news.example", "List-Id: <weekly.news.example>\r\n", 0 },
	{ "forward_return_path and arc = never", "news", 0, "ext@origin.example", "", 0, 1, 0,
	  "account", "bounces@news.example", "news.example", "List-Id: <weekly.news.example>\r\n",
	  0 },
	{ "listener forward = yes", "alice", 1, "ext@origin.example", "", 0, 1, 1, "listener",
	  "alice@example.com", "example.com", NULL, 0 },
	{ "arc = always seals own mail", "carol", 0, "carol@always.example", "", 0, 0, 1,
	  "always", "", "always.example", NULL, 0 },
	{ "forward account without an address", "nobody", 0, "ext@origin.example", "", -1,
	  0, 0, NULL, "", "", NULL, 0 },
	{ "trusted device never forwards", NULL, 1, "ext@origin.example",
	  "Resent-From: alice@example.com\r\n", 0, 0, 0, NULL, "", "", NULL, 0 },
};

int
main(void)
{
	char confpath[PATH_MAX], userspath[PATH_MAX], err[512];
	struct conf *c;
	struct auth_db *db;
	struct dmarc_psl *psl;
	int nerr;

	if (tap_tmpdir(tmpdir, sizeof(tmpdir), "test_forward") == NULL)
		return 99;
	write_file("users",
	    "alice:$y$x:alice@example.com\n"
	    "fwd:$y$x:@example.com,fwd@example.com:forward\n"
	    "team:$y$x:team@example.com:list\n"
	    "news:$y$x:editor@news.example:list=weekly.news.example\n"
	    "carol:$y$x:carol@always.example\n"
	    "nobody:$y$x::forward\n", userspath, sizeof(userspath));
	write_file("outpost.conf",
	    "[server]\n"
	    "hostname = relay.example\n"
	    "state_dir = /tmp\n"
	    "default_upstream = local\n"
	    "[listen smtp]\n"
	    "address = 127.0.0.1:2525\n"
	    "tls = none\n"
	    "[upstream local]\n"
	    "address = maildir:/tmp/nowhere\n"
	    "[domain news.example]\n"
	    "forward_return_path = bounces@news.example\n"
	    "[domain always.example]\n"
	    "arc = always\n", confpath, sizeof(confpath));
	if (conf_load(confpath, stderr, &c) != 0)
		fatalx("conf_load failed");
	if ((db = auth_load(userspath, stderr, &nerr)) == NULL)
		fatalx("auth_load failed");
	psl = dmarc_psl_load(DMARC_PSL_PATH, err, sizeof(err));

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		const struct fcase *t = &cases[i];
		/* the second "news" case runs with arc = never */
		int never = strncmp(t->what, "forward_return_path", 19) == 0;
		const struct auth_user *u = t->user ? auth_find(db, t->user) : NULL;
		struct forward_plan fp;
		char *msg, ferr[256] = "";
		size_t len;
		int owned, rc;

		if (never)
			((struct conf_domain *)conf_domain_find(c, "news.example"))->arc = CONF_ARC_NEVER;
		len = (size_t)asprintf(&msg, "Received: from pc\r\n%sFrom: <%s>\r\nTo: x@y.example\r\n"
		    "Subject: t\r\n\r\nbody\r\n", t->extra, t->from);
		owned = u ? auth_sender_allowed(u, t->from) : 0;
		rc = forward_prepare(&fp, c, u, t->listener_forward, psl,
		    util_addr_domain(t->from), owned, &msg, &len, ferr, sizeof(ferr));
		is_int(rc, t->rc, "%s: rc", t->what);
		if (rc == 0) {
			is_int(fp.forwarded, t->forwarded, "%s: forwarded", t->what);
			is_int(fp.seal, t->seal, "%s: seal", t->what);
			is_str(fp.via ? fp.via : "(none)", t->via ? t->via : "(none)", "%s: via",
			    t->what);
			is_str(fp.envelope, t->envelope, "%s: envelope", t->what);
			is_str(fp.domain, t->domain, "%s: domain", t->what);
			is_int(fp.nkeys, t->nkeys, "%s: key names", t->what);
			if (t->list_id)
				ok(strstr(msg, t->list_id) != NULL && strlen(msg) == len,
				    "%s: %.*s", t->what, (int)strlen(t->list_id) - 2, t->list_id);
			else
				ok(strstr(msg, "List-Id:") == NULL, "%s: no List-Id", t->what);
			if (fp.seal)
				is_str(fp.org_domain, util_addr_domain(t->from),
				    "%s: DMARC org domain", t->what);
		} else {
			ok(strncmp(ferr, "451 4.3.5 ", 10) == 0, "%s: %s", t->what, ferr);
		}
		if (never)
			((struct conf_domain *)conf_domain_find(c, "news.example"))->arc = CONF_ARC_AUTO;
		forward_plan_clear(&fp);
		free(msg);
	}
	dmarc_psl_free(psl);
	auth_free(db);
	conf_free(c);
	unlink(confpath);
	unlink(userspath);
	rmdir(tmpdir);
	return done();
}
