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
#include "quota.h"
#include "registry.h"

#define META_MAGIC_V1 0x6d6d6131u /* "mma1": no size */
#define META_MAGIC 0x6d6d6132u    /* "mma2": the daemon's size follows */
enum { META_SET = 1, META_DELETE = 2 };

/* One record of the meta log; in a "mma2" record the mapping's size (8
 * bytes: the daemon's, which may be smaller than its sealed memfd, see
 * mapping.c) follows it, then `name_len` bytes of name. */
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
    return r->magic == META_MAGIC ? sizeof(uint64_t) : 0;
}

/* A record and its name, padded so the next record is aligned. */
static size_t rec_size(const struct meta_rec *r)
{
    return sizeof(*r) + rec_extra(r) + (((size_t)r->name_len + 7) & ~(size_t)7);
}

static void meta_append(struct fdstore *s, const struct mapping *m, uint32_t op)
{
    struct meta_rec r = {
        .magic = META_MAGIC, .op = op, .id = m->id,
        .owner = m->owner, .group = m->group, .perm = m->perm,
        .policy_kind = m->policy.kind, .policy_value = m->policy.value,
        .name_len = (uint32_t)strlen(m->name),
    };
    uint64_t size = m->size;
    off_t at = (off_t)s->meta_off;
    if (s->meta_fd < 0)
        return;
    if (pwrite(s->meta_fd, &r, sizeof(r), at) != sizeof(r) ||
        pwrite(s->meta_fd, &size, sizeof(size), at + (off_t)sizeof(r)) !=
            sizeof(size) ||
        pwrite(s->meta_fd, m->name, r.name_len,
               at + (off_t)(sizeof(r) + sizeof(size))) != (ssize_t)r.name_len) {
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
    int fd = memfd_create("mmapio-anon-meta", MFD_CLOEXEC);
    if (fd < 0 || fchmod(fd, 0600) < 0) {
        if (fd >= 0)
            close(fd);
        return; /* keep appending to the old log */
    }
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

static void stored(struct fdstore *s, struct mapping *m)
{
    char state[64];
    meta_append(s, m, META_SET);
    snprintf(state, sizeof(state), "FDSTORE=1\nFDNAME=anon-%" PRIu64, m->id);
    store_notify(state, &m->fd, 1);
}

static void unstored(struct fdstore *s, struct mapping *m)
{
    char state[64];
    meta_append(s, m, META_DELETE);
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
};

static int by_id(const void *a, const void *b)
{
    const struct stored_fd *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* Replays the log: each record updates the stored fd of its id. */
static void replay(const uint8_t *log, size_t len, struct stored_fd *v, size_t n)
{
    size_t off = 0;
    while (off + sizeof(struct meta_rec) <= len) {
        const struct meta_rec *r = (const void *)(log + off);
        if ((r->magic != META_MAGIC && r->magic != META_MAGIC_V1) ||
            r->name_len > 4096 ||
            off + sizeof(*r) + rec_extra(r) + r->name_len > len)
            break;
        struct stored_fd key = { .id = r->id };
        struct stored_fd *s = bsearch(&key, v, n, sizeof(*v), by_id);
        if (s)
            s->rec = r->op == META_SET ? r : NULL;
        off += rec_size(r);
    }
}

static void restore_one(struct fdstore *st, struct stored_fd *s)
{
    char name[4097];
    struct stat sb;
    const struct meta_rec *r = s->rec;
    const char *after = (const char *)(r + 1);
    uint64_t size = UINT64_MAX;

    if (rec_extra(r))
        memcpy(&size, after, sizeof(size));
    memcpy(name, after + rec_extra(r), r->name_len);
    name[r->name_len] = '\0';
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
    mmapio_flush_policy p = { (mmapio_flush_kind)r->policy_kind, r->policy_value };
    if (p.kind <= MMAPIO_FLUSH_EVERY_MILLIS)
        mapping_set_policy(m, p, NULL);
    /* Kept even over a limit. */
    quota_admit(st->quota, m, true);
    quota_charge_mapping(st->quota, m);
    if (registry_add(st->reg, m) == 0)
        log_info("restored anonymous mapping '%s' (%" PRIu64 " bytes)", name, m->size);
    mapping_unref(m);
}

/* Registers the stored mappings; forgets their old names in the store
 * (fdstore_start stores them again under their new ids). */
static void restore(struct fdstore *fs, int meta, struct stored_fd *v, size_t n)
{
    struct stat st;
    uint8_t *log = NULL;
    char state[64];

    if (n)
        qsort(v, n, sizeof(*v), by_id);
    if (n && meta >= 0 && fstat(meta, &st) == 0 && st.st_size > 0) {
        log = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, meta, 0);
        if (log == MAP_FAILED)
            log = NULL;
        else
            replay(log, (size_t)st.st_size, v, n);
    }
    for (size_t i = 0; i < n; i++) {
        snprintf(state, sizeof(state), "FDSTOREREMOVE=1\nFDNAME=anon-%" PRIu64, v[i].id);
        store_notify(state, NULL, 0);
        if (v[i].rec)
            restore_one(fs, &v[i]);
        else
            close(v[i].fd);
    }
    if (log)
        munmap(log, (size_t)st.st_size);
    if (meta >= 0)
        close(meta);
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
    if (sscanf(name, "anon-%" SCNu64 "%c", &id, &tail) != 1)
        return 0;
    if (s->n_taken == s->cap_taken) {
        size_t cap = s->cap_taken ? 2 * s->cap_taken : 16;
        struct stored_fd *v = realloc(s->taken, cap * sizeof(*v));
        if (!v) {
            close(fd);
            return 1;
        }
        s->taken = v;
        s->cap_taken = cap;
    }
    s->taken[s->n_taken++] = (struct stored_fd){ .id = id, .fd = fd };
    return 1;
}

void fdstore_restore(struct fdstore *s)
{
    restore(s, s->taken_meta, s->taken, s->n_taken);
    free(s->taken);
    s->taken = NULL;
    s->n_taken = s->cap_taken = 0;
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
    s->meta_fd = memfd_create("mmapio-anon-meta", MFD_CLOEXEC);
    if (s->meta_fd >= 0)
        (void)!fchmod(s->meta_fd, 0600);
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
}
