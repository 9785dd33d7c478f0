/*
 * priv - started as root, give it up for [server] user once the ports
 * are bound and the keys read (priv.c).
 */
#ifndef OUTPOST_PRIV_H
#define OUTPOST_PRIV_H

#include <stddef.h>
#include <sys/types.h>

#define PRIV_NAME_MAX 64

struct priv_user {
	char name[PRIV_NAME_MAX];
	uid_t uid;
	gid_t gid;
};

/* The account; -1 with err if it does not exist or is root. */
int priv_lookup(const char *name, struct priv_user *pu, char *err, size_t errlen);
/* As root: create state_dir if needed, give it (and all in it) to pu. */
int priv_state_dir(const char *dir, const struct priv_user *pu, char *err, size_t errlen);
/* Become pu (groups, gid, uid), verified; -1 with err. */
int priv_drop(const struct priv_user *pu, char *err, size_t errlen);
/* After the drop: log a warning naming path if it cannot be read. */
int priv_check_readable(const char *what, const char *path);

#endif
