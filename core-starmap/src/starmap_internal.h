/* Private parts of the starmap shared by its index and GC sources, and the
 * crash-point hook its tests use. */
#ifndef ORBIT_STARMAP_INTERNAL_H
#define ORBIT_STARMAP_INTERNAL_H

#include "orbit/refmap.h"
#include "orbit/starmap.h"

#include <lmdb.h>
#include <pthread.h>

/* Largest encoded entry: header plus STARMAP_MAX_LOCS file locations. */
#define STARMAP_ENTRY_MAX                                                      \
    (16 + STARMAP_MAX_LOCS * (1 + 8 + 4 + 2 + STARMAP_PATH_MAX))

/* Named databases: chunks, packs, gc, files, and room for more. */
#define STARMAP_MAXDBS 8

/* Little-endian fields of n bytes. */
static inline void
starmap_le_put(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint64_t
starmap_le_get(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

typedef void (*starmap_hook_fn)(const char *point, void *arg);

struct starmap {
    MDB_env *env;
    MDB_dbi chunks; /* chunk id -> entry */
    MDB_dbi packs;  /* container (u32 BE) -> live records, live bytes */
    MDB_dbi gc;     /* container (u32 BE) -> reclaimable, not yet deleted */
    MDB_dbi files;  /* file key -> file record (starmap_files.c) */
    pthread_rwlock_t resize; /* any txn: read; mdb_env_set_mapsize: write */
    pthread_mutex_t wlock;   /* writers, GC and compaction */
    pthread_mutex_t errlock;
    struct refmap *rm; /* containers: 1 while live, 0 while reclaimable */
    uint64_t mapsize;
    char err[512];
    uint8_t scratch[STARMAP_ENTRY_MAX]; /* encoding buffer, under wlock */
    starmap_hook_fn hook;
    void *hook_arg;
};

/*
 * Crash points named for the tests: "batch-applied" (before
 * mdb_txn_commit), "batch-committed" (after it, before GC learns),
 * "gc-before-remove", "gc-after-remove" (before the reclaim list is
 * cleared).
 */
void starmap_set_hook(struct starmap *sm, starmap_hook_fn fn, void *arg);
void starmap_hook(struct starmap *sm, const char *point);

int starmap_entry_decode(const void *buf, size_t len, struct starmap_entry *e);
int starmap_entry_encode(const struct starmap_entry *e, uint8_t *buf,
                         size_t cap, size_t *len);
void starmap_container_key(uint32_t container, uint8_t key[4]);
uint32_t starmap_container_from_key(const uint8_t key[4]);
void starmap_refmap_key(uint32_t container, uint8_t key[REFMAP_ID_LEN]);

/* Translate an LMDB return code, keeping its message. */
int starmap_mdb_err(struct starmap *sm, int mrc, const char *what);
void starmap_set_err(struct starmap *sm, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Begin a read transaction under the resize lock (release with
 * starmap_read_end). */
int starmap_read_begin(struct starmap *sm, MDB_txn **txn);
void starmap_read_end(struct starmap *sm, MDB_txn *txn);

/* Entries in dbi, in one read transaction. */
int starmap_dbi_count(struct starmap *sm, MDB_dbi dbi, uint64_t *n);

/* Entry of id in txn: 0, ORBIT_ENOENT or ORBIT_ECORRUPT. */
int starmap_get_entry(struct starmap *sm, MDB_txn *txn,
                      const struct chunk_id *id, struct starmap_entry *e);

/* File records (starmap_files.c): the key of path (up to
 * STARMAP_FILE_KEY_MAX bytes) and the packed value. */
#define STARMAP_FILE_KEY_MAX (1 + STARMAP_FILE_KEY_RAW_MAX)
#define STARMAP_FILE_REC_LEN 88
int starmap_file_key(const char *path, uint8_t key[STARMAP_FILE_KEY_MAX],
                     size_t *len);
void starmap_file_rec_encode(const struct starmap_file_rec *r,
                             uint8_t out[STARMAP_FILE_REC_LEN]);
int starmap_file_rec_decode(const void *buf, size_t len,
                            struct starmap_file_rec *r);
/* Whether a stored key has one of the two shapes. */
bool starmap_file_key_valid(const void *key, size_t len);

/* Make the refmap's view of container match: live or reclaimable. */
int starmap_track(struct starmap *sm, uint32_t container, bool live);

#endif
