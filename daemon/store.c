/* store - placeholder until the module lands (replaced in this issue). */
#include "config.h"
#include "store.h"
