#include <criterion/criterion.h>
#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "orbit/bulletin.h"
#include "orbit/error.h"

static struct bulletin_board *bb;

static void
setup(void)
{
    cr_assert_eq(bulletin_board_new(5, &bb), 0);
}

static void
teardown(void)
{
    bulletin_board_free(bb);
}

static uint64_t
post(enum bulletin_severity sev, enum bulletin_source src, const char *name,
     const char *cat, const char *job, const char *msg)
{
    struct bulletin_post p = {sev, src, name, cat, job, msg, 0};
    uint64_t id = 0;
    cr_assert_eq(bulletin_post(bb, &p, &id), 0);
    cr_assert_eq(bulletin_check(bb), 0);
    return id;
}

static void
fill(void)
{
    post(BULLETIN_INFO, BULLETIN_SOURCE_JOB, "copy", "progress",
         "0123456789abcdef", "started");
    post(BULLETIN_WARNING, BULLETIN_SOURCE_STAR, "alpha", "health", NULL,
         "disk 86% used");
    post(BULLETIN_ERROR, BULLETIN_SOURCE_STAR, "beta", "breaker", "",
         "circuit open");
    post(BULLETIN_ERROR, BULLETIN_SOURCE_JOB, "copy", "dead-letter",
         "0123456789abcdef", "a/b: permission denied");
}

TestSuite(bulletin, .init = setup, .fini = teardown);

Test(bulletin, ids_and_recent)
{
    fill();
    cr_assert_eq(bulletin_count(bb), 4);
    cr_assert_eq(bulletin_last_id(bb), 4);
    struct bulletin *l;
    size_t n;
    cr_assert_eq(bulletin_recent(bb, 2, &l, &n), 0);
    cr_assert_eq(n, 2);
    cr_assert_eq(l[0].id, 3);
    cr_assert_eq(l[1].id, 4);
    cr_assert_str_eq(l[1].job_id, "0123456789abcdef");
    cr_assert_str_eq(l[0].job_id, "");
    cr_assert_gt(l[0].time_ms, 0);
    bulletin_list_free(l, n);
    cr_assert_eq(bulletin_recent(bb, 0, &l, &n), 0);
    cr_assert_eq(n, 0);
    cr_assert_null(l);
}

Test(bulletin, eviction_keeps_the_latest)
{
    for (int i = 0; i < 12; i++)
        post(BULLETIN_INFO, BULLETIN_SOURCE_JOB, "j", "c", NULL, "m");
    cr_assert_eq(bulletin_count(bb), 5);
    cr_assert_eq(bulletin_evicted(bb), 7);
    cr_assert_eq(bulletin_capacity(bb), 5);
    struct bulletin *l;
    size_t n;
    cr_assert_eq(bulletin_since(bb, 0, &l, &n), 0);
    cr_assert_eq(n, 5);
    cr_assert_eq(l[0].id, 8);
    cr_assert_eq(l[4].id, 12);
    bulletin_list_free(l, n);
    cr_assert_eq(bulletin_since(bb, 10, &l, &n), 0);
    cr_assert_eq(n, 2);
    cr_assert_eq(l[0].id, 11);
    bulletin_list_free(l, n);
    cr_assert_eq(bulletin_since(bb, 12, &l, &n), 0);
    cr_assert_eq(n, 0);
    cr_assert_eq(bulletin_since(bb, 999, &l, &n), 0);
    cr_assert_eq(n, 0);
}

Test(bulletin, filters)
{
    fill();
    struct bulletin_filter f;
    struct bulletin *l;
    size_t n;
    bulletin_filter_init(&f);
    f.min_severity = BULLETIN_WARNING;
    cr_assert_eq(bulletin_query(bb, &f, &l, &n), 0);
    cr_assert_eq(n, 3);
    bulletin_list_free(l, n);
    f.min_severity = BULLETIN_ERROR;
    f.limit = 1;
    cr_assert_eq(bulletin_query(bb, &f, &l, &n), 0);
    cr_assert_eq(n, 1);
    cr_assert_eq(l[0].id, 4);
    bulletin_list_free(l, n);

    bulletin_filter_init(&f);
    f.any_source = false;
    f.source = BULLETIN_SOURCE_STAR;
    cr_assert_eq(bulletin_query(bb, &f, &l, &n), 0);
    cr_assert_eq(n, 2);
    bulletin_list_free(l, n);
    f.source_name = "beta";
    cr_assert_eq(bulletin_query(bb, &f, &l, &n), 0);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(l[0].message, "circuit open");
    bulletin_list_free(l, n);

    bulletin_filter_init(&f);
    f.category = "health";
    cr_assert_eq(bulletin_query(bb, &f, &l, &n), 0);
    cr_assert_eq(n, 1);
    cr_assert_eq(l[0].severity, BULLETIN_WARNING);
    bulletin_list_free(l, n);

    bulletin_filter_init(&f);
    f.job_id = "0123456789abcdef";
    f.since_id = 1;
    cr_assert_eq(bulletin_query(bb, &f, &l, &n), 0);
    cr_assert_eq(n, 1);
    cr_assert_eq(l[0].id, 4);
    bulletin_list_free(l, n);

    cr_assert_eq(bulletin_query(bb, NULL, &l, &n), 0);
    cr_assert_eq(n, 4);
    bulletin_list_free(l, n);
}

Test(bulletin, refuses_bad_posts)
{
    struct bulletin_post p = {
        BULLETIN_INFO, BULLETIN_SOURCE_JOB, "n", "c", NULL, "m", 0};
    p.source_name = "";
    cr_assert_eq(bulletin_post(bb, &p, NULL), ORBIT_EINVAL);
    p.source_name = "n";
    p.category = NULL;
    cr_assert_eq(bulletin_post(bb, &p, NULL), ORBIT_EINVAL);
    p.category = "c";
    p.message = NULL;
    cr_assert_eq(bulletin_post(bb, &p, NULL), ORBIT_EINVAL);
    p.message = "m";
    p.severity = (enum bulletin_severity)3;
    cr_assert_eq(bulletin_post(bb, &p, NULL), ORBIT_EINVAL);
    p.severity = BULLETIN_INFO;
    p.source = (enum bulletin_source)2;
    cr_assert_eq(bulletin_post(bb, &p, NULL), ORBIT_EINVAL);
    cr_assert_eq(bulletin_count(bb), 0);
    struct bulletin_board *x;
    cr_assert_eq(bulletin_board_new(BULLETIN_CAPACITY_MAX + 1, &x),
                 ORBIT_EINVAL);
    cr_assert_eq(bulletin_board_new(0, &x), 0);
    cr_assert_eq(bulletin_capacity(x), BULLETIN_CAPACITY_DEFAULT);
    bulletin_board_free(x);
    bulletin_board_free(NULL);
}

Test(bulletin, text_is_utf8_and_bounded)
{
    char big[BULLETIN_MESSAGE_MAX + 100];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    /* A 2-byte character straddling the limit is dropped whole. */
    big[BULLETIN_MESSAGE_MAX - 1] = (char)0xC3;
    big[BULLETIN_MESSAGE_MAX] = (char)0xA9;
    post(BULLETIN_INFO, BULLETIN_SOURCE_JOB, "n\xff", "c", NULL, big);
    struct bulletin *l;
    size_t n;
    cr_assert_eq(bulletin_recent(bb, 1, &l, &n), 0);
    cr_assert_eq(strlen(l[0].message), BULLETIN_MESSAGE_MAX - 1);
    cr_assert_str_eq(l[0].source_name, "n?");
    json_t *j = bulletin_to_json(&l[0]);
    cr_assert_not_null(j);
    json_decref(j);
    bulletin_list_free(l, n);
}

Test(bulletin, json_rendering)
{
    struct bulletin_post p = {
        BULLETIN_WARNING, BULLETIN_SOURCE_STAR, "alpha", "health", NULL,
        "disk \"86%\"",   1764072000123ULL};
    cr_assert_eq(bulletin_post(bb, &p, NULL), 0);
    p.job_id = "0123456789abcdef";
    cr_assert_eq(bulletin_post(bb, &p, NULL), 0);
    struct bulletin *l;
    size_t n;
    cr_assert_eq(bulletin_recent(bb, 2, &l, &n), 0);
    json_t *j = bulletin_to_json(&l[0]);
    char *s = json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT);
    cr_assert_str_eq(s, "{\"category\":\"health\",\"id\":1,\"job_id\":null,"
                        "\"message\":\"disk \\\"86%\\\"\",\"severity\":"
                        "\"warning\",\"source\":\"star\",\"source_name\":"
                        "\"alpha\",\"time\":\"2025-11-25T12:00:00.123Z\","
                        "\"time_ms\":1764072000123}");
    free(s);
    json_decref(j);
    j = bulletin_to_json(&l[1]);
    cr_assert_str_eq(json_string_value(json_object_get(j, "job_id")),
                     "0123456789abcdef");
    json_decref(j);
    bulletin_list_free(l, n);
}

Test(bulletin, names)
{
    enum bulletin_severity s;
    cr_assert_eq(bulletin_severity_parse("warn", &s), 0);
    cr_assert_eq(s, BULLETIN_WARNING);
    cr_assert_eq(bulletin_severity_parse("error", &s), 0);
    cr_assert_eq(bulletin_severity_parse("fatal", &s), ORBIT_EINVAL);
    enum bulletin_source src;
    cr_assert_eq(bulletin_source_parse("star", &src), 0);
    cr_assert_eq(bulletin_source_parse("host", &src), ORBIT_EINVAL);
    cr_assert_str_eq(bulletin_severity_str((enum bulletin_severity)9),
                     "unknown");
}

static void *
poster(void *arg)
{
    struct bulletin_board *b = arg;
    struct bulletin_post p = {
        BULLETIN_INFO, BULLETIN_SOURCE_JOB, "t", "c", NULL, "m", 0};
    for (int i = 0; i < 5000; i++) {
        if (bulletin_post(b, &p, NULL) != 0)
            return (void *)1;
        if (i % 100 == 0) {
            struct bulletin *l;
            size_t n;
            if (bulletin_recent(b, 10, &l, &n) != 0)
                return (void *)1;
            bulletin_list_free(l, n);
        }
    }
    return NULL;
}

Test(bulletin_mt, concurrent_posts)
{
    struct bulletin_board *b;
    cr_assert_eq(bulletin_board_new(100, &b), 0);
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, poster, b);
    for (int i = 0; i < 4; i++) {
        void *r;
        pthread_join(t[i], &r);
        cr_assert_null(r);
    }
    cr_assert_eq(bulletin_last_id(b), 20000);
    cr_assert_eq(bulletin_count(b), 100);
    cr_assert_eq(bulletin_evicted(b), 19900);
    cr_assert_eq(bulletin_check(b), 0);
    bulletin_board_free(b);
}
