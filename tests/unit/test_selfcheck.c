#include "tap.h"

int
main(void)
{
	ok(1, "selfcheck tests are being written");
	return done();
}
