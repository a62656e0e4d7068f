/*
 * copier: byte copies from one open file to another off the event loop
 * (mmapio_copy). Each job runs on a worker thread of its own, at most
 * COPIER_THREADS at once, with copy_file_range in chunks (read/write
 * where the kernel cannot), at most COPIER_PER_UID of them one uid's (so
 * that one uid's copies, however long, never take every worker from the
 * others), and comes back to the loop through an
 * eventfd: its `done` runs on the loop thread. The loop never waits for
 * the copy; the submitter keeps both fds open until `done`.
 */
#ifndef MMAPIOD_COPIER_H
#define MMAPIOD_COPIER_H

#include <stdint.h>
#include <sys/types.h>

#define COPIER_THREADS 4
#define COPIER_PER_UID (COPIER_THREADS / 2)

struct event_base;
struct copier;
struct copy_job;

typedef void (*copy_done_fn)(struct copy_job *job);

struct copy_job {
    struct copy_job *next;
    int src, dst;          /* borrowed */
    uint64_t len;          /* bytes from offset 0 */
    uid_t uid;             /* whose copy it is */
    int result;            /* 0 or -errno, set by the worker */
    copy_done_fn done;     /* runs on the loop; frees the job */
    void *ctx;
};

/* NULL when out of memory or fds. */
struct copier *copier_new(struct event_base *base);
/* Starts job. 0, -EBUSY (COPIER_THREADS running, or COPIER_PER_UID of
 * job->uid's) or -errno. */
int copier_submit(struct copier *cp, struct copy_job *job);
/* Waits for running copies, runs their `done`, frees. NULL-safe. */
void copier_free(struct copier *cp);

#endif
