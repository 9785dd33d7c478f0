/* throttle - placeholder until the module lands. */
#include "config.h"
#include "throttle.h"
