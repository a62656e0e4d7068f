/* placeholder, filled next */
#include <criterion/criterion.h>
Test(copy, placeholder) {}
