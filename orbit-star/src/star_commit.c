/*
 * COMMIT: assemble a file in its staging file (chunks written there by
 * hinted PUTs are verified in place, others are copied in), verify every
 * chunk and the whole-file digest, set mode and mtime, then for the whole
 * group: fsync each file and committed directory (one syncfs for a large
 * group), rename each file into place, fsync each parent directory once,
 * write the files' records. A reader of ROOT sees the old file or the new
 * one, never a part.
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "orbit/error.h"
#include "orbit/wire_path.h"
#include "star_internal.h"
#include "star_alloc.h"

struct star_partial {
    struct star_partial *next;
    char *path;
    uint64_t next_chunk;
    uint64_t offset;
    EVP_MD_CTX *md;
};

static void
partial_free(struct star_partial *p)
{
    if (!p)
        return;
    EVP_MD_CTX_free(p->md);
    free(p->path);
    free(p);
}

/* The parent directory of each renamed file, to fsync once per directory. */
struct parent_dir {
    int fd;
    int rc;
    dev_t dev;
    ino_t ino;
};

int
star_commit_init(struct star *s)
{
    s->dirs = star_calloc(s->cfg.commit_group_max, sizeof *s->dirs);
    return s->dirs ? 0 : ORBIT_ENOMEM;
}

void
star_commit_release(struct star *s)
{
    free(s->dirs);
    s->dirs = NULL;
}

void
star_partials_free(struct star *s)
{
    while (s->partials) {
        struct star_partial *p = s->partials;
        s->partials = p->next;
        partial_free(p);
    }
}

/* Record a failure: "COMMIT of PATH: WHAT (ERROR)". */
static int
fail(struct star_commit_item *it, int rc, uint32_t item, const char *what)
{
    it->rc = rc;
    it->item = item;
    int n = snprintf(it->msg, sizeof it->msg, "COMMIT of %.200s: %s (%s)",
                     it->c.path, what, orbit_strerror(rc));
    if (n < 0 || (size_t)n >= sizeof it->msg) /* cut: fine for a message */
        it->msg[sizeof it->msg - 1] = '\0';
    return rc;
}

/* Split path into its parent ("" for the root) and last component. */
static void
split_path(const char *path, char *parent, const char **base)
{
    const char *slash = strrchr(path, '/');
    if (!slash) {
        parent[0] = 0;
        *base = path;
        return;
    }
    size_t n = (size_t)(slash - path);
    memcpy(parent, path, n);
    parent[n] = 0;
    *base = slash + 1;
}

/*
 * Open directory rel beneath the root, creating what is missing. The
 * directory usually exists (the files of a tree share a few hundred), so one
 * openat2 that follows no symlink is tried first; only when that fails are
 * the components walked and created one by one (which also gives the
 * precise error).
 */
static int
open_dir_made(struct star *s, const char *rel, int flags, int *out_fd)
{
    if (wire_path_open_nosymlinks(s->rootfd, rel, flags, out_fd) == 0)
        return 0;
    int rc = wire_path_mkdirs_beneath(s->rootfd, rel);
    if (rc == 0)
        rc = wire_path_open_beneath(s->rootfd, rel, flags, 0, out_fd);
    return rc;
}

/* mkdir -p the parent of path and open it (the root itself: a dup). */
static int
open_parent(struct star *s, const char *path, int *out_fd, const char **base)
{
    char parent[WIRE_MAX_PATH + 1];
    split_path(path, parent, base);
    if (parent[0] == 0) {
        int fd = dup(s->rootfd);
        if (fd < 0)
            return orbit_err_from_errno(errno);
        *out_fd = fd;
        return 0;
    }
    return open_dir_made(s, parent, O_RDONLY | O_DIRECTORY, out_fd);
}

static int
set_times(int fd, const struct wire_commit *c)
{
    struct timespec ts[2];
    ts[0].tv_sec = c->mtime_sec;
    ts[0].tv_nsec = c->mtime_nsec;
    ts[1] = ts[0];
    return futimens(fd, ts) == 0 ? 0 : orbit_err_from_errno(errno);
}

static struct star_partial *
partial_find(struct star *s, const char *path, struct star_partial ***link)
{
    struct star_partial **pp = &s->partials;
    for (; *pp; pp = &(*pp)->next)
        if (strcmp((*pp)->path, path) == 0)
            break;
    *link = pp;
    return *pp;
}

/* The assembly state this frame continues (or a fresh one). */
static int
partial_take(struct star *s, struct star_commit_item *it,
             struct star_partial **out)
{
    const struct wire_commit *c = &it->c;
    struct star_partial **link = NULL;
    struct star_partial *p = partial_find(s, c->path, &link);
    if (p) {
        *link = p->next;
        p->next = NULL;
    }
    if (c->chunk_first > 0) {
        if (!p || p->next_chunk != c->chunk_first) {
            partial_free(p);
            return fail(it, ORBIT_EPROTO, WIRE_NO_ITEM, "frame out of order");
        }
        *out = p;
        return 0;
    }
    partial_free(p);
    p = star_calloc(1, sizeof *p);
    if (p) {
        p->path = star_strdup(c->path);
        p->md = EVP_MD_CTX_new();
    }
    if (!p || !p->path || !p->md ||
        !EVP_DigestInit_ex(p->md, EVP_sha256(), NULL)) {
        partial_free(p);
        return fail(it, ORBIT_ENOMEM, WIRE_NO_ITEM, "assembly state");
    }
    *out = p;
    return 0;
}

/*
 * Place chunk ref at off in fd (the staging file of path), leaving its
 * bytes in scratch2. With trust, a chunk the index records at exactly this
 * place is read without hashing it: the whole-file digest still covers it,
 * and a mismatch there reruns the commit untrusted. Otherwise bytes already
 * in place are verified, and missing ones read (verified) and copied in.
 */
static bool
recorded_here(struct star *s, const struct wire_chunk_ref *ref,
              const char *path, uint64_t off)
{
    struct star_loc *locs = s->locs;
    size_t n = 0;
    if (star_store_lookup(s->store, ref->id, locs, &n) < 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (locs[i].kind == STAR_LOC_FILE && locs[i].offset == off &&
            locs[i].length == ref->raw_len && strcmp(locs[i].path, path) == 0)
            return true;
    return false;
}

static int
place_chunk(struct star *s, int fd, const char *path,
            const struct wire_chunk_ref *ref, uint64_t off, bool trust)
{
    uint8_t *buf = s->scratch2;
    uint8_t h[32];
    if (trust && recorded_here(s, ref, path, off) &&
        star_pread_all(fd, buf, ref->raw_len, off) == 0)
        return 0;
    if (star_pread_all(fd, buf, ref->raw_len, off) == 0 &&
        star_sha256(buf, ref->raw_len, h) == 0 && memcmp(h, ref->id, 32) == 0)
        return 0;
    int rc = star_store_read(s->store, ref->id, ref->raw_len, buf);
    if (rc == 0)
        rc = star_pwrite_all(fd, buf, ref->raw_len, off);
    return rc;
}

static int
assemble_chunks(struct star *s, struct star_commit_item *it,
                struct star_partial *p, int fd, bool trust)
{
    const struct wire_commit *c = &it->c;
    uint32_t missing = 0, first_missing = 0;
    for (uint32_t i = 0; i < c->n; i++) {
        struct wire_chunk_ref ref;
        wire_commit_chunk(c, i, &ref);
        uint32_t idx = (uint32_t)(c->chunk_first + i);
        if (p->offset + ref.raw_len > c->size)
            return fail(it, ORBIT_EPROTO, idx, "chunks exceed the file size");
        int rc = place_chunk(s, fd, c->path, &ref, p->offset, trust);
        if (rc == ORBIT_ENOENT) {
            /* Go on placing the rest: every other stale entry of this
             * manifest is dropped from the index now (the index named a
             * chunk whose bytes were gone, e.g. in an older version of a
             * replaced file), so the next HAVE reports them all missing
             * at once, not one per attempt. */
            if (missing++ == 0)
                first_missing = idx;
            p->offset += ref.raw_len;
            continue;
        }
        if (rc < 0)
            return fail(it, rc, idx, "reading a chunk");
        if (missing == 0 && !EVP_DigestUpdate(p->md, s->scratch2, ref.raw_len))
            return fail(it, ORBIT_ECRYPTO, idx, "digest");
        p->offset += ref.raw_len;
    }
    if (missing > 0)
        return fail(it, ORBIT_ENOENT, first_missing,
                    missing == 1
                        ? "chunk missing on the star; PUT it and commit again"
                        : "chunks missing on the star; PUT them and commit "
                          "again");
    p->next_chunk += c->n;
    return 0;
}

/* Whole file present: check its size and digest. */
static int
check_file(struct star_commit_item *it, struct star_partial *p)
{
    const struct wire_commit *c = &it->c;
    if (p->offset != c->size)
        return fail(it, ORBIT_EPROTO, WIRE_NO_ITEM,
                    "chunk lengths do not add up to the size");
    uint8_t d[32];
    unsigned int dn = 0;
    if (!EVP_DigestFinal_ex(p->md, d, &dn))
        return fail(it, ORBIT_ECRYPTO, WIRE_NO_ITEM, "digest");
    if (memcmp(d, c->digest, 32) != 0)
        return fail(it, ORBIT_ECORRUPT, WIRE_NO_ITEM,
                    "file digest mismatch; resend");
    return 0;
}

static int
set_meta(struct star_commit_item *it, int fd)
{
    const struct wire_commit *c = &it->c;
    int rc =
        ftruncate(fd, (off_t)c->size) == 0 ? 0 : orbit_err_from_errno(errno);
    if (rc == 0 && fchmod(fd, (mode_t)(c->mode & 07777)) != 0)
        rc = orbit_err_from_errno(errno);
    if (rc == 0)
        rc = set_times(fd, c);
    if (rc < 0)
        return fail(it, rc, WIRE_NO_ITEM, "setting size, mode or mtime");
    return 0;
}

/* A single-frame file: trusted pass first, verified pass if it fails. */
static int
assemble_whole(struct star *s, struct star_commit_item *it,
               struct star_partial *p, int fd)
{
    int rc = assemble_chunks(s, it, p, fd, true);
    if (rc == 0)
        rc = check_file(it, p);
    if (rc != ORBIT_ECORRUPT)
        return rc;
    it->rc = 0;
    p->offset = 0;
    p->next_chunk = 0;
    if (!EVP_DigestInit_ex(p->md, EVP_sha256(), NULL))
        return fail(it, ORBIT_ECRYPTO, WIRE_NO_ITEM, "digest");
    rc = assemble_chunks(s, it, p, fd, false);
    return rc == 0 ? check_file(it, p) : rc;
}

/*
 * A sync of a file whose bytes did not change (only its mtime or mode did,
 * as when a tree is touched or unpacked again): when the file at the path
 * is a regular file of the manifest's size whose bytes are the manifest's,
 * set its mode and times in place instead of writing the same bytes again.
 *
 * The bytes are the manifest's when the file's record (written right after
 * the star last committed it) has the manifest's digest and the file's
 * fstat still matches it exactly: inode, device, size, mtime and ctime. Any
 * change to the file since (even one that restores its mtime) moves its
 * ctime, which no one can set back. A record that matches the fstat but
 * has another digest says the bytes are not the manifest's, also without a
 * read. Without a matching record the file is read and hashed. Either way a
 * file changed behind the star's back is never mistaken for the source's.
 */
static bool
same_time(int64_t sec, uint32_t nsec, const struct timespec *ts)
{
    return sec == (int64_t)ts->tv_sec && nsec == (uint32_t)ts->tv_nsec;
}

/* What the record of the file at path says about its bytes. */
enum record_says {
    RECORD_NOTHING, /* none, or the file changed since */
    RECORD_SAME,    /* unchanged since the star committed these bytes */
    RECORD_OTHER,   /* unchanged since the star committed other bytes */
};

static enum record_says
record_of(struct star *s, const struct wire_commit *c, const struct stat *st)
{
    struct starmap_file_rec r;
    if (star_store_file_get(s->store, c->path, &r) != 0)
        return RECORD_NOTHING;
    bool unchanged = r.ino == (uint64_t)st->st_ino &&
                     r.dev == (uint64_t)st->st_dev &&
                     r.size == (uint64_t)st->st_size &&
                     same_time(r.mtime_sec, r.mtime_nsec, &st->st_mtim) &&
                     same_time(r.ctime_sec, r.ctime_nsec, &st->st_ctim);
    if (!unchanged)
        return RECORD_NOTHING;
    return memcmp(r.digest, c->digest, sizeof r.digest) == 0 ? RECORD_SAME
                                                             : RECORD_OTHER;
}

/* Whether fd (a file of the manifest's size) holds the manifest's bytes. */
static bool
same_bytes(struct star *s, struct star_commit_item *it, int fd,
           const struct stat *st)
{
    const struct wire_commit *c = &it->c;
    enum record_says says = record_of(s, c, st);
    it->trusted = says == RECORD_SAME;
    if (says != RECORD_NOTHING)
        return it->trusted;
    uint8_t d[32];
    return star_copy_hashed(s->scratch2, fd, -1, c->size, NULL, d) == 0 &&
           memcmp(d, c->digest, sizeof d) == 0;
}

static bool
commit_in_place(struct star *s, struct star_commit_item *it)
{
    const struct wire_commit *c = &it->c;
    int fd = -1;
    struct stat st;
    if (c->chunk_first != 0 || c->n != c->chunk_total ||
        wire_path_open_beneath(s->rootfd, c->path,
                               O_RDONLY | O_NOFOLLOW | O_CLOEXEC, 0, &fd) != 0)
        return false;
    bool same = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
                (uint64_t)st.st_size == c->size && same_bytes(s, it, fd, &st);
    if (!same || fchmod(fd, (mode_t)(c->mode & 07777)) != 0 ||
        set_times(fd, c) != 0) {
        it->trusted = false;
        close(fd);
        return false;
    }
    star_store_staging_remove(s->store, c->path);
    it->fd = fd; /* synced with the group; nothing to rename */
    it->in_place = true;
    it->complete = true;
    return true;
}

static void
assemble_regular(struct star *s, struct star_commit_item *it)
{
    const struct wire_commit *c = &it->c;
    if (commit_in_place(s, it))
        return;
    if (c->chunk_total == 0 && c->size > 0) {
        /* COMMIT by digest: keep the file at the path or change nothing */
        fail(it, ORBIT_ENOENT, WIRE_NO_ITEM,
             "no file with this size and digest at the path; send its chunks");
        return;
    }
    if (c->chunk_first + c->n > c->chunk_total) {
        fail(it, ORBIT_EPROTO, WIRE_NO_ITEM,
             "chunk_first + n beyond chunk_total");
        return;
    }
    struct star_partial *p = NULL;
    if (partial_take(s, it, &p) < 0)
        return;
    /* the fd its PUTs wrote through, when still cached: synced with the
     * group below like any other */
    int fd = star_store_staging_take(s->store, c->path);
    if (fd < 0) {
        char name[65];
        star_store_staging_name(c->path, name);
        fd = openat(star_store_staging_dir(s->store), name,
                    O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd >= 0)
            star_store_staging_made(s->store, c->path);
    }
    bool whole = c->chunk_first == 0 && c->n == c->chunk_total;
    int rc = fd < 0  ? fail(it, orbit_err_from_errno(errno), WIRE_NO_ITEM,
                            "staging file")
             : whole ? assemble_whole(s, it, p, fd)
                     : assemble_chunks(s, it, p, fd, false);
    if (rc == 0 && !whole && p->next_chunk < c->chunk_total) {
        it->complete = false;
        p->next = s->partials;
        s->partials = p;
        close(fd);
        return;
    }
    if (rc == 0 && !whole)
        rc = check_file(it, p);
    if (rc == 0)
        rc = set_meta(it, fd);
    partial_free(p);
    if (rc < 0) {
        if (fd >= 0)
            close(fd);
        return;
    }
    it->fd = fd;
    it->complete = true;
}

static int
open_dir_anyway(struct star *s, const char *path, int *out)
{
    int pfd = -1;
    int rc = wire_path_open_beneath(s->rootfd, path,
                                    O_PATH | O_DIRECTORY | O_NOFOLLOW, 0, &pfd);
    if (rc != 0)
        return rc;
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", pfd);
    if (chmod(proc, 0700) != 0)
        rc = orbit_err_from_errno(errno);
    if (rc == 0)
        rc = wire_path_open_beneath(
            s->rootfd, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0, out);
    close(pfd);
    return rc;
}

/* Set the directory's mode and times, each only if it differs. */
static int
dir_meta(int fd, const struct wire_commit *c)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return orbit_err_from_errno(errno);
    mode_t mode = (mode_t)(c->mode & 07777);
    if ((st.st_mode & 07777) != mode && fchmod(fd, mode) != 0)
        return orbit_err_from_errno(errno);
    if (same_time(c->mtime_sec, c->mtime_nsec, &st.st_mtim))
        return 0;
    return set_times(fd, c);
}

static void
commit_dir(struct star *s, struct star_commit_item *it)
{
    const struct wire_commit *c = &it->c;
    int fd = -1;
    int rc =
        open_dir_made(s, c->path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, &fd);
    if (rc == ORBIT_EPERM) {
        /* An existing directory without read permission (its mode came
         * from a source that had none): open it with O_PATH and change its
         * mode through /proc, then open it for real. */
        rc = open_dir_anyway(s, c->path, &fd);
    }
    if (rc == 0)
        rc = dir_meta(fd, c);
    if (rc < 0) {
        if (fd >= 0)
            close(fd);
        fail(it, rc, WIRE_NO_ITEM, "directory");
        return;
    }
    it->fd = fd; /* synced with the group (one syncfs, or an fsync) */
    it->complete = true;
}

static void
tmp_name(const char *base, char *out, size_t cap)
{
    uint8_t r[4] = {0};
    uint8_t ch[WIRE_CHALLENGE_LEN];
    if (wire_auth_challenge(ch) == 0)
        memcpy(r, ch, sizeof r);
    snprintf(out, cap, ".orbit-tmp.%.200s.%02x%02x%02x%02x", base, r[0], r[1],
             r[2], r[3]);
}

static void
commit_symlink(struct star_commit_item *it, int pfd, const char *base)
{
    const struct wire_commit *c = &it->c;
    if (c->target_len == 0) {
        fail(it, ORBIT_EPROTO, WIRE_NO_ITEM, "symlink: empty target");
        return;
    }
    char tmp[256];
    tmp_name(base, tmp, sizeof tmp);
    int rc =
        symlinkat(c->target, pfd, tmp) == 0 ? 0 : orbit_err_from_errno(errno);
    if (rc == 0) {
        struct timespec ts[2] = {{c->mtime_sec, c->mtime_nsec},
                                 {c->mtime_sec, c->mtime_nsec}};
        if (utimensat(pfd, tmp, ts, AT_SYMLINK_NOFOLLOW) != 0 ||
            renameat(pfd, tmp, pfd, base) != 0) {
            rc = orbit_err_from_errno(errno);
            unlinkat(pfd, tmp, 0);
        }
    }
    if (rc == 0 && fsync(pfd) != 0)
        rc = orbit_err_from_errno(errno);
    if (rc < 0)
        fail(it, rc, WIRE_NO_ITEM, "symlink");
    it->complete = rc == 0;
}

static void
assemble_one(struct star *s, struct star_commit_item *it)
{
    const struct wire_commit *c = &it->c;
    if (c->ftype == WIRE_FT_DIRECTORY) {
        commit_dir(s, it);
        return;
    }
    if (c->ftype == WIRE_FT_REGULAR) {
        assemble_regular(s, it);
        return;
    }
    if (c->ftype != WIRE_FT_SYMLINK) {
        fail(it, ORBIT_EPROTO, WIRE_NO_ITEM, "bad type");
        return;
    }
    int pfd = -1;
    const char *base = NULL;
    int rc = open_parent(s, c->path, &pfd, &base);
    if (rc < 0) {
        fail(it, rc, WIRE_NO_ITEM, "parent directory");
        return;
    }
    commit_symlink(it, pfd, base);
    close(pfd);
}

/* Copy src into dst from the start, hashing what was read. */
int
star_copy_hashed(uint8_t *buf, int src, int dst, uint64_t size,
                 const _Atomic bool *stop, uint8_t d[32])
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int rc =
        md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) ? 0 : ORBIT_ECRYPTO;
    for (uint64_t off = 0; rc == 0 && off < size;) {
        size_t n =
            size - off < WIRE_MAX_CHUNK ? (size_t)(size - off) : WIRE_MAX_CHUNK;
        rc = stop && *stop ? ORBIT_ECANCELED : star_pread_all(src, buf, n, off);
        if (rc == 0 && dst >= 0) /* dst < 0: only hash */
            rc = star_pwrite_all(dst, buf, n, off);
        if (rc == 0 && !EVP_DigestUpdate(md, buf, n))
            rc = ORBIT_ECRYPTO;
        off += n;
    }
    unsigned int dn = 0;
    if (rc == 0 && !EVP_DigestFinal_ex(md, d, &dn))
        rc = ORBIT_ECRYPTO;
    EVP_MD_CTX_free(md);
    return rc;
}

/*
 * The target directory is on another filesystem (a mount inside ROOT):
 * copy the verified staging file into a temporary file next to the target,
 * check the copy's digest, set metadata, fsync, rename it into place.
 */
static int
copy_across(struct star *s, struct star_commit_item *it, int pfd,
            const char *base, const char *name)
{
    const struct wire_commit *c = &it->c;
    char tmp[256];
    tmp_name(base, tmp, sizeof tmp);
    int src = openat(star_store_staging_dir(s->store), name,
                     O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    int dst = openat(pfd, tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    uint8_t d[32];
    int rc = src < 0 || dst < 0
                 ? orbit_err_from_errno(errno)
                 : star_copy_hashed(s->scratch2, src, dst, c->size, NULL, d);
    if (rc == 0 && memcmp(d, c->digest, 32) != 0)
        rc = ORBIT_ECORRUPT;
    if (rc == 0)
        rc = set_meta(it, dst);
    if (rc == 0 && fsync(dst) != 0)
        rc = orbit_err_from_errno(errno);
    if (rc == 0 && renameat(pfd, tmp, pfd, base) != 0)
        rc = orbit_err_from_errno(errno);
    if (src >= 0)
        close(src);
    if (dst >= 0)
        close(dst);
    if (rc < 0) {
        unlinkat(pfd, tmp, 0);
        if (it->rc == 0)
            fail(it, rc, WIRE_NO_ITEM, "copy across filesystems");
    }
    return rc;
}

/* Rename an assembled file into place; *pfd_out is its parent dir. */
static int
rename_into_place(struct star *s, struct star_commit_item *it, int *pfd_out)
{
    const struct wire_commit *c = &it->c;
    const char *base = NULL;
    int rc = open_parent(s, c->path, pfd_out, &base);
    if (rc < 0)
        return fail(it, rc, WIRE_NO_ITEM, "parent directory");
    char name[65];
    star_store_staging_name(c->path, name);
    int sdir = star_store_staging_dir(s->store);
    if (renameat(sdir, name, *pfd_out, base) == 0) {
        star_store_staging_gone(s->store, name);
        it->renamed = true;
        return 0;
    }
    if (errno == EXDEV) {
        it->crossed = true;
        rc = copy_across(s, it, *pfd_out, base, name);
        if (rc == 0) {
            star_store_staging_remove(s->store, c->path);
            it->renamed = true;
        }
        return rc;
    }
    rc = orbit_err_from_errno(errno == ENOTEMPTY || errno == EEXIST ? EISDIR
                                                                    : errno);
    return fail(it, rc, WIRE_NO_ITEM, "rename");
}

/*
 * Committed and durable: chunks of these files that sit in containers now
 * live in the files too, so the container references go (and containers
 * left empty with them). A failure only leaves chunks where they were.
 */
static void
move_refs(struct star *s, struct star_commit_item *items, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct star_commit_item *it = &items[i];
        if (!it->renamed || it->rc < 0 || it->c.chunk_first != 0 ||
            it->c.n != it->c.chunk_total)
            continue;
        size_t removed = 0;
        int rc = star_store_moved(s->store, it->c.path, &it->c, &removed);
        s->stats.containers_removed += removed;
        if (rc < 0)
            star_log(s, "chunks of %s stay in containers: %s", it->c.path,
                     orbit_strerror(rc));
    }
}

/* ROOT's device, which a syncfs of ROOT covers ((dev_t)-1 if unknown). */
static dev_t
root_dev(struct star *s)
{
    struct stat st;
    return fstat(s->rootfd, &st) == 0 ? st.st_dev : (dev_t)-1;
}

static bool
on_dev(int fd, dev_t dev)
{
    struct stat st;
    return fstat(fd, &st) == 0 && st.st_dev == dev;
}

static void
sync_files(struct star *s, struct star_commit_item *items, size_t n)
{
    /* A group of many files: one syncfs instead of an fsync each (for
     * those on ROOT's file system; one on a mount inside ROOT: fsync). */
    bool many = n >= STAR_SYNCFS_MIN;
    int all = 0;
    dev_t rdev = 0;
    bool staged_covered = false; /* staging files: on ROOT's file system */
    if (many) {
        all = syncfs(s->rootfd) == 0 ? 0 : orbit_err_from_errno(errno);
        rdev = root_dev(s);
        staged_covered = on_dev(star_store_staging_dir(s->store), rdev);
    }
    for (size_t i = 0; i < n; i++) {
        struct star_commit_item *it = &items[i];
        if (it->fd >= 0 && it->rc == 0) {
            int rc = all;
            /* only what sits in place (a file or directory at its path) may
             * be on a mount inside ROOT: fstat those, not each staged file */
            bool staged = !it->in_place && it->c.ftype == WIRE_FT_REGULAR;
            bool covered =
                many && (staged ? staged_covered : on_dev(it->fd, rdev));
            if (rc == 0 && !covered)
                rc = fsync(it->fd) == 0 ? 0 : orbit_err_from_errno(errno);
            if (rc < 0)
                fail(it, rc, WIRE_NO_ITEM, "fsync");
        }
        it->ready = it->fd >= 0 && it->rc == 0;
        if (!it->ready && it->fd >= 0) {
            close(it->fd);
            it->fd = -1;
        }
    }
}

/* fsync each distinct directory once; its result goes to every file in it. */
static void
sync_dirs(struct star *s, struct star_commit_item *items,
          struct parent_dir *dirs, size_t n)
{
    if (n >= STAR_SYNCFS_MIN) {
        int all = syncfs(s->rootfd) == 0 ? 0 : orbit_err_from_errno(errno);
        dev_t rdev = root_dev(s);
        for (size_t i = 0; i < n; i++) {
            int rc = all;
            if (dirs[i].fd < 0)
                continue;
            if (rc == 0 && dirs[i].dev != rdev && fsync(dirs[i].fd) != 0)
                rc = orbit_err_from_errno(errno); /* a mount inside ROOT */
            if (rc < 0)
                fail(&items[i], rc, WIRE_NO_ITEM, "directory sync");
        }
        return;
    }
    for (size_t i = 0; i < n; i++) {
        struct parent_dir *d = &dirs[i];
        if (d->fd < 0)
            continue;
        size_t j = 0;
        while (j < i && (dirs[j].fd < 0 || dirs[j].dev != d->dev ||
                         dirs[j].ino != d->ino))
            j++;
        if (j < i)
            d->rc = dirs[j].rc;
        else if (fsync(d->fd) != 0)
            d->rc = orbit_err_from_errno(errno);
        if (d->rc < 0)
            fail(&items[i], d->rc, WIRE_NO_ITEM, "directory fsync");
    }
}

/*
 * Done with a synced file: when it now sits at its path (renamed there, or
 * committed in place), keep its fstat for its record. Taken from the fd
 * after the rename, which also moves the ctime. Closes it->fd.
 */
static void
finish_file(struct star_commit_item *it)
{
    struct stat st;
    if (it->fd < 0)
        return;
    if (it->rc == 0 && !it->crossed && (it->in_place || it->renamed) &&
        fstat(it->fd, &st) == 0) {
        struct starmap_file_rec *r = &it->rec;
        memcpy(r->digest, it->c.digest, sizeof r->digest);
        r->size = (uint64_t)st.st_size;
        r->mtime_sec = st.st_mtim.tv_sec;
        r->mtime_nsec = (uint32_t)st.st_mtim.tv_nsec;
        r->ctime_sec = st.st_ctim.tv_sec;
        r->ctime_nsec = (uint32_t)st.st_ctim.tv_nsec;
        r->ino = (uint64_t)st.st_ino;
        r->dev = (uint64_t)st.st_dev;
        it->has_rec = true;
    }
    close(it->fd);
    it->fd = -1;
}

/* Queue the record changes of a committed item; 0 or the first error. */
static int
record_one(struct star *s, const struct star_commit_item *it)
{
    if (it->rc == 0 && it->has_rec)
        return star_store_file_put(s->store, it->c.path, &it->rec);
    bool replaced =
        it->renamed || it->in_place ||
        (it->rc == 0 && it->complete && it->c.ftype != WIRE_FT_REGULAR);
    return replaced ? star_store_file_drop(s->store, it->c.path) : 0;
}

/*
 * Queue the records of the group's files (and drops for paths replaced
 * otherwise); the store commits them with later groups' in one transaction.
 * The commits stand either way: a missing record only means the next
 * in-place commit reads the file.
 */
static void
record_files(struct star *s, struct star_commit_item *items, size_t n)
{
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        int r = record_one(s, &items[i]);
        if (rc == 0)
            rc = r;
    }
    star_store_files_flush(s->store, star_now_ms());
    int cr = star_store_files_error(s->store);
    if (rc == 0)
        rc = cr;
    if (rc < 0 && !s->records_failing)
        star_log(s,
                 "file records not written (%s: %s); commits go on, "
                 "in-place commits read their files",
                 orbit_strerror(rc), star_store_errmsg(s->store));
    else if (rc == 0 && s->records_failing)
        star_log(s, "file records written again");
    s->records_failing = rc < 0;
}

static void
rename_all(struct star *s, struct star_commit_item *items,
           struct parent_dir *dirs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct parent_dir *d = &dirs[i];
        d->fd = -1;
        d->rc = 0;
        if (items[i].ready && !items[i].in_place &&
            items[i].c.ftype == WIRE_FT_REGULAR)
            rename_into_place(s, &items[i], &d->fd);
        finish_file(&items[i]);
        if (d->fd < 0)
            continue;
        struct stat st;
        if (fstat(d->fd, &st) == 0) {
            d->dev = st.st_dev;
            d->ino = st.st_ino;
        } else {
            d->dev = 0;
            d->ino = (ino_t)i; /* unknown: fsync it on its own */
        }
    }
}

/* The steps of a group, as the round runs them: the loop assembles, the
 * syncer syncs the files, the loop renames, the syncer syncs the
 * directories, the loop finishes. The sync steps touch only the items,
 * star->dirs and file descriptors. */
void
star_commit_assemble(struct star *s, struct star_commit_item *items, size_t n)
{
    uint64_t t0 = star_now_us();
    for (size_t i = 0; i < n; i++)
        assemble_one(s, &items[i]);
    s->stats.us_assemble += star_now_us() - t0;
}

void
star_commit_sync_files(struct star *s, struct star_commit_item *items, size_t n)
{
    sync_files(s, items, n);
}

void
star_commit_rename(struct star *s, struct star_commit_item *items, size_t n)
{
    uint64_t t0 = star_now_us();
    rename_all(s, items, s->dirs, n);
    s->stats.us_rename += star_now_us() - t0;
}

void
star_commit_sync_dirs(struct star *s, struct star_commit_item *items, size_t n)
{
    sync_dirs(s, items, s->dirs, n);
    if (n < STAR_SYNCFS_MIN)
        fsync(star_store_staging_dir(s->store));
}

void
star_commit_finish(struct star *s, struct star_commit_item *items, size_t n)
{
    uint64_t t0 = star_now_us();
    for (size_t i = 0; i < n; i++)
        if (s->dirs[i].fd >= 0)
            close(s->dirs[i].fd);
    move_refs(s, items, n);
    record_files(s, items, n);
    s->stats.us_record += star_now_us() - t0;
}
