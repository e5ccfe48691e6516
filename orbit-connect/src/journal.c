/*
 * journal.c - the job journal on LMDB.
 *
 * Four named databases:
 *   jobs   id (16 hex)                      -> packed job record
 *   specs  SHA-256 of kind+sources+dest     -> id of the latest such job
 *   files  id '\0' path  (or id '\1' sha256(path) when too long for a key)
 *                                           -> packed file record
 *   dead   id '\0' key   (same rule)        -> packed dead-letter record
 *
 * Every write goes through one funnel that also logs it while a
 * transaction is open, so a full map is handled by aborting, doubling the
 * map and replaying the log: callers never see MDB_MAP_FULL.
 */
#include "orbit/journal.h"

#include <errno.h>
#include <lmdb.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>

#include "journal_pack.h"
#include "orbit/error.h"
#include "orbit/orbit_clock.h"

#define JOURNAL_MAP_INITIAL ((size_t)8 << 20)
#define JOURNAL_MAP_LIMIT   ((size_t)1 << 40)
#define JOURNAL_REC_VERSION 1u
#define JOURNAL_SEP_PLAIN   '\0'
#define JOURNAL_SEP_HASHED  '\1'

struct journal_op {
    MDB_dbi dbi;
    size_t klen;
    size_t vlen;
    bool del;
    unsigned char *buf; /* key then value */
};

struct journal {
    MDB_env *env;
    MDB_dbi jobs;
    MDB_dbi specs;
    MDB_dbi files;
    MDB_dbi dead;
    MDB_txn *txn; /* the open batch */
    struct journal_op *log;
    size_t nlog;
    size_t caplog;
    size_t mapsize;
    size_t maxkey;
};

static int
journal_err_mdb(int rc)
{
    switch (rc) {
    case 0:
        return 0;
    case MDB_NOTFOUND:
        return ORBIT_ENOENT;
    case ENOMEM:
        return ORBIT_ENOMEM;
    case EACCES:
        return ORBIT_EPERM;
    case ENOSPC:
        return ORBIT_ENOSPC;
    case EIO:
        return ORBIT_EIO;
    default:
        return ORBIT_EDB;
    }
}

/* ---- directories --------------------------------------------------- */

static int
journal_mkdirs(char *path)
{
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        int rc = mkdir(path, 0700);
        *p = '/';
        if (rc != 0 && errno != EEXIST)
            return orbit_err_from_errno(errno);
    }
    if (mkdir(path, 0700) != 0 && errno != EEXIST)
        return orbit_err_from_errno(errno);
    return 0;
}

static int
journal_default_dir(char *buf, size_t cap)
{
    const char *base = getenv("ORBIT_STATE_DIR");
    const char *tail = "/journal";
    if (!base || !*base) {
        base = getenv("XDG_STATE_HOME");
        tail = "/orbit/journal";
    }
    if (!base || !*base) {
        base = getenv("HOME");
        tail = "/.local/state/orbit/journal";
    }
    if (!base || !*base)
        return ORBIT_EINVAL;
    int n = snprintf(buf, cap, "%s%s", base, tail);
    if (n < 0 || (size_t)n >= cap)
        return ORBIT_ETOOBIG;
    return 0;
}

/* ---- transactions and the write funnel ----------------------------- */

static void
journal_log_clear(struct journal *j)
{
    for (size_t i = 0; i < j->nlog; i++)
        free(j->log[i].buf);
    j->nlog = 0;
}

static int
journal_apply(struct journal *j, const struct journal_op *op)
{
    MDB_val k = {op->klen, op->buf};
    if (op->del) {
        int rc = mdb_del(j->txn, op->dbi, &k, NULL);
        return rc == MDB_NOTFOUND ? 0 : rc;
    }
    MDB_val v = {op->vlen, op->buf + op->klen};
    return mdb_put(j->txn, op->dbi, &k, &v, 0);
}

/* After MDB_MAP_FULL: abort, double the map, replay the batch so far. */
static int
journal_grow_and_replay(struct journal *j)
{
    mdb_txn_abort(j->txn);
    j->txn = NULL;
    for (;;) {
        if (j->mapsize >= JOURNAL_MAP_LIMIT)
            return ORBIT_ENOSPC;
        j->mapsize *= 2;
        int rc = mdb_env_set_mapsize(j->env, j->mapsize);
        if (rc == 0)
            rc = mdb_txn_begin(j->env, NULL, 0, &j->txn);
        if (rc != 0)
            return journal_err_mdb(rc);
        for (size_t i = 0; i < j->nlog && rc == 0; i++)
            rc = journal_apply(j, &j->log[i]);
        if (rc == 0)
            return 0;
        mdb_txn_abort(j->txn);
        j->txn = NULL;
        if (rc != MDB_MAP_FULL)
            return journal_err_mdb(rc);
    }
}

static int
journal_log_push(struct journal *j, MDB_dbi dbi, const void *k, size_t kl,
                 const void *v, size_t vl)
{
    if (j->nlog == j->caplog) {
        size_t ncap = j->caplog ? j->caplog * 2 : 64;
        struct journal_op *n = journal_realloc(j->log, ncap * sizeof *n);
        if (!n)
            return ORBIT_ENOMEM;
        j->log = n;
        j->caplog = ncap;
    }
    unsigned char *buf = journal_malloc(kl + vl + 1);
    if (!buf)
        return ORBIT_ENOMEM;
    memcpy(buf, k, kl);
    if (vl)
        memcpy(buf + kl, v, vl);
    j->log[j->nlog++] = (struct journal_op){dbi, kl, vl, v == NULL, buf};
    return 0;
}

/* Writes (v non-NULL) or deletes one key in the open transaction. */
static int
journal_write(struct journal *j, MDB_dbi dbi, const void *k, size_t kl,
              const void *v, size_t vl)
{
    if (!j->txn)
        return ORBIT_ESTATE;
    int rc = journal_log_push(j, dbi, k, kl, v, vl);
    if (rc != 0)
        return rc;
    rc = journal_apply(j, &j->log[j->nlog - 1]);
    if (rc == MDB_MAP_FULL)
        return journal_grow_and_replay(j);
    return journal_err_mdb(rc);
}

int
journal_batch_begin(struct journal *j)
{
    if (!j)
        return ORBIT_EINVAL;
    if (j->txn)
        return ORBIT_ESTATE;
    journal_log_clear(j);
    return journal_err_mdb(mdb_txn_begin(j->env, NULL, 0, &j->txn));
}

int
journal_batch_commit(struct journal *j)
{
    if (!j || !j->txn)
        return ORBIT_ESTATE;
    int rc = mdb_txn_commit(j->txn);
    j->txn = NULL;
    while (rc == MDB_MAP_FULL) {
        /* The commit itself may need pages: replay into a bigger map. */
        rc = mdb_txn_begin(j->env, NULL, MDB_RDONLY, &j->txn);
        if (rc != 0)
            break;
        rc = journal_grow_and_replay(j);
        if (rc != 0) {
            journal_log_clear(j);
            return rc;
        }
        rc = mdb_txn_commit(j->txn);
        j->txn = NULL;
    }
    journal_log_clear(j);
    return journal_err_mdb(rc);
}

void
journal_batch_abort(struct journal *j)
{
    if (!j || !j->txn)
        return;
    mdb_txn_abort(j->txn);
    j->txn = NULL;
    journal_log_clear(j);
}

bool
journal_batch_active(const struct journal *j)
{
    return j && j->txn;
}

/* A write scope: the caller's batch if one is open, else a private one. */
static int
journal_scope_begin(struct journal *j, bool *owned)
{
    *owned = !j->txn;
    return *owned ? journal_batch_begin(j) : 0;
}

static int
journal_scope_end(struct journal *j, bool owned, int rc)
{
    if (!owned)
        return rc;
    if (rc != 0) {
        journal_batch_abort(j);
        return rc;
    }
    return journal_batch_commit(j);
}

/* A read transaction: the open batch, or a new read-only one. */
static int
journal_read_begin(struct journal *j, MDB_txn **txn)
{
    if (j->txn) {
        *txn = j->txn;
        return 0;
    }
    return journal_err_mdb(mdb_txn_begin(j->env, NULL, MDB_RDONLY, txn));
}

static void
journal_read_end(struct journal *j, MDB_txn *txn)
{
    if (txn && txn != j->txn)
        mdb_txn_abort(txn);
}

/* ---- open / close --------------------------------------------------- */

static int
journal_open_dbs(struct journal *j)
{
    MDB_txn *txn = NULL;
    int rc = mdb_txn_begin(j->env, NULL, 0, &txn);
    if (rc == 0)
        rc = mdb_dbi_open(txn, "jobs", MDB_CREATE, &j->jobs);
    if (rc == 0)
        rc = mdb_dbi_open(txn, "specs", MDB_CREATE, &j->specs);
    if (rc == 0)
        rc = mdb_dbi_open(txn, "files", MDB_CREATE, &j->files);
    if (rc == 0)
        rc = mdb_dbi_open(txn, "dead", MDB_CREATE, &j->dead);
    if (rc == 0)
        return journal_err_mdb(mdb_txn_commit(txn));
    mdb_txn_abort(txn);
    return journal_err_mdb(rc);
}

int
journal_open(const char *dir, struct journal **out)
{
    char path[JOURNAL_PATH_MAX];
    struct journal *j = NULL;
    int rc;

    if (!out)
        return ORBIT_EINVAL;
    *out = NULL;
    if (dir) {
        if (strlen(dir) >= sizeof path)
            return ORBIT_ETOOBIG;
        strcpy(path, dir);
    } else if ((rc = journal_default_dir(path, sizeof path)) != 0) {
        return rc;
    }
    if ((rc = journal_mkdirs(path)) != 0)
        return rc;
    j = journal_calloc(1, sizeof *j);
    if (!j)
        return ORBIT_ENOMEM;
    j->mapsize = JOURNAL_MAP_INITIAL;
    rc = journal_err_mdb(mdb_env_create(&j->env));
    if (rc != 0)
        goto out;
    mdb_env_set_maxdbs(j->env, 8);
    mdb_env_set_mapsize(j->env, j->mapsize);
    rc = journal_err_mdb(mdb_env_open(j->env, path, MDB_NOTLS, 0600));
    if (rc != 0)
        goto out;
    MDB_envinfo info;
    mdb_env_info(j->env, &info);
    if (info.me_mapsize > j->mapsize)
        j->mapsize = info.me_mapsize;
    j->maxkey = (size_t)mdb_env_get_maxkeysize(j->env);
    rc = journal_open_dbs(j);
out:
    if (rc != 0) {
        journal_close(j);
        return rc;
    }
    *out = j;
    return 0;
}

void
journal_close(struct journal *j)
{
    if (!j)
        return;
    journal_batch_abort(j);
    journal_log_clear(j);
    free(j->log);
    if (j->env)
        mdb_env_close(j->env);
    free(j);
}

size_t
journal_map_size(const struct journal *j)
{
    return j ? j->mapsize : 0;
}

/* ---- names ----------------------------------------------------------- */

static const char *const journal_kind_names[] = {"copy", "sync"};
static const char *const journal_state_names[] = {
    "created", "running", "completed", "partial", "failed", "canceled"};
static const char *const journal_file_state_names[] = {"pending", "done",
                                                       "dead"};

const char *
journal_kind_str(enum journal_job_kind kind)
{
    return (unsigned)kind < 2 ? journal_kind_names[kind] : "unknown";
}

int
journal_kind_parse(const char *name, enum journal_job_kind *out)
{
    for (unsigned i = 0; name && i < 2; i++)
        if (strcmp(name, journal_kind_names[i]) == 0) {
            *out = (enum journal_job_kind)i;
            return 0;
        }
    return ORBIT_EINVAL;
}

const char *
journal_state_str(enum journal_job_state state)
{
    return (unsigned)state < JOURNAL_JOB_STATE_COUNT
               ? journal_state_names[state]
               : "unknown";
}

int
journal_state_parse(const char *name, enum journal_job_state *out)
{
    for (unsigned i = 0; name && i < JOURNAL_JOB_STATE_COUNT; i++)
        if (strcmp(name, journal_state_names[i]) == 0) {
            *out = (enum journal_job_state)i;
            return 0;
        }
    return ORBIT_EINVAL;
}

const char *
journal_file_state_str(enum journal_file_state state)
{
    return (unsigned)state < 3 ? journal_file_state_names[state] : "unknown";
}

/* ---- keys ------------------------------------------------------------ */

bool
journal_id_valid(const char *id)
{
    if (!id || strlen(id) != JOURNAL_ID_LEN)
        return false;
    for (size_t i = 0; i < JOURNAL_ID_LEN; i++) {
        char c = id[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
    }
    return true;
}

static int
journal_sha256(const void *data, size_t len, unsigned char out[32])
{
    unsigned int n = 0;
    if (EVP_Digest(data, len, out, &n, EVP_sha256(), NULL) != 1 || n != 32)
        return ORBIT_ECRYPTO;
    return 0;
}

/* id + separator + path, or id + '\1' + sha256(path) when too long. */
static int
journal_key(const struct journal *j, const char *id, const char *path,
            unsigned char *key, size_t *klen, bool *hashed)
{
    if (!journal_id_valid(id) || !path || !*path)
        return ORBIT_EINVAL;
    size_t plen = strlen(path);
    if (plen > JOURNAL_PATH_MAX)
        return ORBIT_ETOOBIG;
    memcpy(key, id, JOURNAL_ID_LEN);
    *hashed = JOURNAL_ID_LEN + 1 + plen > j->maxkey;
    if (!*hashed) {
        key[JOURNAL_ID_LEN] = JOURNAL_SEP_PLAIN;
        memcpy(key + JOURNAL_ID_LEN + 1, path, plen);
        *klen = JOURNAL_ID_LEN + 1 + plen;
        return 0;
    }
    key[JOURNAL_ID_LEN] = JOURNAL_SEP_HASHED;
    *klen = JOURNAL_ID_LEN + 1 + 32;
    return journal_sha256(path, plen, key + JOURNAL_ID_LEN + 1);
}

static bool
journal_key_in_job(const MDB_val *k, const char *id)
{
    return k->mv_size > JOURNAL_ID_LEN &&
           memcmp(k->mv_data, id, JOURNAL_ID_LEN) == 0;
}

static int
journal_spec_hash(const struct journal_spec *spec, unsigned char out[32])
{
    if (!spec || !spec->destination || (spec->nsources && !spec->sources) ||
        (unsigned)spec->kind > JOURNAL_KIND_SYNC)
        return ORBIT_EINVAL;
    struct journal_pk pk = {0};
    journal_pk_u64(&pk, (uint64_t)spec->kind);
    journal_pk_u64(&pk, spec->nsources);
    for (size_t i = 0; i < spec->nsources; i++) {
        if (!spec->sources[i])
            pk.err = ORBIT_EINVAL;
        journal_pk_str(&pk, spec->sources[i]);
    }
    journal_pk_str(&pk, spec->destination);
    int rc = pk.err ? pk.err : journal_sha256(pk.buf, pk.len, out);
    journal_pk_release(&pk);
    return rc;
}

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

static uint64_t
journal_count_prefix(MDB_txn *txn, MDB_dbi dbi, const char *id)
{
    MDB_cursor *cur = NULL;
    uint64_t n = 0;
    if (mdb_cursor_open(txn, dbi, &cur) != 0)
        return 0;
    MDB_val k = {JOURNAL_ID_LEN, (void *)id}, v;
    int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (rc == 0 && journal_key_in_job(&k, id)) {
        n++;
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    return n;
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
    out->dead_letters = journal_count_prefix(txn, j->dead, id);
    return 0;
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
journal_list_push(struct journal_job **arr, size_t *n, size_t *cap)
{
    if (*n < *cap)
        return 0;
    size_t ncap = *cap ? *cap * 2 : 16;
    struct journal_job *p = journal_realloc(*arr, ncap * sizeof *p);
    if (!p)
        return ORBIT_ENOMEM;
    *arr = p;
    *cap = ncap;
    return 0;
}

static int
journal_job_cmp_created(const void *a, const void *b)
{
    const struct journal_job *x = a, *y = b;
    if (x->created_ms != y->created_ms)
        return x->created_ms < y->created_ms ? -1 : 1;
    return strcmp(x->id, y->id);
}

int
journal_job_list(struct journal *j, struct journal_job **out, size_t *nout)
{
    struct journal_job *arr = NULL;
    size_t n = 0, cap = 0;
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    if (!j || !out || !nout)
        return ORBIT_EINVAL;
    int rc = journal_read_begin(j, &txn);
    if (rc == 0)
        rc = journal_err_mdb(mdb_cursor_open(txn, j->jobs, &cur));
    MDB_val k, v;
    int mrc = rc == 0 ? mdb_cursor_get(cur, &k, &v, MDB_FIRST) : 0;
    while (rc == 0 && mrc == 0) {
        char id[JOURNAL_ID_LEN + 1] = {0};
        if (k.mv_size != JOURNAL_ID_LEN) {
            rc = ORBIT_ECORRUPT;
            break;
        }
        memcpy(id, k.mv_data, JOURNAL_ID_LEN);
        if ((rc = journal_list_push(&arr, &n, &cap)) != 0 ||
            (rc = journal_job_load(j, txn, id, &arr[n])) != 0)
            break;
        n++;
        mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    if (rc == 0 && mrc != 0 && mrc != MDB_NOTFOUND)
        rc = journal_err_mdb(mrc);
    if (cur)
        mdb_cursor_close(cur);
    journal_read_end(j, txn);
    if (rc != 0) {
        journal_jobs_free(arr, n);
        return rc;
    }
    if (n > 1)
        qsort(arr, n, sizeof *arr, journal_job_cmp_created);
    *out = n ? arr : NULL;
    if (!n)
        free(arr);
    *nout = n;
    return 0;
}

/* Deletes every key of the job in dbi, one lookup at a time so each
 * delete is logged for replay. */
static int
journal_delete_prefix(struct journal *j, MDB_dbi dbi, const char *id,
                      size_t *removed)
{
    for (;;) {
        MDB_cursor *cur = NULL;
        MDB_val k = {JOURNAL_ID_LEN, (void *)id}, v;
        int rc = mdb_cursor_open(j->txn, dbi, &cur);
        if (rc != 0)
            return journal_err_mdb(rc);
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        mdb_cursor_close(cur);
        if (rc == MDB_NOTFOUND || (rc == 0 && !journal_key_in_job(&k, id)))
            return 0;
        if (rc != 0)
            return journal_err_mdb(rc);
        unsigned char key[600];
        if (k.mv_size > sizeof key)
            return ORBIT_ECORRUPT;
        size_t klen = k.mv_size;
        memcpy(key, k.mv_data, klen);
        if ((rc = journal_write(j, dbi, key, klen, NULL, 0)) != 0)
            return rc;
        if (removed)
            (*removed)++;
    }
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
    unsigned char key[JOURNAL_ID_LEN + 1 + 600];
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
    unsigned char key[JOURNAL_ID_LEN + 1 + 600];
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

int
journal_file_count(struct journal *j, const char *job_id, uint64_t counts[3])
{
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    if (!j || !counts || !journal_id_valid(job_id))
        return ORBIT_EINVAL;
    counts[0] = counts[1] = counts[2] = 0;
    int rc = journal_read_begin(j, &txn);
    if (rc == 0)
        rc = journal_err_mdb(mdb_cursor_open(txn, j->files, &cur));
    MDB_val k = {JOURNAL_ID_LEN, (void *)job_id}, v;
    int mrc = rc == 0 ? mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE) : 0;
    while (rc == 0 && mrc == 0 && journal_key_in_job(&k, job_id)) {
        struct journal_upk up = {v.mv_data, v.mv_size, 0};
        journal_upk_u64(&up);
        journal_upk_u64(&up);
        journal_upk_u64(&up);
        uint64_t st = journal_upk_u64(&up) & 0xff;
        if (up.err || st > JOURNAL_FILE_DEAD)
            rc = ORBIT_ECORRUPT;
        else
            counts[st]++;
        mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    if (rc == 0 && mrc != 0 && mrc != MDB_NOTFOUND)
        rc = journal_err_mdb(mrc);
    if (cur)
        mdb_cursor_close(cur);
    journal_read_end(j, txn);
    return rc;
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
    unsigned char key[JOURNAL_ID_LEN + 1 + 600];
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

int
journal_dead_list(struct journal *j, const char *job_id, struct dlq_entry **out,
                  size_t *nout)
{
    struct dlq_entry *arr = NULL;
    size_t n = 0, cap = 0;
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    if (!j || !out || !nout || !journal_id_valid(job_id))
        return ORBIT_EINVAL;
    int rc = journal_read_begin(j, &txn);
    if (rc == 0)
        rc = journal_err_mdb(mdb_cursor_open(txn, j->dead, &cur));
    MDB_val k = {JOURNAL_ID_LEN, (void *)job_id}, v;
    int mrc = rc == 0 ? mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE) : 0;
    while (rc == 0 && mrc == 0 && journal_key_in_job(&k, job_id)) {
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            struct dlq_entry *p = journal_realloc(arr, ncap * sizeof *p);
            if (!p) {
                rc = ORBIT_ENOMEM;
                break;
            }
            arr = p;
            cap = ncap;
        }
        if ((rc = journal_dead_unpack(&v, job_id, &arr[n])) != 0)
            break;
        n++;
        mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    if (rc == 0 && mrc != 0 && mrc != MDB_NOTFOUND)
        rc = journal_err_mdb(mrc);
    if (cur)
        mdb_cursor_close(cur);
    journal_read_end(j, txn);
    if (rc != 0) {
        dlq_entries_free(arr, n);
        return rc;
    }
    if (!n) {
        free(arr);
        arr = NULL;
    }
    *out = arr;
    *nout = n;
    return 0;
}

int
journal_dead_remove(struct journal *j, const char *job_id, const char *key)
{
    unsigned char k[JOURNAL_ID_LEN + 1 + 600];
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

static bool
journal_spec_ok(struct journal *j, MDB_txn *txn, const MDB_val *k,
                const MDB_val *v)
{
    MDB_val jk = {v->mv_size, v->mv_data}, jv;
    return k->mv_size == 32 && v->mv_size == JOURNAL_ID_LEN &&
           mdb_get(txn, j->jobs, &jk, &jv) == 0;
}

static bool
journal_file_ok(struct journal *j, MDB_txn *txn, const MDB_val *k,
                const MDB_val *v)
{
    struct journal_file f;
    MDB_val jk = {JOURNAL_ID_LEN, k->mv_data}, jv;
    return k->mv_size > JOURNAL_ID_LEN + 1 &&
           mdb_get(txn, j->jobs, &jk, &jv) == 0 &&
           journal_file_decode(v, NULL, false, &f) == 0;
}

/* Calls ok on every record of dbi; ORBIT_ECORRUPT at the first refusal. */
static int
journal_check_db(struct journal *j, MDB_txn *txn, MDB_dbi dbi,
                 bool (*ok)(struct journal *, MDB_txn *, const MDB_val *,
                            const MDB_val *))
{
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    int rc = journal_err_mdb(mdb_cursor_open(txn, dbi, &cur));
    int mrc = rc == 0 ? mdb_cursor_get(cur, &k, &v, MDB_FIRST) : 0;
    while (rc == 0 && mrc == 0) {
        if (!ok(j, txn, &k, &v))
            rc = ORBIT_ECORRUPT;
        mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    if (cur)
        mdb_cursor_close(cur);
    return rc;
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
    rc = journal_check_db(j, txn, j->specs, journal_spec_ok);
    if (rc == 0)
        rc = journal_check_db(j, txn, j->files, journal_file_ok);
    journal_read_end(j, txn);
    return rc;
}
