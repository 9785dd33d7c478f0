/* smtp_parse - placeholder until the module lands (replaced in this issue). */
#include "config.h"
#include "smtp_parse.h"
