#include <criterion/criterion.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "connect_test.h"
#include "orbit/error.h"
#include "orbit/journal.h"

static char *dir;
static struct journal *jr;

static void
setup(void)
{
    dir = connect_test_tmpdir("journal");
    cr_assert_eq(journal_open(dir, &jr), 0);
}

static void
teardown(void)
{
    journal_close(jr);
    connect_test_rmtree(dir);
    free(dir);
}

static void
reopen(void)
{
    journal_close(jr);
    jr = NULL;
    cr_assert_eq(journal_open(dir, &jr), 0);
}

static const char *const srcs[] = {"/data/a", "/data/b"};

static struct journal_spec
spec_of(const char *dst)
{
    struct journal_spec s = {JOURNAL_KIND_COPY, srcs, 2, dst,
                             "{\"delete\":false}"};
    return s;
}

static void
check(void)
{
    cr_assert_eq(journal_check(jr), 0);
}

TestSuite(journal, .init = setup, .fini = teardown);

Test(journal, create_get_and_persist)
{
    struct journal_spec s = spec_of("star://h/x");
    char id[JOURNAL_ID_LEN + 1];
    cr_assert_eq(journal_job_create(jr, &s, id), 0);
    cr_assert(journal_id_valid(id));
    check();
    reopen();
    struct journal_job job;
    cr_assert_eq(journal_job_get(jr, id, &job), 0);
    cr_assert_str_eq(job.id, id);
    cr_assert_eq(job.kind, JOURNAL_KIND_COPY);
    cr_assert_eq(job.state, JOURNAL_JOB_CREATED);
    cr_assert_eq(job.nsources, 2);
    cr_assert_str_eq(job.sources[1], "/data/b");
    cr_assert_str_eq(job.destination, "star://h/x");
    cr_assert_str_eq(job.options, "{\"delete\":false}");
    cr_assert_gt(job.created_ms, 0);
    cr_assert_eq(job.dead_letters, 0);
    journal_job_release(&job);
    journal_job_release(&job); /* idempotent */
}

Test(journal, state_and_counters)
{
    struct journal_spec s = spec_of("/dst");
    char id[JOURNAL_ID_LEN + 1];
    cr_assert_eq(journal_job_create(jr, &s, id), 0);
    cr_assert_eq(journal_job_set_state(jr, id, JOURNAL_JOB_RUNNING), 0);
    struct journal_counters c = {10, 4, 1000, 400, 300, 100};
    cr_assert_eq(journal_job_set_counters(jr, id, &c), 0);
    check();
    struct journal_job job;
    cr_assert_eq(journal_job_get(jr, id, &job), 0);
    cr_assert_eq(job.state, JOURNAL_JOB_RUNNING);
    cr_assert_eq(job.counters.files_done, 4);
    cr_assert_eq(job.counters.bytes_dedup, 100);
    cr_assert_geq(job.updated_ms, job.created_ms);
    journal_job_release(&job);
    cr_assert_eq(journal_job_set_state(jr, id, JOURNAL_JOB_STATE_COUNT),
                 ORBIT_EINVAL);
    cr_assert_eq(
        journal_job_set_state(jr, "0123456789abcdef", JOURNAL_JOB_FAILED),
        ORBIT_ENOENT);
    cr_assert_eq(journal_job_get(jr, "xyz", &job), ORBIT_EINVAL);
}

Test(journal, find_by_spec_until_completed)
{
    struct journal_spec s = spec_of("/dst");
    struct journal_spec other = spec_of("/elsewhere");
    char id[JOURNAL_ID_LEN + 1], found[JOURNAL_ID_LEN + 1];
    cr_assert_eq(journal_job_find_by_spec(jr, &s, found), ORBIT_ENOENT);
    cr_assert_eq(journal_job_create(jr, &s, id), 0);
    cr_assert_eq(journal_job_find_by_spec(jr, &s, found), 0);
    cr_assert_str_eq(found, id);
    cr_assert_eq(journal_job_find_by_spec(jr, &other, found), ORBIT_ENOENT);
    /* Options are not part of the key; the kind is. */
    s.options = "{\"x\":1}";
    cr_assert_eq(journal_job_find_by_spec(jr, &s, found), 0);
    s.kind = JOURNAL_KIND_SYNC;
    cr_assert_eq(journal_job_find_by_spec(jr, &s, found), ORBIT_ENOENT);
    s.kind = JOURNAL_KIND_COPY;
    /* The order of sources matters: a different command. */
    const char *const rev[] = {"/data/b", "/data/a"};
    struct journal_spec r = {JOURNAL_KIND_COPY, rev, 2, "/dst", NULL};
    cr_assert_eq(journal_job_find_by_spec(jr, &r, found), ORBIT_ENOENT);
    cr_assert_eq(journal_job_set_state(jr, id, JOURNAL_JOB_PARTIAL), 0);
    cr_assert_eq(journal_job_find_by_spec(jr, &s, found), 0);
    cr_assert_eq(journal_job_set_state(jr, id, JOURNAL_JOB_COMPLETED), 0);
    cr_assert_eq(journal_job_find_by_spec(jr, &s, found), ORBIT_ENOENT);
    /* A new run of the same command gets a new job, found from now on. */
    char id2[JOURNAL_ID_LEN + 1];
    cr_assert_eq(journal_job_create(jr, &s, id2), 0);
    cr_assert_str_neq(id, id2);
    cr_assert_eq(journal_job_find_by_spec(jr, &s, found), 0);
    cr_assert_str_eq(found, id2);
    check();
}

Test(journal, list_oldest_first_and_delete)
{
    char ids[3][JOURNAL_ID_LEN + 1];
    const char *dsts[] = {"/d0", "/d1", "/d2"};
    for (int i = 0; i < 3; i++) {
        struct journal_spec s = spec_of(dsts[i]);
        cr_assert_eq(journal_job_create(jr, &s, ids[i]), 0);
    }
    struct journal_job *jobs;
    size_t n;
    cr_assert_eq(journal_job_list(jr, &jobs, &n), 0);
    cr_assert_eq(n, 3);
    for (size_t i = 1; i < n; i++)
        cr_assert_leq(jobs[i - 1].created_ms, jobs[i].created_ms);
    journal_jobs_free(jobs, n);

    struct journal_file f = {.size = 5, .state = JOURNAL_FILE_DONE};
    cr_assert_eq(journal_file_put(jr, ids[1], "a/b", &f), 0);
    cr_assert_eq(journal_file_put(jr, ids[2], "a/b", &f), 0);
    struct dlq_failure d = {.key = "x", .job_id = ids[1]};
    cr_assert_eq(journal_dead_add(jr, &d), 0);
    cr_assert_eq(journal_job_delete(jr, ids[1]), 0);
    check();
    struct journal_file g;
    cr_assert_eq(journal_file_get(jr, ids[1], "a/b", &g), ORBIT_ENOENT);
    cr_assert_eq(journal_file_get(jr, ids[2], "a/b", &g), 0);
    struct journal_spec s1 = spec_of("/d1");
    char found[JOURNAL_ID_LEN + 1];
    cr_assert_eq(journal_job_find_by_spec(jr, &s1, found), ORBIT_ENOENT);
    cr_assert_eq(journal_job_list(jr, &jobs, &n), 0);
    cr_assert_eq(n, 2);
    journal_jobs_free(jobs, n);
    cr_assert_eq(journal_job_delete(jr, ids[1]), ORBIT_ENOENT);
}

Test(journal, empty_list)
{
    struct journal_job *jobs = (void *)1;
    size_t n = 9;
    cr_assert_eq(journal_job_list(jr, &jobs, &n), 0);
    cr_assert_eq(n, 0);
    cr_assert_null(jobs);
}

Test(journal, files_put_get_is_done)
{
    struct journal_spec s = spec_of("/dst");
    char id[JOURNAL_ID_LEN + 1];
    cr_assert_eq(journal_job_create(jr, &s, id), 0);
    struct journal_file f = {.size = 123,
                             .mtime_ns = 1700000000123456789LL,
                             .state = JOURNAL_FILE_DONE,
                             .has_digest = true,
                             .bytes_sent = 99};
    memset(f.digest, 0xab, sizeof f.digest);
    cr_assert_eq(journal_file_put(jr, id, "dir/file.txt", &f), 0);
    check();
    struct journal_file g;
    cr_assert_eq(journal_file_get(jr, id, "dir/file.txt", &g), 0);
    cr_assert_eq(g.size, 123);
    cr_assert_eq(g.mtime_ns, f.mtime_ns);
    cr_assert_eq(g.state, JOURNAL_FILE_DONE);
    cr_assert(g.has_digest);
    cr_assert_eq(memcmp(g.digest, f.digest, sizeof f.digest), 0);
    cr_assert_eq(g.bytes_sent, 99);
    cr_assert(journal_file_is_done(jr, id, "dir/file.txt", 123, f.mtime_ns));
    cr_assert_not(
        journal_file_is_done(jr, id, "dir/file.txt", 124, f.mtime_ns));
    cr_assert_not(journal_file_is_done(jr, id, "dir/file.txt", 123, 1));
    cr_assert_not(journal_file_is_done(jr, id, "dir/other", 123, 1));
    f.state = JOURNAL_FILE_PENDING;
    f.has_digest = false;
    cr_assert_eq(journal_file_put(jr, id, "dir/p", &f), 0);
    cr_assert_not(journal_file_is_done(jr, id, "dir/p", 123, f.mtime_ns));
    cr_assert_eq(journal_file_get(jr, id, "dir/p", &g), 0);
    cr_assert_not(g.has_digest);
    uint64_t counts[3];
    cr_assert_eq(journal_file_count(jr, id, counts), 0);
    cr_assert_eq(counts[JOURNAL_FILE_DONE], 1);
    cr_assert_eq(counts[JOURNAL_FILE_PENDING], 1);
    cr_assert_eq(counts[JOURNAL_FILE_DEAD], 0);
    cr_assert_eq(journal_file_get(jr, id, "", &g), ORBIT_EINVAL);
    f.state = (enum journal_file_state)7;
    cr_assert_eq(journal_file_put(jr, id, "x", &f), ORBIT_EINVAL);
}

Test(journal, long_paths_are_hashed_and_checked)
{
    struct journal_spec s = spec_of("/dst");
    char id[JOURNAL_ID_LEN + 1];
    cr_assert_eq(journal_job_create(jr, &s, id), 0);
    char *a = malloc(JOURNAL_PATH_MAX + 2);
    memset(a, 'q', JOURNAL_PATH_MAX);
    a[JOURNAL_PATH_MAX] = '\0';
    struct journal_file f = {.size = 7, .state = JOURNAL_FILE_DONE};
    cr_assert_eq(journal_file_put(jr, id, a, &f), 0);
    cr_assert(journal_file_is_done(jr, id, a, 7, 0));
    a[100] = 'r';
    cr_assert_not(journal_file_is_done(jr, id, a, 7, 0));
    a[JOURNAL_PATH_MAX] = 'q';
    a[JOURNAL_PATH_MAX + 1] = '\0';
    cr_assert_eq(journal_file_put(jr, id, a, &f), ORBIT_ETOOBIG);
    check();
    free(a);
}

Test(journal, batch_commit_abort_and_crash)
{
    struct journal_spec s = spec_of("/dst");
    char id[JOURNAL_ID_LEN + 1];
    cr_assert_eq(journal_job_create(jr, &s, id), 0);
    struct journal_file f = {.size = 1, .state = JOURNAL_FILE_DONE};
    char p[32];
    cr_assert_eq(journal_batch_begin(jr), 0);
    cr_assert(journal_batch_active(jr));
    cr_assert_eq(journal_batch_begin(jr), ORBIT_ESTATE);
    for (int i = 0; i < 100; i++) {
        snprintf(p, sizeof p, "f%03d", i);
        cr_assert_eq(journal_file_put(jr, id, p, &f), 0);
    }
    /* Reads inside the batch see its writes. */
    cr_assert(journal_file_is_done(jr, id, "f050", 1, 0));
    cr_assert_eq(journal_job_set_state(jr, id, JOURNAL_JOB_RUNNING), 0);
    cr_assert_eq(journal_batch_commit(jr), 0);
    cr_assert_not(journal_batch_active(jr));
    cr_assert_eq(journal_batch_commit(jr), ORBIT_ESTATE);

    cr_assert_eq(journal_batch_begin(jr), 0);
    cr_assert_eq(journal_file_put(jr, id, "aborted", &f), 0);
    journal_batch_abort(jr);
    cr_assert_not(journal_file_is_done(jr, id, "aborted", 1, 0));

    /* A crash (close without commit) loses only the open batch. */
    cr_assert_eq(journal_batch_begin(jr), 0);
    cr_assert_eq(journal_file_put(jr, id, "lost", &f), 0);
    reopen();
    cr_assert_not(journal_file_is_done(jr, id, "lost", 1, 0));
    cr_assert(journal_file_is_done(jr, id, "f099", 1, 0));
    uint64_t counts[3];
    cr_assert_eq(journal_file_count(jr, id, counts), 0);
    cr_assert_eq(counts[JOURNAL_FILE_DONE], 100);
    struct journal_job job;
    cr_assert_eq(journal_job_get(jr, id, &job), 0);
    cr_assert_eq(job.state, JOURNAL_JOB_RUNNING);
    journal_job_release(&job);
    check();
}

Test(journal, map_grows_inside_a_batch)
{
    struct journal_spec s = spec_of("/dst");
    char id[JOURNAL_ID_LEN + 1];
    cr_assert_eq(journal_job_create(jr, &s, id), 0);
    size_t before = journal_map_size(jr);
    struct journal_file f = {.size = 3, .state = JOURNAL_FILE_DONE};
    char p[512];
    memset(p, 'x', sizeof p);
    cr_assert_eq(journal_batch_begin(jr), 0);
    for (int i = 0; i < 30000; i++) {
        snprintf(p + 400, sizeof p - 400, "%06d", i);
        cr_assert_eq(journal_file_put(jr, id, p, &f), 0);
    }
    cr_assert_eq(journal_batch_commit(jr), 0);
    cr_assert_gt(journal_map_size(jr), before);
    reopen();
    for (int i = 0; i < 30000; i += 997) {
        snprintf(p + 400, sizeof p - 400, "%06d", i);
        cr_assert(journal_file_is_done(jr, id, p, 3, 0), "%d", i);
    }
    /* Outside a batch too: each write its own transaction. */
    uint64_t counts[3];
    cr_assert_eq(journal_file_count(jr, id, counts), 0);
    cr_assert_eq(counts[JOURNAL_FILE_DONE], 30000);
    cr_assert_eq(journal_job_delete(jr, id), 0);
    check();
}

Test(journal, dead_letters)
{
    struct journal_spec s = spec_of("/dst");
    char id[JOURNAL_ID_LEN + 1];
    cr_assert_eq(journal_job_create(jr, &s, id), 0);
    char longerr[3000];
    memset(longerr, 'e', sizeof longerr - 1);
    longerr[sizeof longerr - 1] = '\0';
    struct dlq_failure d = {.key = "b/file",
                            .job_id = id,
                            .reason = DLQ_SOURCE_MISSING,
                            .last_error = longerr,
                            .error_code = ORBIT_ENOENT,
                            .attempts = 3,
                            .first_failure_ms = 1000,
                            .last_failure_ms = 2000,
                            .source_path = "/data/a/b/file",
                            .dest_path = "b/file"};
    cr_assert_eq(journal_dead_add(jr, &d), 0);
    d.key = "a/file";
    d.reason = DLQ_DESTINATION_FULL;
    d.last_error = "disk full";
    d.last_failure_ms = 0;
    d.first_failure_ms = 0;
    cr_assert_eq(journal_dead_add(jr, &d), 0);
    cr_assert_eq(journal_dead_add(jr, &d), 0); /* replaces */
    check();
    struct dlq_entry *e;
    size_t n;
    cr_assert_eq(journal_dead_list(jr, id, &e, &n), 0);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(e[0].key, "a/file");
    cr_assert_eq(e[0].reason, DLQ_DESTINATION_FULL);
    cr_assert_gt(e[0].last_failure_ms, 0);
    cr_assert_eq(e[0].first_failure_ms, e[0].last_failure_ms);
    cr_assert_str_eq(e[1].key, "b/file");
    cr_assert_str_eq(e[1].job_id, id);
    cr_assert_eq(e[1].error_code, ORBIT_ENOENT);
    cr_assert_eq(e[1].attempts, 3);
    cr_assert_eq(e[1].first_failure_ms, 1000);
    cr_assert_eq(e[1].last_failure_ms, 2000);
    cr_assert_eq(strlen(e[1].last_error), DLQ_ERROR_TEXT_MAX);
    cr_assert_str_eq(e[1].source_path, "/data/a/b/file");
    cr_assert_str_eq(e[1].dest_path, "b/file");
    dlq_entries_free(e, n);

    struct journal_job job;
    cr_assert_eq(journal_job_get(jr, id, &job), 0);
    cr_assert_eq(job.dead_letters, 2);
    journal_job_release(&job);

    cr_assert_eq(journal_dead_remove(jr, id, "a/file"), 0);
    cr_assert_eq(journal_dead_remove(jr, id, "a/file"), ORBIT_ENOENT);
    d.key = "c";
    cr_assert_eq(journal_dead_add(jr, &d), 0);
    size_t removed = 0;
    cr_assert_eq(journal_dead_purge(jr, id, &removed), 0);
    cr_assert_eq(removed, 2);
    cr_assert_eq(journal_dead_list(jr, id, &e, &n), 0);
    cr_assert_eq(n, 0);
    cr_assert_null(e);

    d.error_code = 5;
    cr_assert_eq(journal_dead_add(jr, &d), ORBIT_EINVAL);
    d.error_code = 0;
    d.reason = DLQ_REASON_COUNT;
    cr_assert_eq(journal_dead_add(jr, &d), ORBIT_EINVAL);
    d.reason = DLQ_PERMANENT_ERROR;
    d.job_id = "nope";
    cr_assert_eq(journal_dead_add(jr, &d), ORBIT_EINVAL);
    check();
}

Test(journal, names_round_trip)
{
    for (int i = 0; i < JOURNAL_JOB_STATE_COUNT; i++) {
        enum journal_job_state st;
        cr_assert_eq(journal_state_parse(
                         journal_state_str((enum journal_job_state)i), &st),
                     0);
        cr_assert_eq((int)st, i);
    }
    enum journal_job_kind k;
    cr_assert_eq(journal_kind_parse("sync", &k), 0);
    cr_assert_eq(k, JOURNAL_KIND_SYNC);
    cr_assert_eq(journal_kind_parse("move", &k), ORBIT_EINVAL);
    cr_assert_str_eq(journal_state_str((enum journal_job_state)99), "unknown");
    cr_assert_str_eq(journal_file_state_str(JOURNAL_FILE_DEAD), "dead");
}

Test(journal_open, default_dir_from_env)
{
    char *base = connect_test_tmpdir("state");
    setenv("ORBIT_STATE_DIR", base, 1);
    struct journal *j = NULL;
    cr_assert_eq(journal_open(NULL, &j), 0);
    journal_close(j);
    char path[600];
    snprintf(path, sizeof path, "%s/journal/data.mdb", base);
    cr_assert_eq(access(path, F_OK), 0);
    unsetenv("ORBIT_STATE_DIR");
    connect_test_rmtree(base);
    free(base);
    journal_close(NULL);
    cr_assert_neq(journal_open("/proc/nope/journal", &j), 0);
    cr_assert_eq(journal_open(NULL, NULL), ORBIT_EINVAL);
}

/* A writer killed at a random point loses at most its open batch: every
 * batch it reported committed is there, and the journal checks clean. */
Test(journal_crash, sigkill_loses_only_the_open_batch)
{
    char *d = connect_test_tmpdir("jcrash");
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        struct journal *j;
        const char *srcs[] = {"/s"};
        struct journal_spec s = {JOURNAL_KIND_COPY, srcs, 1, "/d", NULL};
        char id[JOURNAL_ID_LEN + 1], p[32];
        struct journal_file f = {.size = 9, .state = JOURNAL_FILE_DONE};
        if (journal_open(d, &j) != 0 || journal_job_create(j, &s, id) != 0)
            _exit(1);
        if (write(fds[1], id, JOURNAL_ID_LEN) != JOURNAL_ID_LEN)
            _exit(1);
        for (uint32_t b = 0;; b++) {
            if (journal_batch_begin(j) != 0)
                _exit(1);
            for (int i = 0; i < 100; i++) {
                snprintf(p, sizeof p, "b%05u/f%03d", b, i);
                if (journal_file_put(j, id, p, &f) != 0)
                    _exit(1);
            }
            if (journal_batch_commit(j) != 0 ||
                write(fds[1], &b, sizeof b) != sizeof b)
                _exit(1);
        }
    }
    close(fds[1]);
    char id[JOURNAL_ID_LEN + 1] = {0};
    cr_assert_eq(read(fds[0], id, JOURNAL_ID_LEN), JOURNAL_ID_LEN);
    uint32_t b = 0, last = 0;
    while (last < 30 && read(fds[0], &b, sizeof b) == sizeof b)
        last = b;
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    while (read(fds[0], &b, sizeof b) == sizeof b)
        last = b; /* reports written before the kill */
    close(fds[0]);

    struct journal *j;
    cr_assert_eq(journal_open(d, &j), 0);
    cr_assert_eq(journal_check(j), 0);
    char p[32];
    for (uint32_t k = 0; k <= last; k++)
        for (int i = 0; i < 100; i += 33) {
            snprintf(p, sizeof p, "b%05u/f%03d", k, i);
            cr_assert(journal_file_is_done(j, id, p, 9, 0), "%s", p);
        }
    uint64_t counts[3];
    cr_assert_eq(journal_file_count(j, id, counts), 0);
    cr_assert_geq(counts[JOURNAL_FILE_DONE], (uint64_t)(last + 1) * 100);
    cr_assert_eq(counts[JOURNAL_FILE_DONE] % 100, 0, "batches are whole");
    journal_close(j);
    connect_test_rmtree(d);
    free(d);
}
