#include "dkim_verify.h"
