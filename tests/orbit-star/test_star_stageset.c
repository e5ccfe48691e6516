/* The set of staging files: random adds and removes against a plain list,
 * with keys that share their home slot so removals shift runs back. */
#include <criterion/criterion.h>
#include <string.h>

#include "star_stageset.h"

#define NKEYS 300

static void
key_of(unsigned i, uint8_t k[STAGESET_KEY])
{
    memset(k, 0, STAGESET_KEY);
    /* Few distinct homes (the first 8 bytes), many keys each. */
    uint64_t home = (uint64_t)(i % 7) * 0x9e3779b97f4a7c15u;
    memcpy(k, &home, sizeof home);
    memcpy(k + 8, &i, sizeof i);
}

Test(star_stageset, matches_a_reference)
{
    struct stage_set ss = {0};
    bool ref[NKEYS] = {false};
    uint8_t k[STAGESET_KEY];
    uint32_t x = 12345;
    for (int step = 0; step < 20000; step++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        unsigned i = x % NKEYS;
        key_of(i, k);
        if ((x >> 16) % 3 != 0) {
            cr_assert_eq(stage_set_add(&ss, k), 0);
            ref[i] = true;
        } else {
            stage_set_remove(&ss, k);
            ref[i] = false;
        }
        if (step % 97 != 0)
            continue;
        size_t n = 0;
        for (unsigned j = 0; j < NKEYS; j++) {
            key_of(j, k);
            cr_assert_eq(stage_set_has(&ss, k), ref[j], "step %d key %u", step,
                         j);
            n += ref[j];
        }
        cr_assert_eq(ss.n, n);
    }
    stage_set_free(&ss);
    key_of(1, k);
    cr_assert(!stage_set_has(&ss, k));
    stage_set_remove(&ss, k); /* empty: a no-op */
}
