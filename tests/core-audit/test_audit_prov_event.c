#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "orbit/error.h"
#include "orbit/provenance.h"

#include "audit_check.h"

Test(prov_event, type_names_round_trip)
{
    for (int t = 0; t < PROV_EVENT_TYPE_COUNT; t++) {
        const char *name = prov_event_type_str((enum prov_event_type)t);
        enum prov_event_type back;
        cr_assert_str_neq(name, "unknown");
        cr_assert_eq(prov_event_type_parse(name, &back), 0, "%s", name);
        cr_assert_eq((int)back, t);
    }
    enum prov_event_type t;
    cr_assert_str_eq(prov_event_type_str(PROV_CHUNK_DEAD_LETTERED),
                     "chunk_dead_lettered");
    cr_assert_str_eq(prov_event_type_str(PROV_STAR_DEREGISTERED),
                     "star_deregistered");
    cr_assert_str_eq(prov_event_type_str(PROV_EVENT_TYPE_COUNT), "unknown");
    cr_assert_eq(prov_event_type_parse("Chunk_Created", &t), ORBIT_EINVAL);
    cr_assert_eq(prov_event_type_parse("", &t), ORBIT_EINVAL);
}

Test(prov_event, timestamp_format)
{
    char buf[PROV_TS_LEN + 1];
    /* 2026-11-25T13:45:01.123456Z */
    const int64_t ts = 1795614301LL * 1000000 + 123456;
    cr_assert_eq(prov_ts_format(ts, buf, sizeof buf), 0);
    cr_assert_str_eq(buf, "2026-11-25T13:45:01.123456Z");
    cr_assert_eq(prov_ts_format(0, buf, sizeof buf), 0);
    cr_assert_str_eq(buf, "1970-01-01T00:00:00.000000Z");
    cr_assert_eq(prov_ts_format(-1, buf, sizeof buf), 0);
    cr_assert_str_eq(buf, "1969-12-31T23:59:59.999999Z");
    cr_assert_eq(prov_ts_format(ts, buf, PROV_TS_LEN), ORBIT_EINVAL);
}

Test(prov_event, timestamp_parse)
{
    int64_t ts;
    const int64_t want = 1795614301LL * 1000000 + 123456;
    cr_assert_eq(prov_ts_parse("2026-11-25T13:45:01.123456Z", &ts), 0);
    cr_assert_eq(ts, want);
    cr_assert_eq(prov_ts_parse("2026-11-25t13:45:01.123456789z", &ts), 0);
    cr_assert_eq(ts, want);
    cr_assert_eq(prov_ts_parse("2026-11-25T14:45:01.123456+01:00", &ts), 0);
    cr_assert_eq(ts, want);
    cr_assert_eq(prov_ts_parse("2026-11-25T13:45:01Z", &ts), 0);
    cr_assert_eq(ts, 1795614301LL * 1000000);
    cr_assert_eq(prov_ts_parse("2024-02-29T00:00:00.5Z", &ts), 0);
    cr_assert_eq(ts % 1000000, 500000);

    const char *bad[] = {
        "",
        "2026-11-25",
        "2026-11-25 13:45:01Z",
        "2026-11-25T13:45:01",
        "2026-13-25T13:45:01Z",
        "2025-02-29T13:45:01Z",
        "2026-11-25T24:00:00Z",
        "2026-11-25T13:45:01.Z",
        "2026-11-25T13:45:01.1234567890Z",
        "2026-11-25T13:45:01Zjunk",
        "2026-11-25T13:45:01+0100",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(prov_ts_parse(bad[i], &ts), ORBIT_EINVAL, "%s", bad[i]);
}

Test(prov_event, fields_and_context)
{
    struct prov_event *ev = NULL;
    cr_assert_eq(prov_event_new(PROV_FILE_STARTED, "job-1", &ev), 0);
    cr_assert_str_eq(prov_event_get(ev, PROV_F_JOB_ID), "job-1");
    cr_assert_null(prov_event_get(ev, PROV_F_CHUNK_HASH));
    cr_assert_eq(prov_event_set(ev, PROV_F_DEST_PATH, "a/b"), 0);
    cr_assert_eq(prov_event_set(ev, PROV_F_DEST_PATH, ""), 0);
    cr_assert_null(prov_event_get(ev, PROV_F_DEST_PATH));
    cr_assert_eq(prov_event_set(ev, PROV_FIELD_COUNT, "x"), ORBIT_EINVAL);

    cr_assert_not(prov_event_bytes(ev, NULL));
    cr_assert_eq(prov_event_set_bytes(ev, (uint64_t)INT64_MAX + 1),
                 ORBIT_EINVAL);
    cr_assert_eq(prov_event_set_bytes(ev, 42), 0);
    uint64_t n = 0;
    cr_assert(prov_event_bytes(ev, &n));
    cr_assert_eq(n, 42);
    prov_event_clear_bytes(ev);
    cr_assert_not(prov_event_bytes(ev, &n));

    cr_assert_eq(prov_event_context_set(ev, "a", "1"), 0);
    cr_assert_eq(prov_event_context_set(ev, "b", "2"), 0);
    cr_assert_eq(prov_event_context_set(ev, "a", "3"), 0);
    cr_assert_eq(prov_event_context_count(ev), 2);
    cr_assert_str_eq(prov_event_context_get(ev, "a"), "3");
    cr_assert_eq(prov_event_context_set(ev, "a", NULL), 0);
    cr_assert_eq(prov_event_context_count(ev), 1);
    const char *k, *v;
    cr_assert_eq(prov_event_context_at(ev, 0, &k, &v), 0);
    cr_assert_str_eq(k, "b");
    cr_assert_eq(prov_event_context_at(ev, 1, &k, &v), ORBIT_ENOENT);
    cr_assert_eq(prov_event_context_set(ev, "", "x"), ORBIT_EINVAL);
    cr_assert_eq(prov_event_check(ev), 0);
    prov_event_free(ev);
    prov_event_free(NULL);
}

Test(prov_event, bounds)
{
    struct prov_event *ev = NULL;
    cr_assert_eq(prov_event_new(PROV_JOB_CREATED, NULL, &ev), 0);
    char *big = malloc(PROV_MAX_FIELD + 2);
    memset(big, 'x', PROV_MAX_FIELD + 1);
    big[PROV_MAX_FIELD + 1] = '\0';
    cr_assert_eq(prov_event_set(ev, PROV_F_SOURCE_PATH, big), ORBIT_ETOOBIG);
    big[PROV_MAX_FIELD] = '\0';
    cr_assert_eq(prov_event_set(ev, PROV_F_SOURCE_PATH, big), 0);
    big[PROV_MAX_CONTEXT_VAL + 1] = '\0';
    cr_assert_eq(prov_event_context_set(ev, "k", big), ORBIT_ETOOBIG);
    big[PROV_MAX_CONTEXT_KEY + 1] = '\0';
    cr_assert_eq(prov_event_context_set(ev, big, "v"), ORBIT_ETOOBIG);
    free(big);
    char key[16];
    for (int i = 0; i < PROV_MAX_CONTEXT; i++) {
        snprintf(key, sizeof key, "k%d", i);
        cr_assert_eq(prov_event_context_set(ev, key, "v"), 0);
    }
    cr_assert_eq(prov_event_context_set(ev, "one-more", "v"), ORBIT_EFULL);
    cr_assert_eq(prov_event_context_set(ev, "k0", "replaced"), 0);
    cr_assert_eq(prov_event_check(ev), 0);
    prov_event_free(ev);
}

Test(prov_event, json_leaves_out_empty_fields)
{
    struct prov_event *ev = NULL;
    cr_assert_eq(prov_event_new(PROV_STAR_DRAINING, NULL, &ev), 0);
    prov_event_set_ts(ev, 0);
    char *json = NULL;
    size_t len = 0;
    cr_assert_eq(prov_event_to_json(ev, &json, &len), 0);
    cr_assert_str_eq(json, "{\"ts\":\"1970-01-01T00:00:00.000000Z\","
                           "\"event_type\":\"star_draining\"}");
    cr_assert_eq(len, strlen(json));
    free(json);
    prov_event_free(ev);
}

Test(prov_event, json_escapes_and_sanitizes)
{
    struct prov_event *ev = NULL, *back = NULL;
    cr_assert_eq(prov_event_new(PROV_FILE_RENAMED, "j\"1", &ev), 0);
    cr_assert_eq(prov_event_set(ev, PROV_F_SOURCE_PATH, "a\nb\\c"), 0);
    /* A Latin-1 file name: the stray byte becomes U+FFFD. */
    cr_assert_eq(prov_event_set(ev, PROV_F_DEST_PATH, "caf\xe9.txt"), 0);
    cr_assert_str_eq(prov_event_get(ev, PROV_F_DEST_PATH),
                     "caf\xef\xbf\xbd.txt");
    cr_assert_eq(
        prov_event_set(ev, PROV_F_ERROR, "\xed\xa0\x80 \xf0\x9f\x9a\x80"), 0);
    cr_assert_str_eq(prov_event_get(ev, PROV_F_ERROR),
                     "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd \xf0\x9f\x9a\x80");
    char *json = NULL;
    size_t len = 0;
    cr_assert_eq(prov_event_to_json(ev, &json, &len), 0);
    cr_assert_null(memchr(json, '\n', len));
    cr_assert_eq(prov_event_from_json(json, len, &back), 0);
    cr_assert_str_eq(prov_event_get(back, PROV_F_JOB_ID), "j\"1");
    cr_assert_str_eq(prov_event_get(back, PROV_F_SOURCE_PATH), "a\nb\\c");
    cr_assert_eq(prov_event_check(ev), 0);
    cr_assert_eq(prov_event_check(back), 0);
    free(json);
    prov_event_free(ev);
    prov_event_free(back);
}

Test(prov_event, json_rejects_non_events)
{
    const char *bad[] = {
        "",
        "[]",
        "{}",
        "{\"ts\":\"1970-01-01T00:00:00Z\"}",
        "{\"event_type\":\"job_created\"}",
        "{\"ts\":\"yesterday\",\"event_type\":\"job_created\"}",
        "{\"ts\":\"1970-01-01T00:00:00Z\",\"event_type\":\"job_exploded\"}",
        "{\"ts\":\"1970-01-01T00:00:00Z\",\"event_type\":\"job_created\","
        "\"bytes\":-1}",
        "{\"ts\":\"1970-01-01T00:00:00Z\",\"event_type\":\"job_created\","
        "\"bytes\":\"12\"}",
        "{\"ts\":\"1970-01-01T00:00:00Z\",\"event_type\":\"job_created\","
        "\"job_id\":7}",
        "{\"ts\":\"1970-01-01T00:00:00Z\",\"event_type\":\"job_created\","
        "\"context\":{\"a\":1}}",
        "{\"ts\":\"1970-01-01T00:00:00Z\",\"event_type\":\"job_created\"} x",
        "{\"ts\":\"1970-01-01T00:00:00Z\",\"ts\":\"1970-01-01T00:00:00Z\","
        "\"event_type\":\"job_created\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct prov_event *ev = NULL;
        cr_assert_eq(prov_event_from_json(bad[i], strlen(bad[i]), &ev),
                     ORBIT_EFORMAT, "%s", bad[i]);
        cr_assert_null(ev);
    }
    /* Unknown keys are ignored, for logs written by newer versions. */
    const char *ok = "{\"ts\":\"1970-01-01T00:00:00Z\","
                     "\"event_type\":\"job_created\",\"shiny\":[1,2]}";
    struct prov_event *ev = NULL;
    cr_assert_eq(prov_event_from_json(ok, strlen(ok), &ev), 0);
    prov_event_free(ev);
}

Test(prov_event, clone_is_deep)
{
    struct prov_event *ev = NULL, *c = NULL;
    cr_assert_eq(prov_event_new(PROV_CHUNK_HEALED, "j", &ev), 0);
    prov_event_set(ev, PROV_F_CHUNK_HASH, "ab");
    prov_event_set_duration_ms(ev, 9);
    prov_event_context_set(ev, "k", "v");
    cr_assert_eq(prov_event_clone(ev, &c), 0);
    prov_event_free(ev);
    uint64_t d = 0;
    cr_assert_str_eq(prov_event_get(c, PROV_F_CHUNK_HASH), "ab");
    cr_assert(prov_event_duration_ms(c, &d));
    cr_assert_eq(d, 9);
    cr_assert_str_eq(prov_event_context_get(c, "k"), "v");
    cr_assert_eq(prov_event_type(c), PROV_CHUNK_HEALED);
    prov_event_free(c);
}

/* jansson allocations that fail after a countdown. */
static int alloc_budget;

static void *
failing_malloc(size_t n)
{
    if (alloc_budget-- <= 0)
        return NULL;
    return malloc(n);
}

Test(prov_event, json_allocation_failures)
{
    struct prov_event *ev = NULL;
    cr_assert_eq(prov_event_new(PROV_CHUNK_PENALIZED, "job", &ev), 0);
    prov_event_set(ev, PROV_F_CHUNK_HASH, "abcd");
    prov_event_set_bytes(ev, 1);
    prov_event_context_set(ev, "k", "v");
    char *good = NULL;
    size_t good_len = 0;
    cr_assert_eq(prov_event_to_json(ev, &good, &good_len), 0);

    int ok_at = -1;
    for (int budget = 0; budget < 200 && ok_at < 0; budget++) {
        alloc_budget = budget;
        json_set_alloc_funcs(failing_malloc, free);
        char *json = NULL;
        const int rc = prov_event_to_json(ev, &json, NULL);
        json_set_alloc_funcs(malloc, free);
        if (rc == 0) {
            cr_assert_str_eq(json, good);
            free(json);
            ok_at = budget;
        } else {
            cr_assert_eq(rc, ORBIT_ENOMEM, "budget %d: %d", budget, rc);
        }
    }
    cr_assert_gt(ok_at, 0);

    ok_at = -1;
    for (int budget = 0; budget < 200 && ok_at < 0; budget++) {
        struct prov_event *back = NULL;
        alloc_budget = budget;
        json_set_alloc_funcs(failing_malloc, free);
        const int rc = prov_event_from_json(good, good_len, &back);
        json_set_alloc_funcs(malloc, free);
        /* jansson reports most of its allocation failures as bad input. */
        cr_assert(rc == 0 || rc == ORBIT_EFORMAT || rc == ORBIT_ENOMEM);
        if (rc == 0) {
            cr_assert_eq(prov_event_check(back), 0);
            prov_event_free(back);
            ok_at = budget;
        }
    }
    cr_assert_gt(ok_at, 0);
    free(good);
    prov_event_free(ev);
}
