/*
 * orbit_cli.h - internals of the `orbit` executable: parsed options, exit
 * codes, and the subcommand entry points. Not a library interface.
 */
#ifndef ORBIT_CLI_H
#define ORBIT_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Exit codes, documented in `orbit --help` and docs/cli.md. */
enum orbit_exit {
    ORBIT_EXIT_OK = 0,      /* everything done */
    ORBIT_EXIT_FATAL = 1,   /* the job could not run or was aborted */
    ORBIT_EXIT_USAGE = 2,   /* bad command line */
    ORBIT_EXIT_PARTIAL = 3, /* done, but some items are dead letters */
};

#define CLI_MAX_PATTERNS 64
#define CLI_MAX_SOURCES  64

struct cli_opts {
    const char *command;
    const char *sources[CLI_MAX_SOURCES];
    size_t nsources;
    const char *dest;
    const char *extra_dests[7]; /* --to DST: more destinations */
    size_t nextra_dests;
    const char *includes[CLI_MAX_PATTERNS];
    size_t nincludes;
    const char *excludes[CLI_MAX_PATTERNS];
    size_t nexcludes;
    bool sync_mode;
    bool delete_extraneous;
    bool checksum;
    bool dry_run;
    bool json;
    bool quiet;
    int verbose;
    int compress_level; /* -1 auto, 0 none, >0 zstd level */
    uint64_t bwlimit;   /* bytes per second, 0 = unlimited */
    unsigned jobs;
    unsigned retries;
    unsigned reconnect_wait; /* seconds */
    uint32_t chunk_avg;
    const char *token_file;
    const char *state_dir;
    const char *job_id;
    const char *prioritize;
    const char *api;
    const char *via; /* --via http://HOST:PORT: submit to `orbit serve` */
    /* the option texts as given, passed on by --via */
    const char *compress_arg, *bwlimit_arg, *retries_arg, *jobs_arg, *chunk_arg;
    const char *reconnect_wait_arg;
    /* `orbit dlq retry`: only these relative paths */
    const char *const *only_paths;
    size_t nonly_paths;
};

struct journal;
/* Open the journal of --state-dir (or the default), printing why not. */
int cli_journal_open(const struct cli_opts *o, struct journal **out);

int cli_parse_size(const char *s, uint64_t *out);
int cli_parse_args(int argc, char **argv, struct cli_opts *o);
void cli_usage(const char *command, int to_stderr);

/* --api: the control plane served during a job */
struct api_server;
struct bulletin_board;
struct event_base;
struct metrics_registry;
struct sched;
struct cli_api {
    const char *spec; /* ADDR:PORT */
    const char *job_id;
    bool quiet;
    struct journal *journal;
    struct bulletin_board *bulletins;
    struct metrics_registry *metrics;
    struct sched *sched;
    struct api_server *server;
};
int cli_parse_hostport(const char *spec, char *host, size_t hostcap,
                       uint16_t *port);
struct api_config;
/* Parse ADDR:PORT, create and bind an API server with cfg (its token from
 * ORBIT_API_TOKEN), say where it listens, or say why not. */
int cli_api_serve(struct event_base *base, struct api_config *cfg,
                  const char *spec, bool announce, struct api_server **out);
int cli_api_start(struct cli_api *a, struct event_base *base);
void cli_api_stop(struct cli_api *a);

int cli_cmd_transfer(const struct cli_opts *o);
int cli_cmd_dlq(const struct cli_opts *o, const char *action);
int cli_cmd_status(const struct cli_opts *o);
int cli_cmd_verify(const struct cli_opts *o);
int cli_verify_star(const struct cli_opts *o); /* DST star://... */
/* fn(arg, sub) for each entry of ROOT/rel (sub: rel/name, "" rel for the
 * root); -1 when that directory cannot be read. */
int cli_each_entry(const char *root, const char *rel,
                   void (*fn)(void *arg, const char *sub), void *arg);

struct sched_dest_config;
/* star://HOST[:PORT]/PATH into d (kind, host copied into host, port,
 * prefix pointing into url); ORBIT_EINVAL when malformed. */
int cli_parse_star_url(const char *url, struct sched_dest_config *d, char *host,
                       size_t hostcap);
/* The token of --token-file or ORBIT_TOKEN (a message on failure). */
int cli_load_token(const struct cli_opts *o, uint8_t *buf, size_t cap,
                   size_t *len);
int cli_cmd_demo(const struct cli_opts *o, const char *self);
int cli_cmd_serve(const struct cli_opts *o);
int cli_submit_via(const struct cli_opts *o, size_t nsrc);

#endif
