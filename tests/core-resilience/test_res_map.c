#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "orbit/error.h"
#include "res_map.h"

#define MAP_OK(m) cr_assert_eq(res_map_check(m), 0, "invariant broken")

static int vals[4096];

static int
count_visit(const void *key, size_t len, void *val, void *ctx)
{
    (void)key;
    (void)len;
    (void)val;
    return ++*(int *)ctx == 3 ? 42 : 0;
}

Test(res_map, insert_get_remove)
{
    struct res_map *m = NULL;
    cr_assert_eq(res_map_new(8, &m), 0);
    cr_assert_eq(res_map_insert(m, "a", 1, &vals[0]), 0);
    cr_assert_eq(res_map_insert(m, "ab", 2, &vals[1]), 0);
    cr_assert_eq(res_map_insert(m, "a", 1, &vals[2]), ORBIT_EEXIST);
    cr_assert_eq(res_map_insert(m, "z", 1, NULL), ORBIT_EINVAL);
    MAP_OK(m);
    cr_assert_eq(res_map_get(m, "a", 1), &vals[0]);
    cr_assert_eq(res_map_get(m, "ab", 2), &vals[1]);
    cr_assert_null(res_map_get(m, "b", 1));
    cr_assert_null(res_map_get(m, "abc", 3));
    cr_assert_eq(res_map_remove(m, "a", 1), &vals[0]);
    cr_assert_null(res_map_remove(m, "a", 1));
    MAP_OK(m);
    cr_assert_eq(res_map_count(m), 1);
    res_map_free(m, NULL);
    res_map_free(NULL, NULL);
}

Test(res_map, bounded_and_growing)
{
    struct res_map *m = NULL;
    char key[16];
    cr_assert_eq(res_map_new(0, &m), ORBIT_EINVAL);
    cr_assert_null(m);
    cr_assert_eq(res_map_new(4000, &m), 0);
    for (int i = 0; i < 4000; i++) {
        snprintf(key, sizeof key, "k%d", i);
        cr_assert_eq(res_map_insert(m, key, strlen(key), &vals[i]), 0);
    }
    MAP_OK(m);
    cr_assert_eq(res_map_insert(m, "over", 4, &vals[0]), ORBIT_EFULL);
    for (int i = 0; i < 4000; i++) {
        snprintf(key, sizeof key, "k%d", i);
        cr_assert_eq(res_map_get(m, key, strlen(key)), &vals[i]);
    }
    int seen = 0;
    cr_assert_eq(res_map_foreach(m, count_visit, &seen), 42);
    cr_assert_eq(seen, 3, "visit stops at the first non-zero");
    res_map_free(m, NULL);
}
