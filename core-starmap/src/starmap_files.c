/*
 * File records: per-path facts about the last file the star committed there
 * (see starmap.h for the key and value layout). Encoding, decoding and the
 * read side; the batch applies puts and drops with everything else.
 */
#include "orbit/error.h"
#include "orbit/starmap.h"
#include "starmap_internal.h"

#include <string.h>

#define FILE_REC_VERSION 1

int
starmap_file_key(const char *path, uint8_t key[STARMAP_FILE_KEY_MAX],
                 size_t *len)
{
    if (!path)
        return ORBIT_EINVAL;
    size_t n = strnlen(path, STARMAP_FILE_PATH_MAX + 1);
    if (n == 0)
        return ORBIT_EINVAL;
    if (n > STARMAP_FILE_PATH_MAX)
        return ORBIT_ETOOBIG;
    if (n <= STARMAP_FILE_KEY_RAW_MAX) {
        key[0] = 'P';
        memcpy(key + 1, path, n);
        *len = 1 + n;
        return 0;
    }
    struct chunk_id h;
    int rc = chunk_id_compute(path, n, &h);
    if (rc != 0)
        return rc;
    key[0] = 'H';
    memcpy(key + 1, h.b, CHUNK_ID_LEN);
    *len = 1 + CHUNK_ID_LEN;
    return 0;
}

bool
starmap_file_key_valid(const void *key, size_t len)
{
    const uint8_t *k = key;
    if (len < 2)
        return false;
    if (k[0] == 'H')
        return len == 1 + CHUNK_ID_LEN;
    return k[0] == 'P' && len <= STARMAP_FILE_KEY_MAX &&
           !memchr(k + 1, '\0', len - 1);
}

void
starmap_file_rec_encode(const struct starmap_file_rec *r,
                        uint8_t out[STARMAP_FILE_REC_LEN])
{
    memset(out, 0, 8);
    out[0] = FILE_REC_VERSION;
    memcpy(out + 8, r->digest, 32);
    starmap_le_put(out + 40, r->size, 8);
    starmap_le_put(out + 48, (uint64_t)r->mtime_sec, 8);
    starmap_le_put(out + 56, r->mtime_nsec, 4);
    starmap_le_put(out + 60, (uint64_t)r->ctime_sec, 8);
    starmap_le_put(out + 68, r->ctime_nsec, 4);
    starmap_le_put(out + 72, r->ino, 8);
    starmap_le_put(out + 80, r->dev, 8);
}

int
starmap_file_rec_decode(const void *buf, size_t len, struct starmap_file_rec *r)
{
    const uint8_t *p = buf;
    if (len != STARMAP_FILE_REC_LEN || p[0] != FILE_REC_VERSION)
        return ORBIT_ECORRUPT;
    for (int i = 1; i < 8; i++)
        if (p[i] != 0)
            return ORBIT_ECORRUPT;
    memcpy(r->digest, p + 8, 32);
    r->size = starmap_le_get(p + 40, 8);
    r->mtime_sec = (int64_t)starmap_le_get(p + 48, 8);
    r->mtime_nsec = (uint32_t)starmap_le_get(p + 56, 4);
    r->ctime_sec = (int64_t)starmap_le_get(p + 60, 8);
    r->ctime_nsec = (uint32_t)starmap_le_get(p + 68, 4);
    r->ino = starmap_le_get(p + 72, 8);
    r->dev = starmap_le_get(p + 80, 8);
    if (r->mtime_nsec >= 1000000000u || r->ctime_nsec >= 1000000000u)
        return ORBIT_ECORRUPT;
    return 0;
}

int
starmap_file_get(struct starmap *sm, const char *path,
                 struct starmap_file_rec *out)
{
    uint8_t key[STARMAP_FILE_KEY_MAX];
    size_t klen = 0;
    if (!sm || !out)
        return ORBIT_EINVAL;
    int rc = starmap_file_key(path, key, &klen);
    MDB_txn *txn = NULL;
    if (rc == 0)
        rc = starmap_read_begin(sm, &txn);
    if (rc != 0)
        return rc;
    MDB_val k = {klen, key}, v;
    int mrc = mdb_get(txn, sm->files, &k, &v);
    rc = mrc == 0 ? starmap_file_rec_decode(v.mv_data, v.mv_size, out)
                  : starmap_mdb_err(sm, mrc, "get file record");
    starmap_read_end(sm, txn);
    if (rc == ORBIT_ECORRUPT)
        starmap_set_err(sm, "starmap: file record of %.200s: malformed value",
                        path);
    return rc;
}

int
starmap_file_count(struct starmap *sm, uint64_t *records)
{
    return sm ? starmap_dbi_count(sm, sm->files, records) : ORBIT_EINVAL;
}
