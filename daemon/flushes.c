/* flushes: requested, final and timed flushes (see flushes.h). */
#include "flushes.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "conn.h"
#include "ctl.h"
#include "flusher.h"
#include "log.h"
#include "mapping.h"
#include "ops.h"
#include "server.h"

struct batch {
    struct conn *conn;
    uint64_t id;
    uint32_t left, ok, failed;
    flushes_batch_fn reply;
};

struct flush_ctx {
    struct flush_job job;
    struct mapping *map;
    struct conn *conn;  /* NULL: nobody waits for the answer */
    uint64_t id;
    bool timed;
    struct batch *batch;
};

static void batch_done(struct batch *b, int result)
{
    if (result < 0)
        b->failed++;
    else
        b->ok++;
    if (--b->left > 0)
        return;
    if (!b->conn->closed)
        b->reply(b->conn, b->id, b->ok, b->failed);
    conn_busy(b->conn, -1);
    conn_unref(b->conn);
    free(b);
}

static void arm(struct mapping *m);

static void done(struct flush_job *job)
{
    struct flush_ctx *f = container_of(job, struct flush_ctx, job);
    struct mapping *m = f->map;
    struct daemon *d = m->d;

    m->flushes++;
    d->stats.flushes++;
    m->last_flush = time(NULL);
    if (job->result < 0) {
        m->flush_failures++;
        d->stats.flush_failures++;
        log_warn("flush of %s failed: %s", m->name, strerror(-job->result));
    }
    if (f->conn) {
        ops_reply_flush(f->conn, f->id, job->result);
        conn_busy(f->conn, -1);
        conn_unref(f->conn);
    }
    if (f->batch)
        batch_done(f->batch, job->result);
    if (f->timed) {
        m->flushing = false;
        if (m->dirty || m->raw_writers)
            arm(m);
    }
    mapping_unref(m);
    free(f);
}

static struct flush_ctx *job_new(struct mapping *m)
{
    struct flush_ctx *f = calloc(1, sizeof(*f));
    if (!f)
        return NULL;
    f->job.fd = m->fd;
    f->job.done = done;
    f->map = mapping_ref(m);
    return f;
}

int flushes_batch(struct conn *c, uint64_t id, struct mapping **maps,
                  size_t n, flushes_batch_fn reply)
{
    if (n == 0) {
        reply(c, id, 0, 0);
        return MMAPIO_OK;
    }
    struct batch *b = calloc(1, sizeof(*b));
    struct flush_ctx **jobs = calloc(n, sizeof(*jobs));
    size_t made = 0;
    if (b && jobs)
        while (made < n && (jobs[made] = job_new(maps[made])))
            made++;
    if (made < n) {
        while (made > 0) {
            mapping_unref(jobs[--made]->map);
            free(jobs[made]);
        }
        free(jobs);
        free(b);
        return MMAPIO_E_QUOTA;
    }
    b->conn = conn_ref(c);
    b->id = id;
    b->left = (uint32_t)n;
    b->reply = reply;
    conn_busy(c, +1);
    for (size_t i = 0; i < n; i++) {
        jobs[i]->batch = b;
        flusher_submit(c->d->flusher, &jobs[i]->job);
    }
    free(jobs);
    return MMAPIO_OK;
}

static int submit(struct mapping *m, struct conn *c, uint64_t id, bool timed)
{
    struct flush_ctx *f = job_new(m);
    if (!f)
        return MMAPIO_E_QUOTA;
    f->id = id;
    f->timed = timed;
    if (c) {
        f->conn = conn_ref(c);
        conn_busy(c, +1);
    }
    flusher_submit(m->d->flusher, &f->job);
    return MMAPIO_OK;
}

int flushes_request(struct mapping *m, struct conn *c, uint64_t id)
{
    return submit(m, c, id, false);
}

void flushes_background(struct mapping *m)
{
    if (submit(m, NULL, 0, false))
        log_err("out of memory: %s not flushed", m->name);
}

static bool timed_kind(const struct mapping *m)
{
    return m->policy.kind == MMAPIO_FLUSH_EVERY_MILLIS &&
           m->kind == MAPPING_FILE && m->fd_writable;
}

static int64_t mtime_ns(const struct mapping *m)
{
    struct stat st;
    if (fstat(m->fd, &st) < 0)
        return 0;
    return (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct mapping *m = arg;

    if (!timed_kind(m))
        return;
    if (m->flushing) { /* done() re-arms */
        return;
    }
    int64_t mt = m->raw_writers ? mtime_ns(m) : 0;
    if (m->dirty || (m->raw_writers && mt != m->flushed_mtime_ns)) {
        /* Bump first: a write after this sends a new DIRTY notice. */
        atomic_fetch_add(&ctl_slot(m->ctl, m->slot)->flush_gen, 1);
        m->dirty = false;
        m->flushed_mtime_ns = mt;
        m->flushing = submit(m, NULL, 0, true) == MMAPIO_OK;
        return;
    }
    if (m->raw_writers)
        arm(m);
}

static void arm(struct mapping *m)
{
    if (!timed_kind(m))
        return;
    if (!m->timer)
        m->timer = evtimer_new(m->d->base, on_timer, m);
    if (!m->timer || evtimer_pending(m->timer, NULL))
        return;
    /* Polling for raw writers repeats: no faster than every 10 ms. */
    uint64_t ms = m->policy.value;
    if (m->raw_writers && ms < 10)
        ms = 10;
    struct timeval tv = {
        .tv_sec = (time_t)(ms / 1000),
        .tv_usec = (suseconds_t)(ms % 1000) * 1000,
    };
    evtimer_add(m->timer, &tv);
}

void flushes_dirty(struct mapping *m)
{
    if (!timed_kind(m))
        return;
    m->dirty = true;
    if (!m->flushing)
        arm(m);
}

void flushes_raw_writer(struct mapping *m, int delta)
{
    m->raw_writers += delta;
    if (delta > 0 && m->raw_writers == 1) {
        /* Stores may have landed before this notice (and moved the mtime
         * already): the first tick flushes regardless. */
        m->flushed_mtime_ns = mtime_ns(m);
        m->dirty = true;
        if (!m->flushing)
            arm(m);
    }
}

void flushes_policy_changed(struct mapping *m)
{
    if (!timed_kind(m)) {
        if (m->timer)
            evtimer_del(m->timer);
        return;
    }
    if (m->timer && evtimer_pending(m->timer, NULL))
        evtimer_del(m->timer); /* the interval may have changed */
    if (m->dirty || m->raw_writers)
        arm(m);
}

void flushes_forget(struct mapping *m)
{
    if (m->timer)
        event_free(m->timer);
    m->timer = NULL;
}
