/*
 * orbit-star: the destination daemon. Serves the wire protocol on one
 * address, stores beneath --root, drains on SIGTERM (or SIGINT) and exits 0.
 * Exit codes: 0 drained cleanly, 1 could not start, 2 bad command line.
 */
#include <errno.h>
#include <signal.h>
#include <event2/event.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "orbit/error.h"
#include "orbit/star.h"
#include "orbit/star_control.h"
#include "orbit/wire_auth.h"

#ifndef ORBIT_VERSION
#define ORBIT_VERSION "0.0.0"
#endif

#define EXIT_USAGE 2

struct star_opts {
    const char *root;
    const char *listen;
    const char *token_file;
    const char *name;
    const char *control;  /* --control http://HOST:PORT */
    uint32_t interval_ms; /* --control-interval */
    long health_s;        /* --health-interval, -1: default */
    long round_ms;        /* --round-interval, -1: default */
    long ttl_h;           /* --staging-ttl, -1: default */
    enum star_placement placement;
    bool quiet;
};

static void
usage(FILE *f)
{
    fprintf(f, "usage: orbit-star --root DIR --token-file FILE "
               "[--listen ADDR:PORT]\n"
               "                  [--name NAME] [--placement staging|pack] "
               "[--quiet]\n"
               "\n"
               "Receive files from `orbit copy` / `orbit sync` into DIR.\n"
               "  --root DIR          destination directory (must exist)\n"
               "  --listen ADDR:PORT  address to serve (default "
               "127.0.0.1:7070)\n"
               "  --token-file FILE   shared secret, one line\n"
               "  --name NAME         star name reported to clients\n"
               "  --placement MODE    where hinted chunks land: staging "
               "(default) or pack\n"
               "  --control URL       register with `orbit serve` at URL: "
               "a heartbeat\n"
               "                      (state, disk, counters, advisories) "
               "to URL/api/stars\n"
               "  --control-interval SECONDS  between heartbeats "
               "(default 5, 1 .. 3600)\n"
               "  --health-interval SECONDS   disk sampled and advisories "
               "sent to clients\n"
               "                      this often (default 5, 0 .. 3600; "
               "0: only when asked)\n"
               "  --round-interval MS  after a busy sync round (16+ "
               "requests) the next starts\n"
               "                      this long after it (default 20, 0 .. "
               "1000)\n"
               "  --staging-ttl HOURS  remove staging files of transfers "
               "never committed once\n"
               "                      nothing wrote to them for this long "
               "(default 168,\n"
               "                      0 .. 87600; 0: keep them)\n"
               "  --quiet             no log lines on stderr\n"
               "  --help, --version\n"
               "SIGTERM or SIGINT drains: no new work, in-flight requests "
               "finish, exit 0.\n");
}

/* A whole number in lo .. hi, or -1 (message printed). */
static long
number_in(const char *opt, const char *v, long lo, long hi, const char *unit)
{
    char *end = NULL;
    long n = strtol(v, &end, 10);
    if (!*v || *end || n < lo || n > hi) {
        fprintf(stderr, "orbit-star: %s: %ld to %ld %s\n", opt, lo, hi, unit);
        return -1;
    }
    return n;
}

/* 0 to run, 1 for --help/--version printed, EXIT_USAGE on error. */
static int
parse(int argc, char **argv, struct star_opts *o)
{
    o->listen = "127.0.0.1:7070";
    o->name = "orbit-star";
    o->health_s = o->round_ms = o->ttl_h = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 1;
        }
        if (strcmp(a, "--version") == 0) {
            printf("orbit-star %s\n", ORBIT_VERSION);
            return 1;
        }
        if (strcmp(a, "--quiet") == 0) {
            o->quiet = true;
            continue;
        }
        const char **slot = strcmp(a, "--root") == 0         ? &o->root
                            : strcmp(a, "--listen") == 0     ? &o->listen
                            : strcmp(a, "--token-file") == 0 ? &o->token_file
                            : strcmp(a, "--name") == 0       ? &o->name
                            : strcmp(a, "--control") == 0    ? &o->control
                                                             : NULL;
        if (strcmp(a, "--control-interval") == 0 && v) {
            long secs = number_in(a, v, 1, 3600, "seconds");
            if (secs < 0)
                return EXIT_USAGE;
            o->interval_ms = (uint32_t)secs * 1000u;
            i++;
            continue;
        }
        if (strcmp(a, "--health-interval") == 0 && v) {
            if ((o->health_s = number_in(a, v, 0, 3600, "seconds")) < 0)
                return EXIT_USAGE;
            i++;
            continue;
        }
        if (strcmp(a, "--round-interval") == 0 && v) {
            if ((o->round_ms = number_in(a, v, 0, 1000, "milliseconds")) < 0)
                return EXIT_USAGE;
            i++;
            continue;
        }
        if (strcmp(a, "--staging-ttl") == 0 && v) {
            if ((o->ttl_h = number_in(a, v, 0, 87600, "hours")) < 0)
                return EXIT_USAGE;
            i++;
            continue;
        }
        if (strcmp(a, "--placement") == 0 && v) {
            if (strcmp(v, "staging") != 0 && strcmp(v, "pack") != 0) {
                fprintf(stderr, "orbit-star: --placement: staging or pack\n");
                return EXIT_USAGE;
            }
            o->placement = v[0] == 'p' ? STAR_PLACE_PACK : STAR_PLACE_STAGING;
            i++;
            continue;
        }
        if (!slot || !v) {
            fprintf(stderr, "orbit-star: %s: %s\n", a,
                    slot ? "missing value" : "unknown option");
            usage(stderr);
            return EXIT_USAGE;
        }
        *slot = v;
        i++;
    }
    if (o->control && strncmp(o->control, "http://", 7) != 0) {
        fprintf(stderr, "orbit-star: --control: expected http://HOST[:PORT]\n");
        return EXIT_USAGE;
    }
    if (!o->root || !o->token_file) {
        fprintf(stderr, "orbit-star: --root and --token-file are required\n");
        usage(stderr);
        return EXIT_USAGE;
    }
    return 0;
}

static int
check_root(const char *root)
{
    struct stat st;
    if (stat(root, &st) != 0) {
        fprintf(stderr, "orbit-star: root %s: %s; create it first\n", root,
                strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        fprintf(stderr, "orbit-star: root %s is not a directory\n", root);
        return -1;
    }
    return 0;
}

struct run {
    struct event_base *base;
    struct star *star;
    struct star_control *control;
    bool quiet;
};

static void
on_state(void *arg, enum star_state from, enum star_state to)
{
    (void)from;
    struct run *r = arg;
    if (to == STAR_SHUTDOWN)
        event_base_loopexit(r->base, NULL);
    else
        star_control_beat(r->control);
}

/* --control: heartbeats to the control plane, with the address the star
 * listens on (the port it really bound when --listen asked for 0). */
static int
control_start(const struct star_opts *o, struct run *r)
{
    char addr[300];
    const char *colon = strrchr(o->listen, ':');
    int hlen = colon ? (int)(colon - o->listen) : (int)strlen(o->listen);
    snprintf(addr, sizeof addr, "%.*s:%u", hlen, o->listen,
             (unsigned)star_port(r->star));
    struct star_control_config cc = {
        .url = o->control,
        .address = addr,
        .token = getenv("ORBIT_API_TOKEN"),
        .interval_ms = o->interval_ms,
        .quiet = o->quiet,
    };
    int rc = star_control_new(r->star, r->base, &cc, &r->control);
    if (rc < 0)
        fprintf(stderr, "orbit-star: --control %s: %s\n", o->control,
                rc == ORBIT_EINVAL ? "expected http://HOST[:PORT]"
                                   : orbit_strerror(rc));
    return rc;
}

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    struct run *r = arg;
    if (!r->quiet)
        fprintf(stderr, "orbit-star: signal %d, draining\n", (int)sig);
    star_drain(r->star);
}

static int
serve(const struct star_opts *o, const uint8_t *token, size_t token_len)
{
    struct run r = {event_base_new(), NULL, NULL, o->quiet};
    if (!r.base)
        return EXIT_FAILURE;
    struct star_config cfg;
    star_config_init(&cfg);
    cfg.root = o->root;
    cfg.token = token;
    cfg.token_len = token_len;
    cfg.name = o->name;
    cfg.base = r.base;
    cfg.placement = o->placement;
    cfg.quiet = o->quiet;
    if (o->health_s >= 0)
        cfg.health_interval_ms = (uint32_t)o->health_s * 1000u;
    if (o->round_ms >= 0)
        cfg.round_interval_us = (uint32_t)o->round_ms * 1000u;
    if (o->ttl_h >= 0)
        cfg.staging_ttl_s = (uint32_t)o->ttl_h * 3600u;
    cfg.on_state = on_state;
    cfg.on_state_arg = &r;
    int rc = star_new(&cfg, &r.star);
    if (rc < 0) {
        fprintf(stderr, "orbit-star: cannot open root %s: %s\n", o->root,
                rc == ORBIT_EAGAIN ? "another star is serving it"
                                   : orbit_strerror(rc));
        event_base_free(r.base);
        return EXIT_FAILURE;
    }
    rc = star_listen(r.star, o->listen);
    if (rc < 0) {
        fprintf(stderr, "orbit-star: cannot listen on %s: %s\n", o->listen,
                rc == ORBIT_EEXIST ? "address already in use"
                                   : orbit_strerror(rc));
        star_free(r.star);
        event_base_free(r.base);
        return EXIT_FAILURE;
    }
    if (o->control && control_start(o, &r) < 0) {
        star_free(r.star);
        event_base_free(r.base);
        return EXIT_FAILURE;
    }
    struct event *term = evsignal_new(r.base, SIGTERM, on_signal, &r);
    struct event *intr = evsignal_new(r.base, SIGINT, on_signal, &r);
    if (term)
        evsignal_add(term, NULL);
    if (intr)
        evsignal_add(intr, NULL);
    star_schedule(r.star);
    event_base_dispatch(r.base);
    star_control_free(r.control);
    r.control = NULL;
    star_free(r.star);
    if (term)
        event_free(term);
    if (intr)
        event_free(intr);
    event_base_free(r.base);
    return EXIT_SUCCESS;
}

int
main(int argc, char **argv)
{
    struct star_opts o;
    memset(&o, 0, sizeof o);
    int rc = parse(argc, argv, &o);
    if (rc == 1)
        return EXIT_SUCCESS;
    if (rc != 0)
        return rc;
    if (check_root(o.root) < 0)
        return EXIT_FAILURE;
    star_raise_nofile();
    static uint8_t token[WIRE_TOKEN_MAX];
    size_t token_len = 0;
    rc = wire_token_load(o.token_file, token, sizeof token, &token_len);
    if (rc < 0) {
        fprintf(stderr, "orbit-star: token file %s: %s\n", o.token_file,
                orbit_strerror(rc));
        return EXIT_FAILURE;
    }
    struct stat st;
    if (!o.quiet && stat(o.token_file, &st) == 0 && (st.st_mode & 077))
        fprintf(stderr,
                "orbit-star: warning: token file %s is readable by others; "
                "chmod 600 it\n",
                o.token_file);
    return serve(&o, token, token_len);
}
