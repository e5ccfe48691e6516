/*
 * orbit/walker.h - a streaming, bounded-memory walk of one source tree.
 *
 * The walker is depth-first and holds only the stack of open directories
 * (openat/fdopendir on directory descriptors), one path buffer and one
 * symlink-target buffer: memory does not grow with the number of entries,
 * only with depth. Entries come in readdir order (not sorted), each
 * directory before its contents. Symlinks are never followed; the root is
 * (a root that names a file yields that one file, named by its base name).
 *
 * Filters (rsync-like): a pattern without '/' matches the base name at any
 * depth; a pattern with '/' (a leading '/' only anchors it) or with "**"
 * matches the whole relative path. '*' and '?' never match '/', "**"
 * matches anything including '/' (and a "**" between two slashes also
 * matches no directory at all), "[...]" is a class, '\' escapes. A trailing '/'
 * restricts a pattern to directories. Exclude wins: an excluded entry is
 * skipped and an excluded directory is not descended. When includes are given,
 * a file is produced only if it, or one of its ancestor directories, matches
 * one; directories are still descended, and produced only if they match or lie
 * under a match.
 *
 * Errors per entry (an unreadable directory, a failed lstat or readlink, a
 * path too long, a directory too deep) do not end the walk: with an
 * on_error callback the walker reports them there and goes on; without
 * one walker_next() returns the error with entry->path naming the entry,
 * and the next call goes on. An entry that vanished between readdir and
 * lstat is skipped (reported to on_error as ORBIT_ENOENT when set).
 *
 * Ownership: the strings of an entry belong to the walker and stay valid
 * until the next walker_next() or walker_free(). Options are copied.
 * Errors: walker_new: ORBIT_EINVAL, ORBIT_ENOENT (no root), ORBIT_EPERM,
 * ORBIT_EIO, ORBIT_ENOMEM; walker_next: ORBIT_ENOENT at the end, or the
 * error of one entry (ORBIT_EPERM, ORBIT_EIO, ORBIT_ETOOBIG, ...).
 * Thread-safety: a walker is used by one thread at a time.
 */
#ifndef ORBIT_WALKER_H
#define ORBIT_WALKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WALKER_DEPTH_DEFAULT 512u
#define WALKER_DEPTH_MAX     2048u

struct walker;

enum walker_type {
    WALKER_FILE = 0,
    WALKER_DIR,
    WALKER_SYMLINK,
    WALKER_OTHER, /* fifo, socket, device */
};

struct walker_entry {
    const char *path; /* relative to the root; never empty */
    enum walker_type type;
    uint64_t size;    /* st_size (regular files and symlinks) */
    uint32_t mode;    /* st_mode, type bits included */
    int64_t mtime_ns; /* nanoseconds since the epoch */
    uint64_t dev;
    uint64_t ino;
    const char *link_target; /* symlinks only, else NULL */
};

struct walker_opts {
    const char *const *includes;
    size_t nincludes;
    const char *const *excludes;
    size_t nexcludes;
    bool one_filesystem; /* do not descend into other mounts */
    size_t max_depth;    /* 0: WALKER_DEPTH_DEFAULT; at most DEPTH_MAX */
    /* Called with the relative path ("" for the root) and the error of an
     * entry that could not be walked; the walk goes on. May be NULL. */
    void (*on_error)(void *arg, const char *path, int err);
    void *arg;
};

struct walker_stats {
    uint64_t files;
    uint64_t dirs;
    uint64_t symlinks;
    uint64_t others;
    uint64_t bytes;    /* sizes of the regular files produced */
    uint64_t excluded; /* entries skipped by the filters */
    uint64_t errors;
    uint64_t vanished;
};

void walker_opts_init(struct walker_opts *opts);

/* opts NULL means no filters and the defaults. */
int walker_new(const char *root, const struct walker_opts *opts,
               struct walker **out);
void walker_free(struct walker *w);

/* The next entry: 0, ORBIT_ENOENT at the end, or one entry's error. */
int walker_next(struct walker *w, struct walker_entry *entry);

void walker_get_stats(const struct walker *w, struct walker_stats *out);

/* Bytes the walker itself holds now and at most so far (its frames and
 * buffers; the C library's DIR streams are one per open level). */
size_t walker_mem_current(const struct walker *w);
size_t walker_mem_peak(const struct walker *w);
/* Directories open now (the depth of the walk). */
size_t walker_depth(const struct walker *w);

/* The filter rules alone: whether a relative path would be excluded, or
 * matched by an include. is_dir applies trailing-'/' patterns. */
bool walker_glob_match(const char *pattern, const char *path);
bool walker_rule_matches(const char *pattern, const char *relpath, bool is_dir);

#endif
