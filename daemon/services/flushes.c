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
#include "writeback.h"

/* Polling for raw writers: from the policy's interval (at least
 * POLL_MIN_MS), doubling while the file stays clean, up to POLL_MAX_MS
 * (flushes.h). */
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
    int64_t flushed_mtime_ns;   /* mtime seen when the last timed flush began
                                 * (for polls without cachestat) */
    /* On fl's poll list (raw writers out, nothing told, not flushing). */
    bool polled;
    struct flush_state *poll_prev, *poll_next;
    uint64_t poll_at_ms;        /* due (CLOCK_MONOTONIC ms) */
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

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/*
 * Has m's file pages not on the disk yet? The page cache (cachestat(2),
 * Linux 6.5, platform/writeback.h) counts
 * the dirty pages and those under writeback in one call, whenever they
 * were written; where it is missing or refused (ENOSYS, EPERM from a
 * filter), the fallback is the mtime, which the kernel moves when a clean
 * page is first written through a mapping but may leave alone for a store
 * in the same timestamp tick as the last one.
 */
static bool looks_dirty(struct flushes *fl, struct flush_state *s)
{
    if (!fl->no_cachestat) {
        struct writeback_pending p;
        int r = writeback_pending(s->map->fd, &p);
        if (r == 0)
            return p.dirty + p.writeback > 0;
        /* Missing or filtered: the mtime from now on. Refused for this
         * file (hugetlbfs: EOPNOTSUPP): the mtime for it this time. */
        if (r == -ENOSYS || r == -EPERM) {
            fl->no_cachestat = true;
            log_info("cachestat(2) unavailable (%s): raw writers are "
                     "polled by mtime", strerror(-r));
        }
    }
    return mtime_ns(s->map) != s->flushed_mtime_ns;
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

/* ---- the poll list: one timer for every raw writer ---- */

/* The next multiple of `every` after now: mappings polled at the same
 * pace are due at the same instant, so one wake-up serves them all. */
static uint64_t poll_due(uint64_t now, uint64_t every)
{
    return (now / every + 1) * every;
}

static void poll_arm(struct flushes *fl, uint64_t at, uint64_t now)
{
    uint64_t ms = at > now ? at - now : 0;
    struct timeval tv = {
        .tv_sec = (time_t)(ms / 1000),
        .tv_usec = (suseconds_t)(ms % 1000) * 1000,
    };
    fl->poll_due_ms = at;
    evtimer_add(fl->poll_timer, &tv);
}

/* Puts s on the poll list, due after its current wait. */
static void poll_enter(struct flush_state *s)
{
    struct flushes *fl = s->fl;
    uint64_t now = now_ms();
    s->poll_at_ms = poll_due(now, s->poll_ms ? s->poll_ms : base_poll(s->map));
    if (!s->polled) {
        s->polled = true;
        s->poll_prev = NULL;
        s->poll_next = fl->polled;
        if (fl->polled)
            fl->polled->poll_prev = s;
        fl->polled = s;
    }
    if (fl->poll_timer && (!fl->poll_due_ms || s->poll_at_ms < fl->poll_due_ms))
        poll_arm(fl, s->poll_at_ms, now);
}

static void poll_leave(struct flush_state *s)
{
    if (!s->polled)
        return;
    if (s->poll_prev)
        s->poll_prev->poll_next = s->poll_next;
    else
        s->fl->polled = s->poll_next;
    if (s->poll_next)
        s->poll_next->poll_prev = s->poll_prev;
    s->poll_prev = s->poll_next = NULL;
    s->polled = false;
}

static void arm(struct flush_state *s);

/* A timed flush of s's mapping begins. */
static void start_timed(struct flush_state *s)
{
    struct mapping *m = s->map;
    poll_leave(s);
    /* Bump first: a write after this sends a new DIRTY notice. */
    atomic_fetch_add(&ctl_slot(&m->env->ctl, m->slot)->flush_gen, 1);
    s->dirty = false;
    s->flushed_mtime_ns = s->raw_writers ? mtime_ns(m) : 0;
    s->poll_ms = 0; /* a writer is busy: poll at the policy's pace */
    s->flushing = submit(s->fl, m, m->owner, NULL, NULL, true, false) == MMAPIO_OK;
    if (!s->flushing) { /* out of memory: try again at the policy's pace */
        s->dirty = true;
        arm(s);
    }
}

/* Every due raw writer's file is looked at in one go; the timer is armed
 * again for the earliest left. */
static void on_poll(evutil_socket_t fd, short what, void *arg)
{
    struct flushes *fl = arg;
    uint64_t now = now_ms(), next = 0;
    struct flush_state *s = fl->polled, *after;

    (void)fd;
    (void)what;
    fl->poll_due_ms = 0;
    for (; s; s = after) {
        after = s->poll_next;
        if (s->poll_at_ms > now + 1) { /* a timer may fire a little early */
        } else if (looks_dirty(fl, s)) {
            start_timed(s);
            continue;
        } else {
            s->poll_ms = next_poll(s->map, s->poll_ms);
            s->poll_at_ms = poll_due(now, s->poll_ms);
        }
        if (!next || s->poll_at_ms < next)
            next = s->poll_at_ms;
    }
    if (next && (!fl->poll_due_ms || next < fl->poll_due_ms))
        poll_arm(fl, next, now);
}

/* The per-mapping timer: a DIRTY notice's flush is due. */
static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct flush_state *s = arg;
    struct mapping *m = s->map;

    (void)fd;
    (void)what;
    if (!timed_kind(m))
        return;
    if (s->flushing) /* done() re-arms */
        return;
    if (s->dirty)
        start_timed(s);
    else if (s->raw_writers)
        poll_enter(s);
}

/* What a timed mapping waits for next: a DIRTY notice's flush at the
 * policy's interval on its own timer, else (raw writers out) its turn on
 * the poll list. */
static void arm(struct flush_state *s)
{
    struct mapping *m = s->map;
    if (!timed_kind(m))
        return;
    if (!s->dirty) {
        if (s->raw_writers)
            poll_enter(s);
        return;
    }
    poll_leave(s);
    if (!s->timer)
        s->timer = evtimer_new(s->fl->base, on_timer, s);
    if (!s->timer || evtimer_pending(s->timer, NULL))
        return;
    uint64_t ms = m->policy.value;
    if (s->raw_writers && ms < POLL_MIN_MS)
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
     * policy's pace, on the mapping's own timer. */
    s->poll_ms = 0;
    arm(s);
}

void flushes_raw_writer(struct flushes *fl, struct mapping *m, int delta)
{
    struct flush_state *s = state_of(fl, m, delta > 0);
    if (!s)
        return;
    s->raw_writers += delta;
    if (delta < 0 && s->raw_writers == 0)
        poll_leave(s);
    if (delta <= 0)
        return;
    s->poll_ms = 0; /* a new writer: back to the policy's pace */
    if (s->raw_writers == 1) {
        /* Stores may have landed before this notice: the first tick
         * flushes regardless. */
        s->flushed_mtime_ns = mtime_ns(m);
        s->dirty = true;
    }
    if (!s->flushing)
        arm(s);
}

static void policy_changed(struct flush_state *s)
{
    poll_leave(s);
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
        poll_leave(s);
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
    fl->poll_timer = evtimer_new(base, on_poll, fl);
    if (!fl->poll_timer)
        return -ENOMEM;
    int e = registry_add_hook(r, &fl->hook);
    return e < 0 ? e : flusher_new(base, threads, &fl->flusher);
}

void flushes_fini(struct flushes *fl)
{
    submit_owed_all(fl, true); /* the bound no longer matters */
    flusher_free(fl->flusher);
    fl->flusher = NULL;
    if (fl->poll_timer)
        event_free(fl->poll_timer);
    fl->poll_timer = NULL;
}
