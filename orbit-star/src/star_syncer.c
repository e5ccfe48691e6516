/*
 * A helper thread: runs one job at a time (a sync round's system calls and
 * index commit; or a LIST that hashes files) while the loop goes on, then calls
 * the job's completion on the loop thread, woken through an eventfd. The loop
 * may also wait for the job, and then runs the completion itself: either way
 * exactly once.
 */
#include <errno.h>
#include <event2/event.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "orbit/error.h"
#include "star_alloc.h"
#include "star_internal.h"

struct star_syncer {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int efd;
    struct event *ev;
    void (*job)(void *arg);
    void *job_arg;
    void (*done)(void *arg); /* on the loop thread */
    void *done_arg;
    bool posted;   /* a job was handed over, its completion not yet run */
    bool finished; /* the posted job has returned */
    bool quit;
    char name[16];
};

/* Test seam: runs on the syncer thread before each job (a test holds a
 * round in flight with it); weak, a no-op unless a test replaces it. */
__attribute__((weak)) void
star_syncer_test_pause(void)
{
}

static void *
syncer_main(void *arg)
{
    struct star_syncer *y = arg;
    pthread_setname_np(pthread_self(), y->name);
    pthread_mutex_lock(&y->mu);
    for (;;) {
        while (!y->quit && !(y->posted && !y->finished && y->job))
            pthread_cond_wait(&y->cv, &y->mu);
        if (y->quit)
            break;
        void (*job)(void *) = y->job;
        void *job_arg = y->job_arg;
        y->job = NULL;
        pthread_mutex_unlock(&y->mu);
        star_syncer_test_pause();
        job(job_arg);
        pthread_mutex_lock(&y->mu);
        y->finished = true;
        pthread_cond_broadcast(&y->cv);
        uint64_t one = 1;
        ssize_t w = write(y->efd, &one, sizeof one);
        (void)w; /* the counter only saturates; a missed wake-up is
                    covered by star_syncer_wait() */
    }
    pthread_mutex_unlock(&y->mu);
    return NULL;
}

/* Run the completion of a finished job, once. Called with y->mu held;
 * returns with it released. */
static void
complete(struct star_syncer *y)
{
    bool run = y->posted && y->finished;
    if (run)
        y->posted = y->finished = false;
    pthread_mutex_unlock(&y->mu);
    if (run)
        y->done(y->done_arg);
}

static void
wake_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct star_syncer *y = arg;
    uint64_t n;
    ssize_t r = read(fd, &n, sizeof n);
    (void)r;
    pthread_mutex_lock(&y->mu);
    complete(y);
}

int
star_syncer_new(struct event_base *base, const char *name,
                void (*done)(void *arg), void *arg, struct star_syncer **out)
{
    *out = NULL;
    struct star_syncer *y = star_calloc(1, sizeof *y);
    if (!y)
        return ORBIT_ENOMEM;
    y->done = done;
    y->done_arg = arg;
    snprintf(y->name, sizeof y->name, "%s", name); /* 15 bytes at most */
    y->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (y->efd < 0) {
        free(y);
        return orbit_err_from_errno(errno);
    }
    y->ev = event_new(base, y->efd, EV_READ | EV_PERSIST, wake_cb, y);
    pthread_mutex_init(&y->mu, NULL);
    pthread_cond_init(&y->cv, NULL);
    if (!y->ev || event_add(y->ev, NULL) != 0 ||
        pthread_create(&y->thread, NULL, syncer_main, y) != 0) {
        if (y->ev)
            event_free(y->ev);
        close(y->efd);
        pthread_mutex_destroy(&y->mu);
        pthread_cond_destroy(&y->cv);
        free(y);
        return ORBIT_ENOMEM;
    }
    *out = y;
    return 0;
}

int
star_syncer_post(struct star_syncer *y, void (*job)(void *arg), void *arg)
{
    pthread_mutex_lock(&y->mu);
    if (y->posted) {
        pthread_mutex_unlock(&y->mu);
        return ORBIT_EAGAIN;
    }
    y->job = job;
    y->job_arg = arg;
    y->posted = true;
    y->finished = false;
    pthread_cond_broadcast(&y->cv);
    pthread_mutex_unlock(&y->mu);
    return 0;
}

void
star_syncer_wait(struct star_syncer *y)
{
    pthread_mutex_lock(&y->mu);
    while (y->posted && !y->finished)
        pthread_cond_wait(&y->cv, &y->mu);
    complete(y);
}

void
star_syncer_free(struct star_syncer *y)
{
    if (!y)
        return;
    pthread_mutex_lock(&y->mu);
    while (y->posted) { /* a completion may post the round's next step */
        pthread_mutex_unlock(&y->mu);
        star_syncer_wait(y);
        pthread_mutex_lock(&y->mu);
    }
    y->quit = true;
    pthread_cond_broadcast(&y->cv);
    pthread_mutex_unlock(&y->mu);
    pthread_join(y->thread, NULL);
    event_free(y->ev);
    close(y->efd);
    pthread_mutex_destroy(&y->mu);
    pthread_cond_destroy(&y->cv);
    free(y);
}
