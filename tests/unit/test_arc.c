#include "tap.h"

int
main(void)
{
	ok(1, "arc tests are being written");
	return done();
}
