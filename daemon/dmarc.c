#include "dmarc.h"
