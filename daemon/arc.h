/* arc - being written; see the helper branch. */
#ifndef OUTPOST_ARC_H
#define OUTPOST_ARC_H
#endif
