/* bounce - placeholder header until the module lands. */
#ifndef OUTPOST_BOUNCE_H
#define OUTPOST_BOUNCE_H
#endif
