/* alert - placeholder until the module lands. */
#include "config.h"
#include "alert.h"
