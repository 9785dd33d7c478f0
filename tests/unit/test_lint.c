#include "tap.h"

int
main(void)
{
	ok(1, "lint tests are being written");
	return done();
}
