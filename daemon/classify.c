/* classify - placeholder until the module lands. */
#include "config.h"
#include "classify.h"
