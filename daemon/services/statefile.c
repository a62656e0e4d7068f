/* statefile: anonymous mappings recorded for their holders (statefile.h). */
#include "statefile.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "quota.h"
#include "registry.h"
#include "resolve.h"

#define STATE_MAGIC "mmapiod-anon-state 1"
#define STATE_TMP STATEFILE_NAME ".tmp"
#define STATE_SPACING_MS 10
/* A live anonymous mapping's memfd is 0600 (open.c); a deleted one's is
 * made this at once, so its deletion is on the memfd itself before any
 * state file says so: a daemon killed before writing it cannot be fooled. */
#define STATE_DELETED_MODE 0400

/* One line of the file; also what the hook keeps on a mapping. */
struct state_rec {
    uint64_t id, dev, ino, offset, size, policy_value;
    uint32_t owner, group, perm, policy_kind;
    char *name;
    struct state_rec *next;
};

static void rec_free(struct state_rec *r)
{
    if (r)
        free(r->name);
    free(r);
}

/* ---- the file's lines ---- */

/* Appends one line to *buf (grown as needed); false without memory. */
static bool put_line(char **buf, size_t *len, size_t *cap, const char *what,
                     const struct state_rec *r)
{
    size_t need = strlen(r->name) + 256;
    if (*len + need > *cap) {
        size_t nc = (*cap + need) * 2;
        char *p = realloc(*buf, nc);
        if (!p)
            return false;
        *buf = p;
        *cap = nc;
    }
    int n = snprintf(*buf + *len, *cap - *len,
                     "%s %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64
                     " %u %u %o %u %" PRIu64 " %" PRIu64 " %s\n",
                     what, r->id, r->dev, r->ino, r->offset, r->owner,
                     r->group, r->perm, r->policy_kind, r->policy_value,
                     r->size, r->name);
    if (n < 0 || (size_t)n >= *cap - *len)
        return false;
    *len += (size_t)n;
    return true;
}

/* Parses one line: 1 live, 0 deleted, -1 not a record. */
static int parse_line(char *line, struct state_rec *r)
{
    char what[16];
    int name_at = -1;
    if (sscanf(line, "%15s %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64
                     " %u %u %o %u %" SCNu64 " %" SCNu64 " %n",
               what, &r->id, &r->dev, &r->ino, &r->offset, &r->owner,
               &r->group, &r->perm, &r->policy_kind, &r->policy_value,
               &r->size, &name_at) != 11 || name_at < 0 || !line[name_at])
        return -1;
    if (resolve_check_name(line + name_at) || r->perm > 0777 ||
        r->policy_kind > MMAPIO_FLUSH_EVERY_MILLIS)
        return -1;
    r->name = strdup(line + name_at);
    if (!r->name)
        return -1;
    if (!strcmp(what, "live"))
        return 1;
    if (!strcmp(what, "deleted"))
        return 0;
    free(r->name);
    return -1;
}

/* Reads the previous instance's file: live records wait, deleted ones
 * stay tombstones. */
static void load(struct statefile *s)
{
    int fd = openat(s->dir_fd, STATEFILE_NAME, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return;
    FILE *f = fdopen(fd, "r");
    if (!f) {
        close(fd);
        return;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, f);
    bool ok = n > 0 && !strncmp(line, STATE_MAGIC "\n", sizeof(STATE_MAGIC));
    struct state_rec **tail_tomb = &s->tombs;
    while (ok && (n = getline(&line, &cap, f)) > 0) {
        if (line[n - 1] == '\n')
            line[n - 1] = '\0';
        struct state_rec *r = calloc(1, sizeof(*r));
        int kind = r ? parse_line(line, r) : -1;
        if (kind < 0) {
            free(r);
            continue;
        }
        if (kind == 1) {
            r->next = s->waiting;
            s->waiting = r;
        } else if (s->n_tombs < STATEFILE_TOMBSTONES) {
            *tail_tomb = r; /* the file has them newest first */
            tail_tomb = &r->next;
            s->n_tombs++;
        } else
            rec_free(r);
    }
    free(line);
    fclose(f);
}

/* ---- the writer thread ---- */

/* Writes buf as the state file: temp, fdatasync, rename, fsync of the
 * directory. 0 or -errno. */
static int write_file(int dir_fd, const char *buf, size_t len)
{
    int fd = openat(dir_fd, STATE_TMP, O_WRONLY | O_CREAT | O_TRUNC |
                    O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return -errno;
    size_t off = 0;
    int r = 0;
    while (off < len && r == 0) {
        ssize_t n = write(fd, buf + off, len - off);
        if (n < 0 && errno != EINTR)
            r = -errno;
        else if (n > 0)
            off += (size_t)n;
    }
    if (r == 0 && fdatasync(fd) < 0)
        r = -errno;
    close(fd);
    if (r == 0 && renameat(dir_fd, STATE_TMP, dir_fd, STATEFILE_NAME) < 0)
        r = -errno;
    if (r == 0)
        (void)fsync(dir_fd);
    return r;
}

static void *writer(void *arg)
{
    struct statefile *s = arg;
    pthread_mutex_lock(&s->lock);
    for (;;) {
        while (!s->next && !s->stop)
            pthread_cond_wait(&s->cond, &s->lock);
        if (!s->next)
            break;
        char *buf = s->next;
        size_t len = s->next_len;
        s->next = NULL;
        s->busy = true;
        pthread_mutex_unlock(&s->lock);
        int r = write_file(s->dir_fd, buf, len);
        if (r < 0)
            log_warn("cannot write %s/%s: %s", RESOLVE_STATE_DIR,
                     STATEFILE_NAME, strerror(-r));
        free(buf);
        pthread_mutex_lock(&s->lock);
        s->busy = false;
        if (r == 0)
            s->written++;
        pthread_cond_broadcast(&s->cond);
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

/* ---- snapshots, on the loop ---- */

/* The record of a registered anonymous mapping (the hook's, on m). */
static struct state_rec *rec_of(struct statefile *s, struct mapping *m)
{
    return *mapping_ext(m, &s->hook);
}

static void fill(struct state_rec *r, const struct mapping *m)
{
    r->id = m->id;
    r->owner = m->owner;
    r->group = m->group;
    r->perm = m->perm & 0777;
    r->policy_kind = m->policy.kind;
    r->policy_value = m->policy.value;
    r->size = m->size;
}

struct snap {
    struct statefile *s;
    char *buf;
    size_t len, cap;
    bool ok;
};

static void snap_live(struct mapping *m, void *arg)
{
    struct snap *sn = arg;
    struct state_rec *r = m->kind == MAPPING_ANON ? rec_of(sn->s, m) : NULL;
    if (r && sn->ok) {
        fill(r, m);
        sn->ok = put_line(&sn->buf, &sn->len, &sn->cap, "live", r);
    }
}

static char *snapshot(struct statefile *s, size_t *len)
{
    struct snap sn = { s, NULL, 0, 0, true };
    sn.cap = sizeof(STATE_MAGIC) + 1;
    sn.buf = malloc(sn.cap);
    if (!sn.buf)
        return NULL;
    sn.len = (size_t)snprintf(sn.buf, sn.cap, "%s\n", STATE_MAGIC);
    registry_foreach(s->reg, snap_live, &sn);
    for (struct state_rec *r = s->waiting; r && sn.ok; r = r->next)
        sn.ok = put_line(&sn.buf, &sn.len, &sn.cap, "live", r);
    for (struct state_rec *r = s->tombs; r && sn.ok; r = r->next)
        sn.ok = put_line(&sn.buf, &sn.len, &sn.cap, "deleted", r);
    if (!sn.ok) {
        free(sn.buf);
        return NULL;
    }
    *len = sn.len;
    return sn.buf;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void on_soon(evutil_socket_t fd, short what, void *arg)
{
    struct statefile *s = arg;
    size_t len;
    s->armed = false;
    s->last_snap_ms = mono_ms();
    char *buf = snapshot(s, &len);
    if (!buf) {
        log_warn("out of memory: %s not written", STATEFILE_NAME);
        return;
    }
    pthread_mutex_lock(&s->lock);
    free(s->next); /* an older snapshot not yet taken: this one wins */
    s->next = buf;
    s->next_len = len;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

/* A snapshot soon: at the end of this loop turn, so that changes made
 * together are written together, and at most one per STATE_SPACING_MS, so
 * that a storm of changes costs the loop one walk of the registry per
 * spacing, not one per turn. */
static void dirty(struct statefile *s)
{
    if (s->dir_fd < 0 || s->armed || !s->soon)
        return;
    int64_t wait = s->last_snap_ms + STATE_SPACING_MS - mono_ms();
    struct timeval tv = { 0, wait > 0 ? (suseconds_t)(wait * 1000) : 0 };
    s->armed = event_add(s->soon, &tv) == 0;
}

/* ---- the hook ---- */

static void tomb_add(struct statefile *s, struct state_rec *r)
{
    r->next = s->tombs;
    s->tombs = r;
    if (++s->n_tombs <= STATEFILE_TOMBSTONES)
        return;
    struct state_rec **p = &s->tombs;
    for (size_t i = 1; i < STATEFILE_TOMBSTONES; i++)
        p = &(*p)->next;
    struct state_rec *drop = *p;
    *p = NULL;
    while (drop) {
        struct state_rec *next = drop->next;
        rec_free(drop);
        s->n_tombs--;
        drop = next;
    }
}

/* A waiting record is settled by a registration of its name or of its
 * memfd: the same memfd (the fd store brought it back) is simply live
 * again; anything else makes it unreachable, so it becomes a tombstone. */
static void settle_waiting(struct statefile *s, const struct state_rec *now)
{
    for (struct state_rec **p = &s->waiting; *p;) {
        struct state_rec *w = *p;
        bool same_mem = w->dev == now->dev && w->ino == now->ino &&
                        w->offset == now->offset;
        if (!same_mem && strcmp(w->name, now->name)) {
            p = &w->next;
            continue;
        }
        *p = w->next;
        if (same_mem && !strcmp(w->name, now->name))
            rec_free(w);
        else
            tomb_add(s, w);
    }
}

static void on_change(struct mapping_hook *hook, struct mapping *m,
                      enum mapping_change what, const void *origin)
{
    struct statefile *s = container_of(hook, struct statefile, hook);
    if (m->kind != MAPPING_ANON)
        return;
    struct state_rec *r = rec_of(s, m);
    if (what == MAPPING_REGISTERED && !r && s->dir_fd >= 0) {
        struct stat st;
        r = calloc(1, sizeof(*r));
        if (r && (r->name = strdup(m->name)) && fstat(m->fd, &st) == 0) {
            r->dev = (uint64_t)st.st_dev;
            r->ino = (uint64_t)st.st_ino;
            fill(r, m);
            *mapping_ext(m, hook) = r;
            settle_waiting(s, r);
        } else {
            rec_free(r);
            log_warn("cannot record anonymous mapping '%s'", m->name);
        }
        dirty(s);
    } else if (r && (what == MAPPING_POLICY || what == MAPPING_RESIZED)) {
        dirty(s);
    } else if (r && (what == MAPPING_RETIRED || what == MAPPING_FREED)) {
        *mapping_ext(m, hook) = NULL;
        if (what == MAPPING_RETIRED && s->dir_fd >= 0) {
            (void)fchmod(m->fd, STATE_DELETED_MODE);
            fill(r, m);
            tomb_add(s, r); /* deleted: never taken back */
            dirty(s);
        } else
            rec_free(r);
    }
}

/* ---- taking a mapping back ---- */

struct uses {
    struct statefile *s;
    uint64_t dev, ino;
    bool found;
};

/* Whether a registered mapping has that memfd: by the identity recorded
 * when it was registered, with no system call. */
static void uses_memfd(struct mapping *m, void *arg)
{
    struct uses *u = arg;
    const struct state_rec *r = m->kind == MAPPING_ANON ? rec_of(u->s, m) : NULL;
    if (r && r->dev == u->dev && r->ino == u->ino)
        u->found = true;
}

/* fd is the memfd rec recorded: checked by the kernel's word only. */
static bool proves(int fd, const struct state_rec *rec, const char **why)
{
    struct stat st;
    int seals = fcntl(fd, F_GET_SEALS);
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        *why = "not a memfd";
        return false;
    }
    if ((uint64_t)st.st_dev != rec->dev || (uint64_t)st.st_ino != rec->ino) {
        *why = "not the memfd the daemon recorded";
        return false;
    }
    if (st.st_uid != geteuid()) {
        *why = "a memfd the daemon did not create";
        return false;
    }
    if ((st.st_mode & 07777) != 0600) {
        *why = "the memfd of a deleted mapping";
        return false;
    }
    if (seals < 0 || (seals & (F_SEAL_SHRINK | F_SEAL_SEAL)) !=
                         (F_SEAL_SHRINK | F_SEAL_SEAL)) {
        *why = "not a memfd sealed by the daemon";
        return false;
    }
    if ((uint64_t)st.st_size < rec->size) {
        *why = "smaller than the recorded mapping";
        return false;
    }
    return true;
}

int statefile_adopt(struct statefile *s, const char *name, int fd,
                    uint64_t dev, uint64_t ino, uint64_t offset,
                    struct mapping **out, const char **why)
{
    struct state_rec **p = &s->waiting;
    while (*p && strcmp((*p)->name, name))
        p = &(*p)->next;
    struct state_rec *rec = *p;
    *why = "no anonymous mapping of that name";
    if (!rec || fd < 0 || rec->dev != dev || rec->ino != ino ||
        rec->offset != offset || offset != 0)
        return MMAPIO_E_NOT_FOUND;
    struct uses u = { s, dev, ino, false };
    registry_foreach(s->reg, uses_memfd, &u);
    if (u.found || !proves(fd, rec, why))
        return MMAPIO_E_NOT_FOUND;
    /* The daemon's own open file description, read-write (the memfd is
     * the daemon's, 0600), never the holder's. */
    char proc[64];
    snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
    int own = open(proc, O_RDWR | O_CLOEXEC);
    struct stat st;
    if (own < 0 || fstat(own, &st) < 0 || (uint64_t)st.st_ino != ino ||
        (uint64_t)st.st_dev != dev || !proves(own, rec, why)) {
        if (own >= 0)
            close(own);
        *why = "the memfd cannot be reopened";
        return MMAPIO_E_NOT_FOUND;
    }
    struct mapping *m = mapping_new(&s->reg->env, MAPPING_ANON, name, own, true);
    if (!m) {
        *why = "out of memory or control slots";
        return MMAPIO_E_QUOTA;
    }
    m->owner = rec->owner;
    m->group = rec->group;
    m->perm = rec->perm & 0777;
    m->size = rec->size;
    mapping_sync_size(m);
    mmapio_flush_policy pol = { (mmapio_flush_kind)rec->policy_kind,
                                rec->policy_value };
    mapping_set_policy(m, pol, NULL);
    /* Kept even over a limit, as the fd store's restore does. */
    quota_admit(s->quota, m, true);
    quota_charge_mapping(s->quota, m);
    if (registry_add(s->reg, m) < 0) { /* settles rec on success */
        mapping_unref(m);
        *why = "out of memory";
        return MMAPIO_E_QUOTA;
    }
    log_info("took back anonymous mapping '%s' (%" PRIu64 " bytes) from a holder",
             name, m->size);
    *out = m; /* the creation reference */
    return MMAPIO_OK;
}

/* ---- lifetime ---- */

static int open_dir(int root_fd)
{
    if (mkdirat(root_fd, RESOLVE_STATE_DIR, 0700) < 0 && errno != EEXIST)
        return -errno;
    int fd = openat(root_fd, RESOLVE_STATE_DIR,
                    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    /* The daemon's own, and no one else's to enter. */
    if (fstat(fd, &st) < 0 || st.st_uid != geteuid() ||
        ((st.st_mode & 077) && fchmod(fd, 0700) < 0)) {
        close(fd);
        return -EPERM;
    }
    return fd;
}

int statefile_init(struct statefile *s, struct registry *r, struct quota *q,
                   struct event_base *base, int root_fd)
{
    memset(s, 0, sizeof(*s));
    s->reg = r;
    s->quota = q;
    s->dir_fd = -1;
    s->hook.fn = on_change;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);
    int e = registry_add_hook(r, &s->hook);
    if (e < 0)
        return e;
    int fd = open_dir(root_fd);
    if (fd < 0) {
        log_warn("state directory %s under the data root: %s; anonymous "
                 "mappings cannot come back from their holders",
                 RESOLVE_STATE_DIR, strerror(-fd));
        return 0;
    }
    s->soon = event_new(base, -1, 0, on_soon, s);
    if (!s->soon || pthread_create(&s->thread, NULL, writer, s) != 0) {
        close(fd);
        return -ENOMEM;
    }
    s->thread_up = true;
    s->dir_fd = fd;
    load(s);
    return 0;
}

void statefile_fini(struct statefile *s)
{
    if (s->dir_fd >= 0 && s->armed)
        on_soon(-1, 0, s);
    if (s->thread_up) {
        pthread_mutex_lock(&s->lock);
        s->stop = true;
        pthread_cond_broadcast(&s->cond);
        pthread_mutex_unlock(&s->lock);
        pthread_join(s->thread, NULL);
        s->thread_up = false;
    }
    if (s->soon)
        event_free(s->soon);
    s->soon = NULL;
    if (s->dir_fd >= 0)
        close(s->dir_fd);
    s->dir_fd = -1;
    free(s->next);
    s->next = NULL;
    while (s->waiting) {
        struct state_rec *r = s->waiting;
        s->waiting = r->next;
        rec_free(r);
    }
    while (s->tombs) {
        struct state_rec *r = s->tombs;
        s->tombs = r->next;
        rec_free(r);
    }
    s->n_tombs = 0;
}
