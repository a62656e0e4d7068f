/* quota: per-uid mapping and byte counts, charged to holders (see quota.h). */
#include "quota.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "mmapio.h"
#include "registry.h"

/* What one uid is charged in all. */
struct use {
    struct hnode node;
    uid_t uid;
    uint64_t mappings, bytes;
    uint64_t fd_mappings;      /* of mappings, those holding a daemon fd */
    uint32_t rings;            /* write rings of its connections */
};

/* One uid charged for a mapping: its holders, plus one for the creator's
 * charge of a named anonymous mapping. */
struct payer {
    uid_t uid;
    uint32_t holds;
};

/* What this service keeps on a mapping (its mapping_ext slot): every payer
 * is charged one mapping and `size` bytes. */
struct qstate {
    uint64_t size;
    bool creator;              /* m->owner charged as the creator */
    bool admitted;             /* counted in q->total */
    uint32_t n, cap;
    struct payer *v;
};

static struct use *find(struct quota *q, uid_t uid, int create)
{
    uint64_t h = hmap_hash_u64(uid);
    for (struct hnode *n = hmap_find(&q->uses, h); n; n = hmap_next_same(n)) {
        struct use *u = container_of(n, struct use, node);
        if (u->uid == uid)
            return u;
    }
    if (!create)
        return NULL;
    struct use *u = calloc(1, sizeof(*u));
    if (!u)
        return NULL;
    u->uid = uid;
    if (hmap_insert(&q->uses, &u->node, h) < 0) {
        free(u);
        return NULL;
    }
    return u;
}

/* 1 when m holds a daemon fd of its own (it is not carved), else 0. */
static uint32_t fd_of(const struct mapping *m)
{
    return m->arena == NULL;
}

/* Records (for quota_why) and logs a refusal of uid. */
__attribute__((format(printf, 3, 4)))
static void refuse(struct quota *q, uid_t uid, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(q->why, sizeof(q->why), fmt, ap);
    va_end(ap);
    static struct log_limit lim; /* a uid at its limit may keep asking */
    log_limited(&lim, LOG_LVL_WARN, "uid %u refused: %s", (unsigned)uid, q->why);
}

/* Whether uid has room for `mappings` more mappings (`fds` of them holding
 * a daemon fd) and `bytes` more bytes; a refusal is logged. */
static bool fits(struct quota *q, uid_t uid, uint32_t mappings, uint32_t fds,
                 uint64_t bytes)
{
    struct use *u = find(q, uid, 0);
    uint64_t have_m = u ? u->mappings : 0, have_b = u ? u->bytes : 0;
    uint64_t have_f = u ? u->fd_mappings : 0;
    if (have_m + mappings > q->max_mappings) {
        refuse(q, uid, "over max_mappings_per_uid (%u)", q->max_mappings);
        return false;
    }
    if (have_f + fds > q->max_fd) {
        refuse(q, uid, "over max_fd_mappings_per_uid (%u mappings holding "
               "a daemon fd: files, and anonymous ones not carved from an "
               "arena)", q->max_fd);
        return false;
    }
    if (have_b > q->max_bytes || bytes > q->max_bytes - have_b) {
        refuse(q, uid, "over max_bytes_per_uid (%llu)",
               (unsigned long long)q->max_bytes);
        return false;
    }
    return true;
}

/* Adds to uid's count without a check. false without memory. */
static bool add(struct quota *q, uid_t uid, uint32_t mappings, uint32_t fds,
                uint64_t bytes)
{
    struct use *u = find(q, uid, 1);
    if (!u)
        return false;
    u->mappings += mappings;
    u->fd_mappings += fds;
    u->bytes += bytes;
    return true;
}

static void release(struct quota *q, uid_t uid, uint32_t mappings,
                    uint32_t fds, uint64_t bytes)
{
    struct use *u = find(q, uid, 0);
    if (!u)
        return;
    u->mappings -= mappings <= u->mappings ? mappings : u->mappings;
    u->fd_mappings -= fds <= u->fd_mappings ? fds : u->fd_mappings;
    u->bytes -= bytes <= u->bytes ? bytes : u->bytes;
    if (u->mappings == 0 && u->bytes == 0 && u->rings == 0) {
        hmap_remove(&q->uses, &u->node);
        free(u);
    }
}

static struct qstate *state_of(struct quota *q, struct mapping *m, bool create)
{
    void **ext = mapping_ext(m, &q->hook);
    struct qstate *st = *ext;
    if (st || !create)
        return st;
    st = calloc(1, sizeof(*st));
    if (!st)
        return NULL;
    st->size = m->size;
    *ext = st;
    return st;
}

static struct payer *find_payer(struct qstate *st, uid_t uid)
{
    for (uint32_t i = 0; i < st->n; i++)
        if (st->v[i].uid == uid)
            return &st->v[i];
    return NULL;
}

/* Moves every payer of m from st->size to `size`, unchecked. */
static void move_all(struct quota *q, struct qstate *st, uint64_t size)
{
    for (uint32_t i = 0; i < st->n; i++) {
        if (size > st->size)
            add(q, st->v[i].uid, 0, 0, size - st->size);
        else
            release(q, st->v[i].uid, 0, 0, st->size - size);
    }
    st->size = size;
}

/*
 * m->size changed without the daemon setting it (a file grown or shrunk
 * by another process, or by a holder's ftruncate). Growth is reserved on
 * disk; when it cannot be, the file goes back to the size the daemon knew,
 * before any holder is told: a holder that maps a hole on a full disk dies
 * of SIGBUS at its first write. Then the payers follow.
 */
static void follow(struct quota *q, struct mapping *m, struct qstate *st)
{
    const char *why = "";
    if (m->size == st->size)
        return;
    /* Nobody maps it (a file in the open cache): nothing can fault, and a
     * file grown by others is theirs; a writer's grant reserves anyway. */
    if (m->kind == MAPPING_FILE && m->fd_writable && m->size > st->size &&
        st->n > 0) {
        /* Nothing is reserved past what one uid may hold at all. */
        int r = mapping_reserve(m, st->size, m->size, q->max_bytes);
        if (r < 0) {
            log_warn("%s grew to %" PRIu64 " bytes outside the daemon and "
                     "cannot be reserved (%s): truncated back to %" PRIu64,
                     m->name, m->size, strerror(-r), st->size);
            if (mapping_set_size(m, st->size, &why))
                log_warn("%s: cannot truncate back: %s", m->name, why);
        }
    }
    move_all(q, st, m->size);
}

/* One more hold of uid on m; the first is charged, if it fits. */
static int add_hold(struct quota *q, struct mapping *m, uid_t uid)
{
    struct qstate *st = state_of(q, m, true);
    if (!st)
        return MMAPIO_E_QUOTA;
    follow(q, m, st);
    struct payer *p = find_payer(st, uid);
    if (p) {
        p->holds++;
        return MMAPIO_OK;
    }
    if (!fits(q, uid, 1, fd_of(m), st->size))
        return MMAPIO_E_QUOTA;
    if (st->n == st->cap) {
        uint32_t cap = st->cap ? st->cap * 2 : 2;
        struct payer *v = realloc(st->v, cap * sizeof(*v));
        if (!v)
            return MMAPIO_E_QUOTA;
        st->v = v;
        st->cap = cap;
    }
    if (!add(q, uid, 1, fd_of(m), st->size))
        return MMAPIO_E_QUOTA;
    st->v[st->n++] = (struct payer){ uid, 1 };
    return MMAPIO_OK;
}

static void drop_hold(struct quota *q, struct mapping *m, uid_t uid)
{
    struct qstate *st = state_of(q, m, false);
    struct payer *p = st ? find_payer(st, uid) : NULL;
    if (!p || --p->holds > 0)
        return;
    release(q, uid, 1, fd_of(m), st->size);
    *p = st->v[--st->n];
}

void quota_set_total(struct quota *q, uint32_t max_total, uint32_t reserved)
{
    q->max_total = max_total;
    q->reserved = reserved < max_total ? reserved : 0;
}

void quota_set_fd_total(struct quota *q, uint32_t max_total, uint32_t reserved,
                        uint32_t per_uid)
{
    q->max_fd_total = max_total;
    q->fd_reserved = reserved < max_total ? reserved : 0;
    q->max_fd = per_uid;
}

const char *quota_why(const struct quota *q)
{
    return q->why;
}

/* Whether one more fits under `max` (0: no limit) with `have`, of which
 * the last `reserved` only for admins; a refusal names `key`. */
static bool admit_one(struct quota *q, const struct mapping *m, bool admin,
                      uint64_t have, uint32_t max, uint32_t reserved,
                      const char *key, const char *reserve_key)
{
    if (!max || have < (admin ? max : (uint64_t)max - reserved))
        return true;
    if (admin)
        refuse(q, m->owner, "the daemon's %s (%u) reached", key, max);
    else
        refuse(q, m->owner, "over the daemon's %s less %s (%u, %u kept for "
               "admins)", key, reserve_key, max, reserved);
    return false;
}

int quota_admit(struct quota *q, struct mapping *m, bool admin)
{
    struct qstate *st = state_of(q, m, true);
    if (!st)
        return MMAPIO_E_QUOTA;
    if (st->admitted)
        return MMAPIO_OK;
    if (!admit_one(q, m, admin, q->total, q->max_total, q->reserved,
                   "max_mappings", "reserved_mappings"))
        return MMAPIO_E_QUOTA;
    if (fd_of(m) && !admit_one(q, m, admin, q->fd_total, q->max_fd_total,
                               q->fd_reserved, "max_fd_mappings",
                               "reserved_fd_mappings"))
        return MMAPIO_E_QUOTA;
    st->admitted = true;
    q->total++;
    q->fd_total += fd_of(m);
    return MMAPIO_OK;
}

void quota_unadmit(struct quota *q, struct mapping *m)
{
    struct qstate *st = state_of(q, m, false);
    if (!st || !st->admitted)
        return;
    st->admitted = false;
    q->total--;
    q->fd_total -= fd_of(m);
}

int quota_charge_mapping(struct quota *q, struct mapping *m)
{
    struct qstate *st = state_of(q, m, true);
    if (!st)
        return MMAPIO_E_QUOTA;
    if (st->creator)
        return MMAPIO_OK;
    int r = add_hold(q, m, m->owner);
    st->creator = r == MMAPIO_OK;
    return r;
}

/* What the kernel holds, now. A size nobody announced yet (a file grown
 * or shrunk outside the daemon, not yet seen by inotify) is announced
 * here, as a request that notices it does: this service follows it (see
 * follow) before the holders hear of it; else they never would. */
static void sync_size(struct mapping *m)
{
    uint64_t was = m->size;
    if (mapping_sync_size(m) != was)
        mapping_changed(m, MAPPING_RESIZED, NULL);
}

int quota_hold(struct quota *q, struct mapping *m, uid_t uid)
{
    sync_size(m);
    return add_hold(q, m, uid);
}

/* The last hold on a file, of its only payer: that charge goes whole,
 * and nobody is left to follow a new size (the next open reads it). */
static bool last_of_all(const struct mapping *m, const struct qstate *st,
                        uid_t uid)
{
    return m->kind == MAPPING_FILE && m->n_holders == 0 && st &&
           !st->creator && st->n == 1 && st->v[0].uid == uid &&
           st->v[0].holds == 1;
}

void quota_unhold(struct quota *q, struct mapping *m, uid_t uid)
{
    struct qstate *st = state_of(q, m, false);
    if (!last_of_all(m, st, uid)) {
        sync_size(m);
        st = state_of(q, m, false);
        if (st)
            follow(q, m, st);
    }
    drop_hold(q, m, uid);
}

int quota_set_size(struct quota *q, struct mapping *m, uint64_t size,
                   uid_t by, const char **why)
{
    struct qstate *st = state_of(q, m, true);
    if (!st) {
        *why = "out of memory";
        return MMAPIO_E_QUOTA;
    }
    follow(q, m, st);
    if (size <= INT64_MAX && size > st->size) {
        bool charged = find_payer(st, by) != NULL;
        if (!fits(q, by, charged ? 0 : 1, charged ? 0 : fd_of(m),
                  charged ? size - st->size : size)) {
            *why = q->why;
            return MMAPIO_E_QUOTA;
        }
    }
    int r = mapping_set_size(m, size, why);
    if (r)
        return r;
    move_all(q, st, m->size);
    return MMAPIO_OK;
}

int quota_charge_ring(struct quota *q, uid_t uid)
{
    struct use *u = find(q, uid, 0);
    if ((u ? u->rings : 0) >= q->max_rings) {
        static struct log_limit lim;
        log_limited(&lim, LOG_LVL_WARN, "uid %u refused a write ring: over "
                    "max_write_rings_per_uid (%u); its writes are told by "
                    "notices", (unsigned)uid, q->max_rings);
        return MMAPIO_E_QUOTA;
    }
    if (!u && !(u = find(q, uid, 1)))
        return MMAPIO_E_QUOTA;
    u->rings++;
    return MMAPIO_OK;
}

void quota_release_ring(struct quota *q, uid_t uid)
{
    struct use *u = find(q, uid, 0);
    if (!u || u->rings == 0)
        return;
    u->rings--;
    release(q, uid, 0, 0, 0); /* frees u when nothing is left */
}

uint32_t quota_rings(struct quota *q, uid_t uid)
{
    struct use *u = find(q, uid, 0);
    return u ? u->rings : 0;
}

/* The creator stops paying when the name goes; whatever is left goes with
 * the mapping. A size the daemon did not set is followed (see follow). */
static void on_change(struct mapping_hook *hook, struct mapping *m,
                      enum mapping_change what, const void *origin)
{
    struct quota *q = container_of(hook, struct quota, hook);
    struct qstate *st = state_of(q, m, false);
    (void)origin;
    if (!st)
        return;
    if (what == MAPPING_RESIZED) {
        follow(q, m, st);
    } else if (what == MAPPING_RETIRED && st->creator) {
        st->creator = false;
        drop_hold(q, m, m->owner);
    } else if (what == MAPPING_FREED) {
        for (uint32_t i = 0; i < st->n; i++)
            release(q, st->v[i].uid, 1, fd_of(m), st->size);
        q->total -= st->admitted;
        q->fd_total -= st->admitted && fd_of(m);
        free(st->v);
        free(st);
        *mapping_ext(m, hook) = NULL;
    }
}

int quota_init(struct quota *q, struct registry *r, uint32_t max_mappings,
               uint64_t max_bytes)
{
    hmap_init(&q->uses);
    q->max_mappings = max_mappings;
    q->max_fd = UINT32_MAX;
    q->max_bytes = max_bytes;
    q->hook.fn = on_change;
    return registry_add_hook(r, &q->hook);
}

void quota_fini(struct quota *q)
{
    for (size_t i = 0; i < q->uses.n_buckets; i++) {
        struct hnode *n = q->uses.buckets[i];
        while (n) {
            struct hnode *next = n->next;
            free(container_of(n, struct use, node));
            n = next;
        }
    }
    hmap_free(&q->uses);
}
