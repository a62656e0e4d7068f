/* fdstore: anonymous mappings kept in systemd's fd store (see fdstore.h). */
#include "fdstore.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "log.h"
#include "membackend.h"
#include "quota.h"
#include "registry.h"

#define META_MAGIC_V1 0x6d6d6131u /* "mma1": no size */
#define META_MAGIC 0x6d6d6132u    /* "mma2": the daemon's size follows */
#define META_MAGIC_CARVED 0x6d6d6133u /* "mma3": size, then struct carved_rec */
enum { META_SET = 1, META_DELETE = 2 };

/*
 * Arenas (model/arena.h): each arena's memfd is stored once, as
 * "arena-ID", while a registered mapping is carved from it; a carved
 * mapping's record ("mma3") says which arena, where and with which stride
 * (struct carved_rec) instead of having an "anon-ID" fd of its own. On
 * restore an arena comes back retired (arenas_adopt) with the mappings of
 * its records at their offsets.
 */
struct carved_rec {
    uint64_t arena, offset, stride;
};

/* One record of the meta log; in a "mma2" record the mapping's size (8
 * bytes: the daemon's, which may be smaller than its sealed memfd, see
 * mapping.c) follows it, then `name_len` bytes of name; in "mma3" the size,
 * a struct carved_rec, then the name. */
struct meta_rec {
    uint32_t magic;
    uint32_t op;
    uint64_t id;
    uint32_t owner, group, perm, policy_kind;
    uint64_t policy_value;
    uint32_t name_len, pad;
};

/* ---- the meta log ---------------------------------------------------- */

static void meta_name(uint64_t gen, char *buf, size_t size)
{
    if (gen == 0)
        snprintf(buf, size, "anon-meta");
    else
        snprintf(buf, size, "anon-meta.%" PRIu64, gen);
}

/* The generation a stored fd's name gives, or -1 if it is no meta log. */
static int64_t meta_gen_of(const char *name)
{
    uint64_t gen;
    char tail;
    if (!strcmp(name, "anon-meta"))
        return 0;
    if (sscanf(name, "anon-meta.%" SCNu64 "%c", &gen, &tail) == 1 && gen < INT64_MAX)
        return (int64_t)gen;
    return -1;
}

static void store_notify(const char *state, const int *fds, unsigned n);
static void meta_compact(struct fdstore *s);

/* What follows a record's header before its name: its size, or nothing. */
static size_t rec_extra(const struct meta_rec *r)
{
    return r->magic == META_MAGIC_CARVED ? sizeof(uint64_t) + sizeof(struct carved_rec)
           : r->magic == META_MAGIC ? sizeof(uint64_t) : 0;
}

/* A record and its name, padded so the next record is aligned. */
static size_t rec_size(const struct meta_rec *r)
{
    return sizeof(*r) + rec_extra(r) + (((size_t)r->name_len + 7) & ~(size_t)7);
}

static void meta_append(struct fdstore *s, const struct mapping *m, uint32_t op)
{
    struct meta_rec r = {
        .magic = m->arena ? META_MAGIC_CARVED : META_MAGIC, .op = op,
        .id = m->id, .owner = m->owner, .group = m->group, .perm = m->perm,
        .policy_kind = m->policy.kind, .policy_value = m->policy.value,
        .name_len = (uint32_t)strlen(m->name),
    };
    struct {
        uint64_t size;
        struct carved_rec carved;
    } extra = { m->size, { 0, m->offset, 0 } };
    if (m->arena) {
        extra.carved.arena = m->arena->id;
        extra.carved.stride = m->arena->stride;
    }
    size_t n_extra = rec_extra(&r);
    off_t at = (off_t)s->meta_off;
    if (s->meta_fd < 0)
        return;
    if (pwrite(s->meta_fd, &r, sizeof(r), at) != sizeof(r) ||
        pwrite(s->meta_fd, &extra, n_extra, at + (off_t)sizeof(r)) !=
            (ssize_t)n_extra ||
        pwrite(s->meta_fd, m->name, r.name_len,
               at + (off_t)(sizeof(r) + n_extra)) != (ssize_t)r.name_len) {
        log_warn("fd store: cannot record %s: %s", m->name, strerror(errno));
        return;
    }
    s->meta_off += rec_size(&r);
    if (++s->meta_records > 2 * s->reg->n_anon + 256 && !s->compacting)
        meta_compact(s);
}

static void append_live(struct mapping *m, void *arg)
{
    if (m->kind == MAPPING_ANON)
        meta_append(arg, m, META_SET);
}

/* Rewrites the log with one record per live anonymous mapping, stores the
 * new one, then lets the old one go. */
static void meta_compact(struct fdstore *s)
{
    char state[64], name[32];
    int fd = mem_section_new("mmapio-anon-meta", 0, 0);
    if (fd < 0)
        return; /* keep appending to the old log */
    int old_fd = s->meta_fd;
    uint64_t old_gen = s->meta_gen;
    s->meta_fd = fd;
    s->meta_off = 0;
    s->meta_records = 0;
    s->meta_gen++;
    s->compacting = true;
    registry_foreach(s->reg, append_live, s);
    s->compacting = false;
    meta_name(s->meta_gen, name, sizeof(name));
    snprintf(state, sizeof(state), "FDSTORE=1\nFDNAME=%s", name);
    store_notify(state, &fd, 1);
    meta_name(old_gen, name, sizeof(name));
    snprintf(state, sizeof(state), "FDSTOREREMOVE=1\nFDNAME=%s", name);
    store_notify(state, NULL, 0);
    close(old_fd);
}

static void store_notify(const char *state, const int *fds, unsigned n)
{
    if (sd_pid_notify_with_fds(0, 0, state, fds, n) < 0)
        log_warn("systemd notify '%s' failed", state);
}

/* A mapping carved from `ar` is stored: the arena's fd goes to the store
 * with its first (s->arenas counts them). */
static void arena_stored(struct fdstore *s, struct arena *ar)
{
    char state[64];
    uint64_t n = hmap_count_add(&s->arenas, ar->id);
    if (n == 0)
        log_warn("fd store: out of memory, arena %" PRIu64 " not stored", ar->id);
    if (n != 1)
        return;
    snprintf(state, sizeof(state), "FDSTORE=1\nFDNAME=arena-%" PRIu64, ar->id);
    store_notify(state, &ar->fd, 1);
}

/* ... and leaves it with its last. */
static void arena_unstored(struct fdstore *s, struct arena *ar)
{
    char state[64];
    if (hmap_count_of(&s->arenas, ar->id) == 0 ||
        hmap_count_drop(&s->arenas, ar->id) > 0)
        return;
    snprintf(state, sizeof(state), "FDSTOREREMOVE=1\nFDNAME=arena-%" PRIu64, ar->id);
    store_notify(state, NULL, 0);
}

static void stored(struct fdstore *s, struct mapping *m)
{
    char state[64];
    meta_append(s, m, META_SET);
    if (m->arena) {
        arena_stored(s, m->arena);
        return;
    }
    snprintf(state, sizeof(state), "FDSTORE=1\nFDNAME=anon-%" PRIu64, m->id);
    store_notify(state, &m->fd, 1);
}

static void unstored(struct fdstore *s, struct mapping *m)
{
    char state[64];
    meta_append(s, m, META_DELETE);
    if (m->arena) {
        arena_unstored(s, m->arena);
        return;
    }
    snprintf(state, sizeof(state), "FDSTOREREMOVE=1\nFDNAME=anon-%" PRIu64, m->id);
    store_notify(state, NULL, 0);
}

/* The store follows the registered anonymous mappings. */
static void on_change(struct mapping_hook *hook, struct mapping *m,
                      enum mapping_change what, const void *origin)
{
    struct fdstore *s = container_of(hook, struct fdstore, hook);
    if (s->meta_fd < 0 || m->kind != MAPPING_ANON)
        return;
    if (what == MAPPING_REGISTERED)
        stored(s, m);
    else if ((what == MAPPING_POLICY || what == MAPPING_RESIZED) &&
             m->registered)
        meta_append(s, m, META_SET);
    else if (what == MAPPING_RETIRED)
        unstored(s, m);
}

/* ---- restoring ------------------------------------------------------- */

struct stored_fd {
    uint64_t id;
    int fd;
    const struct meta_rec *rec; /* the latest record of id, NULL: none */
    struct arena *arena;        /* an arena's: adopted, once a mapping is */
};

static int by_id(const void *a, const void *b)
{
    const struct stored_fd *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* Records of carved mappings, in log order until sorted by id. */
struct carved_log {
    const struct meta_rec **v;
    size_t n, cap;
};

static void carved_push(struct carved_log *c, const struct meta_rec *r)
{
    if (c->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 64;
        const struct meta_rec **v = realloc(c->v, cap * sizeof(*v));
        if (!v)
            return; /* without memory that mapping is not restored */
        c->v = v;
        c->cap = cap;
    }
    c->v[c->n++] = r;
}

/* By id, then by place in the log (the latest record of an id last). */
static int by_id_then_place(const void *a, const void *b)
{
    const struct meta_rec *x = *(const struct meta_rec *const *)a;
    const struct meta_rec *y = *(const struct meta_rec *const *)b;
    if (x->id != y->id)
        return x->id < y->id ? -1 : 1;
    return x < y ? -1 : x > y;
}

/* Replays the log: each record updates the stored fd of its id; records
 * of carved mappings are gathered in `carved`. */
static void replay(const uint8_t *log, size_t len, struct stored_fd *v, size_t n,
                   struct carved_log *carved)
{
    size_t off = 0;
    while (off + sizeof(struct meta_rec) <= len) {
        const struct meta_rec *r = (const void *)(log + off);
        if ((r->magic != META_MAGIC && r->magic != META_MAGIC_V1 &&
             r->magic != META_MAGIC_CARVED) ||
            r->name_len > 4096 ||
            off + sizeof(*r) + rec_extra(r) + r->name_len > len)
            break;
        struct stored_fd key = { .id = r->id };
        struct stored_fd *s = r->magic == META_MAGIC_CARVED ? NULL
            : bsearch(&key, v, n, sizeof(*v), by_id);
        if (r->magic == META_MAGIC_CARVED)
            carved_push(carved, r);
        else if (s)
            s->rec = r->op == META_SET ? r : NULL;
        off += rec_size(r);
    }
}

/* A record's name (NUL-terminated in buf, 4097 bytes) and size. */
static void rec_name_size(const struct meta_rec *r, char *buf, uint64_t *size)
{
    const char *after = (const char *)(r + 1);
    *size = UINT64_MAX;
    if (rec_extra(r))
        memcpy(size, after, sizeof(*size));
    memcpy(buf, after + rec_extra(r), r->name_len);
    buf[r->name_len] = '\0';
}

/* A restored mapping m of record r takes its policy, is charged and
 * registered under its name again. */
static void register_restored(struct fdstore *st, struct mapping *m,
                              const struct meta_rec *r)
{
    mmapio_flush_policy p = { (mmapio_flush_kind)r->policy_kind, r->policy_value };
    if (p.kind <= MMAPIO_FLUSH_EVERY_MILLIS)
        mapping_set_policy(m, p, NULL);
    /* Kept even over a limit. */
    quota_admit(st->quota, m, true);
    quota_charge_mapping(st->quota, m);
    if (registry_add(st->reg, m) == 0)
        log_info("restored anonymous mapping '%s' (%" PRIu64 " bytes)", m->name,
                 m->size);
    mapping_unref(m);
}

static void restore_one(struct fdstore *st, struct stored_fd *s)
{
    char name[4097];
    struct stat sb;
    const struct meta_rec *r = s->rec;
    uint64_t size;

    rec_name_size(r, name, &size);
    if (fstat(s->fd, &sb) < 0 || fchmod(s->fd, 0600) < 0 ||
        registry_find_anon(st->reg, name)) {
        close(s->fd);
        return;
    }
    struct mapping *m = mapping_new(&st->reg->env, MAPPING_ANON, name, s->fd, true);
    if (!m)
        return;
    m->owner = r->owner;
    m->group = r->group;
    m->perm = r->perm & 0777;
    /* The daemon's size; the memfd may be larger (never shrunk, see
     * mapping.c), and what lies past it is dropped. */
    m->size = size < (uint64_t)sb.st_size ? size : (uint64_t)sb.st_size;
    mapping_sync_size(m);
    register_restored(st, m, r);
}

/* A carved mapping's record, at its offset of its stored arena (found
 * among `arenas`, sorted by id; adopted by its first mapping). */
static void restore_carved(struct fdstore *st, const struct meta_rec *r,
                           struct stored_fd *arenas, size_t n_arenas)
{
    char name[4097];
    uint64_t size;
    struct carved_rec cv;
    memcpy(&cv, (const char *)(r + 1) + sizeof(uint64_t), sizeof(cv));
    rec_name_size(r, name, &size);
    struct stored_fd key = { .id = cv.arena };
    struct stored_fd *a = n_arenas ? bsearch(&key, arenas, n_arenas,
                                             sizeof(*arenas), by_id) : NULL;
    mode_t perm = r->perm & 0777;
    if (!a || registry_find_anon(st->reg, name))
        return;
    if (!a->arena && a->fd >= 0) {
        a->arena = arenas_adopt(&st->reg->env.arenas, a->fd, r->owner,
                                r->group, perm, cv.stride);
        a->fd = -1;
    }
    struct arena *ar = a->arena;
    /* One class per arena, whole slots inside it. */
    if (!ar || ar->owner != r->owner || ar->group != r->group ||
        ar->perm != perm || cv.stride != ar->stride ||
        cv.offset % ar->stride || cv.offset / ar->stride >= ar->slots ||
        size > ar->stride)
        return;
    struct mapping *m = mapping_new_carved(&st->reg->env, name, r->owner,
                                           r->group, perm, ar, cv.offset);
    if (!m)
        return;
    m->size = size;
    register_restored(st, m, r);
}

/* The latest record of each carved mapping, restored when it is a SET. */
static void restore_all_carved(struct fdstore *st, struct carved_log *c,
                               struct stored_fd *arenas, size_t n_arenas)
{
    if (c->n)
        qsort(c->v, c->n, sizeof(*c->v), by_id_then_place);
    if (n_arenas)
        qsort(arenas, n_arenas, sizeof(*arenas), by_id);
    for (size_t i = 0; i < c->n; i++)
        if ((i + 1 == c->n || c->v[i + 1]->id != c->v[i]->id) &&
            c->v[i]->op == META_SET)
            restore_carved(st, c->v[i], arenas, n_arenas);
    for (size_t i = 0; i < n_arenas; i++) {
        char state[64];
        snprintf(state, sizeof(state), "FDSTOREREMOVE=1\nFDNAME=arena-%" PRIu64,
                 arenas[i].id);
        store_notify(state, NULL, 0);
        if (arenas[i].fd >= 0)
            close(arenas[i].fd);
        arenas_unpin(&st->reg->env.arenas, arenas[i].arena);
    }
}

/* Registers the stored mappings; forgets their old names in the store
 * (fdstore_start stores them again under their new ids). */
static void restore(struct fdstore *fs, int meta, struct stored_fd *v, size_t n)
{
    struct stat st;
    uint8_t *log = NULL;
    char state[64];
    struct carved_log carved = { 0 };

    if (n)
        qsort(v, n, sizeof(*v), by_id);
    if ((n || fs->n_taken_arenas) && meta >= 0 && fstat(meta, &st) == 0 &&
        st.st_size > 0) {
        log = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, meta, 0);
        if (log == MAP_FAILED)
            log = NULL;
        else
            replay(log, (size_t)st.st_size, v, n, &carved);
    }
    for (size_t i = 0; i < n; i++) {
        snprintf(state, sizeof(state), "FDSTOREREMOVE=1\nFDNAME=anon-%" PRIu64, v[i].id);
        store_notify(state, NULL, 0);
        if (v[i].rec)
            restore_one(fs, &v[i]);
        else
            close(v[i].fd);
    }
    restore_all_carved(fs, &carved, fs->taken_arenas, fs->n_taken_arenas);
    free(carved.v);
    if (log)
        munmap(log, (size_t)st.st_size);
    if (meta >= 0)
        close(meta);
}

/* Keeps what systemd handed back until fdstore_restore; the fd is closed
 * when there is no memory for it. */
static void take(struct stored_fd **v, size_t *n, size_t *cap, uint64_t id,
                 int fd)
{
    if (*n == *cap) {
        size_t c = *cap ? 2 * *cap : 16;
        struct stored_fd *nv = realloc(*v, c * sizeof(*nv));
        if (!nv) {
            close(fd);
            return;
        }
        *v = nv;
        *cap = c;
    }
    (*v)[(*n)++] = (struct stored_fd){ .id = id, .fd = fd };
}

int fdstore_take(struct fdstore *s, const char *name, int fd)
{
    char state[80];
    uint64_t id;
    char tail;
    int64_t gen = meta_gen_of(name);

    if (gen >= 0) {
        /* The newest log wins; every one leaves the store. */
        snprintf(state, sizeof(state), "FDSTOREREMOVE=1\nFDNAME=%s", name);
        store_notify(state, NULL, 0);
        if (gen > s->taken_meta_gen) {
            if (s->taken_meta >= 0)
                close(s->taken_meta);
            s->taken_meta = fd;
            s->taken_meta_gen = gen;
        } else {
            close(fd);
        }
        return 1;
    }
    if (sscanf(name, "arena-%" SCNu64 "%c", &id, &tail) == 1) {
        take(&s->taken_arenas, &s->n_taken_arenas, &s->cap_taken_arenas, id, fd);
        return 1;
    }
    if (sscanf(name, "anon-%" SCNu64 "%c", &id, &tail) != 1)
        return 0;
    take(&s->taken, &s->n_taken, &s->cap_taken, id, fd);
    return 1;
}

void fdstore_restore(struct fdstore *s)
{
    restore(s, s->taken_meta, s->taken, s->n_taken);
    free(s->taken);
    s->taken = NULL;
    s->n_taken = s->cap_taken = 0;
    free(s->taken_arenas);
    s->taken_arenas = NULL;
    s->n_taken_arenas = s->cap_taken_arenas = 0;
    s->taken_meta = -1;
    s->taken_meta_gen = -1;
}

static void store_existing(struct mapping *m, void *arg)
{
    if (m->kind == MAPPING_ANON)
        stored(arg, m);
}

void fdstore_start(struct fdstore *s)
{
    if (!getenv("NOTIFY_SOCKET"))
        return;
    s->meta_fd = mem_section_new("mmapio-anon-meta", 0, 0);
    if (s->meta_fd >= 0) {
        store_notify("FDSTORE=1\nFDNAME=anon-meta", &s->meta_fd, 1);
        registry_foreach(s->reg, store_existing, s);
    }
}

int fdstore_init(struct fdstore *s, struct registry *r, struct quota *q)
{
    memset(s, 0, sizeof(*s));
    s->reg = r;
    s->quota = q;
    s->meta_fd = -1;
    s->taken_meta = -1;
    s->taken_meta_gen = -1;
    hmap_init(&s->arenas);
    s->hook.fn = on_change;
    return registry_add_hook(r, &s->hook);
}

void fdstore_fini(struct fdstore *s)
{
    if (s->meta_fd >= 0)
        close(s->meta_fd);
    s->meta_fd = -1;
    if (s->taken_meta >= 0)
        close(s->taken_meta);
    s->taken_meta = -1;
    for (size_t i = 0; i < s->n_taken; i++)
        close(s->taken[i].fd);
    free(s->taken);
    s->taken = NULL;
    s->n_taken = 0;
    for (size_t i = 0; i < s->n_taken_arenas; i++)
        close(s->taken_arenas[i].fd);
    free(s->taken_arenas);
    s->taken_arenas = NULL;
    s->n_taken_arenas = 0;
    hmap_count_free(&s->arenas);
}
