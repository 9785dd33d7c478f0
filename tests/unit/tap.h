/*
 * tap.h - a tiny TAP producer for the unit tests (automake's tap-driver
 * counts every case). Use ok(), is_int(), is_str(), then return done().
 */
#ifndef OUTPOST_TAP_H
#define OUTPOST_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tap_n, tap_failed;

#define ok(cond, ...) tap_ok(!!(cond), __FILE__, __LINE__, __VA_ARGS__)
#define is_int(got, want, ...) do { long long g_ = (got), w_ = (want); \
	if (!ok(g_ == w_, __VA_ARGS__)) printf("#   got %lld, want %lld\n", g_, w_); } while (0)
#define is_str(got, want, ...) do { const char *g_ = (got), *w_ = (want); \
	if (!ok(g_ && w_ && strcmp(g_, w_) == 0, __VA_ARGS__)) \
		printf("#   got \"%s\"\n#  want \"%s\"\n", g_ ? g_ : "(null)", w_ ? w_ : "(null)"); } while (0)

__attribute__((format(printf, 4, 5), unused))
static int
tap_ok(int cond, const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	tap_n++;
	printf("%sok %d - ", cond ? "" : "not ", tap_n);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	if (!cond) {
		tap_failed++;
		printf("#   at %s:%d\n", file, line);
	}
	fflush(stdout);
	return cond;
}

/* tap_tmpdir - a new private directory "$TMPDIR/NAME.******" (mkdtemp;
 * /tmp without TMPDIR) into buf; NULL, with the reason on stderr, when it
 * cannot be made */
__attribute__((unused))
static char *
tap_tmpdir(char *buf, size_t len, const char *name)
{
	const char *tmp = getenv("TMPDIR");
	int n = snprintf(buf, len, "%s/%s.", tmp && *tmp ? tmp : "/tmp", name);

	if (n < 0 || (size_t)n + 7 > len) {
		fprintf(stderr, "tap_tmpdir: %s: path too long\n", name);
		return NULL;
	}
	memset(buf + n, 'X', 6);        /* mkdtemp's template */
	buf[n + 6] = '\0';
	if (mkdtemp(buf) == NULL) {
		perror("mkdtemp");
		return NULL;
	}
	return buf;
}

__attribute__((unused))
static int
done(void)
{
	printf("1..%d\n", tap_n);
	return tap_failed ? 1 : 0;
}

#endif
