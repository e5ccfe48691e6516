/*
 * orbit_transfer.c - `orbit copy` and `orbit sync`: turn the command line
 * into a scheduler job, show progress, print the final report, and choose
 * the exit code.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "orbit/bulletin.h"
#include "orbit/error.h"
#include "orbit/metrics.h"
#include "orbit/journal.h"
#include "orbit/orbit_clock.h"
#include "orbit/provenance.h"
#include "orbit/sched.h"
#include "orbit/wire_auth.h"
#include "orbit_cli.h"

#define DEFAULT_STAR_PORT 7070

struct xfer_ui {
    const struct cli_opts *o;
    struct cli_api api;
    int api_err;
    bool tty;
    uint64_t t0_ms;
    size_t progress_len;
    uint64_t dead;
    const char *job_id;
};

static void
human(uint64_t n, char *buf, size_t cap)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)n;
    unsigned u = 0;
    while (v >= 1024.0 && u < 4) {
        v /= 1024.0;
        u++;
    }
    if (u == 0)
        snprintf(buf, cap, "%" PRIu64 " B", n);
    else /* three significant digits from GiB on */
        snprintf(buf, cap, u >= 3 ? "%.2f %s" : "%.1f %s", v, units[u]);
}

/* ---- destination and sources
 * ------------------------------------------------- */

int
cli_parse_star_url(const char *url, struct sched_dest_config *d, char *host,
                   size_t hostcap)
{
    const char *p = url + strlen("star://");
    const char *slash = strchr(p, '/');
    size_t hostlen = slash ? (size_t)(slash - p) : strlen(p);
    const char *colon = NULL;
    if (hostlen == 0 || hostlen >= hostcap)
        return ORBIT_EINVAL;
    if (p[0] == '[') { /* [v6]:port */
        const char *close = memchr(p, ']', hostlen);
        if (!close)
            return ORBIT_EINVAL;
        memcpy(host, p + 1, (size_t)(close - p - 1));
        host[close - p - 1] = '\0';
        colon = close[1] == ':' ? close + 1 : NULL;
    } else {
        colon = memchr(p, ':', hostlen);
        size_t n = colon ? (size_t)(colon - p) : hostlen;
        memcpy(host, p, n);
        host[n] = '\0';
    }
    d->port = DEFAULT_STAR_PORT;
    if (colon) {
        char *end = NULL;
        long port = strtol(colon + 1, &end, 10);
        if (end != p + hostlen || port < 1 || port > 65535)
            return ORBIT_EINVAL;
        d->port = (uint16_t)port;
    }
    d->kind = SCHED_DEST_STAR;
    d->host = host;
    d->prefix = slash ? slash + 1 : "";
    return 0;
}

int
cli_load_token(const struct cli_opts *o, uint8_t *buf, size_t cap, size_t *len)
{
    if (o->token_file) {
        int rc = wire_token_load(o->token_file, buf, cap, len);
        if (rc != 0)
            fprintf(stderr, "orbit: cannot use token file %s: %s\n",
                    o->token_file, orbit_strerror(rc));
        return rc;
    }
    const char *env = getenv("ORBIT_TOKEN");
    if (!env || !env[0] || strlen(env) > cap) {
        fprintf(stderr, "orbit: a star:// destination needs a token: "
                        "--token-file F or ORBIT_TOKEN\n");
        return ORBIT_EAUTH;
    }
    *len = strlen(env);
    memcpy(buf, env, *len);
    return 0;
}

/* The name a source takes under DST: its base name, or "" for "dir/". */
static const char *
source_dest_name(const char *src, char *buf, size_t cap)
{
    size_t len = strlen(src);
    /* "dir/", "dir/." and "." all mean the contents of the directory */
    if ((len > 0 && src[len - 1] == '/') || strcmp(src, ".") == 0 ||
        (len >= 2 && strcmp(src + len - 2, "/.") == 0))
        return "";
    snprintf(buf, cap, "%s", src);
    char *base = strrchr(buf, '/');
    base = base ? base + 1 : buf;
    if (strcmp(base, "..") == 0) { /* "a/.." names its real directory */
        char real[PATH_MAX];
        if (realpath(src, real)) {
            char *b = strrchr(real, '/');
            snprintf(buf, cap, "%s", b && b[1] ? b + 1 : "root");
            return buf;
        }
    }
    return base;
}

/* ---- progress and events
 * ---------------------------------------------------------- */

static void
print_progress(void *arg, const struct sched_stats *st)
{
    struct xfer_ui *ui = arg;
    if (!ui->tty || ui->o->quiet || ui->o->json)
        return;
    uint64_t el = orbit_clock_monotonic_ms(NULL) - ui->t0_ms;
    double rate = el ? (double)st->bytes_read * 1000.0 / (double)el : 0.0;
    char done[32], total[32], r[32], eta[32] = "--:--";
    human(st->bytes_done, done, sizeof done);
    human(st->bytes_total, total, sizeof total);
    human((uint64_t)rate, r, sizeof r);
    if (st->walk_done && rate > 0 && st->bytes_total >= st->bytes_done) {
        uint64_t secs =
            (uint64_t)((double)(st->bytes_total - st->bytes_done) / rate);
        snprintf(eta, sizeof eta, "%" PRIu64 ":%02" PRIu64, secs / 60,
                 secs % 60);
    }
    char line[256];
    int n = snprintf(line, sizeof line,
                     "%s / %s%s  %" PRIu64 "/%" PRIu64 " files  %s/s  ETA %s"
                     "  dead letters %" PRIu64,
                     done, total, st->walk_done ? "" : "+",
                     st->files_done + st->files_skipped, st->files_seen, r, eta,
                     st->files_failed);
    if (n < 0)
        return;
    size_t len = (size_t)n;
    fprintf(stdout, "\r%s%*s", line,
            (int)(ui->progress_len > len ? ui->progress_len - len : 0), "");
    fflush(stdout);
    ui->progress_len = len;
}

static void
clear_progress(struct xfer_ui *ui)
{
    if (ui->progress_len == 0)
        return;
    fprintf(stdout, "\r%*s\r", (int)ui->progress_len, "");
    ui->progress_len = 0;
}

static enum prov_event_type
event_type_of(enum sched_file_outcome o)
{
    switch (o) {
    case SCHED_FILE_STARTED:
        return PROV_FILE_STARTED;
    case SCHED_FILE_DONE:
        return PROV_FILE_COMPLETED;
    case SCHED_FILE_SKIPPED:
    case SCHED_FILE_DELETED:
        return PROV_FILE_SKIPPED;
    case SCHED_FILE_RETRY:
        return PROV_CHUNK_PENALIZED;
    case SCHED_FILE_DEAD:
    default:
        return PROV_CHUNK_DEAD_LETTERED;
    }
}

static void
print_json_event(struct xfer_ui *ui, const struct sched_file_event *ev)
{
    struct prov_event *pe = NULL;
    char *json = NULL;
    size_t len = 0;
    if (prov_event_new(event_type_of(ev->outcome), ui->job_id, &pe) != 0)
        return;
    prov_event_set(pe, PROV_F_DEST_PATH, ev->path);
    if (ev->dest)
        prov_event_set(pe, PROV_F_DEST_STAR, ev->dest);
    if (ev->outcome == SCHED_FILE_DONE)
        prov_event_set_bytes(pe, ev->bytes_sent);
    if (ev->message)
        prov_event_set(pe, PROV_F_ERROR, ev->message);
    if (ev->outcome == SCHED_FILE_DEAD)
        prov_event_context_set(pe, "reason", dlq_reason_str(ev->reason));
    if (ev->outcome == SCHED_FILE_DELETED)
        prov_event_context_set(pe, "action", "deleted");
    if (prov_event_to_json(pe, &json, &len) == 0)
        printf("%s\n", json);
    free(json);
    prov_event_free(pe);
}

/* --json: the job's own events around the file events. */
static void
print_job_event(const char *job_id, enum prov_event_type type,
                const struct sched_stats *st, const char *error)
{
    struct prov_event *pe = NULL;
    char *json = NULL;
    size_t len = 0;
    if (prov_event_new(type, job_id, &pe) != 0)
        return;
    if (st) {
        char n[32];
        prov_event_set_bytes(pe, st->bytes_sent);
        snprintf(n, sizeof n, "%llu", (unsigned long long)st->files_done);
        prov_event_context_set(pe, "files_done", n);
        snprintf(n, sizeof n, "%llu", (unsigned long long)st->files_failed);
        prov_event_context_set(pe, "dead_letters", n);
        snprintf(n, sizeof n, "%llu", (unsigned long long)st->bytes_dedup);
        prov_event_context_set(pe, "bytes_deduplicated", n);
        snprintf(n, sizeof n, "%llu", (unsigned long long)st->wire_out);
        prov_event_context_set(pe, "wire_bytes_out", n);
        snprintf(n, sizeof n, "%llu", (unsigned long long)st->wire_in);
        prov_event_context_set(pe, "wire_bytes_in", n);
    }
    if (error)
        prov_event_set(pe, PROV_F_ERROR, error);
    if (prov_event_to_json(pe, &json, &len) == 0)
        printf("%s\n", json);
    free(json);
    prov_event_free(pe);
}

static void
on_file(void *arg, const struct sched_file_event *ev)
{
    struct xfer_ui *ui = arg;
    if (ui->o->json) {
        print_json_event(ui, ev);
        return;
    }
    if (ev->outcome == SCHED_FILE_DEAD) {
        ui->dead++;
        clear_progress(ui);
        fprintf(stderr, "orbit: dead letter (%s): %s: %s\n",
                dlq_reason_str(ev->reason), ev->path,
                ev->message ? ev->message : "");
        return;
    }
    if (ui->o->quiet)
        return;
    const char *what = NULL;
    if (ui->o->dry_run && ev->outcome == SCHED_FILE_STARTED)
        what = "would send";
    else if (ev->outcome == SCHED_FILE_DELETED)
        what = ui->o->dry_run ? "would delete" : "deleting";
    else if (ui->o->verbose && ev->outcome == SCHED_FILE_DONE)
        what = "sent";
    else if (ui->o->verbose && ev->outcome == SCHED_FILE_RETRY)
        what = "retrying";
    else if (ui->o->verbose > 1 && ev->outcome == SCHED_FILE_SKIPPED)
        what = "unchanged";
    if (!what)
        return;
    clear_progress(ui);
    printf("%s %s%s%s\n", what, ev->path,
           ev->outcome == SCHED_FILE_RETRY ? ": " : "",
           ev->outcome == SCHED_FILE_RETRY && ev->message ? ev->message : "");
}

/* ---- the report
 * --------------------------------------------------------------------- */

static void
print_report(struct xfer_ui *ui, const struct sched_stats *st,
             const struct dlq_entry *dl, size_t ndl, double secs)
{
    if (ui->o->json || ui->o->quiet)
        return;
    char read[32], sent[32], raw[32], dedup[32], wout[32], win[32];
    human(st->bytes_read, read, sizeof read);
    human(st->bytes_sent, sent, sizeof sent);
    human(st->bytes_raw_sent, raw, sizeof raw);
    human(st->bytes_dedup, dedup, sizeof dedup);
    human(st->wire_out, wout, sizeof wout);
    human(st->wire_in, win, sizeof win);
    printf("orbit %s: %s in %.1f s\n", ui->o->command,
           ui->o->dry_run ? "dry run" : "done", secs);
    printf("  files: %" PRIu64 " sent, %" PRIu64 " unchanged, %" PRIu64
           " dead letters, %" PRIu64 " seen",
           st->files_done - st->files_kept, st->files_skipped, st->files_failed,
           st->files_seen);
    if (st->files_kept)
        printf(", %" PRIu64 " kept in place", st->files_kept);
    if (st->deleted)
        printf(", %" PRIu64 " deleted", st->deleted);
    printf("\n  bytes: %s read, %s sent (%s of chunks), %s deduplicated\n",
           read, sent, raw, dedup);
    printf("  wire: %s out, %s in (every frame: ids, chunks, manifests)\n",
           wout, win);
    if (st->retries)
        printf("  retries: %" PRIu64 "\n", st->retries);
    if (ndl == 0)
        return;
    printf("  dead letters:\n");
    for (size_t i = 0; i < ndl; i++)
        printf("    %-20s %s  (%s, %u attempts)\n",
               dlq_reason_str(dl[i].reason), dl[i].key,
               dl[i].last_error ? dl[i].last_error : "", dl[i].attempts);
    printf("  retry them with: orbit dlq retry --job %s\n", ui->job_id);
}

/* ---- the command
 * ---------------------------------------------------------------------- */

struct xfer_setup {
    struct sched_source sources[CLI_MAX_SOURCES];
    char names[CLI_MAX_SOURCES][PATH_MAX];
    struct sched_dest_config dests[SCHED_MAX_DESTS];
    size_t ndests;
    char hosts[SCHED_MAX_DESTS][256];
    uint8_t tokens[SCHED_MAX_DESTS][WIRE_TOKEN_MAX];
    char job_id[JOURNAL_ID_LEN + 1];
};

static int
setup_dest(const struct cli_opts *o, struct xfer_setup *x, const char *dst)
{
    size_t i = x->ndests++;
    struct sched_dest_config *d = &x->dests[i];
    uint8_t *token = x->tokens[i];
    d->name = dst;
    d->token = token;
    if (strncmp(dst, "star://", 7) == 0) {
        if (cli_parse_star_url(dst, d, x->hosts[i], sizeof x->hosts[i]) != 0) {
            fprintf(stderr,
                    "orbit: bad destination '%s' (expected "
                    "star://HOST[:PORT]/PATH)\n",
                    dst);
            return ORBIT_EINVAL;
        }
        return cli_load_token(o, token, WIRE_TOKEN_MAX, &d->token_len);
    }
    d->kind = SCHED_DEST_LOCAL;
    d->root = dst;
    d->prefix = "";
    if (mkdir(dst, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "orbit: cannot create %s: %s\n", dst, strerror(errno));
        return ORBIT_EIO;
    }
    /* The in-process star still authenticates: a fresh random token. */
    d->token_len = 32;
    return RAND_bytes(token, 32) == 1 ? 0 : ORBIT_ECRYPTO;
}

/* A local destination inside a source would copy itself into itself. */
static int
check_not_inside(const char *dst, const struct xfer_setup *x, size_t nsrc)
{
    char d[PATH_MAX], sr[PATH_MAX];
    if (!realpath(dst, d))
        return 0;
    for (size_t i = 0; i < nsrc; i++) {
        if (!realpath(x->sources[i].path, sr))
            continue;
        size_t n = strlen(sr);
        if (strncmp(d, sr, n) == 0 &&
            (d[n] == '/' || d[n] == '\0' || strcmp(sr, "/") == 0)) {
            fprintf(stderr,
                    "orbit: destination %s is inside source %s; choose a "
                    "destination outside it\n",
                    dst, x->sources[i].path);
            rmdir(dst); /* only if this run just made it, empty */
            return ORBIT_EINVAL;
        }
    }
    return 0;
}

/* DST, then every --to DST: each file goes to all of them. */
static int
setup_dests(const struct cli_opts *o, struct xfer_setup *x, size_t nsrc)
{
    int rc = setup_dest(o, x, o->dest);
    for (size_t i = 0; rc == 0 && i < o->nextra_dests; i++)
        rc = setup_dest(o, x, o->extra_dests[i]);
    for (size_t i = 0; rc == 0 && i < x->ndests; i++)
        if (x->dests[i].kind == SCHED_DEST_LOCAL)
            rc = check_not_inside(x->dests[i].root, x, nsrc);
    return rc;
}

static int
setup_sources(const struct cli_opts *o, struct xfer_setup *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct stat st;
        if (stat(o->sources[i], &st) != 0) {
            fprintf(stderr, "orbit: source %s: %s\n", o->sources[i],
                    strerror(errno));
            return ORBIT_ENOENT;
        }
        x->sources[i].path = o->sources[i];
        x->sources[i].dest_name =
            source_dest_name(o->sources[i], x->names[i], sizeof x->names[i]);
    }
    return 0;
}

int
cli_journal_open(const struct cli_opts *o, struct journal **out)
{
    char dir[PATH_MAX];
    const char *d = NULL;
    if (o->state_dir) {
        snprintf(dir, sizeof dir, "%s/journal", o->state_dir);
        d = dir;
    }
    int rc = journal_open(d, out);
    if (rc != 0)
        fprintf(stderr, "orbit: cannot open the job journal%s%s: %s\n",
                d ? " in " : "", d ? d : "", orbit_strerror(rc));
    return rc;
}

/* The same command rerun finds its unfinished job and resumes it. */
static int
journal_job(const struct cli_opts *o, struct journal *j, size_t nsrc,
            char id[JOURNAL_ID_LEN + 1], bool *resumed)
{
    struct journal_spec spec = {
        .kind = strcmp(o->command, "sync") == 0 ? JOURNAL_KIND_SYNC
                                                : JOURNAL_KIND_COPY,
        .sources = o->sources,
        .nsources = nsrc,
        .destination = o->dest,
    };
    *resumed = false;
    if (o->job_id) {
        snprintf(id, JOURNAL_ID_LEN + 1, "%s", o->job_id);
        *resumed = true;
        return 0;
    }
    struct journal_job job;
    if (journal_job_find_by_spec(j, &spec, id) == 0 &&
        journal_job_get(j, id, &job) == 0) {
        bool open = job.state != JOURNAL_JOB_COMPLETED;
        journal_job_release(&job);
        if (open) {
            *resumed = true;
            return 0;
        }
    }
    return journal_job_create(j, &spec, id);
}

static enum journal_job_state
final_state(int rc, size_t ndl)
{
    /* A job of `orbit serve` stopped with its control plane stays
     * running, to be resumed when the control plane comes back. */
    if (rc == ORBIT_ECANCELED && getenv("ORBIT_SERVE_CHILD"))
        return JOURNAL_JOB_RUNNING;
    if (rc == ORBIT_ECANCELED)
        return JOURNAL_JOB_CANCELED;
    if (rc != 0)
        return JOURNAL_JOB_FAILED;
    return ndl ? JOURNAL_JOB_PARTIAL : JOURNAL_JOB_COMPLETED;
}

static void
record_end(struct journal *j, const char *id, int rc, size_t ndl,
           const struct sched_stats *st)
{
    struct journal_counters c = {
        .files_total = st->files_seen,
        .files_done = st->files_done + st->files_skipped,
        .bytes_total = st->bytes_total,
        .bytes_done = st->bytes_done,
        .bytes_sent = st->bytes_sent,
        .bytes_dedup = st->bytes_dedup,
    };
    journal_job_set_counters(j, id, &c);
    journal_job_set_state(j, id, final_state(rc, ndl));
}

static void
on_loop(void *arg, struct sched *s, struct event_base *base, bool start)
{
    struct xfer_ui *ui = arg;
    if (!ui->api.spec)
        return;
    if (!start) {
        cli_api_stop(&ui->api);
        return;
    }
    ui->api.sched = s;
    ui->api_err = cli_api_start(&ui->api, base);
    if (ui->api_err != 0)
        sched_cancel(s);
}

static volatile sig_atomic_t interrupted;
static struct sched *running;

static void
on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
    if (running)
        sched_cancel(running);
}

static int
check_operands(const struct cli_opts *o, size_t *nsrc)
{
    bool sync = strcmp(o->command, "sync") == 0;
    if (o->nsources < 2 || (sync && o->nsources != 2)) {
        fprintf(stderr, "orbit: usage: orbit %s\n",
                sync ? "sync SRC DST [--delete]" : "copy SRC... DST");
        return ORBIT_EINVAL;
    }
    if (!sync && (o->delete_extraneous || o->checksum)) {
        fprintf(stderr, "orbit: --delete and --checksum are sync options\n");
        return ORBIT_EINVAL;
    }
    *nsrc = o->nsources - 1;
    return 0;
}

int
cli_cmd_transfer(const struct cli_opts *o_in)
{
    struct cli_opts o = *o_in;
    size_t nsrc = 0;
    if (check_operands(&o, &nsrc) != 0)
        return ORBIT_EXIT_USAGE;
    o.dest = o.sources[nsrc];
    if (o.via)
        return cli_submit_via(&o, nsrc);
    struct xfer_setup *x = calloc(1, sizeof *x);
    if (!x)
        return ORBIT_EXIT_FATAL;
    int exit_code = ORBIT_EXIT_FATAL;
    struct sched *s = NULL;
    struct journal *j = NULL;
    struct bulletin_board *bulletins = NULL;
    struct metrics_registry *metrics = NULL;
    struct dlq_entry *dl = NULL;
    size_t ndl = 0;
    bool resumed = false;
    if (setup_sources(&o, x, nsrc) != 0)
        goto out;
    int drc = setup_dests(&o, x, nsrc);
    if (drc != 0) {
        if (drc == ORBIT_EINVAL)
            exit_code = ORBIT_EXIT_USAGE; /* a malformed star:// URL */
        goto out;
    }
    if (!o.dry_run && cli_journal_open(&o, &j) != 0)
        goto out;
    if (j && journal_job(&o, j, nsrc, x->job_id, &resumed) != 0) {
        fprintf(stderr, "orbit: cannot record the job in the journal\n");
        goto out;
    }
    if (resumed && !o.quiet && !o.json)
        printf("orbit: resuming job %s\n", x->job_id);
    if (o.json)
        print_job_event(x->job_id,
                        resumed ? PROV_JOB_RESUMED : PROV_JOB_CREATED, NULL,
                        NULL);
    if (j)
        journal_job_set_state(j, x->job_id, JOURNAL_JOB_RUNNING);
    struct xfer_ui ui = {.o = &o,
                         .tty = isatty(STDOUT_FILENO) == 1,
                         .t0_ms = orbit_clock_monotonic_ms(NULL),
                         .job_id = x->job_id};
    struct sched_config cfg;
    sched_config_init(&cfg);
    cfg.job_id = x->job_id;
    cfg.sources = x->sources;
    cfg.nsources = nsrc;
    cfg.dests = x->dests;
    cfg.ndests = x->ndests;
    cfg.sync_mode = strcmp(o.command, "sync") == 0;
    cfg.delete_extraneous = o.delete_extraneous;
    cfg.checksum = o.checksum;
    cfg.dry_run = o.dry_run;
    cfg.includes = o.includes;
    cfg.nincludes = o.nincludes;
    cfg.excludes = o.excludes;
    cfg.nexcludes = o.nexcludes;
    cfg.prioritize = o.prioritize;
    cfg.chunk_avg = o.chunk_avg;
    cfg.compress_level = o.compress_level;
    cfg.bwlimit = o.bwlimit;
    cfg.jobs = o.jobs;
    cfg.retries = o.retries;
    cfg.reconnect_wait_ms = o.reconnect_wait * 1000u;
    cfg.journal = j;
    cfg.only_paths = o_in->only_paths;
    cfg.nonly_paths = o_in->nonly_paths;
    cfg.on_file = on_file;
    cfg.on_loop = on_loop;
    if (o.api) {
        if (bulletin_board_new(1000, &bulletins) != 0 ||
            metrics_registry_new(0, &metrics) != 0)
            goto out;
        ui.api = (struct cli_api){.spec = o.api,
                                  .job_id = x->job_id,
                                  .quiet = o.quiet,
                                  .journal = j,
                                  .bulletins = bulletins,
                                  .metrics = metrics};
        cfg.bulletins = bulletins;
        cfg.metrics = metrics;
    }
    cfg.on_progress = print_progress;
    cfg.arg = &ui;
    const char *fast = getenv("ORBIT_RETRY_INITIAL_MS");
    if (fast)
        cfg.retry_initial_ms = cfg.retry_max_ms = strtoull(fast, NULL, 10);
    int nrc = sched_new(&cfg, &s);
    if (nrc != 0) {
        fprintf(stderr, "orbit: cannot start the job: %s%s\n",
                orbit_strerror(nrc),
                o.prioritize ? " (check --prioritize: tier, smallest, "
                               "largest, oldest, newest, fewest-retries)"
                             : "");
        goto out;
    }
    running = s;
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    int rc = sched_run(s);
    running = NULL;
    clear_progress(&ui);
    struct sched_stats st;
    sched_get_stats(s, &st);
    sched_dead_letters(s, &dl, &ndl);
    double secs = (double)(orbit_clock_monotonic_ms(NULL) - ui.t0_ms) / 1000.0;
    if (j)
        record_end(j, x->job_id, rc, ndl, &st);
    if (o.json)
        print_job_event(x->job_id,
                        rc == 0 ? PROV_JOB_COMPLETED : PROV_JOB_FAILED, &st,
                        rc != 0 ? orbit_strerror(rc) : NULL);
    if (ui.api_err != 0)
        rc = ui.api_err; /* already said why */
    else if (rc == 0)
        print_report(&ui, &st, dl, ndl, secs);
    else if (rc != ORBIT_ECANCELED)
        fprintf(stderr, "orbit: %s\n",
                sched_fatal_message(s)[0] ? sched_fatal_message(s)
                                          : orbit_strerror(rc));
    else
        fprintf(stderr, "orbit: interrupted; rerun the same command to "
                        "resume\n");
    exit_code = rc != 0   ? ORBIT_EXIT_FATAL
                : ndl > 0 ? ORBIT_EXIT_PARTIAL
                          : ORBIT_EXIT_OK;
out:
    dlq_entries_free(dl, ndl);
    sched_free(s);
    journal_close(j);
    bulletin_board_free(bulletins);
    metrics_registry_free(metrics);
    free(x);
    return exit_code;
}
