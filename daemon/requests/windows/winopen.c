/*
 * winopen (Windows): opens of files on worker threads (winopen.h).
 *
 * An open is two steps on a worker with the loop between: (1) the walk as
 * the client, the file's identity, size and owner; the loop then checks
 * the owner, the size asked against the table's entry for that file (a
 * mapped file's size cannot change); (2) the new size if any, and the
 * section (which may wait for another holder's oplock to break). The
 * loop then finds the file's entry again — another open of the same file
 * may have made it meanwhile: one entry per file — or makes it, and
 * grants. A client gone meanwhile gets nothing: the handles are closed.
 */
#include "winopen.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "beneath.h"
#include "filesection.h"
#include "log.h"
#include "membackend.h"
#include "policy.h"
#include "sidmap.h"
#include "wintesthook.h"
#include "winwatch.h"

/* Workers of the opens' own pool; at most half of them for one uid, so
 * that one uid's slow opens never hold them all. */
#define OPEN_WORKERS 8
#define OPEN_WORKERS_PER_UID (OPEN_WORKERS / 2)
/* Opens of one client waiting or running; more are MMAPIO_E_BUSY. */
#define MAX_OPENS_PER_CLIENT 16
/* How long a stopping daemon waits for opens on workers. */
#define STOP_WAIT_MS 2000

struct wopen {
    struct wopen *next;    /* in its uid's queue */
    struct wsession *s;
    struct winops *w;
    struct wopens *ops;
    void (*post)(void (*fn)(void *), void *arg);
    uint32_t uid;
    uint64_t id;
    char *path;
    mmapio_mode mode;
    bool del;              /* a delete of the file, not an open */
    char *dst;             /* a copy's destination (path is its source), or NULL */
    wlookup_fn look;       /* a lookup (winopen_lookup), not an open */
    void *look_ctx;
    ACCESS_MASK look_access;
    bool admin;
    bool create, truncate, exclusive, has_owner, has_policy;
    bool reattach;         /* a Reattach: the file must be want_vol/want_index */
    uint64_t want_vol, want_index;
    uint32_t want_owner;
    uint64_t want_size;
    mmapio_flush_policy policy;
    HANDLE token;          /* the client's, a copy of the session's */
    int step;              /* 1: open; 2: size and section */
    /* Results. */
    int code;              /* MMAPIO_OK or the reply's error */
    char why[128];
    HANDLE f, sec;
    bool created, set_size;
    bool known;            /* a lookup's: vol, index and size were read */
    uint64_t vol, index, size;
    uint32_t owner;
    DWORD links;           /* a delete's: the file's names before it */
    HANDLE g;              /* a copy's: the destination opened (f: the source) */
    uint64_t gvol, gindex, gsize;
    uint64_t max_size;     /* a copy's: max_map_size (w may be gone on a worker) */
};

/* A uid's opens waiting, and how many of its run. */
struct oqueue {
    struct oqueue *next;
    uint32_t uid;
    unsigned running;
    struct wopen *head, *tail;
};

struct wopens {
    struct oqueue *uids;   /* served from the front; a served uid goes last */
    unsigned running;      /* started, not yet back on the loop */
    volatile LONG in_pool; /* on a worker thread now */
    volatile LONG stopping; /* copies under way give up at their next chunk */
    HANDLE root;           /* a copy of the root's handle: abandoned work keeps it */
    PTP_POOL pool;
    TP_CALLBACK_ENVIRON env;
};

static void CALLBACK open_work(PTP_CALLBACK_INSTANCE inst, void *arg);

/* The tests' hold (mmapiod-hooks.exe): an open, delete, copy or lookup of
 * the path in $MMAPIOD_TEST_SLOW_OPEN waits for the test's release. */
#define test_slow_open(path) test_hold("MMAPIOD_TEST_SLOW_OPEN", path)

static void fail(struct wopen *o, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail(struct wopen *o, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(o->why, sizeof(o->why), fmt, ap);
    va_end(ap);
    o->code = code;
}

/* An open file's identity (volume, index) and size; false when the
 * system will not say. */
static bool file_facts(HANDLE f, uint64_t *vol, uint64_t *index,
                       uint64_t *size)
{
    BY_HANDLE_FILE_INFORMATION fi;
    LARGE_INTEGER sz;
    if (!GetFileInformationByHandle(f, &fi) || !GetFileSizeEx(f, &sz))
        return false;
    *vol = fi.dwVolumeSerialNumber;
    *index = (uint64_t)fi.nFileIndexHigh << 32 | fi.nFileIndexLow;
    *size = (uint64_t)sz.QuadPart;
    return true;
}

/* Step 1, on a worker: the walk as the client, then what the loop needs. */
static void open_step(struct wopen *o)
{
    bool writer = o->mode == MMAPIO_MODE_READ_WRITE || o->create || o->truncate;
    ACCESS_MASK access = GENERIC_READ | (writer ? GENERIC_WRITE : 0);
    enum beneath_how how = o->exclusive ? BENEATH_EXCLUSIVE
                         : o->create ? BENEATH_CREATE : BENEATH_OPEN;
    test_slow_open(o->path);
    int err = 0;
    o->f = beneath_as(o->token, o->ops->root, o->path, access, how, &o->created, &err);
    if (!o->f) {
        fail(o, public_err(err), "%s", errno_text(err));
        return;
    }
    if (!file_facts(o->f, &o->vol, &o->index, &o->size)) {
        fail(o, MMAPIO_E_IO, "cannot read its attributes");
        return;
    }
    o->owner = o->has_owner ? file_owner(o->f) : SIDMAP_NONE;
}

/* A delete, on a worker: opened as the client for DELETE, its identity,
 * then its disposition. */
static void delete_step(struct wopen *o)
{
    test_slow_open(o->path);
    int err = 0;
    bool created;
    o->f = beneath_as(o->token, o->ops->root, o->path, DELETE, BENEATH_OPEN, &created, &err);
    if (!o->f) {
        fail(o, public_err(err), "cannot delete: %s", errno_text(err));
        return;
    }
    BY_HANDLE_FILE_INFORMATION fi;
    if (GetFileInformationByHandle(o->f, &fi)) {
        o->vol = fi.dwVolumeSerialNumber;
        o->index = (uint64_t)fi.nFileIndexHigh << 32 | fi.nFileIndexLow;
        o->links = fi.nNumberOfLinks;
    }
    FILE_DISPOSITION_INFO del = {.DeleteFile = TRUE};
    if (!SetFileInformationByHandle(o->f, FileDispositionInfo, &del, sizeof(del)))
        fail(o, MMAPIO_E_IO, "cannot delete it (%lu)", (unsigned long)GetLastError());
}

/* A lookup, on a worker: the open as the client (an admin refused by the
 * ACL: as the daemon, attributes only), identity, size, owner. */
static void lookup_step(struct wopen *o)
{
    test_slow_open(o->path);
    int err = 0;
    bool created;
    o->f = beneath_as(o->token, o->ops->root, o->path, o->look_access, BENEATH_OPEN,
                      &created, &err);
    if (!o->f && o->admin && public_err(err) == MMAPIO_E_PERMISSION && err != -ELOOP &&
        err != -EXDEV)
        o->f = beneath_open(o->ops->root, o->path, FILE_READ_ATTRIBUTES | READ_CONTROL,
                            BENEATH_OPEN, &created, &err);
    if (!o->f) {
        fail(o, public_err(err), "%s", errno_text(err));
        return;
    }
    o->known = file_facts(o->f, &o->vol, &o->index, &o->size);
    o->owner = file_owner(o->f);
}

/* A copy's step 1, on a worker: the source opened as the client for
 * reading, then the destination for writing (made when missing), their
 * identities and sizes. */
static void copy_open_step(struct wopen *o)
{
    test_slow_open(o->path);
    int err = 0;
    bool created;
    o->f = beneath_as(o->token, o->ops->root, o->path, GENERIC_READ, BENEATH_OPEN, &created,
                      &err);
    if (!o->f) {
        fail(o, public_err(err), "%s", errno_text(err));
        return;
    }
    if (!file_facts(o->f, &o->vol, &o->index, &o->size)) {
        fail(o, MMAPIO_E_IO, "cannot read the source's attributes");
        return;
    }
    if (o->size == 0) {
        fail(o, MMAPIO_E_RESIZE_FAILED, "the source is empty");
        return;
    }
    if (o->size > o->max_size) { /* as Linux, before dst is made */
        fail(o, MMAPIO_E_QUOTA, "size over the daemon's max_map_size");
        return;
    }
    o->g = beneath_as(o->token, o->ops->root, o->dst, GENERIC_READ | GENERIC_WRITE,
                      BENEATH_CREATE, &created, &err);
    if (!o->g) {
        fail(o, public_err(err), "%s", errno_text(err));
        return;
    }
    if (!file_facts(o->g, &o->gvol, &o->gindex, &o->gsize)) {
        fail(o, MMAPIO_E_IO, "cannot read the destination's attributes");
        return;
    }
    if (o->gvol == o->vol && o->gindex == o->index)
        fail(o, MMAPIO_E_INVALID_ARGUMENT, "source and destination are the same file");
}

/* A copy's step 2, on a worker: the destination to the source's size,
 * then the bytes into it in place, so that its holders' views (of the
 * same file) see them. A stopping daemon's copy gives up. */
#define COPY_CHUNK (1u << 20)
static void copy_bytes_step(struct wopen *o)
{
    FILE_END_OF_FILE_INFO eof = {.EndOfFile.QuadPart = (LONGLONG)o->size};
    if (o->gsize != o->size &&
        !SetFileInformationByHandle(o->g, FileEndOfFileInfo, &eof, sizeof(eof))) {
        fail(o, MMAPIO_E_IO, "cannot set the destination's size (%lu)",
             (unsigned long)GetLastError());
        return;
    }
    char *buf = malloc(COPY_CHUNK);
    if (!buf) {
        fail(o, MMAPIO_E_QUOTA, "out of memory");
        return;
    }
    for (uint64_t done = 0; done < o->size && o->code == MMAPIO_OK;) {
        DWORD want = o->size - done < COPY_CHUNK ? (DWORD)(o->size - done) : COPY_CHUNK;
        DWORD got = 0, put = 0;
        OVERLAPPED at = {.Offset = (DWORD)done, .OffsetHigh = (DWORD)(done >> 32)};
        if (o->ops->stopping)
            fail(o, MMAPIO_E_IO, "the daemon is stopping");
        else if (!ReadFile(o->f, buf, want, &got, &at) || got == 0)
            fail(o, MMAPIO_E_IO, "cannot read the source (%lu)", (unsigned long)GetLastError());
        else if (!WriteFile(o->g, buf, got, &put, &at) || put != got)
            fail(o, MMAPIO_E_IO, "cannot write the destination (%lu)",
                 (unsigned long)GetLastError());
        done += got;
    }
    free(buf);
}

/* Step 2, on a worker: the size the loop allowed, and the section. */
static void section_step(struct wopen *o)
{
    FILE_END_OF_FILE_INFO eof = {.EndOfFile.QuadPart = (LONGLONG)o->size};
    if (o->set_size && !SetFileInformationByHandle(o->f, FileEndOfFileInfo, &eof, sizeof(eof))) {
        fail(o, MMAPIO_E_IO, "cannot set its size");
        return;
    }
    o->sec = mem_file_section(o->f, o->mode == MMAPIO_MODE_READ_WRITE);
    if (!o->sec)
        fail(o, MMAPIO_E_IO, "cannot make its section (%lu)", (unsigned long)GetLastError());
}

static struct oqueue *queue_of(struct wopens *ops, uint32_t uid, bool make)
{
    struct oqueue **p = &ops->uids;
    for (; *p; p = &(*p)->next)
        if ((*p)->uid == uid)
            return *p;
    if (make && (*p = calloc(1, sizeof(**p))))
        (*p)->uid = uid;
    return *p;
}

static void queue_drop_if_idle(struct wopens *ops, struct oqueue *q)
{
    if (q->head || q->running)
        return;
    for (struct oqueue **p = &ops->uids; *p; p = &(*p)->next)
        if (*p == q) {
            *p = q->next;
            free(q);
            return;
        }
}

/* The job's handles and memory; its session freed if it was the last
 * thing keeping a gone one. */
static void job_free(struct wopen *o)
{
    struct wsession *s = o->s;
    if (o->sec)
        CloseHandle(o->sec);
    if (o->f)
        CloseHandle(o->f);
    if (o->g)
        CloseHandle(o->g);
    if (o->token)
        CloseHandle(o->token);
    free(o->path);
    free(o->dst);
    free(o->look_ctx);
    free(o);
    s->opens--;
    if (s->gone && s->opens == 0 && s->flushes == 0)
        free(s);
}

static bool to_pool(struct wopen *o)
{
    struct wopens *ops = o->ops;
    InterlockedIncrement(&ops->in_pool);
    if (TrySubmitThreadpoolCallback(open_work, o, ops->pool ? &ops->env : NULL))
        return true;
    InterlockedDecrement(&ops->in_pool);
    return false;
}

static void pump(struct wopens *ops);

/* Back on the loop: the job's slot is free. */
static void job_end(struct wopen *o)
{
    struct wopens *ops = o->ops;
    struct oqueue *q = queue_of(ops, o->uid, false);
    ops->running--;
    if (q) {
        q->running--;
        queue_drop_if_idle(ops, q);
    }
    job_free(o);
    pump(ops);
}

static void reply_fail(struct wopen *o)
{
    if (o->dst)
        reply_err(o->s, o->id, o->code, "copy %s to %s: %s", o->path, o->dst, o->why);
    else
        reply_err(o->s, o->id, o->code, "%s: %s", o->path, o->why);
    job_end(o);
}

/* On the loop, after step 1: its failure replied, or step 2 on a
 * worker. */
static void step_two(struct wopen *o)
{
    if (o->code != MMAPIO_OK) {
        reply_fail(o);
        return;
    }
    o->step = 2;
    if (!to_pool(o)) {
        fail(o, MMAPIO_E_IO, "no worker thread (%lu)", (unsigned long)GetLastError());
        reply_fail(o);
    }
}

/* Starts waiting opens while there is room: the first uid in line with
 * room of its own goes, then goes last. */
static void pump(struct wopens *ops)
{
    while (ops->running < OPEN_WORKERS) {
        struct oqueue **p = &ops->uids;
        while (*p && (!(*p)->head || (*p)->running >= OPEN_WORKERS_PER_UID))
            p = &(*p)->next;
        struct oqueue *q = *p;
        if (!q)
            return;
        struct wopen *o = q->head;
        if (!(q->head = o->next))
            q->tail = NULL;
        *p = q->next; /* last in line now */
        q->next = NULL;
        struct oqueue **end = &ops->uids;
        while (*end)
            end = &(*end)->next;
        *end = q;
        if (o->s->gone) { /* its client left while it waited */
            job_free(o);
            queue_drop_if_idle(ops, q);
            continue;
        }
        q->running++;
        ops->running++;
        if (!to_pool(o)) {
            q->running--;
            ops->running--;
            reply_err(o->s, o->id, MMAPIO_E_IO, "%s: no worker thread (%lu)", o->path,
                      (unsigned long)GetLastError());
            job_free(o);
            queue_drop_if_idle(ops, q);
        }
    }
}

/* On the loop, after step 1: the table's checks, then step 2. */
static void opened(struct wopen *o)
{
    struct winops *w = o->w;
    struct wmap *m = find_file(w, o->vol, o->index);
    if (o->reattach && (o->vol != o->want_vol || o->index != o->want_index)) {
        fail(o, MMAPIO_E_NOT_FOUND, "another file has that name now");
    } else if (o->has_owner && (o->owner == SIDMAP_NONE || o->want_owner != o->owner)) {
        fail(o, MMAPIO_E_PERMISSION, "belongs to another account");
    } else if ((o->created || o->truncate) && o->size != o->want_size) {
        if (o->want_size > w->cfg.max_map_size || (m && !o->created))
            fail(o, m ? MMAPIO_E_BUSY : MMAPIO_E_INVALID_ARGUMENT, "%s",
                 m ? "mapped: its size cannot change on Windows" : "bigger than max_map_size");
        o->set_size = true;
        o->size = o->want_size;
    }
    if (o->code == MMAPIO_OK && o->size == 0)
        fail(o, MMAPIO_E_INVALID_ARGUMENT, "an empty file cannot be mapped on Windows");
    step_two(o);
}

/* On the loop, after step 2: the entry (found again: another open of the
 * file may have made it since step 1), the holder, the reply. */
static void sectioned(struct wopen *o)
{
    struct winops *w = o->w;
    struct wsession *s = o->s;
    if (s->n_holders >= w->cfg.max_holders_per_client) {
        fail(o, MMAPIO_E_QUOTA, "max_holders_per_client reached");
        reply_fail(o);
        return;
    }
    struct wmap *m = find_file(w, o->vol, o->index);
    if (!m) {
        int err;
        const char *why;
        m = map_new(w, s->cred.uid, false, o->size, o->path, &err, &why);
        if (!m) {
            fail(o, err, "%s", why);
            reply_fail(o);
            return;
        }
        m->file = o->f; /* kept for stat */
        o->f = NULL;
        m->creator_pid = (int32_t)s->cred.pid;
        m->vol = o->vol;
        m->index = o->index;
        if (o->has_policy)
            m->policy = o->policy;
        atomic_store(&w->slots[m->slot].policy, ctl_pack_policy(m->policy));
    } else {
        m->size = o->size;
    }
    HANDLE f = o->f ? o->f : m->file;
    if (o->mode == MMAPIO_MODE_READ_WRITE && !m->wfile &&
        !DuplicateHandle(GetCurrentProcess(), f, GetCurrentProcess(), &m->wfile, 0,
                         FALSE, DUPLICATE_SAME_ACCESS))
        m->wfile = NULL; /* then timed flushes of it are skipped */
    grant(s, o->id, m, o->mode, o->sec); /* the client's duplicate keeps the section */
    job_end(o);
}

/* On the loop, after a delete: REMOVED told if that was the file's last
 * name and the table has it. */
static void deleted(struct wopen *o)
{
    struct wmap *m = o->links ? find_file(o->w, o->vol, o->index) : NULL;
    if (m && o->links <= 1 && !m->removed) {
        m->removed = true; /* not told again from the folder's news */
        winwatch_notify(o->w, m, MMAPIO__EVENT_KIND__EVENT_REMOVED, false, 0, 0);
    }
    reply_ok(o->s, o->id);
    job_end(o);
}

/* On the loop, after a copy's step 1: the destination's entry, if any.
 * A mapped file's size cannot change on Windows, so a destination held
 * at another size than the source's is refused (Linux grows a smaller
 * one); then step 2. */
static void copy_opened(struct wopen *o)
{
    struct wmap *m = find_file(o->w, o->gvol, o->gindex);
    if (m && m->size != o->size)
        fail(o, MMAPIO_E_BUSY, "the destination is mapped at another size than the "
             "source's, and a mapped file's size cannot change on Windows");
    step_two(o);
}

/* On the loop, after a copy: the destination's watchers told, the reply. */
static void copied(struct wopen *o)
{
    struct wmap *m = find_file(o->w, o->gvol, o->gindex);
    if (m)
        winwatch_notify(o->w, m, MMAPIO__EVENT_KIND__EVENT_MODIFIED, true, 0, o->size);
    reply_ok(o->s, o->id);
    job_end(o);
}

/* On the loop, after a lookup: the caller's callback has the result. */
static void looked(struct wopen *o)
{
    struct wlookup r = {.path = o->path, .code = o->code, .why = o->why, .f = o->f,
                        .known = o->known, .vol = o->vol, .index = o->index,
                        .size = o->size, .owner = o->owner};
    o->f = NULL; /* the callback's */
    o->look(o->s, o->id, o->look_ctx, &r);
    job_end(o);
}

static void open_done(void *arg)
{
    struct wopen *o = arg;
    if (o->s->gone)
        job_end(o);
    else if (o->look)
        looked(o);
    else if (o->code != MMAPIO_OK)
        reply_fail(o);
    else if (o->del)
        deleted(o);
    else if (o->dst)
        (o->step == 1 ? copy_opened : copied)(o);
    else if (o->step == 1)
        opened(o);
    else
        sectioned(o);
}

static void CALLBACK open_work(PTP_CALLBACK_INSTANCE inst, void *arg)
{
    (void)inst;
    struct wopen *o = arg;
    if (o->look)
        lookup_step(o);
    else if (o->del)
        delete_step(o);
    else if (o->dst)
        (o->step == 1 ? copy_open_step : copy_bytes_step)(o);
    else if (o->step == 1)
        open_step(o);
    else
        section_step(o);
    void (*post)(void (*)(void *), void *) = o->post;
    InterlockedDecrement(&o->ops->in_pool); /* a stopping daemon may move on now */
    post(open_done, o);
}

static struct wopens *opens_of(struct winops *w)
{
    if (w->opens)
        return w->opens;
    struct wopens *ops = calloc(1, sizeof(*ops));
    if (!ops)
        return NULL;
    if (!DuplicateHandle(GetCurrentProcess(), w->cfg.root, GetCurrentProcess(), &ops->root,
                         0, FALSE, DUPLICATE_SAME_ACCESS)) {
        free(ops);
        return NULL;
    }
    /* A pool of its own, its threads made at once: a burst of slow opens
     * needs no thread injection, and cannot take the flushes' threads. */
    InitializeThreadpoolEnvironment(&ops->env);
    ops->pool = CreateThreadpool(NULL);
    if (ops->pool) {
        SetThreadpoolThreadMaximum(ops->pool, OPEN_WORKERS);
        if (!SetThreadpoolThreadMinimum(ops->pool, OPEN_WORKERS))
            log_debug("the opens' pool keeps no threads ready (%lu)",
                      (unsigned long)GetLastError());
        SetThreadpoolCallbackPool(&ops->env, ops->pool);
    }
    return w->opens = ops;
}

/* A job for `path` (checked here) with a copy of the client's token, or
 * NULL after replying. */
static struct wopen *job_new(struct wsession *s, uint64_t id, const char *path)
{
    struct winops *w = s->w;
    const char *why;
    int r = beneath_check_path(path, &why);
    if (r != MMAPIO_OK) {
        reply_err(s, id, r, "%s: %s", path, why);
        return NULL;
    }
    if (s->opens >= MAX_OPENS_PER_CLIENT) {
        reply_err(s, id, MMAPIO_E_BUSY, "%s: %d opens of this client under way", path,
                  MAX_OPENS_PER_CLIENT);
        return NULL;
    }
    struct wopens *ops = opens_of(w);
    HANDLE dup = caller_token(s);
    if (!dup) {
        reply_err(s, id, MMAPIO_E_PERMISSION, "%s: the daemon cannot act as you", path);
        return NULL;
    }
    struct wopen *o = ops ? calloc(1, sizeof(*o)) : NULL;
    char *copy = o ? strdup(path) : NULL;
    if (!copy) {
        CloseHandle(dup);
        free(o);
        reply_err(s, id, MMAPIO_E_QUOTA, "out of memory");
        return NULL;
    }
    *o = (struct wopen){.s = s, .w = w, .ops = ops, .post = w->port.post, .uid = s->cred.uid,
                        .id = id, .path = copy, .token = dup, .step = 1};
    return o;
}

/* Into its uid's queue, then started when its turn comes. */
static void job_queue(struct wopen *o)
{
    struct oqueue *q = queue_of(o->ops, o->uid, true);
    if (!q) {
        reply_err(o->s, o->id, MMAPIO_E_QUOTA, "out of memory");
        o->s->opens++;
        job_free(o);
        return;
    }
    if (q->tail)
        q->tail->next = o;
    else
        q->head = o;
    q->tail = o;
    o->s->opens++;
    pump(o->ops);
}

/* An open's job (an Open or a Reattach), or NULL after replying. */
static struct wopen *open_job_new(struct wsession *s, uint64_t id, const char *path,
                                  mmapio_mode mode)
{
    if (s->n_holders >= s->w->cfg.max_holders_per_client) {
        reply_err(s, id, MMAPIO_E_QUOTA, "max_holders_per_client reached");
        return NULL;
    }
    struct wopen *o = job_new(s, id, path);
    if (o)
        o->mode = mode;
    return o;
}

void winopen_request(struct wsession *s, uint64_t id, const Mmapio__Open *req)
{
    struct wopen *o = open_job_new(s, id, req->path, (mmapio_mode)req->mode);
    if (!o)
        return;
    o->create = req->create;
    o->truncate = req->truncate;
    o->exclusive = req->exclusive;
    o->has_owner = req->owner != NULL;
    o->want_owner = req->owner ? req->owner->uid : 0;
    o->want_size = req->size;
    o->has_policy = req->policy != NULL;
    if (req->policy)
        o->policy = policy_from_wire(req->policy);
    job_queue(o);
}

void winopen_reattach(struct wsession *s, uint64_t id, const Mmapio__Reattach *req)
{
    struct wopen *o = open_job_new(s, id, req->path, (mmapio_mode)req->mode);
    if (!o)
        return;
    o->reattach = true;
    o->want_vol = req->dev;
    o->want_index = req->ino;
    job_queue(o);
}

void winopen_delete(struct wsession *s, uint64_t id, const char *path)
{
    struct wopen *o = job_new(s, id, path);
    if (o) {
        o->del = true;
        job_queue(o);
    }
}

void winopen_copy(struct wsession *s, uint64_t id, const char *src, const char *dst)
{
    const char *why;
    int r = beneath_check_path(dst, &why);
    if (r != MMAPIO_OK) {
        reply_err(s, id, r, "copy %s to %s: %s", src, dst, why);
        return;
    }
    struct wopen *o = job_new(s, id, src);
    if (!o)
        return;
    o->max_size = s->w->cfg.max_map_size;
    if (!(o->dst = strdup(dst))) {
        reply_err(s, id, MMAPIO_E_QUOTA, "out of memory");
        s->opens++; /* job_free counts it down */
        job_free(o);
        return;
    }
    job_queue(o);
}

void winopen_lookup(struct wsession *s, uint64_t id, const char *path, ACCESS_MASK access,
                    bool admin, wlookup_fn fn, void *ctx)
{
    struct wopen *o = job_new(s, id, path);
    if (!o) {
        free(ctx);
        return;
    }
    o->look = fn;
    o->look_ctx = ctx;
    o->look_access = access;
    o->admin = admin;
    job_queue(o);
}

void winopen_final(struct winops *w)
{
    struct wopens *ops = w->opens;
    if (!ops)
        return;
    ops->stopping = 1;
    for (int waited = 0; ops->in_pool && waited < STOP_WAIT_MS; waited += 5)
        Sleep(5);
    if (ops->in_pool) {
        /* Stuck in the file system: left to the process's end, with the
         * memory and root handle they use. */
        log_warn("stopping with %ld opens still on worker threads", (long)ops->in_pool);
        w->opens = NULL;
        return;
    }
    while (ops->uids) {
        struct oqueue *q = ops->uids;
        ops->uids = q->next;
        for (struct wopen *o = q->head, *next; o; o = next) {
            next = o->next;
            job_free(o);
        }
        free(q);
    }
    if (ops->pool)
        CloseThreadpool(ops->pool);
    CloseHandle(ops->root);
    free(ops);
    w->opens = NULL;
}
