/*
 * journal.c - the job journal on LMDB: the environment, transactions and
 * the write funnel, names and keys. Job records live in journal_job.c,
 * file records and dead letters in journal_file.c.
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
#include <sys/stat.h>

#include "journal_internal.h"
#include "journal_pack.h"
#include "orbit/error.h"
#include "orbit/orbit_clock.h"

int
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
int
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
int
journal_scope_begin(struct journal *j, bool *owned)
{
    *owned = !j->txn;
    return *owned ? journal_batch_begin(j) : 0;
}

int
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
int
journal_read_begin(struct journal *j, MDB_txn **txn)
{
    if (j->txn) {
        *txn = j->txn;
        return 0;
    }
    return journal_err_mdb(mdb_txn_begin(j->env, NULL, MDB_RDONLY, txn));
}

void
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

int
journal_sha256(const void *data, size_t len, unsigned char out[32])
{
    unsigned int n = 0;
    if (EVP_Digest(data, len, out, &n, EVP_sha256(), NULL) != 1 || n != 32)
        return ORBIT_ECRYPTO;
    return 0;
}

/* id + separator + path, or id + '\1' + sha256(path) when too long. */
int
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

bool
journal_key_in_job(const MDB_val *k, const char *id)
{
    return k->mv_size > JOURNAL_ID_LEN &&
           memcmp(k->mv_data, id, JOURNAL_ID_LEN) == 0;
}

int
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

int
journal_scan_txn(MDB_txn *txn, MDB_dbi dbi, const char *id, journal_scan_fn fn,
                 void *arg)
{
    MDB_cursor *cur = NULL;
    int rc = journal_err_mdb(mdb_cursor_open(txn, dbi, &cur));
    if (rc != 0)
        return rc;
    MDB_val k = {id ? JOURNAL_ID_LEN : 0, (void *)id}, v;
    int mrc = mdb_cursor_get(cur, &k, &v, id ? MDB_SET_RANGE : MDB_FIRST);
    while (mrc == 0 && (!id || journal_key_in_job(&k, id))) {
        if ((rc = fn(arg, txn, &k, &v)) != 0)
            break;
        mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    if (rc == 0 && mrc != 0 && mrc != MDB_NOTFOUND)
        rc = journal_err_mdb(mrc);
    return rc;
}

int
journal_scan(struct journal *j, MDB_dbi dbi, const char *id, journal_scan_fn fn,
             void *arg)
{
    MDB_txn *txn = NULL;
    int rc = journal_read_begin(j, &txn);
    if (rc == 0)
        rc = journal_scan_txn(txn, dbi, id, fn, arg);
    journal_read_end(j, txn);
    return rc;
}

/* Deletes every key of the job in dbi, one lookup at a time so each
 * delete is logged for replay. */
int
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
        unsigned char key[JOURNAL_KEY_MAX];
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
