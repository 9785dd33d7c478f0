/* inject - placeholder until the module lands. */
#include "config.h"
#include "inject.h"
