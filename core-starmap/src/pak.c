#include "orbit/pak.h"

#include "orbit/chunk_codec.h"
#include "orbit/error.h"
#include "starmap_alloc.h"
#include "pak_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

static const uint8_t file_magic[8] = {'O', 'R', 'B', 'I', 'T', 'P', 'A', 'K'};
static const uint8_t rec_magic[4] = {'O', 'R', 'B', 'R'};

/* ---- little-endian fields -------------------------------------------- */

static void
put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void
put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint16_t
get_u16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t
get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

/* ---- shared helpers --------------------------------------------------- */

void
pak_set_err(char *buf, const char *name, uint64_t offset, const char *fmt, ...)
{
    char msg[PAK_ERRMSG_LEN / 2];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(buf, PAK_ERRMSG_LEN, "%s: offset %llu: %s", name,
             (unsigned long long)offset, msg);
}

int
pak_pread_full(int fd, void *buf, size_t len, uint64_t off)
{
    uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = pread(fd, p, len, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return orbit_err_from_errno(errno);
        if (n == 0)
            return ORBIT_ETRUNC;
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return 0;
}

int
pak_write_full(int fd, const void *buf, size_t len, uint64_t off)
{
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = pwrite(fd, p, len, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return orbit_err_from_errno(errno);
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return 0;
}

int
pak_sync_parent_dir(const char *path)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    if (!slash) {
        strcpy(dir, ".");
    } else {
        size_t n = (size_t)(slash - path);
        if (n == 0)
            n = 1;
        if (n >= sizeof dir)
            return ORBIT_ETOOBIG;
        memcpy(dir, path, n);
        dir[n] = '\0';
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return orbit_err_from_errno(errno);
    int rc = fsync(fd) == 0 ? 0 : orbit_err_from_errno(errno);
    close(fd);
    return rc;
}

static const char *
base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* ---- format ------------------------------------------------------------ */

void
pak_file_header_encode(uint8_t *out)
{
    memcpy(out, file_magic, 8);
    put_u16(out + 8, PAK_VERSION);
    put_u16(out + 10, 0);
    put_u32(out + 12, pak_crc32c(0, out, 12));
}

int
pak_file_header_parse(const void *buf, size_t len)
{
    const uint8_t *p = buf;
    if (!buf)
        return ORBIT_EINVAL;
    if (len < PAK_FILE_HEADER_LEN)
        return ORBIT_ETRUNC;
    if (memcmp(p, file_magic, 8) != 0)
        return ORBIT_EFORMAT;
    if (get_u32(p + 12) != pak_crc32c(0, p, 12))
        return ORBIT_ECORRUPT;
    if (get_u16(p + 8) != PAK_VERSION)
        return ORBIT_EVERSION;
    if (get_u16(p + 10) != 0)
        return ORBIT_EFORMAT;
    return 0;
}

static int
check_fields(uint8_t codec, uint64_t raw_len, uint64_t stored_len)
{
    if (codec != CHUNK_CODEC_RAW && codec != CHUNK_CODEC_ZSTD)
        return ORBIT_EFORMAT;
    if (raw_len > CHUNK_CODEC_MAX_RAW)
        return ORBIT_ETOOBIG;
    if (codec == CHUNK_CODEC_RAW && stored_len != raw_len)
        return ORBIT_EFORMAT;
    if (codec == CHUNK_CODEC_ZSTD &&
        (stored_len == 0 || stored_len > chunk_codec_bound(raw_len)))
        return ORBIT_EFORMAT;
    return 0;
}

int
pak_record_header_encode(const struct pak_record_info *info, uint8_t *out)
{
    if (!info || !out)
        return ORBIT_EINVAL;
    int rc = check_fields(info->codec, info->raw_len, info->stored_len);
    if (rc != 0)
        return rc;
    memcpy(out, rec_magic, 4);
    out[4] = info->codec;
    out[5] = 0;
    put_u16(out + 6, 0);
    put_u32(out + 8, info->raw_len);
    put_u32(out + 12, info->stored_len);
    memcpy(out + 16, info->id.b, CHUNK_ID_LEN);
    put_u32(out + 48, pak_crc32c(0, out, 48));
    return 0;
}

int
pak_record_header_parse(const void *buf, size_t len,
                        struct pak_record_info *info)
{
    const uint8_t *p = buf;
    if (!buf || !info)
        return ORBIT_EINVAL;
    if (len < PAK_REC_HEADER_LEN)
        return ORBIT_ETRUNC;
    if (memcmp(p, rec_magic, 4) != 0)
        return ORBIT_EFORMAT;
    if (get_u32(p + 48) != pak_crc32c(0, p, 48))
        return ORBIT_ECORRUPT;
    if (p[5] != 0 || get_u16(p + 6) != 0)
        return ORBIT_EFORMAT;
    info->codec = p[4];
    info->raw_len = get_u32(p + 8);
    info->stored_len = get_u32(p + 12);
    memcpy(info->id.b, p + 16, CHUNK_ID_LEN);
    return check_fields(info->codec, info->raw_len, info->stored_len);
}

static const char *
field_err(int rc)
{
    switch (rc) {
    case ORBIT_ETRUNC:
        return "truncated";
    case ORBIT_EFORMAT:
        return "bad magic or field";
    case ORBIT_ECORRUPT:
        return "header checksum mismatch";
    case ORBIT_EVERSION:
        return "unsupported version";
    case ORBIT_ETOOBIG:
        return "raw length above the maximum";
    default:
        return orbit_strerror(rc);
    }
}

/* ---- record I/O shared by the reader and the verifying scanner --------- */

struct rec_io {
    int fd;
    char name[256];
    char err[PAK_ERRMSG_LEN];
    uint64_t size; /* file size as last seen */
    uint8_t *buf;  /* stored bytes of the current record */
    size_t cap;
    uint8_t *raw; /* decoded bytes, for the verifying scanner */
    size_t raw_cap;
    struct chunk_codec *codec;
    struct chunk_id_ctx *hash;
};

static void
rec_io_release(struct rec_io *io)
{
    if (io->fd >= 0)
        close(io->fd);
    io->fd = -1;
    free(io->buf);
    free(io->raw);
    chunk_codec_free(io->codec);
    chunk_id_ctx_free(io->hash);
}

static int
refresh_size(struct rec_io *io)
{
    struct stat st;
    if (fstat(io->fd, &st) != 0)
        return orbit_err_from_errno(errno);
    io->size = (uint64_t)st.st_size;
    return 0;
}

static int
rec_io_init(struct rec_io *io, int fd, const char *name)
{
    memset(io, 0, sizeof *io);
    io->fd = fd;
    snprintf(io->name, sizeof io->name, "%s", base_name(name));
    int rc = chunk_codec_new(0, &io->codec);
    if (rc == 0)
        rc = chunk_id_ctx_new(&io->hash);
    if (rc == 0)
        rc = refresh_size(io);
    if (rc != 0) {
        pak_set_err(io->err, io->name, 0, "%s", orbit_strerror(rc));
        return rc;
    }
    uint8_t h[PAK_FILE_HEADER_LEN];
    rc = pak_pread_full(fd, h, sizeof h, 0);
    if (rc == 0)
        rc = pak_file_header_parse(h, sizeof h);
    if (rc != 0)
        pak_set_err(io->err, io->name, 0, "file header: %s", field_err(rc));
    return rc;
}

/* Header at off, with its record wholly inside the file. */
static int
rec_io_header(struct rec_io *io, uint64_t off, struct pak_record_info *info)
{
    uint8_t h[PAK_REC_HEADER_LEN];
    int rc = 0;
    if (off < PAK_FILE_HEADER_LEN || off > (uint64_t)INT64_MAX / 2) {
        pak_set_err(io->err, io->name, off, "offset outside the container");
        return ORBIT_EINVAL;
    }
    if (off + PAK_REC_HEADER_LEN > io->size)
        rc = refresh_size(io);
    if (rc == 0 && off + PAK_REC_HEADER_LEN > io->size)
        rc = ORBIT_ETRUNC;
    if (rc == 0)
        rc = pak_pread_full(io->fd, h, sizeof h, off);
    if (rc == 0)
        rc = pak_record_header_parse(h, sizeof h, info);
    if (rc != 0) {
        pak_set_err(io->err, io->name, off, "record header: %s", field_err(rc));
        return rc;
    }
    info->offset = off;
    uint64_t end = off + PAK_REC_HEADER_LEN + info->stored_len;
    if (end > io->size && (rc = refresh_size(io)) == 0 && end > io->size)
        rc = ORBIT_ETRUNC;
    if (rc != 0)
        pak_set_err(io->err, io->name, off,
                    "record of %u stored bytes: %s (file is %llu bytes)",
                    info->stored_len, field_err(rc),
                    (unsigned long long)io->size);
    return rc;
}

/* Load the stored bytes, decode into dst, verify the id. */
static int
rec_io_body(struct rec_io *io, const struct pak_record_info *info, void *dst,
            size_t dst_cap, const struct chunk_id *expect)
{
    struct chunk_id got;
    int rc = starmap_grow_bytes(&io->buf, &io->cap, info->stored_len);
    if (rc == 0 && dst_cap < info->raw_len)
        rc = ORBIT_EFULL;
    if (rc == 0)
        rc = pak_pread_full(io->fd, io->buf, info->stored_len,
                            info->offset + PAK_REC_HEADER_LEN);
    if (rc == 0)
        rc = chunk_codec_decode(io->codec, info->codec, io->buf,
                                info->stored_len, dst, info->raw_len);
    if (rc == 0)
        rc = chunk_id_ctx_compute(io->hash, dst, info->raw_len, &got);
    if (rc == 0 && (!chunk_id_equal(&got, &info->id) ||
                    (expect && !chunk_id_equal(&got, expect))))
        rc = ORBIT_ECORRUPT;
    if (rc != 0) {
        char hex[CHUNK_ID_HEX_LEN + 1];
        chunk_id_to_hex(expect ? expect : &info->id, hex);
        pak_set_err(io->err, io->name, info->offset, "chunk %s: %s%s", hex,
                    rc == ORBIT_ECORRUPT ? "bytes do not match the chunk id"
                                         : orbit_strerror(rc),
                    rc == ORBIT_EFULL ? " (buffer too small)" : "");
    }
    return rc;
}

static int
open_ro(const char *path, char *err, int *fd)
{
    *fd = open(path, O_RDONLY | O_CLOEXEC);
    if (*fd >= 0)
        return 0;
    int rc = orbit_err_from_errno(errno);
    pak_set_err(err, base_name(path), 0, "open: %s", strerror(errno));
    return rc;
}

/* ---- reader -------------------------------------------------------------- */

struct pak_reader {
    struct rec_io io;
    bool have_stored;
};

static const char open_err_fallback[] = "no container object";

int
pak_reader_open(const char *path, struct pak_reader **out)
{
    int fd = -1;
    if (!path || !out)
        return ORBIT_EINVAL;
    *out = NULL;
    struct pak_reader *r = starmap_calloc(1, sizeof *r);
    if (!r)
        return ORBIT_ENOMEM;
    r->io.fd = -1;
    int rc = open_ro(path, r->io.err, &fd);
    if (rc == 0)
        rc = rec_io_init(&r->io, fd, path);
    if (rc != 0) {
        pak_reader_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

void
pak_reader_free(struct pak_reader *r)
{
    if (!r)
        return;
    rec_io_release(&r->io);
    free(r);
}

int
pak_reader_read(struct pak_reader *r, uint64_t offset,
                const struct chunk_id *expect, void *dst, size_t dst_cap,
                struct pak_record_info *info)
{
    struct pak_record_info tmp;
    if (!r || (!dst && dst_cap) || r->io.fd < 0)
        return ORBIT_EINVAL;
    if (!info)
        info = &tmp;
    r->have_stored = false;
    int rc = rec_io_header(&r->io, offset, info);
    if (rc == 0)
        rc = rec_io_body(&r->io, info, dst, dst_cap, expect);
    r->have_stored = rc == 0;
    return rc;
}

const void *
pak_reader_stored(const struct pak_reader *r)
{
    return r && r->have_stored ? r->io.buf : NULL;
}

const char *
pak_reader_errmsg(const struct pak_reader *r)
{
    return r ? r->io.err : open_err_fallback;
}

/* ---- scanner ------------------------------------------------------------- */

struct pak_scanner {
    struct rec_io io;
    uint64_t off;
    bool verify;
    bool done;
    int last_rc;
};

static int
scanner_new(int fd, const char *name, bool verify, struct pak_scanner **out)
{
    struct pak_scanner *s = starmap_calloc(1, sizeof *s);
    if (!s) {
        close(fd);
        return ORBIT_ENOMEM;
    }
    s->verify = verify;
    s->off = PAK_FILE_HEADER_LEN;
    int rc = rec_io_init(&s->io, fd, name);
    if (rc == ORBIT_ENOMEM) {
        pak_scanner_free(s);
        return rc;
    }
    if (rc != 0) {
        /* A bad file header is the first thing next() reports. */
        s->off = 0;
        s->done = true;
        s->last_rc = rc;
    }
    *out = s;
    return 0;
}

int
pak_scanner_open(const char *path, bool verify, struct pak_scanner **out)
{
    int fd;
    char err[PAK_ERRMSG_LEN];
    if (!path || !out)
        return ORBIT_EINVAL;
    *out = NULL;
    int rc = open_ro(path, err, &fd);
    if (rc != 0)
        return rc;
    return scanner_new(fd, path, verify, out);
}

int
pak_scanner_open_fd(int fd, const char *name, bool verify,
                    struct pak_scanner **out)
{
    if (fd < 0 || !out)
        return ORBIT_EINVAL;
    *out = NULL;
    int d = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (d < 0)
        return orbit_err_from_errno(errno);
    return scanner_new(d, name ? name : "(container)", verify, out);
}

void
pak_scanner_free(struct pak_scanner *s)
{
    if (!s)
        return;
    rec_io_release(&s->io);
    free(s);
}

static int
scan_verify(struct pak_scanner *s, const struct pak_record_info *info)
{
    int rc = starmap_grow_bytes(&s->io.raw, &s->io.raw_cap, info->raw_len);
    if (rc != 0)
        return rc;
    return rec_io_body(&s->io, info, s->io.raw, s->io.raw_cap, NULL);
}

int
pak_scanner_next(struct pak_scanner *s, struct pak_record_info *info)
{
    if (!s || !info)
        return ORBIT_EINVAL;
    if (s->done)
        return s->last_rc;
    int rc = refresh_size(&s->io);
    if (rc == 0 && s->off == s->io.size)
        rc = ORBIT_ENOENT;
    else if (rc == 0)
        rc = rec_io_header(&s->io, s->off, info);
    if (rc == 0 && s->verify)
        rc = scan_verify(s, info);
    if (rc != 0) {
        s->done = true;
        s->last_rc = rc;
        if (rc == ORBIT_ENOENT)
            pak_set_err(s->io.err, s->io.name, s->off, "end of container");
        return rc;
    }
    s->off += PAK_REC_HEADER_LEN + (uint64_t)info->stored_len;
    return 0;
}

uint64_t
pak_scanner_offset(const struct pak_scanner *s)
{
    return s ? s->off : 0;
}

const char *
pak_scanner_errmsg(const struct pak_scanner *s)
{
    return s ? s->io.err : open_err_fallback;
}
