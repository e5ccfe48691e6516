#include <criterion/criterion.h>

#include "orbit/backpressure.h"
#include "orbit/breaker.h"
#include "orbit/dlq.h"
#include "orbit/error.h"
#include "orbit/health.h"
#include "orbit/penalty_box.h"
#include "orbit/refmap.h"

Test(checkers, refuse_null_objects)
{
    cr_assert_eq(penalty_box_check(NULL), ORBIT_ECORRUPT);
    cr_assert_eq(dlq_check(NULL), ORBIT_ECORRUPT);
    cr_assert_eq(backpressure_check(NULL), ORBIT_ECORRUPT);
    cr_assert_eq(backpressure_registry_check(NULL), ORBIT_ECORRUPT);
    cr_assert_eq(refmap_check(NULL), ORBIT_ECORRUPT);
    cr_assert_eq(health_check(NULL), ORBIT_ECORRUPT);
    cr_assert_eq(breaker_check(NULL), ORBIT_ECORRUPT);
}

Test(checkers, read_only_calls_tolerate_null)
{
    struct backpressure_stats s = {.objects = 9};
    backpressure_stats(NULL, &s);
    cr_assert_eq(s.objects, 0);
    cr_assert_not(backpressure_should_pause(NULL));
    cr_assert_not(backpressure_can_resume(NULL));
    cr_assert_not(backpressure_paused(NULL));
    cr_assert_not(backpressure_try_acquire(NULL, 1, 1));
    cr_assert_eq(backpressure_registry_count(NULL), 0);
    cr_assert_eq(refmap_seq(NULL), 0);
    cr_assert_eq(refmap_count(NULL), 0);
    cr_assert_eq(refmap_pending(NULL), 0);
    cr_assert_eq(breaker_state(NULL), BREAKER_CLOSED);
    cr_assert_eq(breaker_trips(NULL), 0);
    cr_assert_eq(penalty_box_count(NULL), 0);
    cr_assert_eq(penalty_box_now(NULL), 0);
    cr_assert(penalty_box_is_eligible(NULL, "k", 0));
    cr_assert_eq(dlq_count(NULL), 0);
    cr_assert_eq(dlq_evicted(NULL), 0);
    cr_assert_eq(health_evaluate(NULL, 0, NULL), HEALTH_HEALTHY);
}
