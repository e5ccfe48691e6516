/*
 * journal_internal.h - what the journal's source files share: the handle,
 * the write funnel (every write is logged for replay after a map resize),
 * read transactions and key construction.
 */
#ifndef ORBIT_JOURNAL_INTERNAL_H
#define ORBIT_JOURNAL_INTERNAL_H

#include <lmdb.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "orbit/journal.h"

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

/* The longest key journal_key() builds. */
#define JOURNAL_KEY_MAX (JOURNAL_ID_LEN + 1 + 600)

/* An LMDB return code as an ORBIT_E* code. */
int journal_err_mdb(int rc);

/* Writes (v non-NULL) or deletes (v NULL) one key in the open transaction;
 * ORBIT_ESTATE without one. */
int journal_write(struct journal *j, MDB_dbi dbi, const void *k, size_t kl,
                  const void *v, size_t vl);
/* A write scope: the caller's batch if one is open, else a private one that
 * journal_scope_end() commits (rc 0) or aborts; returns the final code. */
int journal_scope_begin(struct journal *j, bool *owned);
int journal_scope_end(struct journal *j, bool owned, int rc);
/* A read transaction: the open batch, or a new read-only one. */
int journal_read_begin(struct journal *j, MDB_txn **txn);
void journal_read_end(struct journal *j, MDB_txn *txn);

int journal_sha256(const void *data, size_t len, unsigned char out[32]);
/* id + '\0' + path, or id + '\1' + SHA-256(path) when too long for LMDB. */
int journal_key(const struct journal *j, const char *id, const char *path,
                unsigned char *key, size_t *klen, bool *hashed);
bool journal_key_in_job(const MDB_val *k, const char *id);
int journal_spec_hash(const struct journal_spec *spec, unsigned char out[32]);
/* Called per record by a scan: 0 to go on, anything else stops the scan
 * and is its result. */
typedef int (*journal_scan_fn)(void *arg, MDB_txn *txn, const MDB_val *k,
                               const MDB_val *v);
/* Calls fn on every record of dbi in key order, or only on those of job id
 * when id is not NULL; in txn, or in a read transaction of its own. */
int journal_scan_txn(MDB_txn *txn, MDB_dbi dbi, const char *id,
                     journal_scan_fn fn, void *arg);
int journal_scan(struct journal *j, MDB_dbi dbi, const char *id,
                 journal_scan_fn fn, void *arg);
/* Deletes every record of job id in dbi through the write funnel. */
int journal_delete_prefix(struct journal *j, MDB_dbi dbi, const char *id,
                          size_t *removed);

#endif
