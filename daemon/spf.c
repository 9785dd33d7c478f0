/* spf - being written (see spf.h) */
#include "config.h"

#include <stdio.h>

#include "spf.h"

int
spf_check(const char *dns_server, const char *ip, const char *domain,
    const char *helo, struct spf_outcome *out, char *err, size_t errlen)
{
	(void)dns_server;
	(void)ip;
	(void)domain;
	(void)helo;
	(void)out;
	snprintf(err, errlen, "SPF is not built yet");
	return -1;
}

const char *
spf_result_name(enum spf_result r)
{
	(void)r;
	return "none";
}
