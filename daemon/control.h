/* control - being written; see the helper branch. */
#ifndef OUTPOST_CONTROL_H
#define OUTPOST_CONTROL_H
#endif
