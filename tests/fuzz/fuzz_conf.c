/*
 * fuzz_conf - the configuration parser (conf_load: libinih plus outpost's
 * setting table, values, ranges and cross-section checks).
 *
 * conf_load reads a path, so the input goes into a memfd and is loaded as
 * /proc/self/fd/N (no disk I/O). Paths named inside the config
 * (password_file, users_file, ...) are read as the config says; the seeds
 * only name files that do not exist.
 *
 * Invariants: success gives a config with at least one listener and
 * NUL-terminated names; failure reports at least one error and no config.
 */
#define _GNU_SOURCE
#include "config.h"

#include <sys/mman.h>
#include <unistd.h>

#include "conf.h"
#include "fuzz.h"

static FILE *errs;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	errs = fopen("/dev/null", "w");
	if (errs == NULL)
		abort();
	fuzz_quiet_log();
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct conf *c = NULL;
	char path[64];
	int fd, n;

	fd = memfd_create("fuzz_conf", 0);
	if (fd < 0)
		abort();
	if (size > 0 && write(fd, data, size) != (ssize_t)size)
		abort();
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = conf_load(path, errs, &c);
	if (n == 0) {
		FUZZ_CHECK(c != NULL && c->nlistens >= 1);
		for (size_t i = 0; i < c->nlistens; i++)
			FUZZ_CHECK(memchr(c->listens[i].name, '\0', sizeof(c->listens[i].name)));
		for (size_t i = 0; i < c->ndomains; i++) {
			FUZZ_CHECK(memchr(c->domains[i].name, '\0', sizeof(c->domains[i].name)));
			(void)conf_domain_find(c, c->domains[i].name);
		}
		for (size_t i = 0; i < c->nupstreams; i++)
			FUZZ_CHECK(conf_upstream_find(c, c->upstreams[i].name) != NULL);
		conf_free(c);
	} else {
		FUZZ_CHECK(n > 0 && c == NULL);
	}
	close(fd);
	return 0;
}
