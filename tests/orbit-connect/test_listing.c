/*
 * A destination's listing for sync (sched_listing): lookups in the star's
 * component order, out-of-order pages sorted, "seen" marks, and memory that
 * does not grow with the number of entries.
 */
#include <criterion/criterion.h>
#include <malloc.h>
#include <stdio.h>
#include <string.h>

#include "orbit/error.h"
#include "orbit/wire.h"
#include "sched_listing.h"

static void
add(struct sched_listing *l, const char *path, uint64_t size)
{
    struct wire_list_entry e = {
        .path = path,
        .path_len = strlen(path),
        .ftype = WIRE_FT_REGULAR,
        .size = size,
        .mtime_sec = (int64_t)size * 10,
        .mtime_nsec = (uint32_t)size,
    };
    cr_assert_eq(sched_listing_add(l, &e), 0, "%s", path);
}

/* In component order '/' sorts first: a/b before a.txt before a0. */
static const char *const ordered[] = {"a",   "a/b",   "a/b/c", "a/z",
                                      "a.t", "a.txt", "a0",    "b"};
#define NORDERED (sizeof ordered / sizeof *ordered)

static void
expect_all(struct sched_listing *l)
{
    cr_assert_eq(sched_listing_count(l), NORDERED);
    for (size_t i = 0; i < NORDERED; i++) {
        struct sched_listed e;
        sched_listing_get(l, i, &e);
        cr_assert_str_eq(e.path, ordered[i], "entry %zu", i);
        struct sched_listed f;
        cr_assert(sched_listing_find(l, ordered[i], &f), "%s", ordered[i]);
        cr_assert_eq(f.idx, i);
        cr_assert_eq(f.size, (uint64_t)(i + 1));
        cr_assert_eq(f.mtime_sec, (int64_t)(i + 1) * 10);
        cr_assert_eq(f.mtime_nsec, (uint32_t)(i + 1));
        cr_assert_eq(f.ftype, WIRE_FT_REGULAR);
    }
    struct sched_listed x;
    const char *absent[] = {"", "a/", "a/b/c/d", "a.tx", "c", "0"};
    for (size_t i = 0; i < sizeof absent / sizeof *absent; i++)
        cr_assert_not(sched_listing_find(l, absent[i], &x), "%s", absent[i]);
}

Test(sched_listing, finds_entries_in_component_order)
{
    struct sched_listing *l = NULL;
    cr_assert_eq(sched_listing_new(&l), 0);
    for (size_t i = 0; i < NORDERED; i++)
        add(l, ordered[i], i + 1);
    struct sched_listed x;
    cr_assert_not(sched_listing_find(l, "a", &x), "found before the seal");
    cr_assert_eq(sched_listing_seal(l), 0);
    struct wire_list_entry late = {.path = "zz", .path_len = 2};
    cr_assert_eq(sched_listing_add(l, &late), ORBIT_EINVAL, "added after");
    expect_all(l);
    cr_assert_not(sched_listing_seen(l, 2));
    sched_listing_mark_seen(l, 2);
    sched_listing_mark_seen(l, 99); /* out of range: ignored */
    for (size_t i = 0; i < NORDERED; i++)
        cr_assert_eq(sched_listing_seen(l, i), i == 2, "entry %zu", i);
    sched_listing_free(l);
}

Test(sched_listing, pages_out_of_order_are_sorted)
{
    struct sched_listing *l = NULL;
    cr_assert_eq(sched_listing_new(&l), 0);
    static const size_t perm[] = {5, 0, 7, 2, 1, 6, 3, 4};
    for (size_t i = 0; i < NORDERED; i++)
        add(l, ordered[perm[i]], perm[i] + 1);
    cr_assert_eq(sched_listing_seal(l), 0);
    expect_all(l);
    sched_listing_free(l);
}

Test(sched_listing, an_empty_listing)
{
    struct sched_listing *l = NULL;
    cr_assert_eq(sched_listing_new(&l), 0);
    cr_assert_eq(sched_listing_seal(l), 0);
    cr_assert_eq(sched_listing_count(l), 0);
    struct sched_listed x;
    cr_assert_not(sched_listing_find(l, "a", &x));
    sched_listing_free(l);
}

/* 300,000 entries (the old in-memory table took about 100 bytes each:
 * 30 MB) leave under 1 MiB on the heap, and every one is still found after
 * the mapped pages were dropped along the way. */
Test(sched_listing, memory_does_not_grow_with_the_entries)
{
    enum { N = 300000 };
    struct mallinfo2 before = mallinfo2();
    struct sched_listing *l = NULL;
    cr_assert_eq(sched_listing_new(&l), 0);
    char p[64];
    for (size_t i = 0; i < N; i++) {
        snprintf(p, sizeof p, "dir%03zu/file%06zu.c", i / 1000, i);
        add(l, p, i);
    }
    cr_assert_eq(sched_listing_seal(l), 0);
    struct mallinfo2 after = mallinfo2();
    size_t grown =
        after.uordblks > before.uordblks ? after.uordblks - before.uordblks : 0;
    cr_assert_lt(grown, (size_t)1 << 20, "%zu bytes of heap for %d entries",
                 grown, N);
    for (size_t i = 0; i < N; i += 7) {
        snprintf(p, sizeof p, "dir%03zu/file%06zu.c", i / 1000, i);
        struct sched_listed e;
        cr_assert(sched_listing_find(l, p, &e), "%s", p);
        cr_assert_eq(e.size, i);
        sched_listing_mark_seen(l, e.idx);
    }
    size_t seen = 0;
    for (size_t i = 0; i < N; i++)
        seen += sched_listing_seen(l, i);
    cr_assert_eq(seen, (N + 6) / 7);
    sched_listing_free(l);
}
