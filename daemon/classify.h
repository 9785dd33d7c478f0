/* classify - placeholder header until the module lands. */
#ifndef OUTPOST_CLASSIFY_H
#define OUTPOST_CLASSIFY_H
#endif
