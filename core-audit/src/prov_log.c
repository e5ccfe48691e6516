/*
 * prov_log.c - the JSON Lines provenance logger: append, flush policy,
 * size-based rotation.
 */
#include "orbit/provenance.h"

#include "orbit/error.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct prov_log {
    pthread_mutex_t mu;
    struct prov_log_opts opts; /* opts.path points at path */
    char *path;
    FILE *fp;         /* NULL after a failed reopen; retried on write */
    uint64_t size;    /* bytes in the live file, buffered ones included */
    uint32_t pending; /* events written since the last flush */
};

static int
errno_code(void)
{
    return orbit_err_from_errno(errno);
}

/*
 * If the file's last byte is not a newline, a crash cut the last write
 * short: end that line so the next event is not glued to it (the reader then
 * reports the torn line as malformed instead of losing the new event).
 */
static int
end_torn_line(int fd, off_t size)
{
    char last;
    if (size == 0)
        return 0;
    if (pread(fd, &last, 1, size - 1) != 1)
        return errno_code();
    if (last == '\n')
        return 0;
    return write(fd, "\n", 1) == 1 ? 0 : errno_code();
}

static int
log_open_file(struct prov_log *log)
{
    const int fd =
        open(log->path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return errno_code();
    struct stat st;
    int rc = fstat(fd, &st) == 0 ? 0 : errno_code();
    if (rc == 0)
        rc = end_torn_line(fd, st.st_size);
    if (rc == 0 && fstat(fd, &st) != 0)
        rc = errno_code();
    if (rc < 0) {
        close(fd);
        return rc;
    }
    log->fp = fdopen(fd, "a");
    if (!log->fp) {
        rc = errno_code();
        close(fd);
        return rc;
    }
    log->size = (uint64_t)st.st_size;
    return 0;
}

static int
log_flush_locked(struct prov_log *log)
{
    log->pending = 0;
    if (!log->fp)
        return 0;
    if (fflush(log->fp) != 0)
        return errno_code();
    if (log->opts.fsync && fsync(fileno(log->fp)) != 0)
        return errno_code();
    return 0;
}

/* Make a rename durable: fsync the directory holding the log. */
static int
sync_dir(const char *path)
{
    char *copy = strdup(path);
    if (!copy)
        return ORBIT_ENOMEM;
    const int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(copy);
    if (fd < 0)
        return errno_code();
    const int rc = fsync(fd) == 0 ? 0 : errno_code();
    close(fd);
    return rc;
}

/* path.(i-1) -> path.i for i = max_files-1 .. 1; the oldest is overwritten. */
static int
shift_files(const struct prov_log *log)
{
    const size_t cap = strlen(log->path) + 16;
    char *src = malloc(cap), *dst = malloc(cap);
    int rc = src && dst ? 0 : ORBIT_ENOMEM;
    for (uint32_t i = log->opts.max_files - 1; i >= 1 && rc == 0; i--) {
        snprintf(dst, cap, "%s.%u", log->path, i);
        if (i == 1)
            snprintf(src, cap, "%s", log->path);
        else
            snprintf(src, cap, "%s.%u", log->path, i - 1);
        if (rename(src, dst) != 0 && errno != ENOENT)
            rc = errno_code();
    }
    free(src);
    free(dst);
    return rc;
}

static int
log_rotate_locked(struct prov_log *log)
{
    int rc = log_flush_locked(log);
    if (log->fp && fclose(log->fp) != 0 && rc == 0)
        rc = errno_code();
    log->fp = NULL;
    if (rc < 0)
        return rc;
    if (log->opts.max_files <= 1)
        rc = unlink(log->path) == 0 || errno == ENOENT ? 0 : errno_code();
    else
        rc = shift_files(log);
    if (rc == 0 && log->opts.fsync)
        rc = sync_dir(log->path);
    if (rc == 0)
        rc = log_open_file(log);
    return rc;
}

int
prov_log_new(const struct prov_log_opts *opts, struct prov_log **out)
{
    if (!opts || !out || !opts->path || !*opts->path ||
        (opts->flush == PROV_FLUSH_BATCH && opts->flush_every == 0) ||
        (unsigned)opts->flush > PROV_FLUSH_MANUAL)
        return ORBIT_EINVAL;
    struct prov_log *log = calloc(1, sizeof *log);
    if (!log)
        return ORBIT_ENOMEM;
    log->opts = *opts;
    if (log->opts.max_files == 0)
        log->opts.max_files = 1;
    log->path = strdup(opts->path);
    log->opts.path = log->path;
    int rc = log->path ? 0 : ORBIT_ENOMEM;
    if (rc == 0)
        rc = log_open_file(log);
    if (rc < 0) {
        free(log->path);
        free(log);
        return rc;
    }
    pthread_mutex_init(&log->mu, NULL);
    *out = log;
    return 0;
}

void
prov_log_free(struct prov_log *log)
{
    if (!log)
        return;
    (void)log_flush_locked(log);
    if (log->fp)
        fclose(log->fp);
    pthread_mutex_destroy(&log->mu);
    free(log->path);
    free(log);
}

static int
log_append_locked(struct prov_log *log, const char *line, size_t len)
{
    int rc = 0;
    if (log->opts.rotate_bytes && log->size > 0 &&
        log->size + len > log->opts.rotate_bytes)
        rc = log_rotate_locked(log);
    if (rc == 0 && !log->fp)
        rc = log_open_file(log);
    if (rc < 0)
        return rc;
    if (fwrite(line, 1, len, log->fp) != len)
        return errno_code();
    log->size += len;
    log->pending++;
    if (log->opts.flush == PROV_FLUSH_EVERY ||
        (log->opts.flush == PROV_FLUSH_BATCH &&
         log->pending >= log->opts.flush_every))
        rc = log_flush_locked(log);
    return rc;
}

int
prov_log_write(struct prov_log *log, const struct prov_event *ev)
{
    if (!log || !ev)
        return ORBIT_EINVAL;
    char *json = NULL;
    size_t len = 0;
    int rc = prov_event_to_json(ev, &json, &len);
    if (rc < 0)
        return rc;
    /* Encode outside the lock; the line and its newline go out in one
     * buffered write so a crash can only tear the last line. */
    json[len] = '\n';
    pthread_mutex_lock(&log->mu);
    rc = log_append_locked(log, json, len + 1);
    pthread_mutex_unlock(&log->mu);
    free(json);
    return rc;
}

int
prov_log_flush(struct prov_log *log)
{
    if (!log)
        return ORBIT_EINVAL;
    pthread_mutex_lock(&log->mu);
    const int rc = log_flush_locked(log);
    pthread_mutex_unlock(&log->mu);
    return rc;
}

uint64_t
prov_log_size(struct prov_log *log)
{
    pthread_mutex_lock(&log->mu);
    const uint64_t size = log->size;
    pthread_mutex_unlock(&log->mu);
    return size;
}
