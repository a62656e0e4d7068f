/* sd: socket activation, notify, watchdog and the fd store (see sd.h). */
#include "sd.h"

#include <errno.h>
#include <event2/event.h>
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
#include "mapping.h"
#include "server.h"

#define META_MAGIC 0x6d6d6131u /* "mma1" */
enum { META_SET = 1, META_DELETE = 2 };

/* One record of the meta log; `name_len` bytes of name follow it. */
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
static void meta_compact(struct daemon *d);

/* A record and its name, padded so the next record is aligned. */
static size_t rec_size(const struct meta_rec *r)
{
    return sizeof(*r) + (((size_t)r->name_len + 7) & ~(size_t)7);
}

static void meta_append(struct daemon *d, const struct mapping *m, uint32_t op)
{
    struct sd_state *s = &d->sd;
    struct meta_rec r = {
        .magic = META_MAGIC, .op = op, .id = m->id,
        .owner = m->owner, .group = m->group, .perm = m->perm,
        .policy_kind = m->policy.kind, .policy_value = m->policy.value,
        .name_len = (uint32_t)strlen(m->name),
    };
    if (s->meta_fd < 0)
        return;
    if (pwrite(s->meta_fd, &r, sizeof(r), (off_t)s->meta_off) != sizeof(r) ||
        pwrite(s->meta_fd, m->name, r.name_len,
               (off_t)(s->meta_off + sizeof(r))) != (ssize_t)r.name_len) {
        log_warn("fd store: cannot record %s: %s", m->name, strerror(errno));
        return;
    }
    s->meta_off += rec_size(&r);
    if (++s->meta_records > 2 * d->reg.n_anon + 256 && !s->compacting)
        meta_compact(d);
}

static void append_live(struct mapping *m, void *arg)
{
    if (m->kind == MAPPING_ANON)
        meta_append(arg, m, META_SET);
}

/* Rewrites the log with one record per live anonymous mapping, stores the
 * new one, then lets the old one go. */
static void meta_compact(struct daemon *d)
{
    struct sd_state *s = &d->sd;
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
    registry_foreach(&d->reg, append_live, d);
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

void sd_anon_created(struct daemon *d, struct mapping *m)
{
    char state[64];
    if (d->sd.meta_fd < 0)
        return;
    meta_append(d, m, META_SET);
    snprintf(state, sizeof(state), "FDSTORE=1\nFDNAME=anon-%" PRIu64, m->id);
    store_notify(state, &m->fd, 1);
}

void sd_anon_changed(struct daemon *d, struct mapping *m)
{
    meta_append(d, m, META_SET);
}

void sd_anon_deleted(struct daemon *d, struct mapping *m)
{
    char state[64];
    if (d->sd.meta_fd < 0)
        return;
    meta_append(d, m, META_DELETE);
    snprintf(state, sizeof(state), "FDSTOREREMOVE=1\nFDNAME=anon-%" PRIu64, m->id);
    store_notify(state, NULL, 0);
}

/* ---- restoring ------------------------------------------------------- */

struct stored {
    uint64_t id;
    int fd;
    const struct meta_rec *rec; /* the latest record of id, NULL: none */
};

static int by_id(const void *a, const void *b)
{
    const struct stored *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* Replays the log: each record updates the stored fd of its id. */
static void replay(const uint8_t *log, size_t len, struct stored *v, size_t n)
{
    size_t off = 0;
    while (off + sizeof(struct meta_rec) <= len) {
        const struct meta_rec *r = (const void *)(log + off);
        if (r->magic != META_MAGIC || r->name_len > 4096 ||
            off + sizeof(*r) + r->name_len > len)
            break;
        struct stored key = { .id = r->id };
        struct stored *s = bsearch(&key, v, n, sizeof(*v), by_id);
        if (s)
            s->rec = r->op == META_SET ? r : NULL;
        off += rec_size(r);
    }
}

static void restore_one(struct daemon *d, struct stored *s)
{
    char name[4097];
    struct stat st;
    const struct meta_rec *r = s->rec;

    memcpy(name, r + 1, r->name_len);
    name[r->name_len] = '\0';
    if (fstat(s->fd, &st) < 0 || fchmod(s->fd, 0600) < 0 ||
        registry_find_anon(&d->reg, name)) {
        close(s->fd);
        return;
    }
    struct mapping *m = mapping_new(d, MAPPING_ANON, name, s->fd, true);
    if (!m)
        return;
    m->owner = r->owner;
    m->group = r->group;
    m->perm = r->perm & 0777;
    m->size = (uint64_t)st.st_size;
    mmapio_flush_policy p = { (mmapio_flush_kind)r->policy_kind, r->policy_value };
    if (p.kind <= MMAPIO_FLUSH_EVERY_MILLIS)
        mapping_set_policy(m, p);
    mapping_charge(m); /* a restored mapping is kept even over a limit */
    if (registry_add(&d->reg, m) == 0)
        log_info("restored anonymous mapping '%s' (%" PRIu64 " bytes)", name, m->size);
    mapping_unref(m);
}

/* Registers the stored mappings; forgets their old names in the store
 * (sd_started stores them again under their new ids). */
static void restore(struct daemon *d, int meta, struct stored *v, size_t n)
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
            restore_one(d, &v[i]);
        else
            close(v[i].fd);
    }
    if (log)
        munmap(log, (size_t)st.st_size);
    if (meta >= 0)
        close(meta);
}

int sd_take_fds(struct daemon *d, char *err, size_t err_size)
{
    char **names = NULL;
    int meta = -1;
    int64_t meta_gen = -1;
    size_t n_stored = 0;
    char state[80];

    d->sd.meta_fd = -1;
    int n = sd_listen_fds_with_names(1, &names);
    if (n <= 0)
        return 0;
    struct stored *v = calloc((size_t)n, sizeof(*v));
    for (int i = 0; i < n; i++) {
        int fd = SD_LISTEN_FDS_START + i;
        const char *name = names && names[i] ? names[i] : "";
        uint64_t id;
        char tail;
        if (sd_is_socket_unix(fd, SOCK_SEQPACKET, 1, NULL, 0) > 0 && d->listen_fd < 0) {
            d->listen_fd = fd;
            fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        } else if (meta_gen_of(name) >= 0) {
            /* The newest log wins; every one leaves the store. */
            snprintf(state, sizeof(state), "FDSTOREREMOVE=1\nFDNAME=%s", name);
            store_notify(state, NULL, 0);
            if (meta_gen_of(name) > meta_gen) {
                if (meta >= 0)
                    close(meta);
                meta = fd;
                meta_gen = meta_gen_of(name);
            } else {
                close(fd);
            }
        } else if (v && sscanf(name, "anon-%" SCNu64 "%c", &id, &tail) == 1) {
            v[n_stored++] = (struct stored){ .id = id, .fd = fd };
        } else {
            log_warn("closing an unexpected fd from systemd (%s)", name);
            close(fd);
        }
    }
    restore(d, meta, v, n_stored);
    free(v);
    for (int i = 0; names && i < n; i++)
        free(names[i]);
    free(names);
    return 0;
}

/* ---- notify and watchdog --------------------------------------------- */

static void send_status(struct daemon *d, const char *extra)
{
    char state[256];
    snprintf(state, sizeof(state),
             "%sSTATUS=%u clients, %" PRIu64 " anonymous and %" PRIu64
             " file mappings, %" PRIu64 " flushes",
             extra, d->n_conns, d->reg.n_anon, d->reg.n_file, d->stats.flushes);
    sd_notify(0, state);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct daemon *d = arg;
    send_status(d, d->sd.watchdog ? "WATCHDOG=1\n" : "");
}

static void store_existing(struct mapping *m, void *arg)
{
    if (m->kind == MAPPING_ANON)
        sd_anon_created(arg, m);
}

void sd_started(struct daemon *d)
{
    uint64_t usec = 0;
    if (!getenv("NOTIFY_SOCKET"))
        return;
    d->sd.watchdog = sd_watchdog_enabled(0, &usec) > 0 && usec > 0;
    uint64_t tick = d->sd.watchdog ? usec / 2 : 5000000;
    struct timeval tv = { (time_t)(tick / 1000000), (suseconds_t)(tick % 1000000) };
    d->sd.ev_tick = event_new(d->base, -1, EV_PERSIST, on_tick, d);
    if (d->sd.ev_tick)
        event_add(d->sd.ev_tick, &tv);

    d->sd.meta_fd = memfd_create("mmapio-anon-meta", MFD_CLOEXEC);
    if (d->sd.meta_fd >= 0)
        (void)!fchmod(d->sd.meta_fd, 0600);
    if (d->sd.meta_fd >= 0) {
        store_notify("FDSTORE=1\nFDNAME=anon-meta", &d->sd.meta_fd, 1);
        registry_foreach(&d->reg, store_existing, d);
    }
    send_status(d, "READY=1\n");
}

void sd_stopping(struct daemon *d)
{
    sd_notify(0, "STOPPING=1\nSTATUS=stopping: flushing mappings");
}

void sd_fini(struct daemon *d)
{
    if (d->sd.ev_tick)
        event_free(d->sd.ev_tick);
    d->sd.ev_tick = NULL;
    if (d->sd.meta_fd >= 0)
        close(d->sd.meta_fd);
    d->sd.meta_fd = -1;
}
