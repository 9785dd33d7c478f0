/* bounce - placeholder until the module lands. */
#include "config.h"
#include "bounce.h"
