/*
 * winflush (Windows): flushes and flush policies (winflush.h).
 */
#include "winflush.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "filesection.h"
#include "log.h"
#include "winlanes.h"
#include "wintesthook.h"

/* A flush on a worker thread (the disk's time is not the loop's), after
 * its turn in the lanes below. The result goes back to the loop
 * (winops_port.post); a session gone by then gets no reply. */
struct wflush {
    struct wlane_item item; /* first: its place in its lane, by uid */
    struct wsession *s;   /* NULL: the daemon's own flush, of map_id */
    struct winops *w;
    int lane;
    void (*post)(void (*fn)(void *), void *arg); /* w's, copied: w may be gone */
    volatile LONG *in_pool; /* its lanes' count, which outlives w when abandoned */
    volatile LONG finished; /* 1 once flush_run returned (a stopping daemon reads it) */
    struct wflush *run_next; /* in its lanes' `runs` while on a worker */
    uint64_t map_id;
    uint64_t id;
    HANDLE file;    /* writable: opened as the caller (on the worker), or the daemon's */
    HANDLE token;   /* a client's flush: its token, the file opened on the worker */
    HANDLE root;
    char *name;     /* the file's path under the root, for that open */
    int open_err;   /* that open's -errno */
    uint64_t off, len;
    bool ok;
    DWORD err;
};

#define MAX_FLUSHES_PER_CLIENT 16

/* Per-uid lanes, as the Linux daemon's flusher: flushes wait in their
 * uid's queue, and the uids with flushes waiting take turns (round
 * robin), so one uid's flood cannot delay another's flushes. Requested
 * flushes (a client's Flush) and the daemon's own (policies) have a lane
 * each; at most FLUSH_WORKERS run on the thread pool at once, and one
 * more for the daemon's own lane alone. Kept on the loop: no lock. */
enum { LANE_REQUESTED, LANE_TIMED, LANES };
#define FLUSH_WORKERS 4

struct wlanes {
    struct wlane lane[LANES];
    unsigned running;           /* started, not yet back on the loop */
    volatile LONG in_pool;      /* on a worker thread now */
    struct wflush *runs;        /* started, not yet back on the loop */
    HANDLE root;                /* a copy of the root's: abandoned flushes keep it */
};

/* How long a stopping daemon waits for its final flushes (and for those
 * already on worker threads): what is not done by then is logged and
 * left to the process's end. Beside the opens' 2 s (winopen), the stop
 * stays within the few seconds Windows gives a service at shutdown. */
#define FINAL_WAIT_MS 2000
/* Threads of the final flushes, so that one file stuck in its file
 * system holds up only one of them. */
#define FINAL_WORKERS 4

static void CALLBACK flush_work(PTP_CALLBACK_INSTANCE inst, void *arg);
static void flush_done(void *arg);

static struct wflush *lane_take(struct wlanes *l, int lane)
{
    return (struct wflush *)wlane_take(&l->lane[lane]);
}

/* Starts waiting flushes while there is room. */
static void pump(struct winops *w)
{
    struct wlanes *l = w->lanes;
    for (;;) {
        struct wflush *f = l->running <= FLUSH_WORKERS ? lane_take(l, LANE_TIMED) : NULL;
        if (!f && l->running < FLUSH_WORKERS)
            f = lane_take(l, LANE_REQUESTED);
        if (!f)
            return;
        l->running++;
        f->in_pool = &l->in_pool;
        f->run_next = l->runs;
        l->runs = f;
        InterlockedIncrement(&l->in_pool);
        if (!TrySubmitThreadpoolCallback(flush_work, f, NULL)) {
            InterlockedDecrement(&l->in_pool);
            f->ok = false;
            f->err = GetLastError();
            flush_done(f);
            return; /* flush_done pumped */
        }
    }
}

/* Queues f in its uid's queue of its lane: false without memory. */
static struct wlanes *lanes_of(struct winops *w)
{
    if (w->lanes)
        return w->lanes;
    struct wlanes *l = calloc(1, sizeof(*l));
    if (!l)
        return NULL;
    if (!DuplicateHandle(GetCurrentProcess(), w->cfg.root, GetCurrentProcess(), &l->root, 0,
                         FALSE, DUPLICATE_SAME_ACCESS)) {
        free(l);
        return NULL;
    }
    return w->lanes = l;
}

static bool submit(struct winops *w, struct wflush *f)
{
    if (!lanes_of(w))
        return false;
    f->post = w->port.post;
    f->root = w->lanes->root;
    if (!wlane_put(&w->lanes->lane[f->lane], &f->item))
        return false;
    pump(w);
    return true;
}

void winflush_count(struct winops *w, uint64_t map_id, bool ok)
{
    w->flushes++;
    w->flush_failures += !ok;
    struct wmap *m = find_id(w, map_id);
    if (m) {
        m->flushes++;
        m->last_flush = (int64_t)time(NULL);
    }
}

static void flush_done(void *arg)
{
    struct wflush *f = arg;
    struct wsession *s = f->s;
    struct winops *w = f->w;
    w->lanes->running--;
    for (struct wflush **p = &w->lanes->runs; *p; p = &(*p)->run_next)
        if (*p == f) {
            *p = f->run_next;
            break;
        }
    winflush_count(w, f->map_id, f->ok);
    if (f->file)
        CloseHandle(f->file);
    if (f->token)
        CloseHandle(f->token);
    if (!s) { /* the daemon's own: a policy's */
        free(f->name);
        struct wmap *m = find_id(f->w, f->map_id);
        if (!f->ok)
            log_warn("%s: a policy's flush failed (%lu)", m ? m->name : "?",
                     (unsigned long)f->err);
        if (m) {
            m->flushing = false;
            if (m->dirty_again) /* written during the flush: once more at its pace */
                winflush_timed(f->w, m);
        }
        free(f);
        pump(w);
        return;
    }
    s->flushes--;
    if (s->gone) {
        if (s->flushes == 0 && s->opens == 0)
            free(s);
    } else if (f->open_err) {
        reply_err(s, f->id, MMAPIO_E_FLUSH_FAILED, "%s: %s", f->name, errno_text(f->open_err));
    } else if (f->ok) {
        reply_ok(s, f->id);
    } else {
        reply_err(s, f->id, MMAPIO_E_FLUSH_FAILED, "the flush failed (%lu)",
                  (unsigned long)f->err);
    }
    free(f->name);
    free(f);
    pump(w);
}

/* The file's pages in [off, off + len) through a view of its own, then
 * its metadata and the device's cache: 0 or the system's error. */
static DWORD flush_file(HANDLE file, uint64_t off, uint64_t len)
{
    HANDLE sec = mem_file_section(file, false);
    char *view = sec ? MapViewOfFile(sec, FILE_MAP_READ, 0, 0, 0) : NULL;
    /* len 0 from 0: the whole view (the daemon's own flushes); at the
     * end of the file: no bytes, the metadata only. */
    bool none = len == 0 && off != 0;
    bool ok = view && (none || FlushViewOfFile(view + off, (SIZE_T)len)) &&
              FlushFileBuffers(file);
    DWORD err = ok ? 0 : GetLastError();
    if (view)
        UnmapViewOfFile(view);
    if (sec)
        CloseHandle(sec);
    return ok ? 0 : err ? err : ERROR_GEN_FAILURE;
}

/* A client's flush opens the file as the client first (writable: the
 * daemon's own handle may be read-only); then flushes it. The tests'
 * hold (mmapiod-hooks.exe): the file named by $MMAPIOD_TEST_SLOW_FLUSH. */
static void flush_run(struct wflush *f)
{
    test_hold("MMAPIOD_TEST_SLOW_FLUSH", f->name ? f->name : "");
    bool created;
    if (f->token && !f->file)
        f->file = beneath_as(f->token, f->root, f->name, GENERIC_READ | GENERIC_WRITE,
                             BENEATH_OPEN, &created, &f->open_err);
    f->err = f->file ? flush_file(f->file, f->off, f->len) : ERROR_ACCESS_DENIED;
    f->ok = f->err == 0;
}

static void CALLBACK flush_work(PTP_CALLBACK_INSTANCE inst, void *arg)
{
    (void)inst;
    struct wflush *f = arg;
    flush_run(f);
    InterlockedExchange(&f->finished, 1);
    void (*post)(void (*)(void *), void *) = f->post;
    InterlockedDecrement(f->in_pool); /* w may go after this */
    post(flush_done, f);
}

/* A duplicate of h with its access, or NULL and *err. */
static HANDLE dup_same(HANDLE h, int *err)
{
    HANDLE d = NULL;
    if (!h || !DuplicateHandle(GetCurrentProcess(), h, GetCurrentProcess(), &d, 0, FALSE,
                               DUPLICATE_SAME_ACCESS)) {
        *err = -EACCES;
        return NULL;
    }
    return d;
}

void winflush_request(struct wsession *s, uint64_t id, const Mmapio__Flush *fl)
{
    struct wholder *h = find_holder(s, id, fl->handle);
    if (!h)
        return;
    if (h->m->anonymous) {
        reply_ok(s, id); /* nothing on a disk */
        return;
    }
    if (h->mode != MMAPIO_MODE_READ_WRITE) {
        reply_err(s, id, MMAPIO_E_INVALID_MODE, "the handle is not read-write");
        return;
    }
    LARGE_INTEGER size;
    if (!GetFileSizeEx(h->m->file, &size)) {
        reply_err(s, id, MMAPIO_E_IO, "%s: its size cannot be read", h->m->name);
        return;
    }
    uint64_t total = (uint64_t)size.QuadPart;
    if (fl->offset > total || fl->len > total - fl->offset) {
        reply_err(s, id, MMAPIO_E_OUT_OF_BOUNDS, "beyond the file's %llu bytes",
                  (unsigned long long)total);
        return;
    }
    if (s->flushes >= MAX_FLUSHES_PER_CLIENT) {
        reply_err(s, id, MMAPIO_E_BUSY, "%d flushes of this client under way",
                  MAX_FLUSHES_PER_CLIENT);
        return;
    }
    struct wflush *f = calloc(1, sizeof(*f));
    char *name = f ? strdup(h->m->name) : NULL;
    /* Writable, as the caller, opened on the worker (flush_run): the
     * daemon's own handle may be read-only. A private entry has no path
     * beneath the root: its writer's own handle (the caller's, pulled by
     * winfromfd), duplicated here. */
    int err = 0;
    HANDLE token = NULL, file = NULL;
    if (name && h->m->private_map)
        file = dup_same(h->m->wfile, &err);
    else if (name)
        token = caller_token(s);
    if (!token && !file) {
        free(name);
        free(f);
        reply_err(s, id, MMAPIO_E_FLUSH_FAILED, "%s: %s", h->m->name,
                  !name ? "out of memory"
                  : h->m->private_map ? errno_text(err)
                                      : "the daemon cannot act as you");
        return;
    }
    *f = (struct wflush){.s = s, .w = s->w, .item.uid = s->cred.uid, .lane = LANE_REQUESTED,
                         .map_id = h->m->id, .id = id, .token = token, .file = file,
                         .name = name, .off = fl->offset,
                         .len = fl->len ? fl->len : total - fl->offset};
    if (!submit(s->w, f)) {
        if (token)
            CloseHandle(token);
        if (file)
            CloseHandle(file);
        free(name);
        free(f);
        reply_err(s, id, MMAPIO_E_FLUSH_FAILED, "out of memory");
        return;
    }
    s->flushes++;
}

/* The daemon's own flush of m, now: the flush generation moves first (a
 * write after it sends a new DIRTY notice), then the file's bytes go to
 * the disk on a worker thread. Anonymous mappings have no disk. */
void winflush_policy(struct winops *w, struct wmap *m)
{
    atomic_fetch_add(&w->slots[m->slot].flush_gen, 1);
    m->dirty = false;
    if (m->anonymous || !m->wfile)
        return;
    if (m->flushing) {
        m->dirty_again = true;
        return;
    }
    struct wflush *f = calloc(1, sizeof(*f));
    HANDLE dup = NULL;
    if (!f || !DuplicateHandle(GetCurrentProcess(), m->wfile, GetCurrentProcess(), &dup,
                               0, FALSE, DUPLICATE_SAME_ACCESS)) {
        free(f);
        log_warn("%s: a policy's flush could not start", m->name);
        return;
    }
    /* The whole file, in the lane of the uid it is charged to. */
    *f = (struct wflush){.w = w, .item.uid = m->owner, .lane = LANE_TIMED, .map_id = m->id,
                         .file = dup, .name = strdup(m->name)}; /* the name: logs only */
    if (!submit(w, f)) {
        CloseHandle(dup);
        free(f);
        log_warn("%s: a policy's flush could not start", m->name);
        return;
    }
    m->flushing = true;
    m->dirty_again = false;
}

/* The final flushes, on FINAL_WORKERS threads of the pool: each takes
 * the next job. Abandoned at the deadline (with the jobs), as they may
 * still run. */
struct wfinal {
    struct wflush **jobs;
    LONG n;
    volatile LONG next;     /* the next job to take */
    volatile LONG workers;  /* still running */
    HANDLE all_done;        /* set by the last worker */
};

static void CALLBACK final_work(PTP_CALLBACK_INSTANCE inst, void *arg)
{
    (void)inst;
    struct wfinal *b = arg;
    for (LONG i; (i = InterlockedIncrement(&b->next) - 1) < b->n;) {
        flush_run(b->jobs[i]);
        InterlockedExchange(&b->jobs[i]->finished, 1);
    }
    if (InterlockedDecrement(&b->workers) == 0)
        SetEvent(b->all_done);
}

/* A job not run, or run and read. */
static void final_drop(struct wflush *f)
{
    if (f->file)
        CloseHandle(f->file);
    if (f->token)
        CloseHandle(f->token);
    free(f->name);
    free(f); /* its session, if any, stays unfreed: the process ends */
}

static void final_free(struct wfinal *b)
{
    for (LONG i = 0; i < b->n; i++)
        final_drop(b->jobs[i]);
    if (b->all_done)
        CloseHandle(b->all_done);
    free(b->jobs);
    free(b);
}

/* Adds f to b's jobs: false without memory. */
static bool final_add(struct wfinal *b, struct wflush *f, LONG *cap)
{
    if (b->n == *cap) {
        LONG grown = *cap ? 2 * *cap : 64;
        struct wflush **jobs = realloc(b->jobs, (size_t)grown * sizeof(*jobs));
        if (!jobs)
            return false;
        b->jobs = jobs;
        *cap = grown;
    }
    b->jobs[b->n++] = f;
    return true;
}

/* The final flushes' jobs: every flush still waiting in the lanes (a
 * leaving writer's final flush among them), then every file written
 * since its last flush under a policy that flushes. What finds no
 * memory is logged and not flushed. */
static void final_jobs(struct winops *w, struct wfinal *b)
{
    struct wlanes *l = w->lanes;
    LONG cap = 0;
    for (int lane = 0; l && lane < LANES; lane++)
        for (struct wflush *f; (f = lane_take(l, lane));)
            if (!final_add(b, f, &cap)) {
                log_warn("%s: its final flush could not start", f->name ? f->name : "?");
                final_drop(f);
            }
    for (struct wmap *m = w->maps; m; m = m->next) {
        if (m->anonymous || !m->wfile || !(m->dirty || m->dirty_again || m->flushing) ||
            m->policy.kind == MMAPIO_FLUSH_NEVER || m->policy.kind == MMAPIO_FLUSH_MANUAL)
            continue;
        struct wflush *f = calloc(1, sizeof(*f));
        int err = 0;
        if (f && (f->file = dup_same(m->wfile, &err)) && (f->name = strdup(m->name)) &&
            final_add(b, f, &cap)) {
            f->map_id = m->id;
            continue;
        }
        log_warn("%s: its final flush could not start", m->name);
        if (f)
            final_drop(f);
    }
}

/* A flush the stop waited for: counted, and logged unless it is done
 * and went well. */
static void final_told(const struct wflush *f, unsigned *failed, unsigned *left)
{
    const char *name = f->name ? f->name : "?";
    if (!f->finished) {
        ++*left;
        log_warn("%s: not flushed at the stop (its flush still ran after %d ms)", name,
                 FINAL_WAIT_MS);
    } else if (!f->ok) {
        ++*failed;
        log_warn("%s: its final flush failed (%lu)", name, (unsigned long)f->err);
    }
}

/* The daemon stops (its loop has ended): the final flushes (final_jobs)
 * run on worker threads, and those already there are waited for, until
 * FINAL_WAIT_MS have passed; what is not flushed by then is logged by
 * name (a file system that hangs cannot hold up the stop) and left to
 * the process's end, the system's own writeback taking its pages later.
 * No reply is sent: the connections are gone. */
void winflush_final(struct winops *w)
{
    ULONGLONG deadline = GetTickCount64() + FINAL_WAIT_MS;
    struct wlanes *l = w->lanes;
    struct wfinal *b = calloc(1, sizeof(*b));
    if (b)
        final_jobs(w, b);
    if (!b) {
        log_warn("the final flushes could not start: out of memory");
        w->lanes = NULL; /* left to the process's end, with what they hold */
        return;
    }
    if (b->n) {
        b->all_done = CreateEventW(NULL, TRUE, FALSE, NULL);
        LONG want = b->n < FINAL_WORKERS ? b->n : FINAL_WORKERS;
        b->workers = b->all_done ? want : 0;
        for (LONG i = 0; b->all_done && i < want; i++)
            if (!TrySubmitThreadpoolCallback(final_work, b, NULL))
                InterlockedDecrement(&b->workers);
        if (b->workers == 0) { /* no worker thread: here, without a bound */
            b->workers = 1;
            final_work(NULL, b);
        } else {
            ULONGLONG now = GetTickCount64();
            WaitForSingleObject(b->all_done, now < deadline ? (DWORD)(deadline - now) : 0);
        }
    }
    while (l && l->in_pool && GetTickCount64() < deadline)
        Sleep(5); /* their results are not read: the loop is over */
    /* What was not flushed, by name: the final flushes, then those that
     * were on workers when the loop ended (a leaving writer's, mostly:
     * connections end before this). */
    unsigned failed = 0, left = 0, n = (unsigned)b->n;
    for (LONG i = 0; i < b->n; i++)
        final_told(b->jobs[i], &failed, &left);
    for (struct wflush *f = l ? l->runs : NULL; f; f = f->run_next, n++)
        final_told(f, &failed, &left);
    if (n)
        log_info("final flushes: %u, %u failed, %u not done", n, failed, left);
    /* Abandoned while workers may still use them: the jobs (with the
     * lanes' root handle) and the lanes (whose in_pool flushes on workers
     * count down). */
    bool abandon = left || b->workers || (l && l->in_pool);
    if (!abandon) {
        final_free(b);
        if (l) {
            CloseHandle(l->root);
            free(l);
        }
    }
    w->lanes = NULL;
}

/* On the loop: m's timer came due. */
static void timer_due(void *arg)
{
    struct wtimer *t = arg;
    struct wmap *m = find_id(t->w, t->map_id);
    if (m) {
        m->armed = false;
        winflush_policy(t->w, m);
    }
    free(t);
}

/* On a pool thread: hands the mapping's id to the loop (the mapping may
 * be gone by the time the loop looks). */
static void CALLBACK timer_fired(PTP_CALLBACK_INSTANCE inst, void *arg, PTP_TIMER timer)
{
    (void)inst;
    (void)timer;
    wtimer_post(arg, timer_due);
}

/* EVERY_MILLIS: a flush at the policy's pace after the first write. */
void winflush_timed(struct winops *w, struct wmap *m)
{
    if (m->armed || m->policy.kind != MMAPIO_FLUSH_EVERY_MILLIS)
        return;
    if (!m->timer && !(m->timer = map_timer(w, m, timer_fired))) {
        log_warn("%s: no timer for its policy", m->name);
        return;
    }
    FILETIME ft = due_in_ms(m->policy.value);
    SetThreadpoolTimer(m->timer, &ft, 0, 0);
    m->armed = true;
}
