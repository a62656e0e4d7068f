/* ringdrain: a session's write ring, drained (see ringdrain.h, common/wring.h). */
#include "ringdrain.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#ifdef __linux__
#endif

#include "fence.h"
#include "flushes.h"
#include "log.h"
#include "membackend.h"
#include "quota.h"
#include "session.h"
#include "watch.h"
#include "wring.h"

#define MERGE_MAX 32  /* distinct ranges one drain keeps before telling */
#define TELL_MAX 256  /* ranges one drain tells at most; the rest waits */

struct wring {
    struct wring_hdr *hdr;     /* shared with the client: untrusted */
    uint64_t head;             /* ours: what was read */
    struct session *s;
    struct event *poll;        /* the next look while busy */
    uint32_t poll_ms;          /* its delay: longer while writes are dropped */
    struct event *sweep;       /* the look promised while lazy (wring.h) */
    bool lazy;                 /* our word: hdr->lazy is 1 */
    bool asked;                /* a request came since the last sweep */
    bool fenced;               /* takes = WRING_TAKES_FENCED (wring.h) */
    uint64_t live;             /* fenced: the untaken last cell's position
                                * + 1 (0: none), and the length told */
    uint64_t live_len;
};

/* One merged range of one mapping. */
struct merged {
    struct mapping *map;
    uint64_t lo, hi;
};

struct batch {
    struct merged r[MERGE_MAX];
    size_t n;
    uint64_t handle;           /* the last cell's, and its holder */
    struct holder *holder;
    uint32_t told;             /* ranges told in this drain */
    const uint64_t *lost;      /* lost bits seen before the cells */
};

static void tell_batch(struct session *s, struct batch *b)
{
    b->told += b->n;
    for (size_t i = 0; i < b->n; i++) {
        struct merged *r = &b->r[i];
        watch_notify(s->h->watches, r->map, MMAPIO__EVENT_KIND__EVENT_MODIFIED,
                     true, r->lo, r->hi - r->lo);
        flushes_dirty(s->h->flushes, r->map);
    }
    b->n = 0;
}

static uint64_t gap(const struct merged *r, uint64_t lo, uint64_t hi)
{
    return lo > r->hi ? lo - r->hi : r->lo > hi ? r->lo - hi : 0;
}

/* Adds [lo, hi) of m: into a range of m it touches (or nearly); else as a
 * new one; else, the table full, into m's nearest range (a wider range
 * still covers every byte written); else the table is told first. */
static void batch_add(struct session *s, struct batch *b, struct mapping *m,
                      uint64_t lo, uint64_t hi)
{
    struct merged *near = NULL;
    for (size_t i = b->n; i-- > 0;) {
        struct merged *r = &b->r[i];
        if (r->map != m)
            continue;
        if (!near || gap(r, lo, hi) < gap(near, lo, hi))
            near = r;
    }
    if (near && (gap(near, lo, hi) <= WRING_MERGE_GAP || b->n == MERGE_MAX)) {
        near->lo = lo < near->lo ? lo : near->lo;
        near->hi = hi > near->hi ? hi : near->hi;
        return;
    }
    if (b->n == MERGE_MAX)
        tell_batch(s, b);
    b->r[b->n++] = (struct merged){ m, lo, hi };
}

/* Watchers of m get "anything may have changed". */
static void tell_lost(struct session *s, struct mapping *m)
{
    watch_notify(s->h->watches, m, MMAPIO__EVENT_KIND__EVENT_OVERFLOW, false,
                 0, 0);
    flushes_dirty(s->h->flushes, m);
}

/* Mappings of s whose writers' ranges were dropped: every read-write
 * holder whose bit is set in lost[] (all of them when `all`); each
 * mapping told once, however often s holds it. */
static void tell_dropped(struct session *s, const uint64_t *lost, bool all)
{
    uint64_t pass = ++s->h->walk;
    for (struct holder *h = s->holders.first; h; h = h->owner_next) {
        if (h->mode != MMAPIO_MODE_READ_WRITE || h->group->mark == pass)
            continue;
        uint32_t b = wring_lost_bit(h->handle);
        if (all || (lost[b / 64] >> (b % 64) & 1)) {
            h->group->mark = pass;
            tell_lost(s, h->map);
        }
    }
}

/* One cell's write, checked: only s's own read-write holders count, and
 * the range is clipped to the mapping's size. */
static void take_cell(struct session *s, struct batch *b, uint64_t handle,
                      uint64_t offset, uint64_t len)
{
    /* Its watchers hear "anything may have changed" at the end of this
     * drain (only the daemon clears a bit): its ranges would add nothing. */
    uint32_t bit = wring_lost_bit(handle);
    if (b->lost[bit / 64] >> (bit % 64) & 1)
        return;
    if (handle != b->handle) { /* runs of one handle: one look-up */
        b->handle = handle;
        b->holder = session_find_holder(s, handle);
    }
    struct holder *h = b->holder;
    if (!h || h->mode != MMAPIO_MODE_READ_WRITE)
        return;
    uint64_t size = h->map->size;
    if (len == 0 || offset >= size)
        return;
    if (len > size - offset)
        len = size - offset;
    batch_add(s, b, h->map, offset, offset + len);
}

/* A release cell: the ranges before it are told first (the holder may
 * take its mapping with it), then the holder goes as by a one-way Close.
 * Each counts as a told range, so one drain releases at most TELL_MAX. */
static void take_release(struct session *s, struct batch *b, uint64_t handle)
{
    tell_batch(s, b);
    b->told++;
    b->handle = 0;
    b->holder = NULL;
    struct holder *h = session_find_holder(s, handle);
    if (h)
        session_release_holder(h, false);
}

/* Takes a published cell: its seq from want to want | WRING_TAKEN, so a
 * writer can no longer extend it (wring.h). A writer extending it holds
 * it for a few instructions: we look a few times, then leave it for the
 * next poll, as a cell not yet published. */
static bool take_seq(struct wring_cell *c, uint64_t want)
{
    for (int i = 0; i < 64; i++) {
        uint64_t s = atomic_load_explicit(&c->seq, memory_order_acquire);
        if (s == want &&
            atomic_compare_exchange_strong_explicit(
                &c->seq, &s, want | WRING_TAKEN, memory_order_acquire,
                memory_order_acquire))
            return true;
        if (s != (want | WRING_BUSY) && s != want)
            return false;
    }
    return false;
}

/* Reads what was published since the last drain: at most one ring, and
 * until TELL_MAX ranges were told (cells of many mappings, or far apart);
 * what is left waits for the next poll. A fenced ring's cells are all
 * taken first, then fenced, then read: past TELL_MAX their writes count
 * as dropped (MODIFIED without a range). Returns the write cells read
 * (releases need no quick look again: writes do, for watchers); *stuck
 * when it stopped at a cell not yet published. */
static uint32_t drain(struct wring *w, bool final, bool *stuck,
                      bool *dropped)
{
    struct session *s = w->s;
    struct wring_hdr *r = w->hdr;
    uint64_t lost[WRING_LOST_WORDS], early[WRING_LOST_WORDS];
    uint64_t over[WRING_LOST_WORDS] = { 0 };
    for (uint32_t i = 0; i < WRING_LOST_WORDS; i++)
        early[i] = atomic_load_explicit(&r->lost[i], memory_order_relaxed);
    struct batch b = { .n = 0, .lost = early };
    uint64_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);
    bool all = false;
    uint32_t n = 0;

    *stuck = false;
    if (tail - w->head > WRING_CELLS) { /* nonsense: trust none of it */
        all = true;
        w->head = tail;
    }
    uint64_t taken = w->head; /* cells below it are ours to read */
    uint64_t live_len = 0;
    bool keep = false;        /* the last cell stays live, untaken */
    /* Only a write's length grows by plain stores (wring_extend_own
     * refuses a release): releases alone need no fence. */
    bool writes = false;
    if (w->fenced && tail != w->head) {
        uint64_t last = tail - 1;
        while (taken != last &&
               take_seq(&r->cells[taken % WRING_CELLS], taken + 1)) {
            writes |= __atomic_load_n(&r->cells[taken % WRING_CELLS].offset,
                                      __ATOMIC_RELAXED) != WRING_RELEASE;
            taken++;
        }
        *stuck = taken != last;
        if (!*stuck) {
            struct wring_cell *c = &r->cells[last % WRING_CELLS];
            bool published = atomic_load_explicit(&c->seq,
                                                  memory_order_acquire) ==
                             last + 1;
            /* A length of another lap (wring.h) is not kept either: the
             * loop below takes it for "anything changed". */
            bool lap_ok = wring_len_of(last, __atomic_load_n(&c->len,
                                                             __ATOMIC_ACQUIRE),
                                       &live_len);
            bool release = __atomic_load_n(&c->offset, __ATOMIC_RELAXED) ==
                           WRING_RELEASE;
            /* A release is never kept: it goes at once, in order. */
            keep = !final && published && !release && lap_ok &&
                   !(w->live == last + 1 && live_len == w->live_len);
            if (!keep && take_seq(c, last + 1)) {
                taken++; /* published now: its offset is read again */
                writes |= __atomic_load_n(&c->offset, __ATOMIC_RELAXED) !=
                          WRING_RELEASE;
            } else if (!keep) {
                *stuck = true;
            }
        }
        if (taken != w->head && writes && !fence_all()) {
            /* Not fenced: lengths may be short. Their writers' watchers
             * hear "anything may have changed". */
            all = true;
            w->head = taken;
        }
    }
    while (w->head != tail && (w->fenced || b.told < TELL_MAX)) {
        struct wring_cell *c = &r->cells[w->head % WRING_CELLS];
        if (w->fenced ? w->head == taken : !take_seq(c, w->head + 1)) {
            *stuck |= !w->fenced;
            break;
        }
        /* Each field read once: the writer may change them meanwhile. */
        uint64_t handle = *(volatile uint64_t *)&c->handle;
        uint64_t offset = *(volatile uint64_t *)&c->offset;
        uint64_t len;
        bool lap_ok = wring_len_of(w->head, *(volatile uint64_t *)&c->len,
                                   &len);
        if (!lap_ok && offset != WRING_RELEASE) {
            /* A late store of an earlier lap's writer (wring.h): this
             * write's length is lost, its holder's watchers hear that
             * anything may have changed. */
            if (w->live == w->head + 1)
                w->live = 0;
            w->head++;
            uint32_t bit = wring_lost_bit(handle);
            over[bit / 64] |= UINT64_C(1) << (bit % 64);
            continue;
        }
        if (w->live == w->head + 1 && offset != WRING_RELEASE) {
            /* Once live: told up to live_len already. */
            w->live = 0;
            if (len <= w->live_len) {
                w->head++;
                continue;
            }
            offset += w->live_len;
            len -= w->live_len;
        }
        w->head++;
        if (offset == WRING_RELEASE && (len == 0 || !lap_ok)) {
            take_release(s, &b, handle);
        } else if (b.told >= TELL_MAX) {
            uint32_t bit = wring_lost_bit(handle);
            over[bit / 64] |= UINT64_C(1) << (bit % 64);
        } else {
            n++;
            take_cell(s, &b, handle, offset, len);
        }
    }
    if (keep) {
        /* What the live cell grew by; it is read again next time. */
        struct wring_cell *c = &r->cells[(tail - 1) % WRING_CELLS];
        uint64_t handle = *(volatile uint64_t *)&c->handle;
        uint64_t offset = *(volatile uint64_t *)&c->offset;
        uint64_t from = w->live == tail ? w->live_len : 0;
        bool told = b.told < TELL_MAX; /* else next time */
        if (told && live_len > from && offset != WRING_RELEASE &&
            offset <= UINT64_MAX - live_len)
            take_cell(s, &b, handle, offset + from, live_len - from);
        w->live = tail;
        w->live_len = told ? live_len : from;
        atomic_store_explicit(&r->knock_at,
                              live_len <= UINT64_MAX - WRING_KNOCK_BYTES
                                  ? live_len + WRING_KNOCK_BYTES
                                  : UINT64_MAX,
                              memory_order_relaxed);
        n++; /* not asleep while a cell is live */
    }
    atomic_store_explicit(&r->head, w->head, memory_order_release);
    bool any = all;
    for (uint32_t i = 0; i < WRING_LOST_WORDS; i++) {
        lost[i] = atomic_load_explicit(&r->lost[i], memory_order_relaxed)
                      ? atomic_exchange_explicit(&r->lost[i], 0,
                                                 memory_order_acquire)
                      : 0;
        lost[i] |= over[i];
        any |= lost[i] != 0;
    }
    /* After the bits were cleared: the next overflow knocks (wring.h). */
    atomic_store_explicit(&r->knock, 1, memory_order_release);
    tell_batch(s, &b);
    if (any)
        tell_dropped(s, lost, all);
    *dropped = any;
    return n;
}

static void schedule(struct wring *w)
{
    struct timeval tv = { 0, (suseconds_t)w->poll_ms * 1000 };
    if (!event_pending(w->poll, EV_TIMEOUT, NULL))
        evtimer_add(w->poll, &tv);
}

/* Drains, then either looks again soon (it found work, or a cell being
 * written) or arms the ring so that the next writer wakes us. */
static void run(struct wring *w)
{
    bool stuck, dropped;
    uint32_t n = drain(w, false, &stuck, &dropped);
    /* A writer that outruns the ring gets "anything changed" anyway, and
     * a cell left half written (a writer preempted, or a hostile one)
     * will not be done sooner: looking less often then spares the daemon
     * and the watchers. */
    if (dropped || stuck)
        w->poll_ms = w->poll_ms * 2 > WRING_POLL_MAX_MS ? WRING_POLL_MAX_MS
                                                          : w->poll_ms * 2;
    else
        w->poll_ms = WRING_POLL_MS;
    if (n || stuck || dropped) {
        schedule(w);
        return;
    }
    struct wring_hdr *r = w->hdr;
    atomic_store(&r->armed, 1);
    atomic_thread_fence(memory_order_seq_cst);
    bool more = atomic_load(&r->tail) != w->head;
    for (uint32_t i = 0; i < WRING_LOST_WORDS && !more; i++)
        more = atomic_load(&r->lost[i]) != 0;
    if (more && atomic_exchange(&r->armed, 0))
        schedule(w); /* a write came and nobody took the wake-up: ours */
}

static void on_poll(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    run(arg);
}

static const struct timeval lazy_tv = { 0, WRING_LAZY_MS * 1000 };

/* The promised look: the connection asked something since the last one,
 * so releases may follow and the promise stands; else it ends (lazy
 * cleared first, then run() looks at tail: see wring.h). */
static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
    struct wring *w = arg;
    (void)fd;
    (void)what;
    if (w->asked) {
        w->asked = false;
        evtimer_add(w->sweep, &lazy_tv);
    } else {
        atomic_store(&w->hdr->lazy, 0);
        w->lazy = false;
    }
    run(w);
}

/* A request of the connection: releases need not wake us for a while. */
static void promise(struct wring *w)
{
    if (w->lazy) {
        w->asked = true;
        return;
    }
    if (evtimer_add(w->sweep, &lazy_tv) < 0)
        return; /* no promise: releases knock */
    w->lazy = true;
    w->asked = false;
    atomic_store(&w->hdr->lazy, 1);
}

void ringdrain_kick(struct session *s, const Mmapio__Request *q)
{
    struct wring *w = s->ring;
    if (!w)
        return;
    if (atomic_load_explicit(&w->hdr->tail, memory_order_relaxed) != w->head ||
        (q && q->op_case == MMAPIO__REQUEST__OP_NOTICE &&
         q->notice->kind == MMAPIO__NOTICE_KIND__NOTICE_RING))
        run(w);
    if (q && q->op_case != MMAPIO__REQUEST__OP_NOTICE)
        promise(w);
    if (q && q->op_case == MMAPIO__REQUEST__OP_CLOSE &&
        atomic_load_explicit(&w->hdr->tail, memory_order_relaxed) != w->head) {
        struct holder *h = session_find_holder(s, q->close->handle);
        if (h && h->mode == MMAPIO_MODE_READ_WRITE)
            tell_lost(s, h->map);
    }
}

void ringdrain_request(struct session *s, uint64_t id)
{
    if (s->ring) {
        session_reply_err(s, id, MMAPIO_E_EXISTS,
                          "this connection has its write ring");
        return;
    }
    /* Charged to the uid first: many connections of one uid cannot each
     * make the daemon map a ring. The client then tells writes by notices. */
    if (quota_charge_ring(s->h->quota, s->cred.uid) != MMAPIO_OK) {
        session_reply_err(s, id, MMAPIO_E_QUOTA,
                          "no write ring: uid %u has max_write_rings_per_uid "
                          "(%u) already", (unsigned)s->cred.uid,
                          s->h->quota->max_rings);
        return;
    }
    struct wring *w = calloc(1, sizeof(*w));
    int fd = mem_section_new("mmapio-wring", WRING_SIZE, MEM_SEALABLE);
    void *p = MAP_FAILED;
    int err = fd < 0 ? -fd : 0;
    /* The client may write it, never resize it under our loads. */
    if (!err)
        err = -mem_seal(fd, MEM_SEAL_SHRINK | MEM_SEAL_GROW | MEM_SEAL_SEAL);
    if (!err && !w)
        err = ENOMEM;
    if (!err) {
        p = mmap(NULL, WRING_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED)
            err = errno;
    }
    if (!err) {
        w->poll = evtimer_new(s->h->watches->base, on_poll, w);
        w->sweep = evtimer_new(s->h->watches->base, on_sweep, w);
        if (!w->poll || !w->sweep)
            err = ENOMEM;
    }
    if (err) {
        if (w && w->poll)
            event_free(w->poll);
        if (w && w->sweep)
            event_free(w->sweep);
        if (p != MAP_FAILED)
            munmap(p, WRING_SIZE);
        if (fd >= 0)
            close(fd);
        free(w);
        quota_release_ring(s->h->quota, s->cred.uid);
        session_reply_err(s, id, MMAPIO_E_QUOTA, "no write ring: %s",
                          strerror(err));
        return;
    }
    w->hdr = p;
    w->s = s;
    w->poll_ms = WRING_POLL_MS;
    w->fenced = fence_available();
    atomic_store(&w->hdr->takes, w->fenced ? WRING_TAKES_FENCED : 1);
    atomic_store(&w->hdr->armed, 1);
    s->ring = w;

    Mmapio__WriteRingReply wr = MMAPIO__WRITE_RING_REPLY__INIT;
    wr.cells = WRING_CELLS;
    wr.releases = true;
    Mmapio__Reply rep = MMAPIO__REPLY__INIT;
    rep.id = id;
    rep.result_case = MMAPIO__REPLY__RESULT_WRITE_RING;
    rep.write_ring = &wr;
    session_reply(s, &rep, fd);
    close(fd);
}

void ringdrain_settle(struct mapping *m, const struct session *asking)
{
    /* Kept, and out of the open cache, for the caller even if its last
     * holder goes now. */
    mapping_ref(m);
    mapping_pin(m);
    /* One group per session, however often it holds m. A drain releases
     * holders of its own session only and never ends one: the group of
     * the ring drained may go, the next one stays. */
    for (struct holder_group *g = m->groups, *next; g; g = next) {
        next = g->next;
        struct session *o = g->owner;
        struct wring *w = o->ring;
        if (w && o != asking &&
            atomic_load_explicit(&w->hdr->tail, memory_order_relaxed) !=
                w->head)
            run(w); /* a ring stuck on a half-written cell is not waited for */
    }
    mapping_unpin(m);
    mapping_unref(m);
}

void ringdrain_settle_all(struct handlers *h)
{
    for (struct session *o = h->sessions; o; o = o->next) {
        struct wring *w = o->ring;
        if (w && atomic_load_explicit(&w->hdr->tail, memory_order_relaxed) !=
                     w->head)
            run(w);
    }
}

bool ringdrain_settle_uid(struct handlers *h, uid_t uid)
{
    bool any = false;
    for (struct session *o = h->sessions; o; o = o->next) {
        struct wring *w = o->ring;
        if (!w || o->cred.uid != uid ||
            atomic_load_explicit(&w->hdr->tail, memory_order_relaxed) ==
                w->head)
            continue;
        uint32_t had = o->holders.n;
        run(w);
        any |= o->holders.n != had;
    }
    return any;
}

void ringdrain_end(struct session *s)
{
    struct wring *w = s->ring;
    if (!w)
        return;
    bool stuck, dropped;
    drain(w, true, &stuck, &dropped);
    if (stuck || atomic_load(&w->hdr->tail) != w->head) {
        uint64_t none[WRING_LOST_WORDS] = { 0 };
        tell_dropped(s, none, true);
    }
    event_free(w->poll);
    event_free(w->sweep);
    munmap(w->hdr, WRING_SIZE);
    free(w);
    s->ring = NULL;
    quota_release_ring(s->h->quota, s->cred.uid);
}
