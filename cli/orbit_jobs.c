/*
 * orbit_jobs.c - `orbit dlq list|retry|purge` and `orbit status`: what the
 * job journal remembers.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "orbit/error.h"
#include "orbit/journal.h"
#include "orbit_cli.h"

static void
fmt_time(uint64_t ms, char *buf, size_t cap)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (!gmtime_r(&t, &tm) ||
        strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(buf, cap, "-");
}

static void
print_job(const struct journal_job *jb)
{
    char created[32], updated[32];
    fmt_time(jb->created_ms, created, sizeof created);
    fmt_time(jb->updated_ms, updated, sizeof updated);
    printf("%s  %-4s  %-9s  files %" PRIu64 "/%" PRIu64 "  bytes %" PRIu64
           "/%" PRIu64 "  sent %" PRIu64 "  dead letters %" PRIu64 "\n",
           jb->id, journal_kind_str(jb->kind), journal_state_str(jb->state),
           jb->counters.files_done, jb->counters.files_total,
           jb->counters.bytes_done, jb->counters.bytes_total,
           jb->counters.bytes_sent, jb->dead_letters);
    printf("    ");
    for (size_t i = 0; i < jb->nsources; i++)
        printf("%s ", jb->sources[i]);
    printf("-> %s  (created %s, updated %s)\n", jb->destination, created,
           updated);
}

int
cli_cmd_status(const struct cli_opts *o)
{
    struct journal *j = NULL;
    if (cli_journal_open(o, &j) != 0)
        return ORBIT_EXIT_FATAL;
    int code = ORBIT_EXIT_OK;
    const char *want = o->nsources > 0 ? o->sources[0] : o->job_id;
    struct journal_job *jobs = NULL;
    size_t n = 0;
    if (journal_job_list(j, &jobs, &n) != 0) {
        fprintf(stderr, "orbit: cannot read the journal\n");
        code = ORBIT_EXIT_FATAL;
        goto out;
    }
    size_t shown = 0;
    for (size_t i = 0; i < n; i++) {
        if (want && strcmp(jobs[i].id, want) != 0)
            continue;
        print_job(&jobs[i]);
        shown++;
    }
    if (want && shown == 0) {
        fprintf(stderr, "orbit: no job %s in the journal\n", want);
        code = ORBIT_EXIT_USAGE;
    } else if (shown == 0) {
        printf("no jobs in the journal\n");
    }
out:
    journal_jobs_free(jobs, n);
    journal_close(j);
    return code;
}

static int
dlq_list(struct journal *j, const char *job_id, size_t *total)
{
    struct dlq_entry *e = NULL;
    size_t n = 0;
    if (journal_dead_list(j, job_id, &e, &n) != 0) {
        fprintf(stderr, "orbit: cannot read dead letters\n");
        return ORBIT_EXIT_FATAL;
    }
    *total += n;
    for (size_t i = 0; i < n; i++) {
        char when[32];
        fmt_time(e[i].last_failure_ms, when, sizeof when);
        printf("%s  %-20s %s  attempts %u  last %s\n    %s\n", e[i].job_id,
               dlq_reason_str(e[i].reason), e[i].key, e[i].attempts, when,
               e[i].last_error ? e[i].last_error : "");
    }
    dlq_entries_free(e, n);
    return ORBIT_EXIT_OK;
}

/* list or purge, for one job or every job in the journal */
static int
dlq_each(struct journal *j, const char *job_id, bool purge)
{
    struct journal_job *jobs = NULL;
    size_t n = 0, total = 0;
    int code = ORBIT_EXIT_OK;
    if (!job_id && journal_job_list(j, &jobs, &n) != 0)
        return ORBIT_EXIT_FATAL;
    for (size_t i = 0; i < (job_id ? 1 : n) && code == 0; i++) {
        const char *id = job_id ? job_id : jobs[i].id;
        size_t removed = 0;
        if (!purge) {
            code = dlq_list(j, id, &total);
        } else if (journal_dead_purge(j, id, &removed) != 0) {
            fprintf(stderr, "orbit: cannot purge job %s\n", id);
            code = ORBIT_EXIT_FATAL;
        }
        total += removed;
    }
    journal_jobs_free(jobs, n);
    if (purge)
        printf("purged %zu dead letters\n", total);
    else if (total == 0)
        printf("no dead letters\n");
    return code;
}

/* Run the job again for its dead letters only. */
static int
dlq_retry(struct journal *j, const struct cli_opts *o, const char *job_id)
{
    struct journal_job jb;
    struct dlq_entry *e = NULL;
    size_t n = 0;
    if (journal_job_get(j, job_id, &jb) != 0) {
        fprintf(stderr, "orbit: no job %s in the journal\n", job_id);
        return ORBIT_EXIT_USAGE;
    }
    int code = ORBIT_EXIT_FATAL;
    const char **keys = NULL;
    if (journal_dead_list(j, job_id, &e, &n) != 0)
        goto out;
    if (n == 0) {
        printf("job %s has no dead letters\n", job_id);
        code = ORBIT_EXIT_OK;
        goto out;
    }
    keys = calloc(n, sizeof *keys);
    if (!keys || jb.nsources + 1 > CLI_MAX_SOURCES)
        goto out;
    struct cli_opts r = *o;
    r.command = jb.kind == JOURNAL_KIND_SYNC ? "sync" : "copy";
    r.job_id = job_id;
    r.nsources = 0;
    for (size_t i = 0; i < jb.nsources; i++)
        r.sources[r.nsources++] = jb.sources[i];
    r.sources[r.nsources++] = jb.destination;
    for (size_t i = 0; i < n; i++)
        keys[i] = e[i].key;
    r.only_paths = keys;
    r.nonly_paths = n;
    /* The journal is opened again by the run itself. */
    journal_close(j);
    j = NULL;
    printf("orbit: retrying %zu dead letters of job %s\n", n, job_id);
    code = cli_cmd_transfer(&r);
    if (cli_journal_open(o, &j) == 0) {
        for (size_t i = 0; i < n; i++) {
            struct journal_file f;
            if (journal_file_get(j, job_id, keys[i], &f) == 0 &&
                f.state == JOURNAL_FILE_DONE)
                journal_dead_remove(j, job_id, keys[i]);
        }
        journal_close(j);
        j = NULL;
    }
out:
    free(keys);
    dlq_entries_free(e, n);
    journal_job_release(&jb);
    if (j)
        journal_close(j);
    return code;
}

int
cli_cmd_dlq(const struct cli_opts *o, const char *action)
{
    struct journal *j = NULL;
    if (strcmp(action, "list") != 0 && strcmp(action, "retry") != 0 &&
        strcmp(action, "purge") != 0) {
        fprintf(stderr, "orbit: dlq takes list, retry or purge\n");
        return ORBIT_EXIT_USAGE;
    }
    if (o->job_id && !journal_id_valid(o->job_id)) {
        fprintf(stderr, "orbit: '%s' is not a job id\n", o->job_id);
        return ORBIT_EXIT_USAGE;
    }
    if (strcmp(action, "retry") == 0 && !o->job_id) {
        fprintf(stderr, "orbit: dlq retry needs --job ID (see orbit status)\n");
        return ORBIT_EXIT_USAGE;
    }
    if (cli_journal_open(o, &j) != 0)
        return ORBIT_EXIT_FATAL;
    if (strcmp(action, "retry") == 0)
        return dlq_retry(j, o, o->job_id); /* closes j */
    int code = dlq_each(j, o->job_id, strcmp(action, "purge") == 0);
    journal_close(j);
    return code;
}
