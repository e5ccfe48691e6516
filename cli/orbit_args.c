#include "orbit_cli.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "orbit/error.h"

static const char usage_text[] =
    "usage: orbit <command> [options]\n"
    "\n"
    "commands:\n"
    "  copy SRC... DST        copy files and trees to DST\n"
    "  sync SRC DST           make DST match SRC, sending only changes\n"
    "  dlq list|retry|purge   show, retry or forget dead letters\n"
    "  status [JOB]           show jobs from the journal\n"
    "  verify SRC DST         compare SRC and DST (a directory or star://)\n"
    "                         by digest\n"
    "  demo                   copy a generated sample tree and report\n"
    "  serve --api ADDR:PORT  the control plane: HTTP API, submitted jobs\n"
    "\n"
    "DST is a local path (served by an in-process star) or\n"
    "star://HOST[:PORT]/PATH (token from --token-file or ORBIT_TOKEN).\n"
    "\n"
    "options:\n"
    "  -n, --dry-run          show what would be sent, send nothing\n"
    "      --to DST           also send to DST (repeatable, up to 7)\n"
    "      --delete           sync: delete files at DST that SRC lacks\n"
    "  -c, --checksum         sync: compare by content, not size and mtime\n"
    "      --include GLOB     only take matching paths (repeatable)\n"
    "      --exclude GLOB     skip matching paths (repeatable; wins)\n"
    "      --compress MODE    auto (default: zstd for a star on another\n"
    "                         host), none, zstd or zstd:LEVEL\n"
    "      --bwlimit RATE     bytes per second, with K/M/G suffixes\n"
    "  -j, --jobs N           reader/hasher threads (default 2)\n"
    "      --retries N        attempts before a dead letter (default 5)\n"
    "      --reconnect-wait SECONDS  how long files wait for a lost star\n"
    "                         to come back before their retries run\n"
    "                         (default 20, 0 .. 86400)\n"
    "      --chunk-size SIZE  average chunk size, power of two (64K;\n"
    "                         files under 1 MiB use an eighth of it)\n"
    "      --prioritize LIST  order of files, e.g. smallest,oldest\n"
    "      --token-file F     shared token for star:// destinations\n"
    "      --state-dir DIR    journal location ($ORBIT_STATE_DIR,\n"
    "                         default ~/.local/state/orbit)\n"
    "      --job ID           dlq/status: only this job\n"
    "      --json             NDJSON events on stdout, no progress line\n"
    "      --api ADDR:PORT    serve the HTTP API during the job (or for\n"
    "                         serve); ORBIT_API_TOKEN off loopback\n"
    "      --via URL          submit the job to `orbit serve` at URL\n"
    "  -q, --quiet            only errors and the exit code\n"
    "  -v, --verbose          one line per file\n"
    "  -h, --help             this text\n"
    "  -V, --version          print the version\n"
    "\n"
    "examples:\n"
    "  orbit copy ~/datasets /mnt/backup/datasets\n"
    "  orbit sync --delete build/ star://10.0.0.5/builds --token-file tok\n"
    "  orbit copy --exclude '*.o' --bwlimit 50M src star://host:7070/src\n"
    "  orbit dlq list --job 3f2a9c\n"
    "\n"
    "exit codes:\n"
    "  0  all done\n"
    "  1  fatal error: the job could not run or was aborted\n"
    "  2  bad usage\n"
    "  3  partial success: some items are dead letters (see the report,\n"
    "     `orbit dlq list`, and `orbit dlq retry` once fixed)\n";

void
cli_usage(const char *command, int to_stderr)
{
    (void)command;
    fputs(usage_text, to_stderr ? stderr : stdout);
}

int
cli_parse_size(const char *s, uint64_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || s[0] == '-')
        return ORBIT_EINVAL;
    uint64_t mul = 1;
    switch (*end) {
    case '\0':
        break;
    case 'k':
    case 'K':
        mul = 1024;
        break;
    case 'm':
    case 'M':
        mul = 1024 * 1024;
        break;
    case 'g':
    case 'G':
        mul = 1024ULL * 1024 * 1024;
        break;
    default:
        return ORBIT_EINVAL;
    }
    if (*end != '\0' && end[1] != '\0' && strcmp(end + 1, "iB") != 0 &&
        strcmp(end + 1, "B") != 0)
        return ORBIT_EINVAL;
    if (v > UINT64_MAX / mul)
        return ORBIT_EINVAL;
    *out = (uint64_t)v * mul;
    return 0;
}

static int
parse_compress(const char *s, int *level)
{
    if (strcmp(s, "auto") == 0) {
        *level = -1;
        return 0;
    }
    if (strcmp(s, "none") == 0) {
        *level = 0;
        return 0;
    }
    if (strcmp(s, "zstd") == 0) {
        *level = 3;
        return 0;
    }
    if (strncmp(s, "zstd:", 5) == 0) {
        char *end = NULL;
        long v = strtol(s + 5, &end, 10);
        if (end == s + 5 || *end != '\0' || v < 1 || v > 19)
            return ORBIT_EINVAL;
        *level = (int)v;
        return 0;
    }
    return ORBIT_EINVAL;
}

static int
parse_uint(const char *s, unsigned lo, unsigned hi, unsigned *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < (long)lo || v > (long)hi)
        return ORBIT_EINVAL;
    *out = (unsigned)v;
    return 0;
}

enum {
    OPT_DELETE = 256,
    OPT_INCLUDE,
    OPT_EXCLUDE,
    OPT_COMPRESS,
    OPT_BWLIMIT,
    OPT_RETRIES,
    OPT_RECONNECT_WAIT,
    OPT_CHUNK,
    OPT_TOKEN,
    OPT_STATE,
    OPT_JOB,
    OPT_JSON,
    OPT_PRIO,
    OPT_API,
    OPT_TO,
    OPT_VIA,
};

static const struct option long_opts[] = {
    {"dry-run", no_argument, NULL, 'n'},
    {"delete", no_argument, NULL, OPT_DELETE},
    {"checksum", no_argument, NULL, 'c'},
    {"include", required_argument, NULL, OPT_INCLUDE},
    {"exclude", required_argument, NULL, OPT_EXCLUDE},
    {"compress", required_argument, NULL, OPT_COMPRESS},
    {"bwlimit", required_argument, NULL, OPT_BWLIMIT},
    {"jobs", required_argument, NULL, 'j'},
    {"retries", required_argument, NULL, OPT_RETRIES},
    {"reconnect-wait", required_argument, NULL, OPT_RECONNECT_WAIT},
    {"chunk-size", required_argument, NULL, OPT_CHUNK},
    {"prioritize", required_argument, NULL, OPT_PRIO},
    {"token-file", required_argument, NULL, OPT_TOKEN},
    {"state-dir", required_argument, NULL, OPT_STATE},
    {"job", required_argument, NULL, OPT_JOB},
    {"api", required_argument, NULL, OPT_API},
    {"to", required_argument, NULL, OPT_TO},
    {"via", required_argument, NULL, OPT_VIA},
    {"json", no_argument, NULL, OPT_JSON},
    {"quiet", no_argument, NULL, 'q'},
    {"verbose", no_argument, NULL, 'v'},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};

static int
bad(const char *what, const char *value)
{
    fprintf(stderr, "orbit: invalid %s '%s' (see orbit --help)\n", what, value);
    return ORBIT_EINVAL;
}

static int
push_pattern(const char **arr, size_t *n, const char *p)
{
    if (*n >= CLI_MAX_PATTERNS) {
        fprintf(stderr, "orbit: at most %d include/exclude patterns\n",
                CLI_MAX_PATTERNS);
        return ORBIT_EINVAL;
    }
    arr[(*n)++] = p;
    return 0;
}

static int
apply_opt(int c, const char *arg, struct cli_opts *o)
{
    uint64_t sz = 0;
    switch (c) {
    case 'n':
        o->dry_run = true;
        return 0;
    case OPT_DELETE:
        o->delete_extraneous = true;
        return 0;
    case 'c':
        o->checksum = true;
        return 0;
    case OPT_INCLUDE:
        return push_pattern(o->includes, &o->nincludes, arg);
    case OPT_EXCLUDE:
        return push_pattern(o->excludes, &o->nexcludes, arg);
    case OPT_COMPRESS:
        o->compress_arg = arg;
        return parse_compress(arg, &o->compress_level) ? bad("--compress", arg)
                                                       : 0;
    case OPT_BWLIMIT:
        o->bwlimit_arg = arg;
        if (cli_parse_size(arg, &o->bwlimit) != 0)
            return bad("--bwlimit", arg);
        return 0;
    case 'j':
        o->jobs_arg = arg;
        return parse_uint(arg, 1, 64, &o->jobs) ? bad("--jobs", arg) : 0;
    case OPT_RETRIES:
        o->retries_arg = arg;
        return parse_uint(arg, 0, 100, &o->retries) ? bad("--retries", arg) : 0;
    case OPT_RECONNECT_WAIT:
        o->reconnect_wait_arg = arg;
        return parse_uint(arg, 0, 86400, &o->reconnect_wait)
                   ? bad("--reconnect-wait", arg)
                   : 0;
    case OPT_CHUNK:
        o->chunk_arg = arg;
        if (cli_parse_size(arg, &sz) != 0 || sz < 1024 ||
            sz > 4 * 1024 * 1024 || (sz & (sz - 1)) != 0)
            return bad("--chunk-size (a power of two, 1K to 4M)", arg);
        o->chunk_avg = (uint32_t)sz;
        return 0;
    case OPT_PRIO:
        o->prioritize = arg;
        return 0;
    case OPT_TOKEN:
        o->token_file = arg;
        return 0;
    case OPT_STATE:
        o->state_dir = arg;
        return 0;
    case OPT_JOB:
        o->job_id = arg;
        return 0;
    case OPT_API:
        o->api = arg;
        return 0;
    case OPT_VIA:
        o->via = arg;
        return 0;
    case OPT_TO:
        if (o->nextra_dests == sizeof o->extra_dests / sizeof o->extra_dests[0])
            return bad("--to (at most 7 more destinations)", arg);
        o->extra_dests[o->nextra_dests++] = arg;
        return 0;
    case OPT_JSON:
        o->json = true;
        return 0;
    case 'q':
        o->quiet = true;
        return 0;
    case 'v':
        o->verbose++;
        return 0;
    default:
        return ORBIT_EINVAL;
    }
}

/*
 * Parses argv into o. Returns 0, 1 when --help or --version was handled
 * (the caller exits 0), or ORBIT_EINVAL after printing what is wrong.
 */
int
cli_parse_args(int argc, char **argv, struct cli_opts *o)
{
    memset(o, 0, sizeof *o);
    o->compress_level = -1;
    o->jobs = 2;
    o->retries = 5;
    o->reconnect_wait = 20;
    o->chunk_avg = 64 * 1024;
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "ncj:qvhV", long_opts, NULL)) != -1) {
        if (c == 'h') {
            cli_usage(NULL, 0);
            return 1;
        }
        if (c == 'V') {
            printf("orbit %s\n", ORBIT_VERSION);
            return 1;
        }
        if (c == '?' || c == ':') {
            fprintf(stderr, "orbit: unknown or incomplete option '%s'\n",
                    argv[optind - 1]);
            return ORBIT_EINVAL;
        }
        if (apply_opt(c, optarg, o) != 0)
            return ORBIT_EINVAL;
    }
    /* getopt_long permutes argv, so options may stand anywhere. */
    if (optind >= argc) {
        cli_usage(NULL, 1);
        return ORBIT_EINVAL;
    }
    o->command = argv[optind++];
    for (; optind < argc; optind++) {
        if (o->nsources >= CLI_MAX_SOURCES) {
            fprintf(stderr, "orbit: at most %d operands\n", CLI_MAX_SOURCES);
            return ORBIT_EINVAL;
        }
        o->sources[o->nsources++] = argv[optind];
    }
    return 0;
}
