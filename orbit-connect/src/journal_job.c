/*
 * journal_job.c - job records: create, find by spec, read, update, list
 * and delete.
 */
#include "orbit/journal.h"

#include <lmdb.h>
#include <sys/random.h>
#include <stdlib.h>
#include <string.h>

#include "journal_internal.h"
#include "journal_pack.h"
#include "orbit/error.h"
#include "orbit/orbit_clock.h"

/* ---- job records ------------------------------------------------------ */

static void
journal_job_pack(struct journal_pk *pk, const struct journal_job *job)
{
    journal_pk_u64(pk, JOURNAL_REC_VERSION);
    journal_pk_u64(pk, (uint64_t)job->kind);
    journal_pk_u64(pk, (uint64_t)job->state);
    journal_pk_u64(pk, job->nsources);
    for (size_t i = 0; i < job->nsources; i++)
        journal_pk_str(pk, job->sources[i]);
    journal_pk_str(pk, job->destination);
    journal_pk_str(pk, job->options);
    journal_pk_u64(pk, job->created_ms);
    journal_pk_u64(pk, job->updated_ms);
    const struct journal_counters *c = &job->counters;
    journal_pk_u64(pk, c->files_total);
    journal_pk_u64(pk, c->files_done);
    journal_pk_u64(pk, c->bytes_total);
    journal_pk_u64(pk, c->bytes_done);
    journal_pk_u64(pk, c->bytes_sent);
    journal_pk_u64(pk, c->bytes_dedup);
}

static int
journal_job_unpack(const MDB_val *v, struct journal_job *job)
{
    struct journal_upk up = {v->mv_data, v->mv_size, 0};
    if (journal_upk_u64(&up) != JOURNAL_REC_VERSION)
        return ORBIT_ECORRUPT;
    uint64_t kind = journal_upk_u64(&up);
    uint64_t state = journal_upk_u64(&up);
    uint64_t n = journal_upk_u64(&up);
    if (up.err || kind > JOURNAL_KIND_SYNC ||
        state >= JOURNAL_JOB_STATE_COUNT || n > up.left / 8)
        return ORBIT_ECORRUPT;
    job->kind = (enum journal_job_kind)kind;
    job->state = (enum journal_job_state)state;
    job->sources = journal_calloc(n ? n : 1, sizeof *job->sources);
    if (!job->sources)
        return ORBIT_ENOMEM;
    job->nsources = n;
    for (size_t i = 0; i < n; i++)
        job->sources[i] = journal_upk_str(&up);
    job->destination = journal_upk_str(&up);
    job->options = journal_upk_str(&up);
    job->created_ms = journal_upk_u64(&up);
    job->updated_ms = journal_upk_u64(&up);
    struct journal_counters *c = &job->counters;
    c->files_total = journal_upk_u64(&up);
    c->files_done = journal_upk_u64(&up);
    c->bytes_total = journal_upk_u64(&up);
    c->bytes_done = journal_upk_u64(&up);
    c->bytes_sent = journal_upk_u64(&up);
    c->bytes_dedup = journal_upk_u64(&up);
    return up.err;
}

void
journal_job_release(struct journal_job *job)
{
    if (!job)
        return;
    for (size_t i = 0; job->sources && i < job->nsources; i++)
        free(job->sources[i]);
    free(job->sources);
    free(job->destination);
    free(job->options);
    job->sources = NULL;
    job->nsources = 0;
    job->destination = job->options = NULL;
}

void
journal_jobs_free(struct journal_job *jobs, size_t n)
{
    for (size_t i = 0; jobs && i < n; i++)
        journal_job_release(&jobs[i]);
    free(jobs);
}

static int
journal_job_store(struct journal *j, const struct journal_job *job)
{
    struct journal_pk pk = {0};
    journal_job_pack(&pk, job);
    int rc = pk.err;
    if (rc == 0)
        rc = journal_write(j, j->jobs, job->id, JOURNAL_ID_LEN, pk.buf, pk.len);
    journal_pk_release(&pk);
    return rc;
}

static int
journal_count_fn(void *arg, MDB_txn *txn, const MDB_val *k, const MDB_val *v)
{
    (void)txn;
    (void)k;
    (void)v;
    (*(uint64_t *)arg)++;
    return 0;
}

static int
journal_job_load(struct journal *j, MDB_txn *txn, const char *id,
                 struct journal_job *out)
{
    MDB_val k = {JOURNAL_ID_LEN, (void *)id}, v;
    memset(out, 0, sizeof *out);
    int rc = journal_err_mdb(mdb_get(txn, j->jobs, &k, &v));
    if (rc != 0)
        return rc;
    memcpy(out->id, id, JOURNAL_ID_LEN);
    out->id[JOURNAL_ID_LEN] = '\0';
    rc = journal_job_unpack(&v, out);
    if (rc != 0) {
        journal_job_release(out);
        return rc;
    }
    uint64_t n = 0;
    rc = journal_scan_txn(txn, j->dead, id, journal_count_fn, &n);
    out->dead_letters = n;
    if (rc != 0)
        journal_job_release(out);
    return rc;
}

int
journal_job_get(struct journal *j, const char *id, struct journal_job *out)
{
    MDB_txn *txn = NULL;
    if (!j || !out || !journal_id_valid(id))
        return ORBIT_EINVAL;
    int rc = journal_read_begin(j, &txn);
    if (rc == 0)
        rc = journal_job_load(j, txn, id, out);
    journal_read_end(j, txn);
    return rc;
}

static int
journal_new_id(struct journal *j, char id[JOURNAL_ID_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    for (int tries = 0; tries < 16; tries++) {
        unsigned char r[JOURNAL_ID_LEN / 2];
        if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
            return ORBIT_EIO;
        for (size_t i = 0; i < sizeof r; i++) {
            id[2 * i] = hex[r[i] >> 4];
            id[2 * i + 1] = hex[r[i] & 15];
        }
        id[JOURNAL_ID_LEN] = '\0';
        MDB_val k = {JOURNAL_ID_LEN, id}, v;
        int rc = mdb_get(j->txn, j->jobs, &k, &v);
        if (rc == MDB_NOTFOUND)
            return 0;
        if (rc != 0)
            return journal_err_mdb(rc);
    }
    return ORBIT_EEXIST;
}

static int
journal_job_insert(struct journal *j, const struct journal_spec *spec,
                   const unsigned char hash[32], char *id)
{
    struct journal_job job = {0};
    int rc = journal_new_id(j, id);
    if (rc != 0)
        return rc;
    memcpy(job.id, id, JOURNAL_ID_LEN + 1);
    job.kind = spec->kind;
    job.state = JOURNAL_JOB_CREATED;
    job.sources = (char **)spec->sources;
    job.nsources = spec->nsources;
    job.destination = (char *)spec->destination;
    job.options = (char *)(spec->options ? spec->options : "{}");
    job.created_ms = job.updated_ms = orbit_clock_realtime_ms(NULL);
    rc = journal_job_store(j, &job);
    if (rc == 0)
        rc = journal_write(j, j->specs, hash, 32, id, JOURNAL_ID_LEN);
    return rc;
}

int
journal_job_create(struct journal *j, const struct journal_spec *spec,
                   char id_out[JOURNAL_ID_LEN + 1])
{
    unsigned char hash[32];
    char id[JOURNAL_ID_LEN + 1];
    bool owned;
    if (!j || !id_out)
        return ORBIT_EINVAL;
    int rc = journal_spec_hash(spec, hash);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < spec->nsources; i++)
        if (strlen(spec->sources[i]) > JOURNAL_PATH_MAX)
            return ORBIT_ETOOBIG;
    if (strlen(spec->destination) > JOURNAL_PATH_MAX)
        return ORBIT_ETOOBIG;
    if ((rc = journal_scope_begin(j, &owned)) != 0)
        return rc;
    rc = journal_scope_end(j, owned, journal_job_insert(j, spec, hash, id));
    if (rc == 0)
        memcpy(id_out, id, sizeof id);
    return rc;
}

int
journal_job_find_by_spec(struct journal *j, const struct journal_spec *spec,
                         char id_out[JOURNAL_ID_LEN + 1])
{
    unsigned char hash[32];
    MDB_txn *txn = NULL;
    struct journal_job job;
    if (!j || !id_out)
        return ORBIT_EINVAL;
    int rc = journal_spec_hash(spec, hash);
    if (rc != 0 || (rc = journal_read_begin(j, &txn)) != 0)
        return rc;
    MDB_val k = {32, hash}, v;
    rc = journal_err_mdb(mdb_get(txn, j->specs, &k, &v));
    if (rc == 0 && v.mv_size != JOURNAL_ID_LEN)
        rc = ORBIT_ECORRUPT;
    if (rc == 0) {
        char id[JOURNAL_ID_LEN + 1];
        memcpy(id, v.mv_data, JOURNAL_ID_LEN);
        id[JOURNAL_ID_LEN] = '\0';
        rc = journal_job_load(j, txn, id, &job);
        if (rc == 0 && job.state == JOURNAL_JOB_COMPLETED)
            rc = ORBIT_ENOENT;
        if (rc == 0)
            memcpy(id_out, id, sizeof id);
        if (rc == 0 || rc == ORBIT_ENOENT)
            journal_job_release(&job);
    }
    journal_read_end(j, txn);
    return rc;
}

/* Loads a job, lets fn change it, stores it with a new update time. */
static int
journal_job_modify(struct journal *j, const char *id,
                   void (*fn)(struct journal_job *, const void *),
                   const void *arg)
{
    struct journal_job job;
    bool owned;
    if (!j || !journal_id_valid(id))
        return ORBIT_EINVAL;
    int rc = journal_scope_begin(j, &owned);
    if (rc != 0)
        return rc;
    rc = journal_job_load(j, j->txn, id, &job);
    if (rc == 0) {
        fn(&job, arg);
        job.updated_ms = orbit_clock_realtime_ms(NULL);
        rc = journal_job_store(j, &job);
        journal_job_release(&job);
    }
    return journal_scope_end(j, owned, rc);
}

static void
journal_set_state_fn(struct journal_job *job, const void *arg)
{
    job->state = *(const enum journal_job_state *)arg;
}

static void
journal_set_counters_fn(struct journal_job *job, const void *arg)
{
    job->counters = *(const struct journal_counters *)arg;
}

int
journal_job_set_state(struct journal *j, const char *id,
                      enum journal_job_state state)
{
    if ((unsigned)state >= JOURNAL_JOB_STATE_COUNT)
        return ORBIT_EINVAL;
    return journal_job_modify(j, id, journal_set_state_fn, &state);
}

int
journal_job_set_counters(struct journal *j, const char *id,
                         const struct journal_counters *c)
{
    if (!c)
        return ORBIT_EINVAL;
    return journal_job_modify(j, id, journal_set_counters_fn, c);
}

static int
journal_job_cmp_created(const void *a, const void *b)
{
    const struct journal_job *x = a, *y = b;
    if (x->created_ms != y->created_ms)
        return x->created_ms < y->created_ms ? -1 : 1;
    return strcmp(x->id, y->id);
}

struct journal_job_acc {
    struct journal *j;
    struct journal_job *arr;
    size_t n;
    size_t cap;
};

static int
journal_job_list_fn(void *arg, MDB_txn *txn, const MDB_val *k, const MDB_val *v)
{
    struct journal_job_acc *acc = arg;
    char id[JOURNAL_ID_LEN + 1] = {0};
    (void)v;
    if (k->mv_size != JOURNAL_ID_LEN)
        return ORBIT_ECORRUPT;
    memcpy(id, k->mv_data, JOURNAL_ID_LEN);
    if (acc->n == acc->cap) {
        size_t ncap = acc->cap ? acc->cap * 2 : 16;
        struct journal_job *p = journal_realloc(acc->arr, ncap * sizeof *p);
        if (!p)
            return ORBIT_ENOMEM;
        acc->arr = p;
        acc->cap = ncap;
    }
    int rc = journal_job_load(acc->j, txn, id, &acc->arr[acc->n]);
    if (rc == 0)
        acc->n++;
    return rc;
}

int
journal_job_list(struct journal *j, struct journal_job **out, size_t *nout)
{
    struct journal_job_acc acc = {j, NULL, 0, 0};
    if (!j || !out || !nout)
        return ORBIT_EINVAL;
    int rc = journal_scan(j, j->jobs, NULL, journal_job_list_fn, &acc);
    if (rc != 0) {
        journal_jobs_free(acc.arr, acc.n);
        return rc;
    }
    if (acc.n > 1)
        qsort(acc.arr, acc.n, sizeof *acc.arr, journal_job_cmp_created);
    if (!acc.n) {
        free(acc.arr);
        acc.arr = NULL;
    }
    *out = acc.arr;
    *nout = acc.n;
    return 0;
}

static int
journal_job_remove(struct journal *j, const char *id)
{
    struct journal_job job;
    unsigned char hash[32];
    int rc = journal_job_load(j, j->txn, id, &job);
    if (rc != 0)
        return rc;
    struct journal_spec spec = {job.kind, (const char *const *)job.sources,
                                job.nsources, job.destination, NULL};
    rc = journal_spec_hash(&spec, hash);
    journal_job_release(&job);
    MDB_val k = {32, hash}, v;
    if (rc == 0 && mdb_get(j->txn, j->specs, &k, &v) == 0 &&
        v.mv_size == JOURNAL_ID_LEN &&
        memcmp(v.mv_data, id, JOURNAL_ID_LEN) == 0)
        rc = journal_write(j, j->specs, hash, 32, NULL, 0);
    if (rc == 0)
        rc = journal_write(j, j->jobs, id, JOURNAL_ID_LEN, NULL, 0);
    if (rc == 0)
        rc = journal_delete_prefix(j, j->files, id, NULL);
    if (rc == 0)
        rc = journal_delete_prefix(j, j->dead, id, NULL);
    return rc;
}

int
journal_job_delete(struct journal *j, const char *id)
{
    bool owned;
    if (!j || !journal_id_valid(id))
        return ORBIT_EINVAL;
    int rc = journal_scope_begin(j, &owned);
    if (rc != 0)
        return rc;
    return journal_scope_end(j, owned, journal_job_remove(j, id));
}
