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
#include <unistd.h>

#include "log.h"
#include "membackend.h"
#include "quota.h"
#include "registry.h"
#include "resolve.h"

#define STATE_MAGIC_V1 "mmapiod-anon-state 1"  /* whole file, no checks */
#define STATE_MAGIC_V2 "mmapiod-anon-journal 2" /* no stride */
#define STATE_MAGIC "mmapiod-anon-journal 3"
#define STATE_TMP STATEFILE_NAME ".tmp"
/* The journal is rewritten once it holds more than twice the live records
 * and this many besides. */
#define STATE_SLACK 256
/* A line: 12 numbers of at most 20 digits, a check, a name, a word. */
#define STATE_LINE_MAX (RESOLVE_NAME_MAX + 320)
/* A live anonymous mapping's memfd is 0600 (open.c); a deleted one's is
 * made this at once, so its deletion is on the memfd itself: a daemon
 * killed before its record is written cannot be fooled. */
#define STATE_DELETED_MODE 0400

/* One record of the journal; also what the hook keeps on a mapping. */
struct state_rec {
    uint64_t id, dev, ino, offset, size, policy_value;
    uint64_t stride;            /* carved from an arena (its slot); 0: not */
    uint32_t owner, group, perm, policy_kind;
    char *name;
    struct state_rec *next;
    uint64_t seq;               /* its place in the journal read at start */
    int live;                   /* idem: 1 live, 0 deleted */
};

static void rec_free(struct state_rec *r)
{
    if (r)
        free(r->name);
    free(r);
}

static void recs_free(struct state_rec *r)
{
    while (r) {
        struct state_rec *next = r->next;
        rec_free(r);
        r = next;
    }
}

/* ---- the journal's lines ---- */

/* FNV-1a, 32 bits, continued from h: the check of a line, so that a torn
 * or foreign line is not taken for a record. */
static uint32_t fnv(uint32_t h, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)p[i]) * 16777619u;
    return h;
}
#define FNV_START 2166136261u

/* Formats one line into line (STATE_LINE_MAX bytes): "what id dev ino
 * offset owner group perm kind value size stride check name\n", the check
 * over everything before it and the name. Its length, or -1. */
static int format_line(char *line, const char *what, const struct state_rec *r)
{
    int n = snprintf(line, STATE_LINE_MAX,
                     "%s %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64
                     " %u %u %o %u %" PRIu64 " %" PRIu64 " %" PRIu64 " ",
                     what, r->id, r->dev, r->ino, r->offset, r->owner,
                     r->group, r->perm, r->policy_kind, r->policy_value,
                     r->size, r->stride);
    if (n < 0 || n >= STATE_LINE_MAX)
        return -1;
    size_t name_len = strlen(r->name);
    uint32_t check = fnv(fnv(FNV_START, line, (size_t)n), r->name, name_len);
    int m = snprintf(line + n, STATE_LINE_MAX - (size_t)n, "%08" PRIx32 " %s\n",
                     check, r->name);
    if (m < 0 || m >= STATE_LINE_MAX - n)
        return -1;
    return n + m;
}

/* Parses one line (without its '\n') of a file of `version` (1: no
 * check, no stride; 2: no stride): 1 live, 0 deleted, -1 not a record. */
static int parse_line(char *line, int version, struct state_rec *r)
{
    char what[16];
    int check_at = -1, name_at = -1;
    uint32_t check = 0;
    bool v1 = version == 1;
    if (sscanf(line, "%15s %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64
                     " %u %u %o %u %" SCNu64 " %" SCNu64 " %n",
               what, &r->id, &r->dev, &r->ino, &r->offset, &r->owner,
               &r->group, &r->perm, &r->policy_kind, &r->policy_value,
               &r->size, &check_at) != 11 || check_at < 0)
        return -1;
    if (version >= 3) {
        int more = -1;
        if (sscanf(line + check_at, "%" SCNu64 " %n", &r->stride, &more) != 1 ||
            more < 0)
            return -1;
        check_at += more;
    }
    name_at = check_at;
    if (!v1) {
        char *end;
        unsigned long c = strtoul(line + check_at, &end, 16);
        if (end != line + check_at + 8 || *end != ' ')
            return -1;
        check = (uint32_t)c;
        name_at = check_at + 9;
    }
    const char *name = line + name_at;
    if (!v1 && fnv(fnv(FNV_START, line, (size_t)check_at), name,
                   strlen(name)) != check)
        return -1;
    if (!*name || resolve_check_name(name) || r->perm > 0777 ||
        r->policy_kind > MMAPIO_FLUSH_EVERY_MILLIS ||
        (r->stride ? r->offset % r->stride || r->size > r->stride : r->offset))
        return -1;
    int kind = !strcmp(what, "live") ? 1 : !strcmp(what, "deleted") ? 0 : -1;
    if (kind < 0 || !(r->name = strdup(name)))
        return -1;
    return kind;
}

/* ---- replay ---- */

static int by_memfd(const void *a, const void *b)
{
    const struct state_rec *x = *(struct state_rec *const *)a;
    const struct state_rec *y = *(struct state_rec *const *)b;
    if (x->dev != y->dev)
        return x->dev < y->dev ? -1 : 1;
    if (x->ino != y->ino)
        return x->ino < y->ino ? -1 : 1;
    if (x->offset != y->offset)
        return x->offset < y->offset ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int by_name(const void *a, const void *b)
{
    const struct state_rec *x = *(struct state_rec *const *)a;
    const struct state_rec *y = *(struct state_rec *const *)b;
    int c = strcmp(x->name, y->name);
    return c ? c : x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int newest_first(const void *a, const void *b)
{
    const struct state_rec *x = *(struct state_rec *const *)a;
    const struct state_rec *y = *(struct state_rec *const *)b;
    return x->seq > y->seq ? -1 : x->seq < y->seq;
}

/* The journal's records in order (v[0..n)) come to: per memfd and offset
 * its last record; of live ones per name the last (an older one is dropped, as
 * settle_waiting does); the newest STATEFILE_TOMBSTONES deleted ones.
 * Takes the records; O(n log n). */
static void replay(struct statefile *s, struct state_rec **v, size_t n)
{
    size_t k = 0;
    if (n == 0)
        return; /* v may be NULL, which qsort must not get */
    qsort(v, n, sizeof(*v), by_memfd);
    for (size_t i = 0; i < n; i++) {
        bool superseded = i + 1 < n && v[i + 1]->dev == v[i]->dev &&
                          v[i + 1]->ino == v[i]->ino &&
                          v[i + 1]->offset == v[i]->offset;
        if (superseded)
            rec_free(v[i]);
        else
            v[k++] = v[i];
    }
    n = k;
    qsort(v, n, sizeof(*v), by_name);
    k = 0;
    for (size_t i = 0; i < n; i++) {
        bool shadowed = v[i]->live && i + 1 < n && v[i + 1]->live &&
                        !strcmp(v[i]->name, v[i + 1]->name);
        if (shadowed)
            v[i]->live = 0; /* unreachable: a tombstone */
        if (v[i]->live) {
            v[i]->next = s->waiting;
            s->waiting = v[i];
            s->n_waiting++;
        } else
            v[k++] = v[i];
    }
    n = k;
    qsort(v, n, sizeof(*v), newest_first);
    struct state_rec **tail = &s->tombs;
    for (size_t i = 0; i < n; i++) {
        if (s->n_tombs < STATEFILE_TOMBSTONES) {
            *tail = v[i];
            tail = &v[i]->next;
            s->n_tombs++;
        } else
            rec_free(v[i]);
    }
    *tail = NULL;
}

/* Reads the previous instance's journal (or v1 file): live records wait,
 * deleted ones stay tombstones. A line that is no record (torn by a kill,
 * or garbage) is skipped and counted in the log. */
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
    size_t cap = 0, n_recs = 0, n_cap = 0, bad = 0;
    struct state_rec **v = NULL;
    ssize_t n = getline(&line, &cap, f);
    int version = n <= 0 ? 0
        : !strncmp(line, STATE_MAGIC_V1 "\n", sizeof(STATE_MAGIC_V1)) ? 1
        : !strncmp(line, STATE_MAGIC_V2 "\n", sizeof(STATE_MAGIC_V2)) ? 2
        : !strncmp(line, STATE_MAGIC "\n", sizeof(STATE_MAGIC)) ? 3 : 0;
    bool ok = version > 0;
    if (n > 0 && !ok)
        log_warn("%s/%s is no state journal: ignored", RESOLVE_STATE_DIR,
                 STATEFILE_NAME);
    while (ok && (n = getline(&line, &cap, f)) > 0) {
        if (line[n - 1] != '\n' || strlen(line) != (size_t)n) {
            bad++; /* torn at the end, or with a NUL */
            continue;
        }
        line[n - 1] = '\0';
        if (n_recs == n_cap) {
            size_t nc = n_cap ? 2 * n_cap : 256;
            struct state_rec **p = realloc(v, nc * sizeof(*v));
            if (!p)
                break;
            v = p;
            n_cap = nc;
        }
        struct state_rec *r = calloc(1, sizeof(*r));
        int kind = r ? parse_line(line, version, r) : -1;
        if (kind < 0) {
            free(r);
            bad++;
            continue;
        }
        r->live = kind;
        r->seq = n_recs;
        v[n_recs++] = r;
    }
    free(line);
    fclose(f);
    if (bad)
        log_warn("%s/%s: %zu lines that are no record skipped (a write cut "
                 "by a kill, or garbage)", RESOLVE_STATE_DIR, STATEFILE_NAME, bad);
    replay(s, v, n_recs);
    free(v);
}

/* ---- generations ---- */

static int write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? -errno : -EIO;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Writes buf as a new generation under STATE_TMP (not yet renamed): its
 * fd, open for appending, or -errno. No fsync: the journal has to outlive
 * the daemon, not the machine (its memfds die with the machine), and the
 * page cache outlives the daemon. */
static int write_gen(int dir_fd, const char *buf, size_t len)
{
    int fd = openat(dir_fd, STATE_TMP, O_WRONLY | O_CREAT | O_TRUNC |
                    O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return -errno;
    int r = write_all(fd, buf, len);
    if (r < 0) {
        close(fd);
        return r;
    }
    return fd;
}

struct state_copy;
static char *copy_text(const struct state_copy *c, size_t *len);
static void copy_free(struct state_copy *c);

/* The compaction thread: formats and writes the generation it is handed, and closes
 * the old journal (the last close of an unlinked file frees its pages). */
static void *writer(void *arg)
{
    struct statefile *s = arg;
    pthread_mutex_lock(&s->lock);
    for (;;) {
        while (!s->job && s->old_fd < 0 && !s->stop)
            pthread_cond_wait(&s->cond, &s->lock);
        if (s->old_fd >= 0) {
            int fd = s->old_fd;
            s->old_fd = -1;
            pthread_mutex_unlock(&s->lock);
            close(fd);
            pthread_mutex_lock(&s->lock);
            continue;
        }
        if (!s->job)
            break;
        struct state_copy *copy = s->job;
        pthread_mutex_unlock(&s->lock);
        size_t len;
        char *buf = copy_text(copy, &len);
        int r = buf ? write_gen(s->dir_fd, buf, len) : -ENOMEM;
        free(buf);
        copy_free(copy);
        pthread_mutex_lock(&s->lock);
        s->job = NULL;
        s->job_fd = r;
        s->job_done = true;
        pthread_cond_broadcast(&s->cond);
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

/* ---- the live state, on the loop ---- */

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

/* A copy of the live records, taken on the loop for a new generation and
 * formatted on the thread: plain records (the name is an offset into
 * names, kept in seq), so the loop pays no formatting. */
struct state_copy {
    struct statefile *s;
    struct state_rec *v;
    size_t n, cap;
    char *names;
    size_t names_len, names_cap;
    bool ok;
};

static bool grow(void **p, size_t *cap, size_t need, size_t unit)
{
    if (need <= *cap)
        return true;
    size_t nc = *cap ? *cap : 64;
    while (nc < need)
        nc *= 2;
    void *q = realloc(*p, nc * unit);
    if (!q)
        return false;
    *p = q;
    *cap = nc;
    return true;
}

static void copy_put(struct state_copy *c, int live, const struct state_rec *r)
{
    size_t name_len = strlen(r->name) + 1;
    if (!c->ok || !grow((void **)&c->v, &c->cap, c->n + 1, sizeof(*c->v)) ||
        !grow((void **)&c->names, &c->names_cap, c->names_len + name_len, 1)) {
        c->ok = false;
        return;
    }
    struct state_rec *d = &c->v[c->n++];
    *d = *r;
    d->name = NULL;
    d->next = NULL;
    d->live = live;
    d->seq = c->names_len;
    memcpy(c->names + c->names_len, r->name, name_len);
    c->names_len += name_len;
}

static void copy_live(struct mapping *m, void *arg)
{
    struct state_copy *c = arg;
    struct state_rec *r = m->kind == MAPPING_ANON ? rec_of(c->s, m) : NULL;
    if (r) {
        fill(r, m);
        copy_put(c, 1, r);
    }
}

static void copy_free(struct state_copy *c)
{
    if (c) {
        free(c->v);
        free(c->names);
    }
    free(c);
}

/* The live records, waiting ones and tombstones: O(registry). */
static struct state_copy *copy_take(struct statefile *s)
{
    struct state_copy *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->s = s;
    c->ok = true;
    registry_foreach(s->reg, copy_live, c);
    for (struct state_rec *r = s->waiting; r; r = r->next)
        copy_put(c, 1, r);
    for (struct state_rec *r = s->tombs; r; r = r->next)
        copy_put(c, 0, r);
    if (!c->ok) {
        copy_free(c);
        return NULL;
    }
    return c;
}

/* A copy as a generation's text, or NULL without memory. */
static char *copy_text(const struct state_copy *c, size_t *len)
{
    /* a line takes at most STATE_LINE_MAX - RESOLVE_NAME_MAX and its name */
    size_t cap = sizeof(STATE_MAGIC) + STATE_LINE_MAX + c->names_len +
                 c->n * (STATE_LINE_MAX - RESOLVE_NAME_MAX);
    char *buf = malloc(cap), *at = buf;
    if (!buf)
        return NULL;
    at += snprintf(at, cap, "%s\n", STATE_MAGIC);
    for (size_t i = 0; i < c->n; i++) {
        struct state_rec r = c->v[i];
        r.name = c->names + r.seq;
        int n = format_line(at, r.live ? "live" : "deleted", &r);
        if (n < 0) {
            free(buf);
            return NULL;
        }
        at += n;
    }
    *len = (size_t)(at - buf);
    return buf;
}

/* Puts a generation the thread wrote in the journal's place, once it holds
 * what was appended meanwhile. With `wait`, waits for the thread. */
static void compact_finish(struct statefile *s, bool wait)
{
    if (!s->compacting)
        return;
    pthread_mutex_lock(&s->lock);
    while (wait && !s->job_done)
        pthread_cond_wait(&s->cond, &s->lock);
    bool done = s->job_done;
    int fd = s->job_fd;
    pthread_mutex_unlock(&s->lock);
    if (!done)
        return;
    s->compacting = false;
    s->job_done = false;
    int r = fd;
    if (fd >= 0 && (r = write_all(fd, s->since, s->since_len)) == 0 &&
        renameat(s->dir_fd, STATE_TMP, s->dir_fd, STATEFILE_NAME) < 0)
        r = -errno;
    s->since_len = 0;
    if (r < 0) {
        log_warn("cannot rewrite %s/%s: %s; appending on", RESOLVE_STATE_DIR,
                 STATEFILE_NAME, strerror(-r));
        if (fd >= 0) {
            close(fd);
            (void)unlinkat(s->dir_fd, STATE_TMP, 0);
        }
        s->retry_at = 2 * s->records; /* not again at once */
        return;
    }
    s->incomplete = false;
    pthread_mutex_lock(&s->lock);
    if (s->old_fd >= 0) /* never, while one compaction runs at a time */
        close(s->old_fd);
    s->old_fd = s->fd;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->lock);
    s->fd = fd;
    s->records = s->job_records + s->since_records;
    s->compactions++;
}

/* Hands the thread a copy of the live records once the journal holds more
 * than twice as many (and STATE_SLACK): O(live) on the loop once per
 * O(live) appends, so O(1) per change. */
static void compact_maybe(struct statefile *s)
{
    size_t live = s->n_recorded + s->n_waiting + s->n_tombs;
    if (s->compacting || !s->thread_up || s->records <= s->retry_at ||
        (!s->incomplete && s->records <= 2 * live + STATE_SLACK))
        return;
    struct state_copy *copy = copy_take(s);
    if (!copy) {
        s->retry_at = 2 * s->records;
        return;
    }
    size_t records = copy->n;
    pthread_mutex_lock(&s->lock);
    s->job = copy;
    s->job_done = false;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->lock);
    s->compacting = true;
    s->job_records = records;
    s->since_len = 0;
    s->since_records = 0;
}

/* Appends one record: one write into the page cache, at once, so nothing
 * a client was answered about is missing after a kill. */
static void append(struct statefile *s, const char *what, const struct state_rec *r)
{
    char line[STATE_LINE_MAX];
    int n = s->fd >= 0 ? format_line(line, what, r) : -1;
    if (n < 0)
        return;
    int e = write_all(s->fd, line, (size_t)n);
    if (e < 0) {
        /* A journal that misses a record might bring back a mapping
         * deleted since (a tombstone not written): it is emptied, headless,
         * so that the next start takes nothing back, until a compaction
         * writes it whole again. Losing the way back beats resurrecting. */
        if (!s->failing) /* once until it works again: a full disk */
            log_warn("cannot append to %s/%s: %s; emptied: anonymous "
                     "mappings cannot come back after a restart until it is "
                     "rewritten", RESOLVE_STATE_DIR, STATEFILE_NAME,
                     strerror(-e));
        if (ftruncate(s->fd, 0) < 0)
            (void)unlinkat(s->dir_fd, STATEFILE_NAME, 0);
        s->failing = true;
        s->incomplete = true;
        return;
    }
    s->failing = false;
    s->records++;
    if (s->compacting) { /* the new generation gets it too */
        if (s->since_len + (size_t)n > s->since_cap) {
            size_t nc = (s->since_cap + (size_t)n) * 2;
            char *p = realloc(s->since, nc);
            if (!p) { /* the new generation would miss it */
                pthread_mutex_lock(&s->lock);
                while (!s->job_done)
                    pthread_cond_wait(&s->cond, &s->lock);
                if (s->job_fd >= 0)
                    close(s->job_fd);
                s->job_fd = -ENOMEM;
                pthread_mutex_unlock(&s->lock);
                compact_finish(s, true);
                return;
            }
            s->since = p;
            s->since_cap = nc;
        }
        memcpy(s->since + s->since_len, line, (size_t)n);
        s->since_len += (size_t)n;
        s->since_records++;
        /* A thread that waits its turn (a loaded machine) would let the
         * journal and `since` grow as fast as clients churn: once as much
         * was appended as the generation holds, the loop waits for it,
         * work of the same order as the copy it took. So the journal
         * stays within a few times the live records, whatever the load. */
        compact_finish(s, s->since_records > s->job_records + STATE_SLACK);
    }
    compact_maybe(s);
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
 * again (now's record says so); anything else makes it unreachable, so it
 * becomes a tombstone, and the journal says so. */
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
        s->n_waiting--;
        if (same_mem && !strcmp(w->name, now->name))
            rec_free(w);
        else {
            if (!same_mem) /* same memfd: now's record supersedes it */
                append(s, "deleted", w);
            tomb_add(s, w);
        }
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
            r->offset = m->offset; /* a carved one's slot in its arena */
            r->stride = m->arena ? m->arena->stride : 0;
            fill(r, m);
            *mapping_ext(m, hook) = r;
            s->n_recorded++;
            settle_waiting(s, r);
            append(s, "live", r);
        } else {
            rec_free(r);
            log_warn("cannot record anonymous mapping '%s'", m->name);
        }
    } else if (r && (what == MAPPING_POLICY || what == MAPPING_RESIZED)) {
        fill(r, m);
        append(s, "live", r);
    } else if (r && (what == MAPPING_RETIRED || what == MAPPING_FREED)) {
        *mapping_ext(m, hook) = NULL;
        s->n_recorded--;
        if (what == MAPPING_RETIRED && s->dir_fd >= 0) {
            /* A carved one shares its memfd: its tombstone, keyed by the
             * arena's identity and the offset, is written before the
             * deletion is answered (append), and is what keeps it. */
            if (!m->arena)
                (void)fchmod(m->fd, STATE_DELETED_MODE);
            fill(r, m);
            tomb_add(s, r); /* deleted: never taken back */
            append(s, "deleted", r);
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
    int seals = mem_seals(fd);
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
    if (seals < 0 || (seals & (MEM_SEAL_SHRINK | MEM_SEAL_SEAL)) !=
                         (MEM_SEAL_SHRINK | MEM_SEAL_SEAL)) {
        *why = "not a memfd sealed by the daemon";
        return false;
    }
    if ((uint64_t)st.st_size < rec->size) {
        *why = "smaller than the recorded mapping";
        return false;
    }
    return true;
}

/* The daemon's own open file description of the memfd fd proved to be,
 * read-write (the memfd is the daemon's, 0600), never the holder's: the
 * fd, or -1 with *why. */
static int reopen_own(int fd, const struct state_rec *rec, const char **why)
{
    int own = mem_reopen(fd, O_RDWR);
    if (own < 0 || !proves(own, rec, why)) {
        if (own >= 0)
            close(own);
        *why = "the memfd cannot be reopened";
        return -1;
    }
    return own;
}

/* A taken-back mapping m of record rec: its size, policy, charge, and
 * its name registered (which settles rec). MMAPIO_OK or with *why. */
static int register_back(struct statefile *s, struct mapping *m,
                         const struct state_rec *rec, const char **why)
{
    m->size = rec->size;
    if (!m->arena)
        mapping_sync_size(m);
    mmapio_flush_policy pol = { (mmapio_flush_kind)rec->policy_kind,
                                rec->policy_value };
    mapping_set_policy(m, pol, NULL);
    /* Kept even over a limit, as the fd store's restore does. */
    quota_admit(s->quota, m, true);
    quota_charge_mapping(s->quota, m);
    if (registry_add(s->reg, m) < 0) {
        *why = "out of memory";
        return MMAPIO_E_QUOTA;
    }
    return MMAPIO_OK;
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
        rec->offset != offset || offset != 0 || rec->stride)
        return MMAPIO_E_NOT_FOUND;
    struct uses u = { s, dev, ino, false };
    registry_foreach(s->reg, uses_memfd, &u);
    if (u.found || !proves(fd, rec, why))
        return MMAPIO_E_NOT_FOUND;
    int own = reopen_own(fd, rec, why);
    if (own < 0)
        return MMAPIO_E_NOT_FOUND;
    struct mapping *m = mapping_new(&s->reg->env, MAPPING_ANON, name, own, true);
    if (!m) {
        *why = "out of memory or control slots";
        return MMAPIO_E_QUOTA;
    }
    m->owner = rec->owner;
    m->group = rec->group;
    m->perm = rec->perm & 0777;
    int r = register_back(s, m, rec, why); /* settles rec */
    if (r) {
        mapping_unref(m);
        return r;
    }
    log_info("took back anonymous mapping '%s' (%" PRIu64 " bytes) from a holder",
             name, m->size);
    *out = m; /* the creation reference */
    return MMAPIO_OK;
}

/* Whether w is a carved record of the arena `of` (dev, ino, stride) and
 * its access class. */
static bool same_arena(const struct state_rec *w, const struct state_rec *of)
{
    return w->stride && w->dev == of->dev && w->ino == of->ino &&
           w->stride == of->stride && w->owner == of->owner &&
           w->group == of->group && w->perm == of->perm;
}

int statefile_adopt_arena(struct statefile *s, int fd, uint64_t dev,
                          uint64_t ino, struct arenas *arenas,
                          size_t *n_back, const char **why)
{
    *n_back = 0;
    *why = "no carved mapping recorded in that memfd";
    const struct state_rec *first = NULL;
    for (const struct state_rec *w = s->waiting; w && !first; w = w->next)
        if (w->stride && w->dev == dev && w->ino == ino)
            first = w;
    if (!first || fd < 0)
        return MMAPIO_E_NOT_FOUND;
    struct uses u = { s, dev, ino, false };
    registry_foreach(s->reg, uses_memfd, &u);
    if (u.found) {
        *why = "that arena is registered already";
        return MMAPIO_E_NOT_FOUND;
    }
    /* Its records (one class, one stride: a differing one is not the
     * daemon's, and stays waiting), and the size they need. */
    struct state_rec key = *first, need = *first, **v = NULL;
    size_t n = 0, cap = 0;
    need.size = 0;
    for (struct state_rec *w = s->waiting; w; w = w->next) {
        if (!same_arena(w, &key))
            continue;
        if (!grow((void **)&v, &cap, n + 1, sizeof(*v))) {
            free(v);
            *why = "out of memory";
            return MMAPIO_E_QUOTA;
        }
        v[n++] = w;
        if (w->offset + w->stride > need.size)
            need.size = w->offset + w->stride;
    }
    int own = proves(fd, &need, why) ? reopen_own(fd, &need, why) : -1;
    struct arena *ar = own >= 0 ? arenas_adopt(arenas, own, key.owner,
                                               key.group, key.perm & 0777,
                                               key.stride) : NULL;
    if (!ar) {
        free(v);
        if (own >= 0)
            *why = "out of memory";
        return own >= 0 ? MMAPIO_E_QUOTA : MMAPIO_E_NOT_FOUND;
    }
    /* Each at its recorded slot; registering settles (frees) its record,
     * so what is needed is copied first. */
    for (size_t i = 0; i < n; i++) {
        struct state_rec rec = *v[i];
        char *name = strdup(rec.name);
        const char *ignored;
        struct mapping *m = !name || registry_find_anon(s->reg, name) ? NULL
            : mapping_new_carved(&s->reg->env, name, rec.owner, rec.group,
                                 rec.perm & 0777, ar, rec.offset);
        rec.name = name;
        if (m && register_back(s, m, &rec, &ignored) == MMAPIO_OK)
            (*n_back)++;
        mapping_unref(m); /* the registry keeps it */
        free(name);
    }
    free(v);
    arenas_unpin(arenas, ar); /* closes with its last mapping */
    log_info("took back an arena with %zu carved anonymous mappings from a "
             "holder", *n_back);
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
    (void)base;
    memset(s, 0, sizeof(*s));
    s->reg = r;
    s->quota = q;
    s->dir_fd = s->fd = s->old_fd = -1;
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
    s->dir_fd = fd;
    load(s);
    /* A first generation of what was read: nothing torn is appended to. */
    size_t len;
    struct state_copy *copy = copy_take(s);
    char *buf = copy ? copy_text(copy, &len) : NULL;
    int jfd = buf ? write_gen(fd, buf, len) : -ENOMEM;
    s->records = copy ? copy->n : 0;
    copy_free(copy);
    free(buf);
    if (jfd >= 0 && renameat(fd, STATE_TMP, fd, STATEFILE_NAME) < 0) {
        close(jfd);
        jfd = -errno;
    }
    if (jfd < 0) {
        log_warn("cannot write %s/%s: %s; anonymous mappings cannot come "
                 "back from their holders", RESOLVE_STATE_DIR, STATEFILE_NAME,
                 strerror(-jfd));
        return 0; /* the waiting records can still be taken back */
    }
    s->fd = jfd;
    if (pthread_create(&s->thread, NULL, writer, s) == 0)
        s->thread_up = true;
    else
        log_warn("no thread to rewrite %s: it only grows", STATEFILE_NAME);
    return 0;
}

void statefile_fini(struct statefile *s)
{
    compact_finish(s, true);
    if (s->thread_up) {
        pthread_mutex_lock(&s->lock);
        s->stop = true;
        pthread_cond_broadcast(&s->cond);
        pthread_mutex_unlock(&s->lock);
        pthread_join(s->thread, NULL);
        s->thread_up = false;
    }
    if (s->old_fd >= 0)
        close(s->old_fd);
    if (s->fd >= 0)
        close(s->fd);
    if (s->dir_fd >= 0)
        close(s->dir_fd);
    s->old_fd = s->fd = s->dir_fd = -1;
    free(s->since);
    s->since = NULL;
    s->since_len = s->since_cap = 0;
    recs_free(s->waiting);
    recs_free(s->tombs);
    s->waiting = s->tombs = NULL;
    s->n_waiting = s->n_tombs = 0;
}
