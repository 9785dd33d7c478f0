/* throttle - placeholder header until the module lands. */
#ifndef OUTPOST_THROTTLE_H
#define OUTPOST_THROTTLE_H
#endif
