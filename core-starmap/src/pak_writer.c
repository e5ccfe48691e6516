#include "orbit/pak.h"

#include "orbit/error.h"
#include "starmap_alloc.h"
#include "pak_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

struct pak_writer {
    int fd;
    char name[256];
    char err[PAK_ERRMSG_LEN];
    struct pak_sync_policy sync;
    uint64_t size;     /* offset of the next record */
    uint64_t records;  /* whole records in the container */
    uint64_t unsynced; /* bytes appended since the last sync */
};

static const char no_writer[] = "no container writer";

static int
create_container(struct pak_writer *w, const char *path)
{
    uint8_t h[PAK_FILE_HEADER_LEN];
    pak_file_header_encode(h);
    int rc = pak_write_full(w->fd, h, sizeof h, 0);
    if (rc == 0 && fdatasync(w->fd) != 0)
        rc = orbit_err_from_errno(errno);
    if (rc == 0)
        rc = pak_sync_parent_dir(path);
    if (rc != 0)
        pak_set_err(w->err, w->name, 0, "create: %s", orbit_strerror(rc));
    w->size = PAK_FILE_HEADER_LEN;
    return rc;
}

/* Find the end of the last whole record; cut a torn tail off. */
static int
resume_container(struct pak_writer *w, const char *path)
{
    struct pak_scanner *s = NULL;
    struct pak_record_info info;
    int rc = pak_scanner_open_fd(w->fd, path, false, &s);
    if (rc != 0)
        return rc;
    while ((rc = pak_scanner_next(s, &info)) == 0)
        w->records++;
    w->size = pak_scanner_offset(s);
    if (rc == ORBIT_ENOENT) {
        rc = 0;
    } else if (rc == ORBIT_ETRUNC && w->size >= PAK_FILE_HEADER_LEN) {
        /* A torn tail: whatever follows the last whole record goes. */
        rc = ftruncate(w->fd, (off_t)w->size) == 0 && fdatasync(w->fd) == 0
                 ? 0
                 : orbit_err_from_errno(errno);
    } else {
        snprintf(w->err, sizeof w->err, "%s", pak_scanner_errmsg(s));
    }
    pak_scanner_free(s);
    return rc;
}

int
pak_writer_open(const char *path, const struct pak_sync_policy *sync,
                struct pak_writer **out)
{
    if (!path || !out)
        return ORBIT_EINVAL;
    *out = NULL;
    if (sync && sync->mode != PAK_SYNC_EXPLICIT &&
        sync->mode != PAK_SYNC_EVERY_RECORD &&
        sync->mode != PAK_SYNC_EVERY_BYTES)
        return ORBIT_EINVAL;
    struct pak_writer *w = starmap_calloc(1, sizeof *w);
    if (!w)
        return ORBIT_ENOMEM;
    const char *slash = strrchr(path, '/');
    snprintf(w->name, sizeof w->name, "%s", slash ? slash + 1 : path);
    if (sync)
        w->sync = *sync;
    int rc = 0;
    w->fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (w->fd >= 0) {
        rc = create_container(w, path);
    } else if (errno == EEXIST) {
        w->fd = open(path, O_RDWR | O_CLOEXEC);
        rc = w->fd >= 0 ? resume_container(w, path)
                        : orbit_err_from_errno(errno);
    } else {
        rc = orbit_err_from_errno(errno);
    }
    if (rc != 0) {
        pak_writer_free(w);
        return rc;
    }
    *out = w;
    return 0;
}

void
pak_writer_free(struct pak_writer *w)
{
    if (!w)
        return;
    if (w->fd >= 0)
        close(w->fd);
    free(w);
}

int
pak_writer_sync(struct pak_writer *w)
{
    if (!w)
        return ORBIT_EINVAL;
    if (w->unsynced == 0)
        return 0;
    if (fdatasync(w->fd) != 0) {
        int rc = orbit_err_from_errno(errno);
        pak_set_err(w->err, w->name, w->size, "fdatasync: %s", strerror(errno));
        return rc;
    }
    w->unsynced = 0;
    return 0;
}

static int
write_record(struct pak_writer *w, const uint8_t *hdr, const void *stored,
             size_t stored_len)
{
    const uint8_t *body = stored;
    size_t want = PAK_REC_HEADER_LEN + stored_len, done = 0;
    while (done < want) {
        struct iovec iov[2];
        int cnt = 1;
        if (done < PAK_REC_HEADER_LEN) {
            iov[0] =
                (struct iovec){(void *)(hdr + done), PAK_REC_HEADER_LEN - done};
            iov[1] = (struct iovec){(void *)body, stored_len};
            cnt = stored_len ? 2 : 1;
        } else {
            iov[0] = (struct iovec){(void *)(body + done - PAK_REC_HEADER_LEN),
                                    want - done};
        }
        ssize_t n = pwritev(w->fd, iov, cnt, (off_t)(w->size + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return orbit_err_from_errno(errno);
        if (n == 0)
            return ORBIT_ENOSPC;
        done += (size_t)n;
    }
    return 0;
}

int
pak_writer_append(struct pak_writer *w, const struct chunk_id *id,
                  uint8_t codec, size_t raw_len, const void *stored,
                  size_t stored_len, uint64_t *offset)
{
    uint8_t hdr[PAK_REC_HEADER_LEN];
    if (!w || !id || !offset || (!stored && stored_len))
        return ORBIT_EINVAL;
    if (raw_len > UINT32_MAX || stored_len > UINT32_MAX)
        return ORBIT_ETOOBIG;
    struct pak_record_info info = {.id = *id,
                                   .raw_len = (uint32_t)raw_len,
                                   .stored_len = (uint32_t)stored_len,
                                   .codec = codec};
    int rc = pak_record_header_encode(&info, hdr);
    if (rc != 0) {
        pak_set_err(w->err, w->name, w->size, "append: invalid record (%s)",
                    orbit_strerror(rc));
        return rc;
    }
    rc = write_record(w, hdr, stored, stored_len);
    if (rc != 0) {
        pak_set_err(w->err, w->name, w->size, "append: %s", orbit_strerror(rc));
        /* Never leave a torn record in front of the next one. */
        if (ftruncate(w->fd, (off_t)w->size) != 0)
            rc = ORBIT_EIO;
        return rc;
    }
    *offset = w->size;
    w->size += PAK_REC_HEADER_LEN + stored_len;
    w->records++;
    w->unsynced += PAK_REC_HEADER_LEN + stored_len;
    if (w->sync.mode == PAK_SYNC_EVERY_RECORD ||
        (w->sync.mode == PAK_SYNC_EVERY_BYTES &&
         w->unsynced >= w->sync.every_bytes))
        return pak_writer_sync(w);
    return 0;
}

uint64_t
pak_writer_size(const struct pak_writer *w)
{
    return w ? w->size : 0;
}

uint64_t
pak_writer_records(const struct pak_writer *w)
{
    return w ? w->records : 0;
}

const char *
pak_writer_errmsg(const struct pak_writer *w)
{
    return w ? w->err : no_writer;
}
