/*
 * maildir - the embedded Maildir upstream. See maildir.h.
 *
 * Delivery follows the Maildir convention (cr.yp.to/proto/maildir.html):
 * create a uniquely named file in tmp/ with O_EXCL, write all bytes,
 * fsync, rename into new/, fsync new/ so the rename itself is durable.
 * Unique names: TIME.P<pid>Q<queue id>R<random>.<hostname>, the host name
 * with '/' and ':' escaped as \057 and \072 as the convention asks.
 *
 * Blocking (fsync): runs on a signer worker thread, never on the loop.
 * Input trusted: dir and hostname come from the configuration; the queue
 * id is ours (hex); data is written verbatim.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "maildir.h"
#include "util.h"

#define MAILDIR_MODE 0700
#define MAILDIR_FILE_MODE 0600
#define MAILDIR_HOST_MAX 128

/* maildir_mkdir_p - create dir and its parents (mode 0700) */
static int
maildir_mkdir_p(const char *dir)
{
	char path[PATH_MAX];
	size_t len;

	len = util_strlcpy(path, dir, sizeof(path));
	if (len >= sizeof(path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	for (size_t i = 1; i <= len; i++) {
		if (path[i] != '/' && path[i] != '\0')
			continue;
		char c = path[i];
		path[i] = '\0';
		if (mkdir(path, MAILDIR_MODE) != 0 && errno != EEXIST)
			return -1;
		path[i] = c;
	}
	return 0;
}

/* maildir_subdir - DIR/sub exists as a directory afterwards */
static int
maildir_subdir(const char *dir, const char *sub)
{
	char path[PATH_MAX];
	struct stat st;

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, sub) >= sizeof(path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if (mkdir(path, MAILDIR_MODE) != 0 && errno != EEXIST)
		return -1;
	if (stat(path, &st) != 0)
		return -1;
	if (!S_ISDIR(st.st_mode)) {
		errno = ENOTDIR;
		return -1;
	}
	return 0;
}

/* maildir_host - the host name with '/' and ':' escaped */
static void
maildir_host(const char *hostname, char *out, size_t outlen)
{
	size_t o = 0;

	if (hostname == NULL || *hostname == '\0')
		hostname = "localhost";
	for (const char *p = hostname; *p && o + 5 < outlen; p++) {
		if (*p == '/') {
			memcpy(out + o, "\\057", 4);
			o += 4;
		} else if (*p == ':') {
			memcpy(out + o, "\\072", 4);
			o += 4;
		} else {
			out[o++] = *p;
		}
	}
	out[o] = '\0';
}

/* maildir_write_all - write len bytes, retrying short writes and EINTR */
static int
maildir_write_all(int fd, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, data, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

/* maildir_fsync_dir - make a rename into dir durable */
static int
maildir_fsync_dir(const char *dir)
{
	int fd, r, saved;

	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	r = fsync(fd);
	saved = errno;
	close(fd);
	errno = saved;
	return r;
}

/* maildir_deliver - one message into DIR/new, durably */
int
maildir_deliver(const char *dir, const char *hostname, const char *queue_id,
    const char *data, size_t len, char *name, size_t namelen)
{
	char host[MAILDIR_HOST_MAX], base[NAME_MAX + 1];
	char tmp[PATH_MAX], fin[PATH_MAX], newdir[PATH_MAX];
	unsigned char rnd[8];
	unsigned long long r = 0;
	int fd, saved;

	if (maildir_mkdir_p(dir) != 0 || maildir_subdir(dir, "tmp") != 0 ||
	    maildir_subdir(dir, "new") != 0 || maildir_subdir(dir, "cur") != 0)
		return -1;
	maildir_host(hostname, host, sizeof(host));
	if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
		errno = EIO;
		return -1;
	}
	for (size_t i = 0; i < sizeof(rnd); i++)
		r = (r << 8) | rnd[i];
	if ((size_t)snprintf(base, sizeof(base), "%lld.P%ldQ%sR%016llx.%s",
	    (long long)time(NULL), (long)getpid(), queue_id ? queue_id : "",
	    r, host) >= sizeof(base) ||
	    (size_t)snprintf(tmp, sizeof(tmp), "%s/tmp/%s", dir, base) >= sizeof(tmp) ||
	    (size_t)snprintf(fin, sizeof(fin), "%s/new/%s", dir, base) >= sizeof(fin) ||
	    (size_t)snprintf(newdir, sizeof(newdir), "%s/new", dir) >= sizeof(newdir)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, MAILDIR_FILE_MODE);
	if (fd < 0)
		return -1;
	if (maildir_write_all(fd, data, len) != 0 || fsync(fd) != 0) {
		saved = errno;
		close(fd);
		unlink(tmp);
		errno = saved;
		return -1;
	}
	if (close(fd) != 0) {
		saved = errno;
		unlink(tmp);
		errno = saved;
		return -1;
	}
	if (rename(tmp, fin) != 0) {
		saved = errno;
		unlink(tmp);
		errno = saved;
		return -1;
	}
	if (maildir_fsync_dir(newdir) != 0)
		return -1;
	if (name && namelen)
		util_strlcpy(name, base, namelen);
	return 0;
}
