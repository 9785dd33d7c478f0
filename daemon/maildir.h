/*
 * maildir - the embedded upstream `address = maildir:DIR`: each message,
 * exactly the bytes that would go to a real upstream after DATA, becomes
 * one file in DIR/new (written to DIR/tmp, fsync'd, renamed, directory
 * fsync'd: Maildir's own durability). Blocking: call from a worker thread.
 */
#ifndef OUTPOST_MAILDIR_H
#define OUTPOST_MAILDIR_H

#include <stddef.h>

/* Creates DIR, DIR/tmp, DIR/new, DIR/cur as needed. Returns 0, or -1 with
 * errno set; the new file's base name goes to name. */
int maildir_deliver(const char *dir, const char *hostname, const char *queue_id,
    const char *data, size_t len, char *name, size_t namelen);

#endif
