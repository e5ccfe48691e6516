#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "orbit/error.h"
#include "orbit/provenance.h"

#include "audit_check.h"

#define T0 (1795614301LL * 1000000 + 123456) /* 2026-11-25T13:45:01.123456Z */

static char dir[64];
static char path[128];

static void
setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/orbit-audit-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/events.jsonl", dir);
}

static void
teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(prov_log, .init = setup, .fini = teardown);

/* Events handed to the read callback, cloned. */
struct seen {
    struct prov_event *ev[4096];
    size_t n;
};

static int
collect(const struct prov_event *ev, void *arg)
{
    struct seen *s = arg;
    cr_assert_lt(s->n, 4096);
    cr_assert_eq(prov_event_check(ev), 0);
    cr_assert_eq(prov_event_clone(ev, &s->ev[s->n]), 0);
    cr_assert_eq(prov_event_check(s->ev[s->n]), 0);
    s->n++;
    return 0;
}

static void
seen_free(struct seen *s)
{
    for (size_t i = 0; i < s->n; i++)
        prov_event_free(s->ev[i]);
    s->n = 0;
}

struct bad_lines {
    uint64_t line[64];
    size_t n;
};

static void
on_bad(const char *p, uint64_t line_no, const char *reason, void *arg)
{
    struct bad_lines *b = arg;
    cr_assert_str_eq(p, path);
    cr_assert_not_null(reason);
    if (b->n < 64)
        b->line[b->n++] = line_no;
}

static struct prov_log *
open_log(uint64_t rotate, uint32_t max_files)
{
    const struct prov_log_opts o = {.path = path,
                                    .flush = PROV_FLUSH_EVERY,
                                    .rotate_bytes = rotate,
                                    .max_files = max_files};
    struct prov_log *log = NULL;
    cr_assert_eq(prov_log_new(&o, &log), 0);
    return log;
}

static void
write_seq(struct prov_log *log, enum prov_event_type t, const char *job,
          int64_t ts, int seq)
{
    struct prov_event *ev = NULL;
    char s[16];
    snprintf(s, sizeof s, "%d", seq);
    cr_assert_eq(prov_event_new(t, job, &ev), 0);
    prov_event_set_ts(ev, ts);
    cr_assert_eq(prov_event_context_set(ev, "seq", s), 0);
    cr_assert_eq(prov_log_write(log, ev), 0);
    prov_event_free(ev);
}

static void
append_raw(const char *text)
{
    FILE *fp = fopen(path, "a");
    cr_assert_not_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static struct prov_event *
full_event(enum prov_event_type t)
{
    struct prov_event *ev = NULL;
    cr_assert_eq(prov_event_new(t, "job-7", &ev), 0);
    prov_event_set_ts(ev, T0 + t);
    for (int f = 0; f < PROV_FIELD_COUNT; f++) {
        char v[64];
        snprintf(v, sizeof v, "%s-%s", prov_field_name((enum prov_field)f),
                 prov_event_type_str(t));
        cr_assert_eq(prov_event_set(ev, (enum prov_field)f, v), 0);
    }
    cr_assert_eq(prov_event_set_bytes(ev, 65536u + (unsigned)t), 0);
    cr_assert_eq(prov_event_set_duration_ms(ev, 12u + (unsigned)t), 0);
    cr_assert_eq(prov_event_context_set(ev, "attempt", "3"), 0);
    cr_assert_eq(prov_event_context_set(ev, "reason", "disk \"full\"\n"), 0);
    return ev;
}

static void
assert_same(const struct prov_event *a, const struct prov_event *b)
{
    cr_assert_eq(prov_event_type(a), prov_event_type(b));
    cr_assert_eq(prov_event_ts(a), prov_event_ts(b));
    for (int f = 0; f < PROV_FIELD_COUNT; f++) {
        const char *x = prov_event_get(a, (enum prov_field)f);
        const char *y = prov_event_get(b, (enum prov_field)f);
        cr_assert((x == NULL) == (y == NULL));
        if (x)
            cr_assert_str_eq(x, y);
    }
    uint64_t u = 0, v = 0;
    cr_assert_eq(prov_event_bytes(a, &u), prov_event_bytes(b, &v));
    cr_assert_eq(u, v);
    cr_assert_eq(prov_event_duration_ms(a, &u), prov_event_duration_ms(b, &v));
    cr_assert_eq(u, v);
    cr_assert_eq(prov_event_context_count(a), prov_event_context_count(b));
    for (size_t i = 0; i < prov_event_context_count(a); i++) {
        const char *k1, *v1, *k2, *v2;
        prov_event_context_at(a, i, &k1, &v1);
        prov_event_context_at(b, i, &k2, &v2);
        cr_assert_str_eq(k1, k2);
        cr_assert_str_eq(v1, v2);
    }
}

Test(prov_log, every_type_round_trips_with_all_fields)
{
    struct prov_log *log = open_log(0, 1);
    struct prov_event *sent[PROV_EVENT_TYPE_COUNT];
    for (int t = 0; t < PROV_EVENT_TYPE_COUNT; t++) {
        sent[t] = full_event((enum prov_event_type)t);
        cr_assert_eq(prov_log_write(log, sent[t]), 0);
    }
    prov_log_free(log);

    static struct seen got;
    struct prov_read_stats st;
    cr_assert_eq(prov_read_file(path, NULL, collect, &got, &st), 0);
    cr_assert_eq(got.n, PROV_EVENT_TYPE_COUNT);
    cr_assert_eq(st.lines, PROV_EVENT_TYPE_COUNT);
    cr_assert_eq(st.malformed, 0);
    cr_assert_not(st.torn_tail);
    for (int t = 0; t < PROV_EVENT_TYPE_COUNT; t++) {
        assert_same(sent[t], got.ev[t]);
        prov_event_free(sent[t]);
    }
    seen_free(&got);
}

static uint64_t
file_size(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 ? (uint64_t)st.st_size : UINT64_MAX;
}

static int
first_seq(const char *p, size_t *count)
{
    static struct seen got;
    cr_assert_eq(prov_read_file(p, NULL, collect, &got, NULL), 0);
    *count = got.n;
    cr_assert_gt(got.n, 0);
    const int first = atoi(prov_event_context_get(got.ev[0], "seq"));
    for (size_t i = 0; i < got.n; i++)
        cr_assert_eq(atoi(prov_event_context_get(got.ev[i], "seq")),
                     first + (int)i);
    seen_free(&got);
    return first;
}

Test(prov_log, rotation_keeps_n_files_and_drops_the_oldest)
{
    const uint64_t limit = 1000;
    struct prov_log *log = open_log(limit, 3);
    for (int i = 0; i < 100; i++)
        write_seq(log, PROV_CHUNK_TRANSFERRED, "job", T0, i);
    cr_assert_leq(prov_log_size(log), limit);
    prov_log_free(log);

    char p1[160], p2[160], p3[160];
    snprintf(p1, sizeof p1, "%s.1", path);
    snprintf(p2, sizeof p2, "%s.2", path);
    snprintf(p3, sizeof p3, "%s.3", path);
    cr_assert_neq(access(path, F_OK), -1);
    cr_assert_neq(access(p1, F_OK), -1);
    cr_assert_neq(access(p2, F_OK), -1);
    cr_assert_eq(access(p3, F_OK), -1, "only max_files files are kept");
    cr_assert_leq(file_size(path), limit);
    cr_assert_leq(file_size(p1), limit);
    cr_assert_leq(file_size(p2), limit);
    /* Each full file is close to the limit: no line fits after it. */
    cr_assert_gt(file_size(p1), limit / 2);

    /* The files hold the newest events, contiguous, oldest in .2. */
    size_t n0, n1, n2;
    const int s2 = first_seq(p2, &n2);
    const int s1 = first_seq(p1, &n1);
    const int s0 = first_seq(path, &n0);
    cr_assert_eq(s1, s2 + (int)n2);
    cr_assert_eq(s0, s1 + (int)n1);
    cr_assert_eq(s0 + (int)n0, 100);
    cr_assert_gt(s2, 0, "the oldest events were dropped");

    /* Read back as one stream, oldest first; missing files are skipped. */
    static struct seen got;
    struct prov_read_stats st;
    cr_assert_eq(prov_read_rotated(path, 5, NULL, collect, &got, &st), 0);
    cr_assert_eq(got.n, n0 + n1 + n2);
    cr_assert_eq(st.events, got.n);
    for (size_t i = 0; i < got.n; i++)
        cr_assert_eq(atoi(prov_event_context_get(got.ev[i], "seq")),
                     s2 + (int)i);
    seen_free(&got);
}

Test(prov_log, read_rotated_without_files)
{
    cr_assert_eq(prov_read_rotated(path, 3, NULL, NULL, NULL, NULL),
                 ORBIT_ENOENT);
}

Test(prov_log, torn_line_is_ended_on_reopen)
{
    struct prov_log *log = open_log(0, 1);
    write_seq(log, PROV_JOB_CREATED, "job", T0, 0);
    write_seq(log, PROV_JOB_RESUMED, "job", T0, 1);
    prov_log_free(log);
    append_raw("{\"ts\":\"2026-11-25T13:4");
    log = open_log(0, 1);
    write_seq(log, PROV_JOB_COMPLETED, "job", T0, 2);
    prov_log_free(log);

    static struct seen got;
    struct bad_lines bad = {0};
    const struct prov_read_opts o = {.on_malformed = on_bad,
                                     .malformed_arg = &bad};
    struct prov_read_stats st;
    cr_assert_eq(prov_read_file(path, &o, collect, &got, &st), 0);
    cr_assert_eq(got.n, 3, "the event after the torn line survives");
    cr_assert_eq(prov_event_type(got.ev[2]), PROV_JOB_COMPLETED);
    cr_assert_eq(bad.n, 1);
    cr_assert_eq(bad.line[0], 3);
    cr_assert_not(st.torn_tail);
    seen_free(&got);
}

Test(prov_log, rotation_with_one_file_truncates)
{
    struct prov_log *log = open_log(500, 1);
    for (int i = 0; i < 20; i++)
        write_seq(log, PROV_FILE_COMPLETED, "job", T0, i);
    prov_log_free(log);
    char p1[160];
    snprintf(p1, sizeof p1, "%s.1", path);
    cr_assert_eq(access(p1, F_OK), -1);
    size_t n;
    const int s = first_seq(path, &n);
    cr_assert_eq(s + (int)n, 20);
    cr_assert_leq(file_size(path), 500);
}

Test(prov_log, oversized_line_goes_alone_into_a_file)
{
    struct prov_log *log = open_log(100, 2);
    write_seq(log, PROV_JOB_CREATED, "job", T0, 0);
    write_seq(log, PROV_JOB_CREATED, "job", T0, 1);
    prov_log_free(log);
    size_t n;
    cr_assert_eq(first_seq(path, &n), 1);
    cr_assert_eq(n, 1);
}

Test(prov_log, reopen_appends)
{
    struct prov_log *log = open_log(0, 1);
    write_seq(log, PROV_JOB_CREATED, "job", T0, 0);
    write_seq(log, PROV_JOB_RESUMED, "job", T0, 1);
    prov_log_free(log);
    log = open_log(0, 1);
    cr_assert_eq(prov_log_size(log), file_size(path));
    write_seq(log, PROV_JOB_COMPLETED, "job", T0, 2);
    prov_log_free(log);
    size_t n;
    cr_assert_eq(first_seq(path, &n), 0);
    cr_assert_eq(n, 3);
}

Test(prov_log, flush_policies)
{
    const struct prov_log_opts manual = {.path = path,
                                         .flush = PROV_FLUSH_MANUAL};
    struct prov_log *log = NULL;
    cr_assert_eq(prov_log_new(&manual, &log), 0);
    write_seq(log, PROV_JOB_CREATED, "job", T0, 0);
    cr_assert_eq(file_size(path), 0, "manual: nothing before a flush");
    cr_assert_gt(prov_log_size(log), 0);
    cr_assert_eq(prov_log_flush(log), 0);
    cr_assert_eq(file_size(path), prov_log_size(log));
    prov_log_free(log);

    const struct prov_log_opts batch = {.path = path,
                                        .flush = PROV_FLUSH_BATCH,
                                        .flush_every = 3,
                                        .fsync = true};
    cr_assert_eq(prov_log_new(&batch, &log), 0);
    const uint64_t before = file_size(path);
    write_seq(log, PROV_JOB_CREATED, "job", T0, 1);
    write_seq(log, PROV_JOB_CREATED, "job", T0, 2);
    cr_assert_eq(file_size(path), before, "batch: not yet");
    write_seq(log, PROV_JOB_CREATED, "job", T0, 3);
    cr_assert_eq(file_size(path), prov_log_size(log), "batch: third flushes");
    prov_log_free(log);

    struct prov_log *every = open_log(0, 1);
    write_seq(every, PROV_JOB_CREATED, "job", T0, 4);
    cr_assert_eq(file_size(path), prov_log_size(every));
    prov_log_free(every);

    const struct prov_log_opts bad = {.path = path, .flush = PROV_FLUSH_BATCH};
    cr_assert_eq(prov_log_new(&bad, &log), ORBIT_EINVAL);
}

Test(prov_log, torn_last_line_is_skipped)
{
    struct prov_log *log = open_log(0, 1);
    for (int i = 0; i < 3; i++)
        write_seq(log, PROV_CHUNK_PACKED, "job", T0, i);
    prov_log_free(log);
    append_raw("{\"ts\":\"2026-11-25T13:45:01.1234");

    static struct seen got;
    struct bad_lines bad = {0};
    const struct prov_read_opts o = {.on_malformed = on_bad,
                                     .malformed_arg = &bad};
    struct prov_read_stats st;
    cr_assert_eq(prov_read_file(path, &o, collect, &got, &st), 0);
    cr_assert_eq(got.n, 3);
    cr_assert(st.torn_tail);
    cr_assert_eq(st.malformed, 0);
    cr_assert_eq(bad.n, 0);
    cr_assert_eq(st.lines, 4);
    seen_free(&got);
}

Test(prov_log, complete_last_line_without_newline_is_kept)
{
    append_raw("{\"ts\":\"2026-11-25T13:45:01Z\",\"event_type\":\"job_failed\","
               "\"job_id\":\"j\",\"error\":\"ENOSPC\"}");
    static struct seen got;
    struct prov_read_stats st;
    cr_assert_eq(prov_read_file(path, NULL, collect, &got, &st), 0);
    cr_assert_eq(got.n, 1);
    cr_assert_not(st.torn_tail);
    cr_assert_str_eq(prov_event_get(got.ev[0], PROV_F_ERROR), "ENOSPC");
    seen_free(&got);
}

Test(prov_log, malformed_lines_reported_with_numbers)
{
    const char *good = "{\"ts\":\"2026-11-25T13:45:01Z\","
                       "\"event_type\":\"file_skipped\",\"job_id\":\"j\"}\n";
    char longline[300];
    memset(longline, 'x', sizeof longline - 2);
    longline[sizeof longline - 2] = '\n';
    longline[sizeof longline - 1] = '\0';

    append_raw(good);                            /* 1 */
    append_raw("not json at all\n");             /* 2 */
    append_raw(good);                            /* 3 */
    append_raw("{\"ts\":1,\"event_type\":2}\n"); /* 4 */
    append_raw("\n");                            /* 5: blank, skipped */
    append_raw(longline);                        /* 6: too long */
    append_raw(good);                            /* 7 */
    append_raw("[\"an\",\"array\"]\n");          /* 8 */
    append_raw(good);                            /* 9 */
    FILE *fp = fopen(path, "a");                 /* 10: NUL byte */
    fwrite("{\"a\0\"}\n", 1, 7, fp);
    fclose(fp);
    append_raw(good); /* 11 */

    static struct seen got;
    struct bad_lines bad = {0};
    const struct prov_read_opts o = {
        .max_line = 200, .on_malformed = on_bad, .malformed_arg = &bad};
    struct prov_read_stats st;
    cr_assert_eq(prov_read_file(path, &o, collect, &got, &st), 0);
    cr_assert_eq(got.n, 5);
    cr_assert_eq(st.events, 5);
    cr_assert_eq(st.lines, 11);
    cr_assert_eq(st.malformed, 5);
    cr_assert_not(st.torn_tail);
    const uint64_t want[] = {2, 4, 6, 8, 10};
    cr_assert_eq(bad.n, 5);
    for (size_t i = 0; i < 5; i++)
        cr_assert_eq(bad.line[i], want[i], "report %zu", i);
    seen_free(&got);
}

static void
write_mixed(void)
{
    struct prov_log *log = open_log(0, 1);
    for (int i = 0; i < 40; i++) {
        const enum prov_event_type t =
            (enum prov_event_type)(i % PROV_EVENT_TYPE_COUNT);
        write_seq(log, t, i % 2 ? "odd" : "even", T0 + i * 1000000LL, i);
    }
    prov_log_free(log);
}

static size_t
count_matching(const struct prov_filter *f)
{
    static struct seen got;
    const struct prov_read_opts o = {.filter = f};
    struct prov_read_stats st;
    cr_assert_eq(prov_read_file(path, &o, collect, &got, &st), 0);
    cr_assert_eq(st.events, 40);
    cr_assert_eq(st.matched, got.n);
    for (size_t i = 0; i < got.n; i++)
        cr_assert(prov_filter_match(f, got.ev[i]));
    const size_t n = got.n;
    seen_free(&got);
    return n;
}

Test(prov_log, filters)
{
    write_mixed();
    const struct prov_filter all = {0};
    cr_assert_eq(count_matching(&all), 40);

    const struct prov_filter job = {.job_id = "odd"};
    cr_assert_eq(count_matching(&job), 20);

    const struct prov_filter types = {.types = 1u << PROV_JOB_FAILED |
                                               1u << PROV_CHUNK_CREATED};
    cr_assert_eq(count_matching(&types), 4); /* seq 0, 15, 20, 35 */

    const struct prov_filter range = {.since_us = T0 + 10 * 1000000LL,
                                      .until_us = T0 + 20 * 1000000LL,
                                      .has_since = true,
                                      .has_until = true};
    cr_assert_eq(count_matching(&range), 10);

    const struct prov_filter combo = {.job_id = "even",
                                      .types = 1u << PROV_CHUNK_CREATED,
                                      .since_us = T0 + 1,
                                      .has_since = true};
    cr_assert_eq(count_matching(&combo), 1); /* seq 20 only */

    const struct prov_filter none = {.job_id = "nobody"};
    cr_assert_eq(count_matching(&none), 0);
}

static int
stop_at_third(const struct prov_event *ev, void *arg)
{
    (void)ev;
    int *n = arg;
    return ++*n == 3 ? 77 : 0;
}

Test(prov_log, callback_stops_the_read)
{
    write_mixed();
    int n = 0;
    cr_assert_eq(prov_read_file(path, NULL, stop_at_third, &n, NULL), 77);
    cr_assert_eq(n, 3);
}

Test(prov_log, missing_file)
{
    cr_assert_eq(prov_read_file(path, NULL, NULL, NULL, NULL), ORBIT_ENOENT);
    const struct prov_log_opts o = {.path = "/nonexistent-dir/x/events.jsonl"};
    struct prov_log *log = NULL;
    cr_assert_eq(prov_log_new(&o, &log), ORBIT_ENOENT);
    cr_assert_null(log);
}

#define WRITERS    4
#define PER_WRITER 500

struct writer_arg {
    struct prov_log *log;
    int id;
};

static void *
writer(void *p)
{
    struct writer_arg *a = p;
    for (int i = 0; i < PER_WRITER; i++)
        write_seq(a->log, PROV_CHUNK_VERIFIED, "job", T0,
                  a->id * PER_WRITER + i);
    return NULL;
}

Test(prov_log, concurrent_writers_never_interleave)
{
    const struct prov_log_opts o = {.path = path,
                                    .flush = PROV_FLUSH_BATCH,
                                    .flush_every = 16,
                                    .rotate_bytes = 64 * 1024,
                                    .max_files = 100};
    struct prov_log *log = NULL;
    cr_assert_eq(prov_log_new(&o, &log), 0);
    pthread_t th[WRITERS];
    struct writer_arg args[WRITERS];
    for (int i = 0; i < WRITERS; i++) {
        args[i] = (struct writer_arg){log, i};
        pthread_create(&th[i], NULL, writer, &args[i]);
    }
    for (int i = 0; i < WRITERS; i++)
        pthread_join(th[i], NULL);
    prov_log_free(log);

    static bool hit[WRITERS * PER_WRITER];
    memset(hit, 0, sizeof hit);
    size_t total = 0;
    for (int f = 0; f < 100; f++) {
        char p[160];
        if (f == 0)
            snprintf(p, sizeof p, "%s", path);
        else
            snprintf(p, sizeof p, "%s.%d", path, f);
        if (access(p, F_OK) != 0)
            break;
        static struct seen got;
        struct prov_read_stats st;
        cr_assert_eq(prov_read_file(p, NULL, collect, &got, &st), 0);
        cr_assert_eq(st.malformed, 0);
        cr_assert_not(st.torn_tail);
        for (size_t i = 0; i < got.n; i++) {
            const int seq = atoi(prov_event_context_get(got.ev[i], "seq"));
            cr_assert_not(hit[seq], "seq %d twice", seq);
            hit[seq] = true;
        }
        total += got.n;
        seen_free(&got);
    }
    cr_assert_eq(total, WRITERS * PER_WRITER);
}
