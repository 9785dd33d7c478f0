/*
 * test_priv - the account lookup, the state directory handed over, and
 * the drop itself (in a child, when run as root: root is what is given
 * up, so the parent keeps it for the other cases).
 */
#include "config.h"

#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "priv.h"
#include "tap.h"

static void
test_lookup(void)
{
	struct priv_user pu;
	char err[512];

	ok(priv_lookup("no-such-outpost-account", &pu, err, sizeof(err)) == -1,
	    "an unknown account is refused");
	ok(strstr(err, "no such account") != NULL && strstr(err, "useradd --system") != NULL,
	    "... saying how to create it: %s", err);
	ok(priv_lookup("root", &pu, err, sizeof(err)) == -1, "root is refused");
	ok(strstr(err, "uid or gid 0") != NULL, "... as root: %s", err);
	if (getpwnam("nobody") != NULL) {
		ok(priv_lookup("nobody", &pu, err, sizeof(err)) == 0, "nobody is an account");
		is_int(pu.uid, getpwnam("nobody")->pw_uid, "... with its uid");
		is_str(pu.name, "nobody", "... and its name");
	}
}

static void
test_readable(void)
{
	ok(priv_check_readable("test file", "") == 0, "no path: nothing to check");
	ok(priv_check_readable("test file", "/nonexistent/outpost/file") == -1,
	    "a missing file is named");
	ok(priv_check_readable("test file", "/dev/null") == 0, "a readable file passes");
}

/* As root: the state directory and what an earlier root run left in it
 * become the account's, private. */
static void
test_state_dir(const struct priv_user *pu)
{
	char dir[256], sub[300], file[300], err[512];
	struct stat st;
	int fd;

	if (tap_tmpdir(dir, sizeof(dir), "test_priv") == NULL) {
		ok(0, "temporary directory");
		return;
	}
	chmod(dir, 0755);
	snprintf(sub, sizeof(sub), "%s/maildir", dir);
	snprintf(file, sizeof(file), "%s/queue.db", dir);
	mkdir(sub, 0700);
	fd = open(file, O_CREAT | O_WRONLY, 0600);
	close(fd);
	ok(priv_state_dir(dir, pu, err, sizeof(err)) == 0, "state_dir handed over: %s", err);
	ok(stat(dir, &st) == 0 && st.st_uid == pu->uid && st.st_gid == pu->gid,
	    "the directory is the account's");
	is_int(st.st_mode & 0777, 0700, "and private");
	ok(stat(sub, &st) == 0 && st.st_uid == pu->uid, "a subdirectory too");
	ok(stat(file, &st) == 0 && st.st_uid == pu->uid, "and the queue file");
	unlink(file);
	rmdir(sub);
	rmdir(dir);
}

/* As root, in a child: after the drop every id is the account's and
 * root cannot be had back. */
static void
test_drop(const struct priv_user *pu)
{
	char err[512];
	pid_t pid = fork();
	int status = 0;

	if (pid == 0) {
		if (priv_drop(pu, err, sizeof(err)) != 0)
			_exit(10);
		if (getuid() != pu->uid || geteuid() != pu->uid || getegid() != pu->gid)
			_exit(11);
		if (setuid(0) == 0 || seteuid(0) == 0)
			_exit(12);
		if (access("/root/.", W_OK) == 0)
			_exit(13);
		_exit(0);
	}
	ok(pid > 0 && waitpid(pid, &status, 0) == pid, "child ran");
	ok(WIFEXITED(status), "child exited");
	is_int(WEXITSTATUS(status), 0, "drop verified in the child (10 drop, 11 ids, 12 root back,"
	    " 13 root's files)");
}

int
main(void)
{
	struct priv_user pu;
	char err[512];

	test_lookup();
	test_readable();
	if (geteuid() == 0 && priv_lookup("nobody", &pu, err, sizeof(err)) == 0) {
		test_state_dir(&pu);
		test_drop(&pu);
	} else {
		printf("# not root (or no account nobody): the drop itself is not tested\n");
	}
	return done();
}
