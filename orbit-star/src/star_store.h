/*
 * star_store.h - the star's chunk store: an LMDB index (chunk id ->
 * location) over two kinds of storage beneath ROOT/.orbit:
 *
 *   packs/star_NNNNNN.pack   append-only containers of raw chunks, each
 *                            record self-describing (id, length, checksum)
 *   staging/<hex sha256(path)>  a file's bytes at their final offsets, for
 *                            chunks that arrive with a placement hint; the
 *                            file is renamed into place on COMMIT
 *
 * A FILE location (path, offset) is resolved through the staging file of
 * path first and the committed file at path second, so a commit needs no
 * index rewrite. Every read is verified against the id; an entry whose
 * bytes no longer match is dropped.
 *
 * Writes are two-phase: star_store_put_*() write the bytes (not yet
 * durable) and fill a location; star_store_sync() makes every written byte
 * durable (one fdatasync per file touched, and the directories of files
 * created); star_store_index() records locations in one LMDB transaction.
 * Private to orbit-star; single-threaded (the star's loop thread).
 */
#ifndef ORBIT_STAR_STORE_H
#define ORBIT_STAR_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "orbit/wire.h"

enum star_loc_kind {
    STAR_LOC_PACK = 1,
    STAR_LOC_FILE = 2,
};

struct star_loc {
    uint8_t kind;
    uint32_t raw_len;
    uint64_t offset;
    uint32_t pack;                /* PACK: container number */
    char path[WIRE_MAX_PATH + 1]; /* FILE: path relative to ROOT */
};

struct star_store;

/* rootfd: an O_DIRECTORY fd of ROOT (borrowed, must outlive the store);
 * root: its path, for LMDB. */
int star_store_open(int rootfd, const char *root, uint64_t pack_max,
                    struct star_store **out);
void star_store_close(struct star_store *st);

/* Whether the index holds id (no verification). */
int star_store_has(struct star_store *st, const uint8_t id[WIRE_ID_LEN],
                   bool *out);

/* Set bit i of missing (zeroed by the caller) for each id the index lacks. */
int star_store_have(struct star_store *st, const uint8_t *ids, uint32_t n,
                    uint8_t *missing);

/* The recorded location of id; ORBIT_ENOENT if none. */
int star_store_lookup(struct star_store *st, const uint8_t id[WIRE_ID_LEN],
                      struct star_loc *out);

/*
 * Read chunk id (raw_len bytes into buf) from loc, verified. A location
 * whose bytes do not match is dropped from the index (when it is still the
 * indexed one) and ORBIT_ENOENT returned.
 */
int star_store_read(struct star_store *st, const uint8_t id[WIRE_ID_LEN],
                    const struct star_loc *loc, uint8_t *buf);

/* Append raw bytes to the current container. */
int star_store_put_pack(struct star_store *st, const uint8_t id[WIRE_ID_LEN],
                        const uint8_t *raw, uint32_t len, struct star_loc *out);

/* Write raw bytes into the staging file of path (checked) at offset. */
int star_store_put_file(struct star_store *st, const char *path,
                        uint64_t offset, const uint8_t *raw, uint32_t len,
                        struct star_loc *out);

/* Make every byte written since the last sync durable. */
int star_store_sync(struct star_store *st);

/* Record n (id, location) pairs in one durable transaction. */
int star_store_index(struct star_store *st, const uint8_t *const *ids,
                     const struct star_loc *const *locs, size_t n);

/* An fd of the staging directory (borrowed) and the staging name of path
 * (65 bytes with the NUL). The staging fd cache entry for path is closed. */
int star_store_staging_dir(struct star_store *st);
void star_store_staging_name(const char *path, char name[65]);
void star_store_forget_staging(struct star_store *st, const char *path);

/* Whole-buffer pread/pwrite (EINTR retried); a short read is
 * ORBIT_ETRUNC. */
int star_pread_all(int fd, uint8_t *p, size_t n, uint64_t off);
int star_pwrite_all(int fd, const uint8_t *p, size_t n, uint64_t off);

/* SHA-256 of data. */
int star_sha256(const uint8_t *data, size_t len, uint8_t out[32]);

#endif
