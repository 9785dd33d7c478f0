/* dkim_sign - being written in this change. */
#include "config.h"
#include "dkim_sign.h"
