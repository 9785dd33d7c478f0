/*
 * notify - sd_notify(3) messages to the service manager. See notify.h.
 *
 * Status text comes from the daemon (queue counts, upstream names from
 * the config) and is cut at the first newline so it cannot add fields.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include <systemd/sd-daemon.h>

#include "log.h"
#include "notify.h"

#define NOTIFY_STATUS_MAX 512

/* notify_send - one message; a failure is only worth a debug line */
static void
notify_send(const char *msg)
{
	int r = sd_notify(0, msg);

	if (r < 0)
		log_debug("sd_notify: %s", strerror(-r));
}

/* notify_with_status - "FIELDS\nSTATUS=status" with status on one line */
static void
notify_with_status(const char *fields, const char *status)
{
	char msg[NOTIFY_STATUS_MAX + 64];
	size_t n;

	if (status == NULL) {
		notify_send(fields);
		return;
	}
	n = (size_t)snprintf(msg, sizeof(msg), "%s%sSTATUS=", fields, fields[0] ? "\n" : "");
	if (n >= sizeof(msg))
		return;
	for (const char *p = status; *p && *p != '\n' && n < sizeof(msg) - 1; p++)
		msg[n++] = *p;
	msg[n] = '\0';
	notify_send(msg);
}

void
notify_ready(const char *status)
{
	notify_with_status("READY=1", status);
}

/* notify_reloading - RELOADING=1 with the monotonic time, as
 * Type=notify-reload asks (and Type=notify accepts) */
void
notify_reloading(void)
{
	struct timespec ts;
	char msg[96];

	clock_gettime(CLOCK_MONOTONIC, &ts);
	snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu",
	    (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000);
	notify_with_status(msg, "reloading the configuration");
}

void
notify_stopping(void)
{
	notify_with_status("STOPPING=1", "stopping: finishing open transactions and deliveries");
}

void
notify_status(const char *status)
{
	notify_with_status("", status);
}
