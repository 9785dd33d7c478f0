/*
 * fuzz - helpers shared by the libFuzzer harnesses in tests/fuzz (one
 * LLVMFuzzerTestOneInput per file, built with configure --enable-fuzzers).
 *
 * Every harness copies the input into a buffer of exactly the size the
 * parser is allowed to read, so AddressSanitizer sees a read one byte past
 * it. FUZZ_CHECK is an assert that survives NDEBUG: an invariant that does
 * not hold is a finding, like a crash.
 */
#ifndef OUTPOST_FUZZ_H
#define OUTPOST_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FUZZ_CHECK(cond) do { \
	if (!(cond)) { \
		fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond); \
		abort(); \
	} \
} while (0)

/* fuzz_dup - n bytes in a buffer of exactly n (+1 with a NUL if nul) */
static inline char *
fuzz_dup(const uint8_t *data, size_t n, int nul)
{
	char *p = malloc(n + (nul ? 1 : 0) + (n == 0 && !nul));

	if (p == NULL)
		abort();
	if (n)
		memcpy(p, data, n);
	if (nul)
		p[n] = '\0';
	return p;
}

/* fuzz_quiet_log - the daemon's log lines go to stderr's FILE; the
 * harnesses would spend their time printing them. Sanitizer reports and
 * libFuzzer's own output use fd 2 or a FILE taken at start-up, so they
 * still show. */
static inline void
fuzz_quiet_log(void)
{
	FILE *null = fopen("/dev/null", "w");

	if (null != NULL)
		stderr = null;
}

/* fuzz_is_reply - a complete SMTP reply: three digits, a space, text */
static inline int
fuzz_is_reply(const char *s)
{
	return s[0] >= '2' && s[0] <= '5' && s[1] >= '0' && s[1] <= '9' &&
	    s[2] >= '0' && s[2] <= '9' && s[3] == ' ';
}

#endif
