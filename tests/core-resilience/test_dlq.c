#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "orbit/dlq.h"
#include "orbit/error.h"
#include "res_test.h"

#define DLQ_OK(q) cr_assert_eq(dlq_check(q), 0, "invariant broken")

static struct fake_clock clk;

static struct dlq *
dlq_make(size_t capacity)
{
    struct dlq_config cfg;
    struct dlq *q = NULL;
    dlq_config_default(&cfg);
    cfg.capacity = capacity;
    cfg.now_ms = fake_clock_read;
    cfg.clock_ctx = &clk;
    cr_assert_eq(dlq_new(&cfg, &q), 0);
    DLQ_OK(q);
    return q;
}

static struct dlq_failure
failure(const char *key, const char *job)
{
    return (struct dlq_failure){
        .key = key,
        .job_id = job,
        .reason = DLQ_RETRIES_EXHAUSTED,
        .last_error = "timed out talking to star",
        .error_code = ORBIT_ETIMEDOUT,
        .attempts = 6,
        .first_failure_ms = 1000,
        .last_failure_ms = 2000,
        .source_path = "/src/a",
        .dest_path = "a",
    };
}

static void
push_ok(struct dlq *q, const struct dlq_failure *f)
{
    cr_assert_eq(dlq_push(q, f), 0);
    DLQ_OK(q);
}

Test(dlq, defaults)
{
    struct dlq_config cfg;
    dlq_config_default(&cfg);
    cr_assert_eq(cfg.capacity, 1000);
    struct dlq *q = NULL;
    cr_assert_eq(dlq_new(NULL, &q), 0);
    cr_assert_eq(dlq_capacity(q), 1000);
    cr_assert_eq(dlq_count(q), 0);
    cr_assert_eq(dlq_evicted(q), 0);
    DLQ_OK(q);
    dlq_free(q);
    dlq_free(NULL);
}

Test(dlq, reason_names_round_trip)
{
    const char *want[] = {"retries_exhausted", "permanent_error",
                          "checksum_mismatch", "source_missing",
                          "destination_error", "destination_full",
                          "data_corruption"};
    cr_assert_eq(DLQ_REASON_COUNT, 7);
    for (int r = 0; r < DLQ_REASON_COUNT; r++) {
        enum dlq_reason back = DLQ_REASON_COUNT;
        cr_assert_str_eq(dlq_reason_str((enum dlq_reason)r), want[r]);
        cr_assert_eq(dlq_reason_parse(want[r], &back), 0);
        cr_assert_eq(back, r);
    }
    enum dlq_reason out;
    cr_assert_str_eq(dlq_reason_str(DLQ_REASON_COUNT), "unknown");
    cr_assert_str_eq(dlq_reason_str((enum dlq_reason) - 1), "unknown");
    cr_assert_eq(dlq_reason_parse("unknown", &out), ORBIT_EINVAL);
    cr_assert_eq(dlq_reason_parse("Retries_Exhausted", &out), ORBIT_EINVAL);
    cr_assert_eq(dlq_reason_parse("", &out), ORBIT_EINVAL);
    cr_assert_eq(dlq_reason_parse(NULL, &out), ORBIT_EINVAL);
}

Test(dlq, push_then_drain_keeps_every_field)
{
    struct dlq *q = dlq_make(10);
    struct dlq_failure f = failure("a/b.txt", "job-1");
    f.reason = DLQ_DESTINATION_FULL;
    f.error_code = ORBIT_ENOSPC;
    push_ok(q, &f);
    cr_assert_eq(dlq_count(q), 1);
    struct dlq_entry *e = NULL;
    size_t n = 0;
    cr_assert_eq(dlq_drain(q, &e, &n), 0);
    DLQ_OK(q);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(e[0].key, "a/b.txt");
    cr_assert_str_eq(e[0].job_id, "job-1");
    cr_assert_eq(e[0].reason, DLQ_DESTINATION_FULL);
    cr_assert_str_eq(e[0].last_error, "timed out talking to star");
    cr_assert_eq(e[0].error_code, ORBIT_ENOSPC);
    cr_assert_eq(e[0].attempts, 6);
    cr_assert_eq(e[0].first_failure_ms, 1000);
    cr_assert_eq(e[0].last_failure_ms, 2000);
    cr_assert_str_eq(e[0].source_path, "/src/a");
    cr_assert_str_eq(e[0].dest_path, "a");
    cr_assert_eq(dlq_count(q), 0);
    dlq_entries_free(e, n);
    dlq_free(q);
}

Test(dlq, push_copies_strings)
{
    struct dlq *q = dlq_make(4);
    char key[16] = "mutable";
    struct dlq_failure f = failure(key, "j");
    push_ok(q, &f);
    strcpy(key, "changed");
    struct dlq_entry *e;
    size_t n;
    cr_assert_eq(dlq_drain(q, &e, &n), 0);
    cr_assert_str_eq(e[0].key, "mutable");
    dlq_entries_free(e, n);
    dlq_free(q);
}

Test(dlq, optional_fields_become_empty_strings)
{
    struct dlq *q = dlq_make(4);
    struct dlq_failure f = {
        .key = "k", .job_id = "j", .reason = DLQ_SOURCE_MISSING};
    fake_clock_set(&clk, 1700000000000ull);
    push_ok(q, &f);
    struct dlq_entry *e;
    size_t n;
    cr_assert_eq(dlq_drain(q, &e, &n), 0);
    cr_assert_str_eq(e[0].last_error, "");
    cr_assert_str_eq(e[0].source_path, "");
    cr_assert_str_eq(e[0].dest_path, "");
    cr_assert_eq(e[0].error_code, 0);
    /* zero times are stamped from the clock */
    cr_assert_eq(e[0].last_failure_ms, 1700000000000ull);
    cr_assert_eq(e[0].first_failure_ms, 1700000000000ull);
    dlq_entries_free(e, n);
    dlq_free(q);
}

Test(dlq, first_failure_defaults_to_last)
{
    struct dlq *q = dlq_make(4);
    struct dlq_failure f = failure("k", "j");
    f.first_failure_ms = 0;
    f.last_failure_ms = 777;
    push_ok(q, &f);
    f.first_failure_ms = 900; /* after a clock-stamped last: clamped */
    f.last_failure_ms = 0;
    fake_clock_set(&clk, 500);
    push_ok(q, &f);
    struct dlq_entry *e;
    size_t n;
    cr_assert_eq(dlq_drain(q, &e, &n), 0);
    cr_assert_eq(e[0].first_failure_ms, 777);
    cr_assert_eq(e[1].last_failure_ms, 500);
    cr_assert_eq(e[1].first_failure_ms, 500);
    dlq_entries_free(e, n);
    dlq_free(q);
}

Test(dlq, rejects_invalid_failures)
{
    struct dlq *q = dlq_make(4);
    struct dlq_failure f = failure("k", "j");
    f.key = NULL;
    cr_assert_eq(dlq_push(q, &f), ORBIT_EINVAL);
    f.key = "";
    cr_assert_eq(dlq_push(q, &f), ORBIT_EINVAL);
    f = failure("k", NULL);
    cr_assert_eq(dlq_push(q, &f), ORBIT_EINVAL);
    f = failure("k", "");
    cr_assert_eq(dlq_push(q, &f), ORBIT_EINVAL);
    f = failure("k", "j");
    f.reason = DLQ_REASON_COUNT;
    cr_assert_eq(dlq_push(q, &f), ORBIT_EINVAL);
    f = failure("k", "j");
    f.error_code = 5;
    cr_assert_eq(dlq_push(q, &f), ORBIT_EINVAL);
    f = failure("k", "j");
    f.first_failure_ms = 3000;
    cr_assert_eq(dlq_push(q, &f), ORBIT_EINVAL);
    cr_assert_eq(dlq_push(q, NULL), ORBIT_EINVAL);
    cr_assert_eq(dlq_push(NULL, &f), ORBIT_EINVAL);
    DLQ_OK(q);
    cr_assert_eq(dlq_count(q), 0);
    dlq_free(q);
}

Test(dlq, long_paths_refused_at_limit_plus_one)
{
    struct dlq *q = dlq_make(4);
    static char path[DLQ_FIELD_MAX + 2];
    memset(path, 'p', DLQ_FIELD_MAX + 1);
    struct dlq_failure f = failure("k", "j");
    f.dest_path = path;
    cr_assert_eq(dlq_push(q, &f), ORBIT_ETOOBIG);
    f = failure(path, "j");
    cr_assert_eq(dlq_push(q, &f), ORBIT_ETOOBIG);
    path[DLQ_FIELD_MAX] = '\0';
    push_ok(q, &f);
    cr_assert_eq(dlq_count(q), 1);
    dlq_free(q);
}

Test(dlq, long_error_text_truncated_on_utf8_boundary)
{
    struct dlq *q = dlq_make(4);
    static char text[DLQ_ERROR_TEXT_MAX + 8];
    /* "é" (2 bytes) straddling the cut at DLQ_ERROR_TEXT_MAX */
    memset(text, 'e', sizeof text - 1);
    text[DLQ_ERROR_TEXT_MAX - 1] = (char)0xC3;
    text[DLQ_ERROR_TEXT_MAX] = (char)0xA9;
    struct dlq_failure f = failure("k", "j");
    f.last_error = text;
    push_ok(q, &f);
    text[DLQ_ERROR_TEXT_MAX - 1] = 'e';
    text[DLQ_ERROR_TEXT_MAX] = 'e';
    push_ok(q, &f);
    struct dlq_entry *e;
    size_t n;
    cr_assert_eq(dlq_drain(q, &e, &n), 0);
    cr_assert_eq(strlen(e[0].last_error), DLQ_ERROR_TEXT_MAX - 1);
    cr_assert_eq(strlen(e[1].last_error), DLQ_ERROR_TEXT_MAX);
    dlq_entries_free(e, n);
    dlq_free(q);
}

Test(dlq, full_queue_evicts_oldest_and_counts)
{
    struct dlq *q = dlq_make(3);
    char key[8];
    for (int i = 0; i < 3; i++) {
        snprintf(key, sizeof key, "k%d", i);
        struct dlq_failure f = failure(key, "j");
        push_ok(q, &f);
    }
    cr_assert_eq(dlq_count(q), 3);
    cr_assert_eq(dlq_evicted(q), 0, "exactly at capacity evicts nothing");
    for (int i = 3; i < 8; i++) {
        snprintf(key, sizeof key, "k%d", i);
        struct dlq_failure f = failure(key, "j");
        push_ok(q, &f);
        cr_assert_eq(dlq_evicted(q), (uint64_t)(i - 2));
    }
    struct dlq_entry *e;
    size_t n;
    cr_assert_eq(dlq_drain(q, &e, &n), 0);
    cr_assert_eq(n, 3);
    cr_assert_str_eq(e[0].key, "k5");
    cr_assert_str_eq(e[1].key, "k6");
    cr_assert_str_eq(e[2].key, "k7");
    dlq_entries_free(e, n);
    cr_assert_eq(dlq_evicted(q), 5, "drain does not reset the eviction count");
    dlq_free(q);
}

Test(dlq, capacity_one)
{
    struct dlq *q = dlq_make(1);
    struct dlq_failure a = failure("a", "j"), b = failure("b", "j");
    push_ok(q, &a);
    push_ok(q, &b);
    cr_assert_eq(dlq_count(q), 1);
    cr_assert_eq(dlq_evicted(q), 1);
    struct dlq_entry *e;
    size_t n;
    cr_assert_eq(dlq_drain(q, &e, &n), 0);
    cr_assert_str_eq(e[0].key, "b");
    dlq_entries_free(e, n);
    dlq_free(q);
}

Test(dlq, bad_capacity_refused)
{
    struct dlq_config cfg;
    struct dlq *q = (void *)1;
    dlq_config_default(&cfg);
    cfg.capacity = 0;
    cr_assert_eq(dlq_new(&cfg, &q), ORBIT_EINVAL);
    cr_assert_null(q);
    cfg.capacity = DLQ_CAPACITY_MAX + 1;
    cr_assert_eq(dlq_new(&cfg, &q), ORBIT_EINVAL);
    cr_assert_eq(dlq_new(NULL, NULL), ORBIT_EINVAL);
}

Test(dlq, drain_empty_gives_null)
{
    struct dlq *q = dlq_make(4);
    struct dlq_entry *e = (void *)1;
    size_t n = 99;
    cr_assert_eq(dlq_drain(q, &e, &n), 0);
    cr_assert_null(e);
    cr_assert_eq(n, 0);
    dlq_entries_free(NULL, 0);
    cr_assert_eq(dlq_drain(q, NULL, &n), ORBIT_EINVAL);
    dlq_free(q);
}

Test(dlq, drain_after_wraparound_keeps_order_and_refills)
{
    struct dlq *q = dlq_make(4);
    char key[8];
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 3; i++) {
            snprintf(key, sizeof key, "r%di%d", round, i);
            struct dlq_failure f = failure(key, "j");
            push_ok(q, &f);
        }
        struct dlq_entry *e;
        size_t n;
        cr_assert_eq(dlq_drain(q, &e, &n), 0);
        DLQ_OK(q);
        cr_assert_eq(n, 3);
        for (int i = 0; i < 3; i++) {
            snprintf(key, sizeof key, "r%di%d", round, i);
            cr_assert_str_eq(e[i].key, key);
        }
        dlq_entries_free(e, n);
    }
    cr_assert_eq(dlq_evicted(q), 0);
    dlq_free(q);
}

Test(dlq, query_by_job_copies_and_leaves_queue)
{
    struct dlq *q = dlq_make(10);
    const char *jobs[] = {"j1", "j2", "j1", "j3", "j1"};
    char key[8];
    for (int i = 0; i < 5; i++) {
        snprintf(key, sizeof key, "k%d", i);
        struct dlq_failure f = failure(key, jobs[i]);
        push_ok(q, &f);
    }
    cr_assert_eq(dlq_count_job(q, "j1"), 3);
    cr_assert_eq(dlq_count_job(q, "j2"), 1);
    cr_assert_eq(dlq_count_job(q, "nope"), 0);
    struct dlq_entry *e;
    size_t n;
    cr_assert_eq(dlq_query_job(q, "j1", &e, &n), 0);
    DLQ_OK(q);
    cr_assert_eq(n, 3);
    cr_assert_str_eq(e[0].key, "k0");
    cr_assert_str_eq(e[1].key, "k2");
    cr_assert_str_eq(e[2].key, "k4");
    cr_assert_str_eq(e[2].dest_path, "a");
    dlq_entries_free(e, n);
    cr_assert_eq(dlq_count(q), 5);
    cr_assert_eq(dlq_query_job(q, "nope", &e, &n), 0);
    cr_assert_eq(n, 0);
    cr_assert_null(e);
    cr_assert_eq(dlq_query_job(q, NULL, &e, &n), ORBIT_EINVAL);
    dlq_free(q);
}

Test(dlq, job_id_match_is_exact)
{
    struct dlq *q = dlq_make(4);
    struct dlq_failure a = failure("k", "job"), b = failure("k", "job-2");
    push_ok(q, &a);
    push_ok(q, &b);
    cr_assert_eq(dlq_count_job(q, "job"), 1);
    cr_assert_eq(dlq_count_job(q, "jo"), 0);
    dlq_free(q);
}

struct dlq_worker {
    struct dlq *q;
    int id;
    size_t drained;
};

static void *
dlq_pusher(void *arg)
{
    struct dlq_worker *w = arg;
    char key[32];
    for (int i = 0; i < 500; i++) {
        snprintf(key, sizeof key, "w%d-%d", w->id, i);
        struct dlq_failure f = failure(key, w->id % 2 ? "odd" : "even");
        if (dlq_push(w->q, &f) != 0)
            return (void *)1;
    }
    return NULL;
}

static void *
dlq_drainer(void *arg)
{
    struct dlq_worker *w = arg;
    for (int i = 0; i < 200; i++) {
        struct dlq_entry *e;
        size_t n;
        if (dlq_drain(w->q, &e, &n) != 0 || dlq_check(w->q) != 0)
            return (void *)1;
        w->drained += n;
        dlq_entries_free(e, n);
    }
    return NULL;
}

Test(dlq, concurrent_push_and_drain_lose_nothing)
{
    struct dlq *q = dlq_make(64);
    pthread_t t[4];
    struct dlq_worker w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (struct dlq_worker){q, i, 0};
        cr_assert_eq(pthread_create(&t[i], NULL,
                                    i == 3 ? dlq_drainer : dlq_pusher, &w[i]),
                     0);
    }
    for (int i = 0; i < 4; i++) {
        void *rv;
        pthread_join(t[i], &rv);
        cr_assert_null(rv);
    }
    DLQ_OK(q);
    size_t total = w[3].drained + dlq_count(q) + (size_t)dlq_evicted(q);
    cr_assert_eq(total, 3 * 500, "every push is drained, queued or evicted");
    dlq_free(q);
}

Test(dlq, growth_past_initial_slots_keeps_order)
{
    struct dlq *q = dlq_make(300);
    char key[16];
    for (int i = 0; i < 310; i++) {
        snprintf(key, sizeof key, "k%d", i);
        struct dlq_failure f = failure(key, i % 2 ? "odd" : "even");
        push_ok(q, &f);
    }
    cr_assert_eq(dlq_count(q), 300);
    cr_assert_eq(dlq_evicted(q), 10);
    cr_assert_eq(dlq_count_job(q, "odd"), 150);
    struct dlq_entry *e;
    size_t n;
    cr_assert_eq(dlq_drain(q, &e, &n), 0);
    cr_assert_eq(n, 300);
    for (size_t i = 0; i < n; i++) {
        snprintf(key, sizeof key, "k%zu", i + 10);
        cr_assert_str_eq(e[i].key, key);
    }
    dlq_entries_free(e, n);
    DLQ_OK(q);
    dlq_free(q);
}

Test(dlq, maximum_capacity_costs_nothing_until_used)
{
    struct dlq *q = dlq_make(DLQ_CAPACITY_MAX);
    struct dlq_failure f = failure("k", "j");
    push_ok(q, &f);
    cr_assert_eq(dlq_capacity(q), DLQ_CAPACITY_MAX);
    cr_assert_eq(dlq_count(q), 1);
    dlq_free(q);
}
