/*
 * winflush (Windows): flushes and flush policies (winflush.h).
 */
#include "winflush.h"

#include <stdlib.h>

#include "filesection.h"
#include "log.h"

/* A flush on a worker thread (the disk's time is not the loop's): the
 * file's pages in [off, off + len) through a view of its own, then the
 * file's metadata and the device's cache. The result goes back to the
 * loop (winops_port.post); a session gone by then gets no reply. */
struct wflush {
    struct wsession *s;   /* NULL: the daemon's own flush, of map_id */
    struct winops *w;
    uint64_t map_id;
    uint64_t id;
    HANDLE file;    /* writable, opened as the caller */
    uint64_t off, len;
    bool ok;
    DWORD err;
};

#define MAX_FLUSHES_PER_CLIENT 16

static void flush_done(void *arg)
{
    struct wflush *f = arg;
    struct wsession *s = f->s;
    CloseHandle(f->file);
    if (!s) { /* the daemon's own: a policy's */
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
        return;
    }
    s->flushes--;
    if (s->gone) {
        if (s->flushes == 0)
            free(s);
    } else if (f->ok) {
        reply_ok(s, f->id);
    } else {
        reply_err(s, f->id, MMAPIO_E_FLUSH_FAILED, "the flush failed (%lu)",
                  (unsigned long)f->err);
    }
    free(f);
}

static void CALLBACK flush_work(PTP_CALLBACK_INSTANCE inst, void *arg)
{
    (void)inst;
    struct wflush *f = arg;
    HANDLE sec = mem_file_section(f->file, false);
    char *view = sec ? MapViewOfFile(sec, FILE_MAP_READ, 0, 0, 0) : NULL;
    /* len 0 from 0: the whole view (the daemon's own flushes); at the
     * end of the file: no bytes, the metadata only. */
    bool none = f->len == 0 && f->off != 0;
    f->ok = view && (none || FlushViewOfFile(view + f->off, (SIZE_T)f->len)) &&
            FlushFileBuffers(f->file);
    f->err = f->ok ? 0 : GetLastError();
    if (view)
        UnmapViewOfFile(view);
    if (sec)
        CloseHandle(sec);
    f->w->port.post(flush_done, f);
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
    bool created;
    int err = 0;
    /* Writable, as the caller: the daemon's own handle may be read-only. */
    HANDLE file = f ? open_as_caller(s, h->m->name, GENERIC_READ | GENERIC_WRITE,
                                     BENEATH_OPEN, &created, &err) : NULL;
    if (!file) {
        free(f);
        reply_err(s, id, MMAPIO_E_FLUSH_FAILED, "%s: %s", h->m->name,
                  f ? errno_text(err) : "out of memory");
        return;
    }
    *f = (struct wflush){.s = s, .w = s->w, .id = id, .file = file, .off = fl->offset,
                         .len = fl->len ? fl->len : total - fl->offset};
    s->flushes++;
    if (!TrySubmitThreadpoolCallback(flush_work, f, NULL)) {
        f->ok = false;
        f->err = GetLastError();
        flush_done(f);
    }
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
    *f = (struct wflush){.w = w, .map_id = m->id, .file = dup}; /* the whole file */
    m->flushing = true;
    m->dirty_again = false;
    if (!TrySubmitThreadpoolCallback(flush_work, f, NULL)) {
        f->err = GetLastError();
        flush_done(f);
    }
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
    const struct wtimer *t = arg;
    struct wtimer *copy = malloc(sizeof(*copy));
    if (copy) {
        *copy = *t;
        t->w->port.post(timer_due, copy);
    }
}

/* EVERY_MILLIS: a flush at the policy's pace after the first write. */
void winflush_timed(struct winops *w, struct wmap *m)
{
    if (m->armed || m->policy.kind != MMAPIO_FLUSH_EVERY_MILLIS)
        return;
    if (!m->timer) {
        m->tctx = malloc(sizeof(*m->tctx));
        if (m->tctx) {
            *m->tctx = (struct wtimer){w, m->id};
            m->timer = CreateThreadpoolTimer(timer_fired, m->tctx, NULL);
        }
        if (!m->timer) {
            free(m->tctx);
            m->tctx = NULL;
            log_warn("%s: no timer for its policy", m->name);
            return;
        }
    }
    ULARGE_INTEGER due; /* relative, in 100 ns units (at most ~29,000 years) */
    uint64_t ms = m->policy.value < INT64_MAX / 10000 ? m->policy.value : INT64_MAX / 10000;
    due.QuadPart = (ULONGLONG)-(LONGLONG)(ms * 10000u);
    FILETIME ft = {due.LowPart, due.HighPart};
    SetThreadpoolTimer(m->timer, &ft, 0, 0);
    m->armed = true;
}
