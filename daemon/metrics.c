/*
 * metrics - Prometheus text exposition (see metrics.h).
 */
#include "config.h"

#include <string.h>

#include "conf.h"
#include "metrics.h"
#include "server.h"

struct metrics *
metrics_start(struct server *srv, char *err, size_t errlen)
{
	(void)srv;
	if (errlen > 0)
		err[0] = '\0';
	return NULL;
}

void
metrics_stop(struct metrics *m)
{
	(void)m;
}
