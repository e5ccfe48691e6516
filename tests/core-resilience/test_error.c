#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "orbit/error.h"

Test(error, every_code_has_text_and_name)
{
    for (int e = 0; e >= ORBIT_ENOTDIR; e--) {
        cr_assert_str_neq(orbit_strerror(e), "unknown error", "code %d", e);
        cr_assert_str_neq(orbit_errname(e), "EUNKNOWN", "code %d", e);
    }
    cr_assert_str_eq(orbit_strerror(-9999), "unknown error");
    cr_assert_str_eq(orbit_errname(1), "EUNKNOWN");
}

Test(error, errno_translation)
{
    cr_assert_eq(orbit_err_from_errno(ENOSPC), ORBIT_ENOSPC);
    cr_assert_eq(orbit_err_from_errno(EACCES), ORBIT_EPERM);
    cr_assert_eq(orbit_err_from_errno(ENOENT), ORBIT_ENOENT);
    cr_assert_eq(orbit_err_from_errno(ECONNRESET), ORBIT_ECLOSED);
    cr_assert_eq(orbit_err_from_errno(EXDEV), ORBIT_EIO);
    cr_assert_eq(orbit_err_from_errno(0), ORBIT_OK);
}

Test(error, retryable_split)
{
    cr_assert(orbit_err_retryable(ORBIT_EAGAIN));
    cr_assert(orbit_err_retryable(ORBIT_ETIMEDOUT));
    cr_assert_not(orbit_err_retryable(ORBIT_ENOSPC));
    cr_assert_not(orbit_err_retryable(ORBIT_EPATH));
    cr_assert_not(orbit_err_retryable(ORBIT_EAUTH));
}
