/* flushes: requested, final and timed flushes (see flushes.h). */
#include "flushes.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"
#include "flusher.h"
#include "log.h"
#include "registry.h"

/* Polling for raw writers: from the policy's interval (at least
 * POLL_MIN_MS), doubling while the mtime stands still, up to POLL_MAX_MS. */
#define POLL_MIN_MS 10
#define POLL_MAX_MS 1000

struct flush_ctx;

/* What this service keeps on a mapping (its mapping_ext slot). */
struct flush_state {
    struct flushes *fl;
    struct mapping *map;        /* not a reference: freed with it */
    struct event *timer;
    bool dirty;                 /* a holder said it wrote since the last flush */
    bool written;               /* may hold data: a writer or a resize came
                                 * since the last flush began (flushes_wrote) */
    bool flushing;              /* a timed flush is running */
    uint32_t raw_writers;       /* holders with a writable pointer out */
    uint64_t poll_ms;           /* the next poll's interval (0: from policy) */
    int64_t flushed_mtime_ns;   /* mtime seen when the last timed flush began */
    struct flush_ctx *queued;   /* the last flush submitted, maybe not started */
    bool owed;                  /* a final flush waits for its turn (fl->owed) */
    struct flush_state *owed_prev, *owed_next;
    uint64_t flushes;
    int64_t last_flush;         /* CLOCK_REALTIME seconds, 0: never */
};

/* One more caller waiting for a flush it joined. */
struct waiter {
    flushes_done_fn done;
    void *ctx;
    struct waiter *next;
};

struct flush_ctx {
    struct flush_job job;
    struct flushes *fl;
    struct mapping *map;        /* a reference */
    flushes_done_fn done;       /* NULL: nobody waits for the answer */
    void *done_ctx;
    struct waiter *waiters;     /* callers that joined it */
    bool timed;
    bool final;                 /* counted in fl->n_final */
};

/* A syncfs standing for final flushes past max_final (flushes.h). */
struct fs_flush {
    struct flush_job job;
    struct flushes *fl;
    dev_t dev;
    int fd;                     /* its own: a dup, or -1 for sync() */
    struct fs_flush *next;
};

static struct flush_state *state_of(struct flushes *fl, struct mapping *m,
                                    bool create)
{
    void **ext = mapping_ext(m, &fl->hook);
    struct flush_state *s = *ext;
    if (s || !create)
        return s;
    s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->fl = fl;
    s->map = m;
    *ext = s;
    return s;
}

static void arm(struct flush_state *s);
static void submit_owed(struct flushes *fl);
static void flush_fs(struct flushes *fl, struct mapping *m);

/* Final flushes past max_final wait in order, holding nothing: the open
 * cache (or a holder) keeps their mapping meanwhile (flushes.h). */
static void owe(struct flushes *fl, struct flush_state *s)
{
    if (s->owed)
        return;
    s->owed = true;
    s->owed_next = NULL;
    s->owed_prev = fl->owed_tail;
    if (fl->owed_tail)
        fl->owed_tail->owed_next = s;
    else
        fl->owed_head = s;
    fl->owed_tail = s;
}

static void unowe(struct flushes *fl, struct flush_state *s)
{
    if (!s->owed)
        return;
    if (s->owed_prev)
        s->owed_prev->owed_next = s->owed_next;
    else
        fl->owed_head = s->owed_next;
    if (s->owed_next)
        s->owed_next->owed_prev = s->owed_prev;
    else
        fl->owed_tail = s->owed_prev;
    s->owed = false;
    s->owed_prev = s->owed_next = NULL;
}

static void done(struct flush_job *job)
{
    struct flush_ctx *f = container_of(job, struct flush_ctx, job);
    struct mapping *m = f->map;
    struct flushes *fl = f->fl;
    struct flush_state *s = state_of(fl, m, true);

    fl->n_flushes++;
    if (s) {
        s->flushes++;
        s->last_flush = time(NULL);
    }
    if (job->result < 0) {
        fl->n_failures++;
        log_warn("flush of %s failed: %s", m->name, strerror(-job->result));
    }
    if (s && s->queued == f)
        s->queued = NULL;
    fl->n_final -= f->final;
    if (f->final)
        submit_owed(fl);
    if (f->done)
        f->done(f->done_ctx, job->result);
    while (f->waiters) {
        struct waiter *w = f->waiters;
        f->waiters = w->next;
        w->done(w->ctx, job->result);
        free(w);
    }
    if (f->timed && s) {
        s->flushing = false;
        if (s->dirty || s->raw_writers)
            arm(s);
    }
    mapping_unref(m);
    free(f);
}

/* What a flush starting now covers: writes so far, but not those of the
 * writers still attached. */
static void flush_begins(struct flush_state *s, const struct mapping *m)
{
    s->written = m->n_writers > 0;
}

static int submit(struct flushes *fl, struct mapping *m, uid_t uid,
                  flushes_done_fn cb, void *ctx, bool timed, bool final)
{
    struct flush_state *s = state_of(fl, m, true);
    struct flush_ctx *f = calloc(1, sizeof(*f));
    if (!f || !s) {
        free(f);
        return MMAPIO_E_QUOTA;
    }
    f->job.fd = m->fd;
    f->job.uid = uid;
    f->job.lane = timed ? FLUSH_LANE_TIMED : FLUSH_LANE_REQUESTED;
    f->job.done = done;
    f->fl = fl;
    f->map = mapping_ref(m);
    f->done = cb;
    f->done_ctx = ctx;
    f->timed = timed;
    f->final = final;
    if (flusher_submit(fl->flusher, &f->job) < 0) {
        mapping_unref(m);
        free(f);
        return MMAPIO_E_QUOTA;
    }
    s->queued = f;
    fl->n_final += final;
    flush_begins(s, m);
    unowe(fl, s); /* this one covers it */
    return MMAPIO_OK;
}

/* Owed final flushes, in order, while there is room (or all: `all`). */
static void submit_owed_all(struct flushes *fl, bool all)
{
    while (fl->owed_head && (all || fl->n_final < fl->max_final)) {
        struct flush_state *s = fl->owed_head;
        struct mapping *m = s->map;
        unowe(fl, s);
        if (submit(fl, m, m->owner, NULL, NULL, false, true) != MMAPIO_OK)
            flush_fs(fl, m);
    }
}

static void submit_owed(struct flushes *fl)
{
    submit_owed_all(fl, false);
}

/* Joins the flush of m that is queued and not started, if there is one:
 * its fdatasync covers everything written until now. */
static bool join(struct flushes *fl, struct mapping *m, flushes_done_fn cb,
                 void *ctx)
{
    struct flush_state *s = state_of(fl, m, false);
    struct flush_ctx *f = s ? s->queued : NULL;
    if (!f || !flusher_not_started(fl->flusher, &f->job))
        return false;
    if (cb) {
        struct waiter *w = malloc(sizeof(*w));
        if (!w)
            return false;
        w->done = cb;
        w->ctx = ctx;
        w->next = f->waiters;
        f->waiters = w;
    }
    flush_begins(s, m);
    return true;
}

int flushes_request(struct flushes *fl, struct mapping *m, uid_t uid,
                    flushes_done_fn cb, void *ctx)
{
    if (join(fl, m, cb, ctx))
        return MMAPIO_OK;
    return submit(fl, m, uid, cb, ctx, false, false);
}

static void fs_done(struct flush_job *job)
{
    struct fs_flush *x = container_of(job, struct fs_flush, job);
    struct flushes *fl = x->fl;
    for (struct fs_flush **p = &fl->fs; *p; p = &(*p)->next) {
        if (*p == x) {
            *p = x->next;
            break;
        }
    }
    fl->n_flushes++;
    fl->n_fs_flushes++;
    if (job->result < 0) {
        fl->n_failures++;
        log_warn("syncfs for final flushes failed: %s", strerror(-job->result));
    }
    if (x->fd >= 0)
        close(x->fd);
    free(x);
}

/* m's final flush as part of a syncfs of its file system (flushes.h). */
static void flush_fs(struct flushes *fl, struct mapping *m)
{
    for (struct fs_flush *x = fl->fs; x; x = x->next)
        if (x->dev == m->dev && flusher_not_started(fl->flusher, &x->job))
            return;
    struct fs_flush *x = calloc(1, sizeof(*x));
    if (!x) {
        log_err("out of memory: %s not flushed", m->name);
        return;
    }
    x->fl = fl;
    x->dev = m->dev;
    x->fd = fcntl(m->fd, F_DUPFD_CLOEXEC, 0);
    x->job.fd = x->fd;
    x->job.whole_fs = true;
    x->job.uid = m->owner;
    x->job.lane = FLUSH_LANE_REQUESTED;
    x->job.done = fs_done;
    if (flusher_submit(fl->flusher, &x->job) < 0) {
        if (x->fd >= 0)
            close(x->fd);
        free(x);
        log_err("out of memory: %s not flushed", m->name);
        return;
    }
    x->next = fl->fs;
    fl->fs = x;
}

void flushes_wrote(struct flushes *fl, struct mapping *m)
{
    struct flush_state *s = state_of(fl, m, true);
    if (s)
        s->written = true;
    else
        log_err("out of memory: %s may not be flushed when released", m->name);
}

void flushes_background(struct flushes *fl, struct mapping *m)
{
    struct flush_state *s = state_of(fl, m, false);
    if (!s || !s->written || s->owed || join(fl, m, NULL, NULL))
        return;
    if (fl->n_final < fl->max_final) {
        if (submit(fl, m, m->owner, NULL, NULL, false, true) != MMAPIO_OK) {
            flush_fs(fl, m);
            flush_begins(s, m);
        }
        return;
    }
    owe(fl, s);
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

/* The policy's pace for polling: its interval, at least POLL_MIN_MS. */
static uint64_t base_poll(const struct mapping *m)
{
    return m->policy.value < POLL_MIN_MS ? POLL_MIN_MS : m->policy.value;
}

/* After a poll that saw no change: twice the wait, up to POLL_MAX_MS (or
 * the policy's interval when that is longer). */
static uint64_t next_poll(const struct mapping *m, uint64_t cur)
{
    uint64_t base = base_poll(m);
    uint64_t cap = base > POLL_MAX_MS ? base : POLL_MAX_MS;
    cur = cur ? cur * 2 : base * 2;
    return cur > cap ? cap : cur;
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct flush_state *s = arg;
    struct mapping *m = s->map;

    if (!timed_kind(m))
        return;
    if (s->flushing) /* done() re-arms */
        return;
    int64_t mt = s->raw_writers ? mtime_ns(m) : 0;
    if (s->dirty || (s->raw_writers && mt != s->flushed_mtime_ns)) {
        /* Bump first: a write after this sends a new DIRTY notice. */
        atomic_fetch_add(&ctl_slot(&m->env->ctl, m->slot)->flush_gen, 1);
        s->dirty = false;
        s->flushed_mtime_ns = mt;
        s->poll_ms = 0; /* a writer is busy: poll at the policy's pace */
        s->flushing = submit(s->fl, m, m->owner, NULL, NULL, true, false) ==
                      MMAPIO_OK;
        return;
    }
    if (s->raw_writers) {
        s->poll_ms = next_poll(m, s->poll_ms);
        arm(s);
    }
}

static void arm(struct flush_state *s)
{
    struct mapping *m = s->map;
    if (!timed_kind(m))
        return;
    if (!s->timer)
        s->timer = evtimer_new(s->fl->base, on_timer, s);
    if (!s->timer || evtimer_pending(s->timer, NULL))
        return;
    /* A DIRTY notice: the policy's interval. Polling for raw writers
     * repeats: no faster than POLL_MIN_MS, slower while nothing changes. */
    uint64_t ms = m->policy.value;
    if (s->raw_writers && !s->dirty)
        ms = s->poll_ms ? s->poll_ms : base_poll(m);
    else if (s->raw_writers && ms < POLL_MIN_MS)
        ms = POLL_MIN_MS;
    struct timeval tv = {
        .tv_sec = (time_t)(ms / 1000),
        .tv_usec = (suseconds_t)(ms % 1000) * 1000,
    };
    evtimer_add(s->timer, &tv);
}

void flushes_dirty(struct flushes *fl, struct mapping *m)
{
    if (!timed_kind(m))
        return;
    struct flush_state *s = state_of(fl, m, true);
    if (!s)
        return;
    s->dirty = true;
    if (s->flushing)
        return;
    /* A poll backing off may be due late: the write is due at the
     * policy's pace. */
    if (s->poll_ms && s->timer)
        evtimer_del(s->timer);
    s->poll_ms = 0;
    arm(s);
}

void flushes_raw_writer(struct flushes *fl, struct mapping *m, int delta)
{
    struct flush_state *s = state_of(fl, m, delta > 0);
    if (!s)
        return;
    s->raw_writers += delta;
    if (delta > 0)
        s->poll_ms = 0; /* a new writer: back to the policy's pace */
    if (delta > 0 && s->raw_writers == 1) {
        /* Stores may have landed before this notice (and moved the mtime
         * already): the first tick flushes regardless. */
        s->flushed_mtime_ns = mtime_ns(m);
        s->dirty = true;
        if (!s->flushing)
            arm(s);
    }
}

static void policy_changed(struct flush_state *s)
{
    if (!timed_kind(s->map)) {
        if (s->timer)
            evtimer_del(s->timer);
        return;
    }
    if (s->timer && evtimer_pending(s->timer, NULL))
        evtimer_del(s->timer); /* the interval may have changed */
    s->poll_ms = 0;
    if (s->dirty || s->raw_writers)
        arm(s);
}

void flushes_counts(struct flushes *fl, struct mapping *m, uint64_t *n,
                    int64_t *last)
{
    struct flush_state *s = state_of(fl, m, false);
    *n = s ? s->flushes : 0;
    *last = s ? s->last_flush : 0;
}

static void on_change(struct mapping_hook *hook, struct mapping *m,
                      enum mapping_change what, const void *origin)
{
    struct flushes *fl = container_of(hook, struct flushes, hook);
    if (what == MAPPING_RESIZED && m->kind == MAPPING_FILE)
        flushes_wrote(fl, m);
    struct flush_state *s = state_of(fl, m, false);
    if (!s)
        return;
    if (what == MAPPING_POLICY) {
        policy_changed(s);
    } else if (what == MAPPING_FREED) {
        /* Its turn did not come: its file system's syncfs covers it (the
         * fd is still open here). */
        if (s->owed) {
            unowe(fl, s);
            flush_fs(fl, m);
        }
        if (s->timer)
            event_free(s->timer);
        free(s);
        *mapping_ext(m, hook) = NULL;
    }
}

int flushes_init(struct flushes *fl, struct registry *r,
                 struct event_base *base, unsigned threads,
                 uint32_t max_final)
{
    memset(fl, 0, sizeof(*fl));
    fl->base = base;
    fl->max_final = max_final;
    fl->hook.fn = on_change;
    int e = registry_add_hook(r, &fl->hook);
    return e < 0 ? e : flusher_new(base, threads, &fl->flusher);
}

void flushes_fini(struct flushes *fl)
{
    submit_owed_all(fl, true); /* the bound no longer matters */
    flusher_free(fl->flusher);
    fl->flusher = NULL;
}
