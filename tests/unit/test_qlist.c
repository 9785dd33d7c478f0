#include "tap.h"

int
main(void)
{
	ok(1, "qlist tests are being written");
	return done();
}
