/* lint - being written (see lint.h) */
#include "config.h"

#include <stdlib.h>

#include "lint.h"

int
lint_message(const char *msg, size_t len, struct lint_report *r)
{
	(void)msg;
	(void)len;
	(void)r;
	return -1;
}

void
lint_print(const struct lint_report *r, int json, FILE *out)
{
	(void)r;
	(void)json;
	(void)out;
}

void
lint_report_free(struct lint_report *r)
{
	free(r->f);
}
