/*
 * flusher: fdatasync off the event loop.
 *
 * Worker threads take jobs from a queue, run fdatasync on the job's fd, and
 * hand the job back to the loop through an eventfd; the job's `done`
 * callback then runs on the loop thread. The loop never waits for a disk.
 * Whoever submits a job keeps the fd open until `done` runs (a mapping
 * reference in the job does that).
 */
#ifndef MMAPIOD_FLUSHER_H
#define MMAPIOD_FLUSHER_H

#include <stdint.h>

struct event_base;
struct flusher;
struct flush_job;

typedef void (*flush_done_fn)(struct flush_job *job);

struct flush_job {
    struct flush_job *next;
    int fd;                 /* borrowed */
    int result;             /* 0 or -errno, set by the worker */
    flush_done_fn done;     /* runs on the loop; frees the job */
    void *ctx;
};

/* 0 or -errno. */
int flusher_new(struct event_base *base, unsigned threads,
                struct flusher **out);
void flusher_submit(struct flusher *f, struct flush_job *job);
/* Runs every queued job to its end (their `done` callbacks included), then
 * stops the workers and frees. NULL-safe. */
void flusher_free(struct flusher *f);

#endif
