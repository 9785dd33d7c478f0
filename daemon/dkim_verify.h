/* dkim_verify - being written; see the helper branch. */
#ifndef OUTPOST_DKIM_VERIFY_H
#define OUTPOST_DKIM_VERIFY_H
#endif
