#include "tap.h"

int
main(void)
{
	ok(1, "spf tests are being written");
	return done();
}
