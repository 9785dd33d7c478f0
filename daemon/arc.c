#include "arc.h"
