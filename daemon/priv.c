/*
 * priv - running as [server] user instead of root.
 *
 * Started as root (outside systemd, or by an init script), outpostd does
 * only what needs root first: it reads the configuration, the users
 * file, the DKIM keys and the TLS certificates, and binds its ports.
 * Then priv_drop gives up root for good: the supplementary groups of the
 * account (so membership in a group such as ssl-cert keeps certificate
 * renewals readable), its group, its user, in that order, and checks that
 * none of it can be taken back. The state directory is handed to the
 * account first, so a queue created by an earlier root run stays usable.
 *
 * Started as any other user (systemd's User=outpost with
 * CAP_NET_BIND_SERVICE), there is nothing to drop: the daemon runs as
 * that user, whatever [server] user says.
 *
 * Whatever reloads read later (configuration, users file, keys,
 * certificates) must be readable by the account: priv_check_readable
 * says so at start, with the command that fixes it, instead of letting
 * the first reload fail.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "priv.h"
#include "util.h"

#define PRIV_WALK_FDS 16        /* nftw: open directories at a time */

/* priv_lookup - the account to run as; -1 with err when it cannot be */
int
priv_lookup(const char *name, struct priv_user *pu, char *err, size_t errlen)
{
	struct passwd *pw;

	errno = 0;
	if ((pw = getpwnam(name)) == NULL) {
		if (errno != 0)
			snprintf(err, errlen, "[server] user %s: %s", name, strerror(errno));
		else
			snprintf(err, errlen, "[server] user %s: no such account (create it with"
			    " systemd-sysusers, or: useradd --system --home-dir /var/lib/outpost"
			    " --shell /usr/sbin/nologin %s)", name, name);
		return -1;
	}
	if (pw->pw_uid == 0 || pw->pw_gid == 0) {
		snprintf(err, errlen, "[server] user %s: has uid or gid 0; outpostd does not"
		    " run as root", name);
		return -1;
	}
	util_strlcpy(pu->name, name, sizeof(pu->name));
	pu->uid = pw->pw_uid;
	pu->gid = pw->pw_gid;
	return 0;
}

static uid_t walk_uid;
static gid_t walk_gid;
static int walk_changed;

static int
priv_chown_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)flag;
	(void)ftw;
	if (st->st_uid == walk_uid && st->st_gid == walk_gid)
		return 0;
	if (lchown(path, walk_uid, walk_gid) < 0) {
		log_warn("%s: chown: %s", path, strerror(errno));
		return 0;
	}
	walk_changed++;
	return 0;
}

/* priv_state_dir - as root: state_dir exists, is private (0700) and
 * belongs to the account, with everything in it */
int
priv_state_dir(const char *dir, const struct priv_user *pu, char *err, size_t errlen)
{
	struct stat st;

	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		snprintf(err, errlen, "state_dir %s: %s", dir, strerror(errno));
		return -1;
	}
	if (lstat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "state_dir %s: not a directory", dir);
		return -1;
	}
	walk_uid = pu->uid;
	walk_gid = pu->gid;
	walk_changed = 0;
	if (nftw(dir, priv_chown_entry, PRIV_WALK_FDS, FTW_PHYS | FTW_MOUNT) < 0) {
		snprintf(err, errlen, "state_dir %s: %s", dir, strerror(errno));
		return -1;
	}
	if (walk_changed)
		log_info("state_dir %s: %d entries now belong to %s", dir, walk_changed, pu->name);
	if ((st.st_mode & 077) != 0 && chmod(dir, 0700) < 0) {
		snprintf(err, errlen, "state_dir %s: chmod: %s", dir, strerror(errno));
		return -1;
	}
	return 0;
}

/* priv_drop - become pu for good, and make sure of it */
int
priv_drop(const struct priv_user *pu, char *err, size_t errlen)
{
	if (initgroups(pu->name, pu->gid) < 0) {
		snprintf(err, errlen, "initgroups %s: %s", pu->name, strerror(errno));
		return -1;
	}
	if (setresgid(pu->gid, pu->gid, pu->gid) < 0) {
		snprintf(err, errlen, "setresgid %ld: %s", (long)pu->gid, strerror(errno));
		return -1;
	}
	if (setresuid(pu->uid, pu->uid, pu->uid) < 0) {
		snprintf(err, errlen, "setresuid %ld: %s", (long)pu->uid, strerror(errno));
		return -1;
	}
	/* Verified, not assumed: every id is the account's, and root cannot
	 * be had back. */
	if (getuid() != pu->uid || geteuid() != pu->uid || getgid() != pu->gid ||
	    getegid() != pu->gid || setuid(0) == 0 || seteuid(0) == 0 || setgid(0) == 0) {
		snprintf(err, errlen, "could not give up root for user %s", pu->name);
		return -1;
	}
#ifdef OUTPOST_SANITIZERS
	/* LeakSanitizer inspects the process at exit from a helper that must
	 * be allowed to trace it; changing ids made us undumpable. Test
	 * builds only: a production build stays undumpable. */
	(void)prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
#endif
	return 0;
}

/* priv_check_readable - after the drop: warn about a file a reload would
 * fail to read. Returns 0 if readable. */
int
priv_check_readable(const char *what, const char *path)
{
	if (path == NULL || path[0] == '\0' || access(path, R_OK) == 0)
		return 0;
	log_warn("%s %s is not readable as uid %ld (%s): a reload will fail until it is"
	    " (chown or chgrp it to the daemon's user, keeping keys mode 0600 or 0640)",
	    what, path, (long)getuid(), strerror(errno));
	return -1;
}
