/*
 * orbit_serve.c - `orbit serve --api ADDR:PORT`: the long-running control
 * plane. It serves the HTTP API over the journal, runs the copy and sync
 * jobs submitted with POST /api/jobs (each in a child `orbit` process, so a
 * job that fails cannot take the control plane down), takes bulletins that
 * stars post, and picks unfinished jobs up again when it restarts.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "orbit/api.h"
#include "orbit/bulletin.h"
#include "orbit/error.h"
#include "orbit/journal.h"
#include "orbit/metrics.h"
#include "orbit/orbit_clock.h"
#include "orbit/prio.h"
#include "orbit_cli.h"

extern char **environ;

#define SERVE_MAX_RUNNING 4
#define SERVE_MAX_ARGS    (CLI_MAX_SOURCES + 2 * CLI_MAX_PATTERNS + 32)

#define SERVE_SWEEP_MS 500 /* how often lost stars are looked for */

struct serve_child {
    pid_t pid;
    bool canceling; /* DELETE /api/jobs/{id}: SIGTERM sent */
    char id[JOURNAL_ID_LEN + 1];
};

struct serve {
    const struct cli_opts *o;
    struct event_base *base;
    struct journal *journal;
    struct bulletin_board *bulletins;
    struct metrics_registry *metrics;
    struct api_server *api;
    struct api_star_registry *stars;
    struct event *sweep;
    struct serve_child running[SERVE_MAX_RUNNING];
    size_t nrunning;
    char self[PATH_MAX];
    char logdir[PATH_MAX];
};

static void
post(struct serve *sv, int sev, const char *id, const char *category,
     const char *msg)
{
    struct bulletin_post p = {
        .severity = sev,
        .source = BULLETIN_SOURCE_JOB,
        .source_name = id,
        .category = category,
        .job_id = id,
        .message = msg,
    };
    bulletin_post(sv->bulletins, &p, NULL);
}

/* ---- a job's command line from its journal record
 * ---------------------------- */

struct argv_buf {
    const char *v[SERVE_MAX_ARGS];
    size_t n;
};

static int
push(struct argv_buf *a, const char *s)
{
    if (!s || a->n + 1 >= SERVE_MAX_ARGS)
        return ORBIT_EINVAL;
    a->v[a->n++] = s;
    a->v[a->n] = NULL;
    return 0;
}

static int
push_list(struct argv_buf *a, const char *flag, json_t *list)
{
    size_t i;
    json_t *v;
    if (!list)
        return 0;
    if (!json_is_array(list))
        return ORBIT_EINVAL;
    json_array_foreach(list, i, v)
    {
        if (!json_is_string(v) || push(a, flag) != 0 ||
            push(a, json_string_value(v)) != 0)
            return ORBIT_EINVAL;
    }
    return 0;
}

/* The options a submitted job may carry, as `orbit` flags. Unknown keys
 * are refused so that a typo does not silently change a job. */
static int
options_to_args(json_t *opts, struct argv_buf *a)
{
    static const char *const flags[][2] = {
        {"delete", "--delete"},
        {"checksum", "--checksum"},
        {"dry_run", "--dry-run"},
        {"compress", "--compress"},
        {"bwlimit", "--bwlimit"},
        {"retries", "--retries"},
        {"reconnect_wait", "--reconnect-wait"},
        {"jobs", "--jobs"},
        {"chunk_size", "--chunk-size"},
        {"token_file", "--token-file"},
        {"prioritize", "--prioritize"},
    };
    const char *key;
    json_t *v;
    json_object_foreach(opts, key, v)
    {
        int rc = ORBIT_EINVAL;
        if (!strcmp(key, "include"))
            rc = push_list(a, "--include", v);
        else if (!strcmp(key, "exclude"))
            rc = push_list(a, "--exclude", v);
        else if (!strcmp(key, "to"))
            rc = push_list(a, "--to", v);
        for (size_t i = 0; rc != 0 && i < sizeof flags / sizeof flags[0]; i++) {
            if (strcmp(key, flags[i][0]) != 0)
                continue;
            if (json_is_true(v))
                rc = push(a, flags[i][1]);
            else if (json_is_false(v))
                rc = 0;
            else if (json_is_string(v))
                rc = push(a, flags[i][1]) || push(a, json_string_value(v));
            else
                rc = ORBIT_EINVAL;
        }
        if (rc != 0)
            return ORBIT_EINVAL;
    }
    return 0;
}

/* ---- children
 * ----------------------------------------------------------------- */

static int
spawn(struct serve *sv, const struct journal_job *jb, json_t *opts)
{
    struct argv_buf a = {.n = 0};
    int rc = push(&a, sv->self);
    rc = rc ? rc : push(&a, jb->kind == JOURNAL_KIND_SYNC ? "sync" : "copy");
    for (size_t i = 0; rc == 0 && i < jb->nsources; i++)
        rc = push(&a, jb->sources[i]);
    rc = rc ? rc : push(&a, jb->destination);
    rc = rc ? rc : push(&a, "--job");
    rc = rc ? rc : push(&a, jb->id);
    rc = rc ? rc : push(&a, "--quiet");
    if (rc == 0 && sv->o->state_dir)
        rc = push(&a, "--state-dir") || push(&a, sv->o->state_dir);
    if (rc == 0 && opts)
        rc = options_to_args(opts, &a);
    if (rc != 0)
        return ORBIT_EINVAL;
    char log[PATH_MAX + 64];
    snprintf(log, sizeof log, "%s/%s.log", sv->logdir, jb->id);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_APPEND,
                                     0600);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    pid_t pid = 0;
    int err =
        posix_spawn(&pid, sv->self, &fa, NULL, (char *const *)a.v, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (err != 0)
        return orbit_err_from_errno(err);
    struct serve_child *c = &sv->running[sv->nrunning++];
    c->pid = pid;
    c->canceling = false;
    snprintf(c->id, sizeof c->id, "%s", jb->id);
    char msg[256];
    snprintf(msg, sizeof msg, "job %s started (pid %d, log %s)", jb->id,
             (int)pid, log);
    post(sv, BULLETIN_INFO, jb->id, "job", msg);
    return 0;
}

static int
start_job(struct serve *sv, const char *id)
{
    struct journal_job jb;
    int rc = journal_job_get(sv->journal, id, &jb);
    if (rc != 0)
        return rc;
    json_error_t jerr;
    json_t *opts = jb.options ? json_loads(jb.options, 0, &jerr) : NULL;
    rc = spawn(sv, &jb, json_is_object(opts) ? opts : NULL);
    json_decref(opts);
    journal_job_release(&jb);
    return rc;
}

/* Start queued jobs (state created) while there is room. */
static void
start_queued(struct serve *sv)
{
    struct journal_job *jobs = NULL;
    size_t n = 0;
    if (journal_job_list(sv->journal, &jobs, &n) != 0)
        return;
    for (size_t i = 0; i < n && sv->nrunning < SERVE_MAX_RUNNING; i++) {
        bool mine = false;
        for (size_t k = 0; k < sv->nrunning; k++)
            mine |= strcmp(sv->running[k].id, jobs[i].id) == 0;
        if (mine || (jobs[i].state != JOURNAL_JOB_CREATED &&
                     jobs[i].state != JOURNAL_JOB_RUNNING))
            continue;
        if (start_job(sv, jobs[i].id) != 0)
            journal_job_set_state(sv->journal, jobs[i].id, JOURNAL_JOB_FAILED);
    }
    journal_jobs_free(jobs, n);
}

/* A canceled job's process has ended: it recorded itself resumable (as
 * every child of `orbit serve` stopped by a signal does), so the control
 * plane records the cancel, unless the job finished first. */
static void
canceled(struct serve *sv, const char *id)
{
    struct journal_job jb;
    if (journal_job_get(sv->journal, id, &jb) != 0)
        return;
    bool finished =
        jb.state == JOURNAL_JOB_COMPLETED || jb.state == JOURNAL_JOB_PARTIAL;
    journal_job_release(&jb);
    if (!finished)
        journal_job_set_state(sv->journal, id, JOURNAL_JOB_CANCELED);
    char msg[256];
    snprintf(msg, sizeof msg, "job %s %s", id,
             finished ? "finished before it could be canceled" : "canceled");
    post(sv, BULLETIN_INFO, id, "job", msg);
}

static void
on_child(evutil_socket_t sig, short what, void *arg)
{
    struct serve *sv = arg;
    (void)sig;
    (void)what;
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        for (size_t i = 0; i < sv->nrunning; i++) {
            if (sv->running[i].pid != pid)
                continue;
            int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
            if (sv->running[i].canceling) {
                canceled(sv, sv->running[i].id);
                sv->running[i] = sv->running[--sv->nrunning];
                break;
            }
            char msg[256];
            snprintf(msg, sizeof msg, "job %s ended: %s", sv->running[i].id,
                     code == 0   ? "completed"
                     : code == 3 ? "completed with dead letters"
                                 : "failed (see its log)");
            post(sv,
                 code == 0   ? BULLETIN_INFO
                 : code == 3 ? BULLETIN_WARNING
                             : BULLETIN_ERROR,
                 sv->running[i].id, "job", msg);
            if (code != 0 && code != 3)
                journal_job_set_state(sv->journal, sv->running[i].id,
                                      JOURNAL_JOB_FAILED);
            sv->running[i] = sv->running[--sv->nrunning];
            break;
        }
    }
    start_queued(sv);
}

/* ---- the API's hooks
 * ------------------------------------------------------------- */

static int
submit_job(void *arg, const struct api_job_request *req, char *id_out)
{
    struct serve *sv = arg;
    bool sync = strcmp(req->kind, "sync") == 0;
    if ((!sync && strcmp(req->kind, "copy") != 0) || req->nsources == 0 ||
        (sync && req->nsources != 1))
        return ORBIT_EINVAL;
    json_error_t jerr;
    json_t *opts = json_loads(req->options ? req->options : "{}", 0, &jerr);
    struct argv_buf probe = {.n = 0};
    int rc =
        json_is_object(opts) ? options_to_args(opts, &probe) : ORBIT_EINVAL;
    json_t *prio = json_object_get(opts, "prioritize");
    struct prio_chain *chain = NULL;
    if (rc == 0 && json_is_string(prio) &&
        prio_chain_parse(json_string_value(prio), &chain) != 0)
        rc = ORBIT_EINVAL; /* refused now rather than failing later */
    prio_chain_free(chain);
    json_decref(opts);
    if (rc != 0)
        return ORBIT_EINVAL;
    struct journal_spec spec = {
        .kind = sync ? JOURNAL_KIND_SYNC : JOURNAL_KIND_COPY,
        .sources = req->sources,
        .nsources = req->nsources,
        .destination = req->destination,
        .options = req->options,
    };
    char id[JOURNAL_ID_LEN + 1];
    rc = journal_job_create(sv->journal, &spec, id);
    if (rc != 0)
        return rc;
    snprintf(id_out, API_JOB_ID_MAX, "%s", id);
    if (sv->nrunning < SERVE_MAX_RUNNING)
        rc = start_job(sv, id);
    if (rc != 0)
        journal_job_set_state(sv->journal, id, JOURNAL_JOB_FAILED);
    return rc;
}

/* DELETE /api/jobs/{id}: a running job gets SIGTERM and is recorded
 * canceled once its process has ended; a queued one is canceled now. */
static int
cancel_job(void *arg, const char *id)
{
    struct serve *sv = arg;
    for (size_t i = 0; i < sv->nrunning; i++) {
        struct serve_child *c = &sv->running[i];
        if (strcmp(c->id, id) != 0)
            continue;
        if (!c->canceling && kill(c->pid, SIGTERM) != 0)
            return orbit_err_from_errno(errno);
        c->canceling = true;
        return 0;
    }
    struct journal_job jb;
    int rc = journal_job_get(sv->journal, id, &jb);
    if (rc != 0)
        return rc;
    bool queued =
        jb.state == JOURNAL_JOB_CREATED || jb.state == JOURNAL_JOB_RUNNING;
    journal_job_release(&jb);
    if (!queued)
        return ORBIT_ESTATE;
    rc = journal_job_set_state(sv->journal, id, JOURNAL_JOB_CANCELED);
    if (rc == 0)
        post(sv, BULLETIN_INFO, id, "job", "job canceled before it started");
    return rc;
}

/* ---- stars
 * ------------------------------------------------------------------ */

static int
star_heartbeat(void *arg, const struct api_star_heartbeat *hb)
{
    struct serve *sv = arg;
    return api_star_registry_heartbeat(sv->stars, hb,
                                       orbit_clock_monotonic_ms(NULL));
}

static void
stars(void *arg, api_star_emit_fn emit, void *ctx)
{
    struct serve *sv = arg;
    api_star_registry_each(sv->stars, emit, ctx);
}

static void
on_sweep(evutil_socket_t fd, short what, void *arg)
{
    struct serve *sv = arg;
    (void)fd;
    (void)what;
    api_star_registry_sweep(sv->stars, orbit_clock_monotonic_ms(NULL));
}

/* At exit: the jobs being canceled end (they had SIGTERM) and are recorded
 * canceled, so the next `orbit serve` does not resume them. */
static void
reap_canceled(struct serve *sv)
{
    for (size_t i = 0; i < sv->nrunning; i++) {
        if (!sv->running[i].canceling)
            continue;
        int status;
        for (int k = 0; k < 300; k++) {
            if (waitpid(sv->running[i].pid, &status, WNOHANG) != 0)
                break;
            usleep(100 * 1000);
        }
        canceled(sv, sv->running[i].id);
    }
}

/* ---- the command
 * -------------------------------------------------------------------- */

static void
on_stop(evutil_socket_t sig, short what, void *arg)
{
    struct serve *sv = arg;
    (void)sig;
    (void)what;
    fprintf(stderr, "orbit serve: stopping; running jobs resume when it "
                    "starts again\n");
    for (size_t i = 0; i < sv->nrunning; i++)
        kill(sv->running[i].pid, SIGTERM);
    event_base_loopexit(sv->base, NULL);
}

static int
serve_setup(struct serve *sv, const char *spec)
{
    ssize_t n = readlink("/proc/self/exe", sv->self, sizeof sv->self - 1);
    if (n <= 0)
        return ORBIT_EIO;
    sv->self[n] = '\0';
    const char *st =
        sv->o->state_dir ? sv->o->state_dir : getenv("ORBIT_STATE_DIR");
    snprintf(sv->logdir, sizeof sv->logdir, "%s/logs", st ? st : "/tmp");
    mkdir(sv->logdir, 0700);
    struct api_config cfg;
    api_config_init(&cfg);
    cfg.journal = sv->journal;
    cfg.bulletins = sv->bulletins;
    cfg.metrics = sv->metrics;
    cfg.providers.submit_job = submit_job;
    cfg.providers.cancel_job = cancel_job;
    cfg.providers.star_heartbeat = star_heartbeat;
    cfg.providers.stars = stars;
    cfg.providers.arg = sv;
    cfg.accept_bulletins = true;
    return cli_api_serve(sv->base, &cfg, spec, true, &sv->api);
}

int
cli_cmd_serve(const struct cli_opts *o)
{
    struct serve sv = {.o = o};
    struct event *sigs[3] = {NULL, NULL, NULL};
    int code = ORBIT_EXIT_FATAL;
    /* Children die with the control plane and leave their jobs resumable
     * (see cli_cmd_transfer); the next `orbit serve` picks them up. */
    setenv("ORBIT_SERVE_CHILD", "1", 1);
    if (cli_journal_open(o, &sv.journal) != 0)
        return ORBIT_EXIT_FATAL;
    if (bulletin_board_new(1000, &sv.bulletins) != 0 ||
        metrics_registry_new(0, &sv.metrics) != 0 ||
        api_star_registry_new(sv.bulletins, API_STARS_MAX, &sv.stars) != 0 ||
        !(sv.base = event_base_new()))
        goto out;
    if (serve_setup(&sv, o->api ? o->api : "127.0.0.1:7071") != 0) {
        code = ORBIT_EXIT_USAGE;
        goto out;
    }
    sigs[0] = evsignal_new(sv.base, SIGCHLD, on_child, &sv);
    sigs[1] = evsignal_new(sv.base, SIGTERM, on_stop, &sv);
    sigs[2] = evsignal_new(sv.base, SIGINT, on_stop, &sv);
    for (size_t i = 0; i < 3; i++)
        if (!sigs[i] || event_add(sigs[i], NULL) != 0)
            goto out;
    struct timeval tick = {0, SERVE_SWEEP_MS * 1000};
    sv.sweep = event_new(sv.base, -1, EV_PERSIST, on_sweep, &sv);
    if (!sv.sweep || event_add(sv.sweep, &tick) != 0)
        goto out;
    start_queued(&sv); /* jobs left unfinished by an earlier run */
    event_base_dispatch(sv.base);
    reap_canceled(&sv);
    code = ORBIT_EXIT_OK;
out:
    if (sv.sweep)
        event_free(sv.sweep);
    for (size_t i = 0; i < 3; i++)
        if (sigs[i])
            event_free(sigs[i]);
    api_server_free(sv.api);
    if (sv.base)
        event_base_free(sv.base);
    api_star_registry_free(sv.stars);
    bulletin_board_free(sv.bulletins);
    metrics_registry_free(sv.metrics);
    journal_close(sv.journal);
    return code;
}
