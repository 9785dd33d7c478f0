/* dkim_key - being written in this change. */
#include "config.h"
#include "dkim_key.h"
