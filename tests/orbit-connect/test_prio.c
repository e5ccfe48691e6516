#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "orbit/error.h"
#include "orbit/prio.h"

static struct prio_item
item(const char *path, uint64_t size, int64_t mtime, uint32_t retries)
{
    struct prio_item it = {path, size, mtime, retries, NULL};
    return it;
}

Test(prio, parse_and_describe)
{
    struct prio_chain *c;
    char buf[128];
    cr_assert_eq(prio_chain_parse(" smallest , oldest", &c), 0);
    cr_assert_eq(prio_chain_len(c), 2);
    prio_chain_describe(c, buf, sizeof buf);
    cr_assert_str_eq(buf, "smallest,oldest");
    prio_chain_describe(c, buf, 5);
    cr_assert_str_eq(buf, "");
    prio_chain_free(c);
    cr_assert_eq(prio_chain_parse("tier,largest,newest,fewest_retries", &c), 0);
    prio_chain_describe(c, buf, sizeof buf);
    cr_assert_str_eq(buf, "tier,largest,newest,fewest-retries");
    prio_chain_free(c);

    const char *bad[] = {"",      "smallest,",         ",smallest",
                         "small", "smallest,smallest", "tier,,oldest"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        c = (void *)1;
        cr_assert_eq(prio_chain_parse(bad[i], &c), ORBIT_EINVAL, "%s", bad[i]);
        cr_assert_null(c);
    }
    cr_assert_eq(prio_chain_parse(NULL, &c), ORBIT_EINVAL);
    prio_chain_free(NULL);
}

Test(prio, chain_first_non_equal_wins)
{
    struct prio_chain *c;
    cr_assert_eq(prio_chain_parse("smallest,oldest", &c), 0);
    struct prio_item a = item("a", 10, 5, 0), b = item("b", 10, 3, 0);
    struct prio_item s = item("s", 1, 100, 0);
    cr_assert_gt(prio_compare(c, &a, &b), 0); /* same size: older b */
    cr_assert_lt(prio_compare(c, &s, &b), 0); /* smaller wins first */
    cr_assert_eq(prio_compare(c, &a, &a), 0);
    prio_chain_free(c);

    cr_assert_eq(prio_chain_parse("largest", &c), 0);
    cr_assert_lt(prio_compare(c, &a, &s), 0);
    prio_chain_free(c);
    cr_assert_eq(prio_chain_parse("newest", &c), 0);
    cr_assert_lt(prio_compare(c, &a, &b), 0);
    prio_chain_free(c);
    cr_assert_eq(prio_chain_parse("fewest-retries", &c), 0);
    struct prio_item r = item("r", 1, 1, 4);
    cr_assert_lt(prio_compare(c, &a, &r), 0);
    prio_chain_free(c);
}

Test(prio, tiers)
{
    struct prio_chain *c;
    cr_assert_eq(prio_chain_parse("tier", &c), 0);
    cr_assert_eq(prio_tier_of(c, "MANIFEST"), 0);
    cr_assert_lt(prio_tier_of(c, "conf/app.json"),
                 prio_tier_of(c, "data/big.bin"));
    struct prio_item m = item("x/Cargo.lock", 900, 0, 0);
    struct prio_item d = item("data.bin", 1, 0, 0);
    cr_assert_lt(prio_compare(c, &m, &d), 0);
    const char *rules[] = {"*.bin", "docs/"};
    cr_assert_eq(prio_chain_set_tiers(c, rules, 2), 0);
    cr_assert_eq(prio_tier_of(c, "data.bin"), 0);
    cr_assert_eq(prio_tier_of(c, "x/Cargo.lock"), 2);
    cr_assert_gt(prio_compare(c, &m, &d), 0);
    const char *empty[] = {""};
    cr_assert_eq(prio_chain_set_tiers(c, empty, 1), ORBIT_EINVAL);
    cr_assert_eq(prio_tier_of(c, "data.bin"), 0, "rules kept on error");
    prio_chain_free(c);
}

Test(prio, window_orders_and_is_bounded)
{
    struct prio_chain *c;
    struct prio_window *w;
    cr_assert_eq(prio_chain_parse("smallest", &c), 0);
    cr_assert_eq(prio_window_new(c, 64, &w), 0);
    srand(7);
    uint64_t sizes[64];
    for (int i = 0; i < 64; i++) {
        sizes[i] = (uint64_t)(rand() % 1000);
        struct prio_item it = item("f", sizes[i], 0, 0);
        cr_assert_eq(prio_window_push(w, &it), 0);
        cr_assert_eq(prio_window_check(w), 0);
    }
    cr_assert(prio_window_full(w));
    struct prio_item extra = item("x", 0, 0, 0);
    cr_assert_eq(prio_window_push(w, &extra), ORBIT_EFULL);
    uint64_t last = 0;
    struct prio_item out;
    for (int i = 0; i < 64; i++) {
        const struct prio_item *pk = prio_window_peek(w);
        cr_assert_not_null(pk);
        uint64_t peeked = pk->size;
        cr_assert_eq(prio_window_pop(w, &out), 0);
        cr_assert_eq(out.size, peeked);
        cr_assert_geq(out.size, last);
        last = out.size;
        cr_assert_eq(prio_window_check(w), 0);
    }
    cr_assert_eq(prio_window_pop(w, &out), ORBIT_ENOENT);
    cr_assert_null(prio_window_peek(w));
    cr_assert_eq(prio_window_count(w), 0);
    cr_assert_eq(prio_window_capacity(w), 64);
    prio_window_free(w);
    prio_chain_free(c);
}

Test(prio, ties_keep_arrival_order)
{
    struct prio_chain *c;
    struct prio_window *w;
    cr_assert_eq(prio_chain_new(&c), 0); /* empty chain: FIFO */
    cr_assert_eq(prio_window_new(c, 100, &w), 0);
    int tags[100];
    for (int i = 0; i < 100; i++) {
        tags[i] = i;
        struct prio_item it = item("p", (uint64_t)(i % 3), 0, 0);
        it.data = &tags[i];
        cr_assert_eq(prio_window_push(w, &it), 0);
    }
    struct prio_item out;
    for (int i = 0; i < 100; i++) {
        cr_assert_eq(prio_window_pop(w, &out), 0);
        cr_assert_eq(*(int *)out.data, i);
    }
    prio_window_free(w);
    prio_chain_free(c);

    /* Under "tier,smallest", equal items still come out in order. */
    cr_assert_eq(prio_chain_parse("tier,smallest", &c), 0);
    cr_assert_eq(prio_window_new(c, 8, &w), 0);
    const char *paths[] = {"b.bin", "a.json", "c.bin", "d.json"};
    for (int i = 0; i < 4; i++) {
        struct prio_item it = item(paths[i], 5, 0, 0);
        cr_assert_eq(prio_window_push(w, &it), 0);
    }
    const char *want[] = {"a.json", "d.json", "b.bin", "c.bin"};
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(prio_window_pop(w, &out), 0);
        cr_assert_str_eq(out.path, want[i]);
    }
    prio_window_free(w);
    prio_chain_free(c);
}

Test(prio, bad_arguments)
{
    struct prio_chain *c;
    struct prio_window *w;
    cr_assert_eq(prio_chain_new(&c), 0);
    cr_assert_eq(prio_window_new(c, 0, &w), ORBIT_EINVAL);
    cr_assert_eq(prio_window_new(NULL, 4, &w), ORBIT_EINVAL);
    cr_assert_eq(prio_chain_add(c, PRIO_KEY_COUNT), ORBIT_EINVAL);
    for (int k = 0; k < PRIO_KEY_COUNT; k++)
        cr_assert_eq(prio_chain_add(c, (enum prio_key)k), 0);
    cr_assert_eq(prio_chain_add(c, PRIO_TIER), ORBIT_EINVAL);
    cr_assert_str_eq(prio_key_str(PRIO_KEY_COUNT), "unknown");
    prio_chain_free(c);
    prio_window_free(NULL);
}
