#include "tap.h"

int
main(void)
{
	ok(1, "dns tests are being written");
	return done();
}
