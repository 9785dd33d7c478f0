/* qlist - being written (see qlist.h) */
#include "config.h"

#include <stdio.h>

#include "qlist.h"

int
qlist_list(const char *dbpath, const struct qlist_filter *f, FILE *out, char *err,
    size_t errlen)
{
	(void)dbpath;
	(void)f;
	(void)out;
	snprintf(err, errlen, "queue list is not built yet");
	return -1;
}

int
qlist_show(const char *dbpath, const char *queue_id, int json, FILE *out, char *err,
    size_t errlen)
{
	(void)dbpath;
	(void)queue_id;
	(void)json;
	(void)out;
	snprintf(err, errlen, "queue show is not built yet");
	return -1;
}

int
qlist_summary(const char *dbpath, int json, FILE *out, char *err, size_t errlen)
{
	(void)dbpath;
	(void)json;
	(void)out;
	snprintf(err, errlen, "queue summary is not built yet");
	return -1;
}
