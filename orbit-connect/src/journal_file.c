/*
 * journal_file.c - per-file records, dead letters and the invariant
 * checker.
 */
#include "orbit/journal.h"

#include <lmdb.h>
#include <stdlib.h>
#include <string.h>

#include "journal_internal.h"
#include "journal_pack.h"
#include "orbit/error.h"
#include "orbit/orbit_clock.h"

/* ---- files ------------------------------------------------------------ */

#define JOURNAL_FILE_REC (8 + 8 + 8 + 8 + 8 + JOURNAL_DIGEST_LEN)

static int
journal_file_decode(const MDB_val *v, const char *path, bool hashed,
                    struct journal_file *out)
{
    struct journal_upk up = {v->mv_data, v->mv_size, 0};
    if (journal_upk_u64(&up) != JOURNAL_REC_VERSION)
        return ORBIT_ECORRUPT;
    out->size = journal_upk_u64(&up);
    out->mtime_ns = (int64_t)journal_upk_u64(&up);
    uint64_t flags = journal_upk_u64(&up);
    out->bytes_sent = journal_upk_u64(&up);
    journal_upk_fixed(&up, out->digest, JOURNAL_DIGEST_LEN);
    if (up.err || (flags & 0xff) > JOURNAL_FILE_DEAD)
        return ORBIT_ECORRUPT;
    out->state = (enum journal_file_state)(flags & 0xff);
    out->has_digest = (flags >> 8) & 1;
    if (hashed) {
        /* A hashed key keeps its path in the value: check it. */
        char *stored = journal_upk_str(&up);
        bool same = stored && strcmp(stored, path) == 0;
        free(stored);
        if (!same)
            return up.err == ORBIT_ENOMEM ? ORBIT_ENOMEM : ORBIT_ENOENT;
    }
    return 0;
}

int
journal_file_get(struct journal *j, const char *job_id, const char *path,
                 struct journal_file *out)
{
    unsigned char key[JOURNAL_KEY_MAX];
    size_t klen;
    bool hashed;
    MDB_txn *txn = NULL;
    if (!j || !out)
        return ORBIT_EINVAL;
    int rc = journal_key(j, job_id, path, key, &klen, &hashed);
    if (rc != 0 || (rc = journal_read_begin(j, &txn)) != 0)
        return rc;
    MDB_val k = {klen, key}, v;
    rc = journal_err_mdb(mdb_get(txn, j->files, &k, &v));
    if (rc == 0)
        rc = journal_file_decode(&v, path, hashed, out);
    journal_read_end(j, txn);
    return rc;
}

int
journal_file_put(struct journal *j, const char *job_id, const char *path,
                 const struct journal_file *f)
{
    unsigned char key[JOURNAL_KEY_MAX];
    size_t klen;
    bool hashed, owned;
    struct journal_pk pk = {0};
    if (!j || !f || (unsigned)f->state > JOURNAL_FILE_DEAD)
        return ORBIT_EINVAL;
    int rc = journal_key(j, job_id, path, key, &klen, &hashed);
    if (rc != 0)
        return rc;
    journal_pk_u64(&pk, JOURNAL_REC_VERSION);
    journal_pk_u64(&pk, f->size);
    journal_pk_u64(&pk, (uint64_t)f->mtime_ns);
    journal_pk_u64(&pk, (uint64_t)f->state | (f->has_digest ? 256u : 0u));
    journal_pk_u64(&pk, f->bytes_sent);
    static const uint8_t zero[JOURNAL_DIGEST_LEN];
    journal_pk_raw(&pk, f->has_digest ? f->digest : zero, JOURNAL_DIGEST_LEN);
    if (hashed)
        journal_pk_str(&pk, path);
    rc = pk.err;
    if (rc == 0 && (rc = journal_scope_begin(j, &owned)) == 0)
        rc = journal_scope_end(
            j, owned, journal_write(j, j->files, key, klen, pk.buf, pk.len));
    journal_pk_release(&pk);
    return rc;
}

bool
journal_file_is_done(struct journal *j, const char *job_id, const char *path,
                     uint64_t size, int64_t mtime_ns)
{
    struct journal_file f;
    if (journal_file_get(j, job_id, path, &f) != 0)
        return false;
    return f.state == JOURNAL_FILE_DONE && f.size == size &&
           f.mtime_ns == mtime_ns;
}

static int
journal_file_count_fn(void *arg, MDB_txn *txn, const MDB_val *k,
                      const MDB_val *v)
{
    uint64_t *counts = arg;
    struct journal_upk up = {v->mv_data, v->mv_size, 0};
    (void)txn;
    (void)k;
    for (int i = 0; i < 3; i++) /* version, size, mtime */
        journal_upk_u64(&up);
    uint64_t st = journal_upk_u64(&up) & 0xff;
    if (up.err || st > JOURNAL_FILE_DEAD)
        return ORBIT_ECORRUPT;
    counts[st]++;
    return 0;
}

int
journal_file_count(struct journal *j, const char *job_id, uint64_t counts[3])
{
    if (!j || !counts || !journal_id_valid(job_id))
        return ORBIT_EINVAL;
    counts[0] = counts[1] = counts[2] = 0;
    return journal_scan(j, j->files, job_id, journal_file_count_fn, counts);
}
/* ---- dead letters ------------------------------------------------------ */

static size_t
journal_utf8_cut(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n <= max)
        return n;
    while (max > 0 && ((unsigned char)s[max] & 0xC0) == 0x80)
        max--;
    return max;
}

static int
journal_dead_check(const struct dlq_failure *f)
{
    if (!f || !f->key || !*f->key || !journal_id_valid(f->job_id) ||
        (unsigned)f->reason >= DLQ_REASON_COUNT || f->error_code > 0)
        return ORBIT_EINVAL;
    const char *fields[] = {f->key, f->source_path, f->dest_path};
    for (size_t i = 0; i < 3; i++)
        if (fields[i] && strlen(fields[i]) > JOURNAL_PATH_MAX)
            return ORBIT_ETOOBIG;
    return 0;
}

static void
journal_dead_pack(struct journal_pk *pk, const struct dlq_failure *f)
{
    uint64_t last =
        f->last_failure_ms ? f->last_failure_ms : orbit_clock_realtime_ms(NULL);
    uint64_t first = f->first_failure_ms ? f->first_failure_ms : last;
    const char *err = f->last_error ? f->last_error : "";
    journal_pk_u64(pk, JOURNAL_REC_VERSION);
    journal_pk_str(pk, f->key);
    journal_pk_u64(pk, (uint64_t)f->reason);
    journal_pk_u64(pk, (uint64_t)(int64_t)f->error_code);
    journal_pk_bytes(pk, err, journal_utf8_cut(err, DLQ_ERROR_TEXT_MAX));
    journal_pk_u64(pk, f->attempts);
    journal_pk_u64(pk, first < last ? first : last);
    journal_pk_u64(pk, last);
    journal_pk_str(pk, f->source_path);
    journal_pk_str(pk, f->dest_path);
}

int
journal_dead_add(struct journal *j, const struct dlq_failure *f)
{
    unsigned char key[JOURNAL_KEY_MAX];
    size_t klen;
    bool hashed, owned;
    struct journal_pk pk = {0};
    if (!j)
        return ORBIT_EINVAL;
    int rc = journal_dead_check(f);
    if (rc == 0)
        rc = journal_key(j, f->job_id, f->key, key, &klen, &hashed);
    if (rc != 0)
        return rc;
    journal_dead_pack(&pk, f);
    rc = pk.err;
    if (rc == 0 && (rc = journal_scope_begin(j, &owned)) == 0)
        rc = journal_scope_end(
            j, owned, journal_write(j, j->dead, key, klen, pk.buf, pk.len));
    journal_pk_release(&pk);
    return rc;
}

static int
journal_dead_unpack(const MDB_val *v, const char *job_id, struct dlq_entry *e)
{
    struct journal_upk up = {v->mv_data, v->mv_size, 0};
    memset(e, 0, sizeof *e);
    if (journal_upk_u64(&up) != JOURNAL_REC_VERSION)
        return ORBIT_ECORRUPT;
    e->key = journal_upk_str(&up);
    uint64_t reason = journal_upk_u64(&up);
    e->error_code = (int)(int64_t)journal_upk_u64(&up);
    e->last_error = journal_upk_str(&up);
    e->attempts = (uint32_t)journal_upk_u64(&up);
    e->first_failure_ms = journal_upk_u64(&up);
    e->last_failure_ms = journal_upk_u64(&up);
    e->source_path = journal_upk_str(&up);
    e->dest_path = journal_upk_str(&up);
    e->job_id = up.err ? NULL : journal_malloc(JOURNAL_ID_LEN + 1);
    if (e->job_id)
        memcpy(e->job_id, job_id, JOURNAL_ID_LEN + 1);
    e->reason = (enum dlq_reason)reason;
    int rc = up.err;
    if (rc == 0 && !e->job_id)
        rc = ORBIT_ENOMEM;
    if (rc == 0 && reason >= DLQ_REASON_COUNT)
        rc = ORBIT_ECORRUPT;
    if (rc != 0) {
        free(e->key);
        free(e->last_error);
        free(e->source_path);
        free(e->dest_path);
        free(e->job_id);
        memset(e, 0, sizeof *e);
    }
    return rc;
}

struct journal_dead_acc {
    const char *job_id;
    struct dlq_entry *arr;
    size_t n;
    size_t cap;
};

static int
journal_dead_list_fn(void *arg, MDB_txn *txn, const MDB_val *k,
                     const MDB_val *v)
{
    struct journal_dead_acc *acc = arg;
    (void)txn;
    (void)k;
    if (acc->n == acc->cap) {
        size_t ncap = acc->cap ? acc->cap * 2 : 16;
        struct dlq_entry *p = journal_realloc(acc->arr, ncap * sizeof *p);
        if (!p)
            return ORBIT_ENOMEM;
        acc->arr = p;
        acc->cap = ncap;
    }
    int rc = journal_dead_unpack(v, acc->job_id, &acc->arr[acc->n]);
    if (rc == 0)
        acc->n++;
    return rc;
}

int
journal_dead_list(struct journal *j, const char *job_id, struct dlq_entry **out,
                  size_t *nout)
{
    struct journal_dead_acc acc = {job_id, NULL, 0, 0};
    if (!j || !out || !nout || !journal_id_valid(job_id))
        return ORBIT_EINVAL;
    int rc = journal_scan(j, j->dead, job_id, journal_dead_list_fn, &acc);
    if (rc != 0) {
        dlq_entries_free(acc.arr, acc.n);
        return rc;
    }
    if (!acc.n) {
        free(acc.arr);
        acc.arr = NULL;
    }
    *out = acc.arr;
    *nout = acc.n;
    return 0;
}
int
journal_dead_remove(struct journal *j, const char *job_id, const char *key)
{
    unsigned char k[JOURNAL_KEY_MAX];
    size_t klen;
    bool hashed, owned;
    MDB_val mk, v;
    if (!j)
        return ORBIT_EINVAL;
    int rc = journal_key(j, job_id, key, k, &klen, &hashed);
    if (rc != 0 || (rc = journal_scope_begin(j, &owned)) != 0)
        return rc;
    mk.mv_size = klen;
    mk.mv_data = k;
    rc = journal_err_mdb(mdb_get(j->txn, j->dead, &mk, &v));
    if (rc == 0)
        rc = journal_write(j, j->dead, k, klen, NULL, 0);
    return journal_scope_end(j, owned, rc);
}

int
journal_dead_purge(struct journal *j, const char *job_id, size_t *removed)
{
    bool owned;
    size_t n = 0;
    if (!j || !journal_id_valid(job_id))
        return ORBIT_EINVAL;
    int rc = journal_scope_begin(j, &owned);
    if (rc != 0)
        return rc;
    rc = journal_scope_end(j, owned,
                           journal_delete_prefix(j, j->dead, job_id, &n));
    if (rc == 0 && removed)
        *removed = n;
    return rc;
}

/* ---- invariants ------------------------------------------------------- */

static int
journal_spec_ok(void *arg, MDB_txn *txn, const MDB_val *k, const MDB_val *v)
{
    const struct journal *j = arg;
    MDB_val jk = {v->mv_size, v->mv_data}, jv;
    if (k->mv_size == 32 && v->mv_size == JOURNAL_ID_LEN &&
        mdb_get(txn, j->jobs, &jk, &jv) == 0)
        return 0;
    return ORBIT_ECORRUPT;
}

static int
journal_file_ok(void *arg, MDB_txn *txn, const MDB_val *k, const MDB_val *v)
{
    const struct journal *j = arg;
    struct journal_file f;
    MDB_val jk = {JOURNAL_ID_LEN, k->mv_data}, jv;
    if (k->mv_size > JOURNAL_ID_LEN + 1 &&
        mdb_get(txn, j->jobs, &jk, &jv) == 0 &&
        journal_file_decode(v, NULL, false, &f) == 0)
        return 0;
    return ORBIT_ECORRUPT;
}

int
journal_check(struct journal *j)
{
    struct journal_job *jobs = NULL;
    size_t n = 0;
    MDB_txn *txn = NULL;
    if (!j)
        return ORBIT_EINVAL;
    int rc = journal_job_list(j, &jobs, &n);
    journal_jobs_free(jobs, n);
    if (rc != 0)
        return ORBIT_ECORRUPT;
    if ((rc = journal_read_begin(j, &txn)) != 0)
        return rc;
    rc = journal_scan_txn(txn, j->specs, NULL, journal_spec_ok, j);
    if (rc == 0)
        rc = journal_scan_txn(txn, j->files, NULL, journal_file_ok, j);
    journal_read_end(j, txn);
    return rc;
}
