/* tls - placeholder until the module lands (replaced in this issue). */
#include "config.h"
#include "tls.h"
