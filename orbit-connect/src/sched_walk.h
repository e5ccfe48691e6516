/*
 * sched_walk.h - the scheduler's source side: streams the entries of every
 * source as sched_file objects (walk order, bounded memory), applies the
 * include/exclude rules, and consults and updates the job journal.
 */
#ifndef ORBIT_SCHED_WALK_H
#define ORBIT_SCHED_WALK_H

#include <stdbool.h>
#include <stddef.h>

#include "orbit/sched.h"

struct sched_file;

struct walker;
struct walk_err;

struct sched_walk {
    const struct sched_config *cfg;
    size_t src;       /* index of the source being walked */
    bool src_started; /* its root entry was produced */
    struct walker *walker;
    struct walk_err *errors; /* entries the walker could not read */
    uint64_t lost_errors;    /* errors not recorded for lack of memory */
    unsigned batch_n;        /* journal writes in the open batch */
};

#define JOURNAL_BATCH_FILES 256

int sched_walk_init(struct sched_walk *w, const struct sched_config *cfg);
void sched_walk_release(struct sched_walk *w);

/*
 * The next entry as a new file. Returns 0 with *out set; ORBIT_ENOENT when
 * every source is walked; another error with *out set for an entry that
 * could not be read (msg says why: a dead letter, the walk goes on), or with
 * *out NULL when the walk cannot go on.
 */
int sched_walk_next(struct sched_walk *w, struct sched_file **out, char *msg,
                    size_t msgcap);

/* Whether the journal records f as done with the same size and mtime. */
bool sched_walk_is_done(struct sched_walk *w, const struct sched_file *f);

/* Record f as done, or a dead letter, in the journal (batched). */
void sched_walk_mark_done(struct sched_walk *w, const struct sched_file *f);
void sched_walk_mark_dead(struct sched_walk *w, const struct dlq_failure *fl);

/* Make the journal writes so far durable. */
void sched_walk_flush(struct sched_walk *w);

#endif
