/*
 * notify - what outpostd tells systemd (sd_notify(3), Type=notify):
 * READY=1 once the queue is loaded and the listeners are up, RELOADING=1
 * and READY=1 around a reload, STOPPING=1 at the start of a shutdown, and
 * STATUS= lines (queue and upstreams) that `systemctl status` shows.
 * Without $NOTIFY_SOCKET (not started by systemd) each call does nothing.
 */
#ifndef OUTPOST_NOTIFY_H
#define OUTPOST_NOTIFY_H

void notify_ready(const char *status);
void notify_reloading(void);
void notify_stopping(void);
void notify_status(const char *status);

#endif
