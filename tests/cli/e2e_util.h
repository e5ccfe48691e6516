/*
 * e2e_util.h - helpers for the end-to-end tests of the `orbit` and
 * `orbit-star` executables: a temporary workspace, running the binaries,
 * generating trees, comparing trees, and reading the final report.
 *
 * Every helper asserts (Criterion) on the failures it cannot recover from,
 * so a test reads as a sequence of steps.
 */
#ifndef E2E_UTIL_H
#define E2E_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define E2E_ORBIT ORBIT_BIN_DIR "/cli/orbit"
#define E2E_STAR  ORBIT_BIN_DIR "/cli/orbit-star"

#define E2E_PATH 512

/* A temporary directory holding src/, dst/, state/ and the run outputs. */
struct e2e {
    char dir[E2E_PATH];
    char src[E2E_PATH];
    char dst[E2E_PATH];
    char state[E2E_PATH];
    char src_slash[E2E_PATH + 2]; /* src with a trailing '/' */
    unsigned nruns;
    bool no_dac;           /* root: run orbit without CAP_DAC_* (modes apply) */
    const char *cwd;       /* working directory of the runs, NULL: inherited */
    const char *token_env; /* ORBIT_TOKEN of the runs, NULL: unset */
    pid_t live[8];         /* children to kill at teardown if still running */
};

void e2e_setup(struct e2e *t);
void e2e_teardown(struct e2e *t);

/* The workspace of the running test (each test runs in its own process),
 * and the .init / .fini a TestSuite gives to set it up and remove it. */
extern struct e2e e2e_current;
void e2e_suite_init(void);
void e2e_suite_fini(void);

/* buf = t->dir "/" rel (rel formatted). */
const char *e2e_path(const struct e2e *t, char *buf, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A finished (or running) process and what it wrote. */
struct e2e_proc {
    pid_t pid;
    int code; /* exit status, or 128 + signal */
    char out_path[E2E_PATH];
    char err_path[E2E_PATH];
    char *out; /* stdout, NUL-terminated, after e2e_wait */
    char *err; /* stderr, NUL-terminated, after e2e_wait */
};

/* Start `orbit ARGS...` (NULL-terminated, argv[0] included) in the
 * background; an absolute argv[0] names another executable. */
void e2e_spawn(struct e2e *t, struct e2e_proc *p, const char *const *argv);
/* Wait at most timeout_s for it; SIGKILL and fail the test past that. */
void e2e_wait(struct e2e_proc *p, int timeout_s);
void e2e_proc_free(struct e2e_proc *p);

/* Run argv (argv[0] "orbit") on a pseudo-terminal to its end (60 s at
 * most); *out gets everything it wrote there. Returns its exit code. */
int e2e_orbit_pty(struct e2e *t, const char *const *argv, char **out);

/* Run `orbit ARGS...` to its end (60 s at most); returns its exit code. */
int e2e_orbit(struct e2e *t, struct e2e_proc *p, ...);
#define E2E_ORBIT_RUN(t, p, ...) e2e_orbit((t), (p), __VA_ARGS__, (char *)NULL)
/* Run `orbit ARGS...` and require exit 0 (the output is shown if not). */
void e2e_orbit_ok(struct e2e *t, ...);
#define E2E_ORBIT_OK(t, ...) e2e_orbit_ok((t), __VA_ARGS__, (char *)NULL)

/* ---- files ---- */

void e2e_fill(uint8_t *buf, size_t len, uint64_t seed);
void e2e_write_file(const char *path, size_t size, uint64_t seed, mode_t mode,
                    time_t mtime);
void e2e_write_bytes(const char *path, const void *data, size_t len);
void e2e_mkdir(const char *path, mode_t mode);
/* root/rel: a directory when size is E2E_DIR, else a file of size bytes
 * (contents from seed, mtime 1500000000). */
#define E2E_DIR ((size_t)-1)
void e2e_put(const char *root, const char *rel, size_t size, uint64_t seed,
             mode_t mode);
void e2e_set_mtime(const char *path, time_t sec, long nsec, bool nofollow);
uint8_t *e2e_read_all(const char *path, size_t *len);
bool e2e_exists(const char *path);
/* Bytes allocated on disk under dir (st_blocks), recursively. */
uint64_t e2e_disk_usage(const char *dir);

/* What e2e_make_tree made. */
struct e2e_tree {
    unsigned files; /* regular files */
    unsigned dirs;  /* directories below the root */
    unsigned links; /* symbolic links */
    uint64_t bytes; /* bytes of regular files */
    char big[64];   /* relative path of the several-MiB file */
    char dup_a[64]; /* two files with identical contents */
    char dup_b[64];
    char link[64]; /* a relative symlink to a file */
    char empty_dir[64];
};

/* A deterministic tree of nfiles files in nested directories, with empty
 * files, an empty directory, symlinks, a file of big_size bytes and a
 * duplicate file; modes and mtimes vary. */
void e2e_make_tree(const char *root, unsigned nfiles, size_t big_size,
                   struct e2e_tree *out);

/* Add SRC/bad/: ok.txt, secret.bin (mode 000) and locked/ (mode 000, with
 * inside.txt). Root reads anything, so as root orbit then runs without the
 * capabilities that bypass file modes. */
void e2e_add_unreadable(struct e2e *t);

enum {
    E2E_CMP_DIR_MTIME = 1, /* compare directory mtimes too */
    E2E_CMP_NO_EXTRA = 2,  /* DST may hold nothing SRC lacks */
    E2E_CMP_QUIET = 4,     /* a difference is expected: do not log it */
};

/* Compare SRC and DST: type, content byte for byte, mode, mtime (to the
 * second), symlink targets. DST's top-level .orbit is ignored. Logs every
 * difference and returns how many there were. skip: a relative path of
 * SRC not to compare (or NULL). */
unsigned e2e_compare_trees(const char *src, const char *dst, int flags,
                           const char *skip);

/* ---- the final report ---- */

struct e2e_report {
    bool found;
    uint64_t files_sent, files_unchanged, files_dead, files_seen;
    uint64_t files_kept; /* "N kept in place" (sync by digest), 0 if absent */
    uint64_t bytes_read, bytes_sent, bytes_chunks, bytes_dedup;
};

/* Parse the "files:" and "bytes:" lines of `orbit copy|sync` output. */
struct e2e_report e2e_report(const char *out);

/* ---- orbit-star ---- */

/* The shared token e2e_star_start writes to the star's token file. */
#define E2E_TOKEN "e2e-shared-token-5b1c0f7d9a"

struct e2e_star {
    pid_t pid;
    uint16_t port;
    const char *extra[6]; /* more orbit-star arguments, NULL-ended */
    char root[E2E_PATH];
    char token_file[E2E_PATH];
    char log[E2E_PATH];
    unsigned starts;
};

/* Create root and token file under t (once), then start `orbit-star`
 * listening on 127.0.0.1:port (0: any free port, read back from its log). */
void e2e_star_start(struct e2e *t, struct e2e_star *s, uint16_t port);
/* SIGTERM, wait, expect exit 0. */
void e2e_star_stop(struct e2e_star *s);
/* SIGKILL and reap. */
void e2e_star_kill(struct e2e_star *s);
/* A port on 127.0.0.1 that nothing listens on (bound, then closed). */
uint16_t e2e_free_port(void);

/* Sleep ms milliseconds. */
void e2e_nap_ms(long ms);

/* GET path from 127.0.0.1:port: the response body (malloc'd), or NULL when
 * nothing listens there. */
char *e2e_http_get(uint16_t port, const char *path);
/* Poll GET /api/jobs/ID until its state is `want` (malloc'd body); fails
 * the test at once if the job ends in another state, or after `seconds`,
 * with the last answer and the job's log. */
char *e2e_wait_job(const struct e2e *t, uint16_t port, const char *id,
                   const char *want, int seconds);

/* Start `orbit serve --api 127.0.0.1:PORT --state-dir STATE` and wait until
 * it answers /healthz. */
void e2e_serve_start(struct e2e *t, struct e2e_proc *p, uint16_t port);

#endif
