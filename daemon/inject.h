/* inject - placeholder header until the module lands. */
#ifndef OUTPOST_INJECT_H
#define OUTPOST_INJECT_H
#endif
