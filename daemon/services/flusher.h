/*
 * flusher: fdatasync off the event loop, fair between uids.
 *
 * Worker threads take jobs from queues, run fdatasync on the job's fd (or
 * syncfs, for a whole file system), and hand the job back to the loop
 * through an eventfd, written once per batch the loop has not yet taken;
 * the job's `done` callback then runs on the loop thread. The loop never waits for a disk.
 * Whoever submits a job keeps the fd open until `done` runs (a mapping
 * reference in the job does that).
 *
 * Jobs wait in two lanes: timed flushes (EveryMillis) and the rest
 * (requested, final). Each lane keeps one queue per uid, served round
 * robin, so a uid with a thousand jobs queued delays another uid's job by
 * at most one job per worker. The timed lane is served first by every
 * worker and has a worker of its own, so no number of requested flushes
 * can hold a timed one back behind them.
 */
#ifndef MMAPIOD_FLUSHER_H
#define MMAPIOD_FLUSHER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct event_base;
struct flusher;
struct flush_job;

typedef void (*flush_done_fn)(struct flush_job *job);

enum flush_lane { FLUSH_LANE_REQUESTED, FLUSH_LANE_TIMED, FLUSH_LANES };

struct flush_job {
    struct flush_job *next;
    int fd;                 /* borrowed */
    bool whole_fs;          /* syncfs(fd) instead of fdatasync; fd -1:
                             * sync(), every file system */
    uid_t uid;              /* whose turn it takes */
    enum flush_lane lane;
    bool started;           /* a worker took it (under the flusher's lock) */
    int result;             /* 0 or -errno, set by the worker */
    flush_done_fn done;     /* runs on the loop; frees the job */
    void *ctx;
};

/* `threads` workers for both lanes and one more for the timed lane.
 * 0 or -errno. */
int flusher_new(struct event_base *base, unsigned threads,
                struct flusher **out);
/* Queues job (fd, uid, lane, done set). 0, or -ENOMEM (not queued). */
int flusher_submit(struct flusher *f, struct flush_job *job);
/* true when no worker has taken job yet: whatever is written before this
 * call is then covered by its fdatasync. Only for a job not yet done. */
bool flusher_not_started(struct flusher *f, const struct flush_job *job);
/* Runs every queued job to its end (their `done` callbacks included), then
 * stops the workers and frees. NULL-safe. */
void flusher_free(struct flusher *f);

#endif
