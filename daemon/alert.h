/* alert - placeholder header until the module lands. */
#ifndef OUTPOST_ALERT_H
#define OUTPOST_ALERT_H
#endif
