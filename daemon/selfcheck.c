/* selfcheck - being written (see selfcheck.h) */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>

#include "selfcheck.h"

int
selfcheck_dns(const struct conf *c, const char *domain, struct selfcheck_report *r,
    char *err, size_t errlen)
{
	(void)c;
	(void)domain;
	(void)r;
	snprintf(err, errlen, "check dns is not built yet");
	return -1;
}

int
selfcheck_rbl(const struct conf *c, const char *ip, struct selfcheck_report *r,
    char *err, size_t errlen)
{
	(void)c;
	(void)ip;
	(void)r;
	snprintf(err, errlen, "check rbl is not built yet");
	return -1;
}

void
selfcheck_print(const struct selfcheck_report *r, int json, FILE *out)
{
	(void)r;
	(void)json;
	(void)out;
}

int
selfcheck_failed(const struct selfcheck_report *r)
{
	(void)r;
	return 1;
}

void
selfcheck_report_free(struct selfcheck_report *r)
{
	free(r->f);
}
