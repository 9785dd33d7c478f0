/* dmarc - being written; see the helper branch. */
#ifndef OUTPOST_DMARC_H
#define OUTPOST_DMARC_H
#endif
