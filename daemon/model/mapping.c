/* mapping: a shared mapping object, its fd and its holders (see mapping.h). */
#include "mapping.h"

#include "ctl.h"
#include "membackend.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/*
 * An anonymous mapping's memfd is sealed against shrinking and against
 * further seals, for everyone, the daemon included: a read-write holder
 * has the memfd itself and could otherwise ftruncate it under the other
 * holders (SIGBUS) or seal it so that its owner can no longer resize it or
 * map it writable. Growth stays possible (F_SEAL_GROW would stop the
 * daemon's own resizes, and holders could not follow a copy to a new memfd
 * without a new fd), so the size is the daemon's, not the kernel's: the
 * daemon shrinks by punching holes past the new size (the memfd keeps its
 * larger i_size, full of holes), and whatever lies past its size — a
 * holder's ftruncate and writes behind the daemon's back — is punched away
 * each time the daemon looks (mapping_sync_size). A memfd sealed before
 * (one restored from the fd store) keeps the seals it has.
 */
static void seal(int fd)
{
    (void)mem_seal(fd, MEM_SEAL_SHRINK | MEM_SEAL_SEAL);
}

/* A mapping with its name, id, control slot and the default policy, on
 * `fd` (not consumed); NULL when out of memory or slots. */
static struct mapping *mapping_alloc(struct mapping_env *env,
                                     enum map_kind kind, const char *name,
                                     int fd, bool fd_writable)
{
    struct mapping *m = calloc(1, sizeof(*m));
    if (m)
        m->name = strdup(name);
    if (!m || !m->name || ctl_alloc(&env->ctl, &m->slot) < 0) {
        if (m)
            free(m->name);
        free(m);
        return NULL;
    }
    m->env = env;
    m->id = env->next_id++;
    m->refs = 1;
    m->kind = kind;
    m->fd = fd;
    m->fd_writable = fd_writable;
    m->created = time(NULL);
    m->policy = (mmapio_flush_policy){ MMAPIO_FLUSH_NEVER, 0 };
    atomic_store(&ctl_slot(&env->ctl, m->slot)->policy, ctl_pack_policy(m->policy));
    return m;
}

struct mapping *mapping_new(struct mapping_env *env, enum map_kind kind,
                            const char *name, int fd, bool fd_writable)
{
    struct mapping *m = mapping_alloc(env, kind, name, fd, fd_writable);
    if (!m) {
        close(fd);
        return NULL;
    }
    if (kind == MAPPING_ANON)
        seal(fd);
    return m;
}

struct mapping *mapping_new_carved(struct mapping_env *env, const char *name,
                                   uid_t owner, gid_t group, mode_t perm,
                                   struct arena *ar, uint64_t offset)
{
    int r = 0;
    if (!ar)
        r = arenas_carve(&env->arenas, owner, group, perm, &ar, &offset);
    else
        ar->live++;
    struct mapping *m = r < 0 ? NULL
        : mapping_alloc(env, MAPPING_ANON, name, ar->fd, true);
    if (!m) {
        if (r == 0) /* the slot goes back, punched, never reused */
            arenas_release(&env->arenas, ar, offset);
        errno = r < 0 ? -r : ENOMEM;
        return NULL;
    }
    m->arena = ar;
    m->offset = offset;
    m->owner = owner;
    m->group = group;
    m->perm = perm;
    return m;
}

void mapping_changed(struct mapping *m, enum mapping_change what,
                     const void *origin)
{
    for (struct mapping_hook *h = m->env->hooks; h; h = h->next)
        h->fn(h, m, what, origin);
}

void mapping_pin(struct mapping *m)
{
    m->pins++;
}

void mapping_unpin(struct mapping *m)
{
    m->pins--;
}

void mapping_set_policy(struct mapping *m, mmapio_flush_policy p,
                        const void *origin)
{
    m->policy = p;
    atomic_store(&ctl_slot(&m->env->ctl, m->slot)->policy, ctl_pack_policy(p));
    mapping_changed(m, MAPPING_POLICY, origin);
}

void mapping_mark_removed(struct mapping *m)
{
    if (m->removed)
        return;
    m->removed = true;
    struct mapping_env *env = m->env;
    m->removed_prev = env->removed_last;
    if (env->removed_last)
        env->removed_last->removed_next = m;
    else
        env->removed_first = m;
    env->removed_last = m;
    mapping_changed(m, MAPPING_REMOVED, NULL);
}

static void unlink_removed(struct mapping *m)
{
    struct mapping_env *env = m->env;
    if (!m->removed)
        return;
    if (m->removed_prev)
        m->removed_prev->removed_next = m->removed_next;
    else
        env->removed_first = m->removed_next;
    if (m->removed_next)
        m->removed_next->removed_prev = m->removed_prev;
    else
        env->removed_last = m->removed_prev;
}

struct mapping *mapping_ref(struct mapping *m)
{
    m->refs++;
    return m;
}

void mapping_unref(struct mapping *m)
{
    if (!m || --m->refs > 0)
        return;
    m->refs = 1; /* observers may look at it (and take no reference) */
    mapping_changed(m, MAPPING_FREED, NULL);
    unlink_removed(m);
    if (m->arena)
        arenas_release(&m->env->arenas, m->arena, m->offset);
    else if (m->fd >= 0)
        close(m->fd);
    ctl_free(&m->env->ctl, m->slot);
    free(m->name);
    free(m);
}

/*
 * Every holder gets an open file description of its own, reopened through
 * /proc: read-only for read-only and copy-on-write holders, so that no
 * mprotect() can make their mapping writable; read-write for writers, so
 * that nothing a holder does to its description (O_APPEND, O_ASYNC, OFD
 * locks, F_SETLEASE) reaches the daemon's. O_NONBLOCK: an open that would
 * break a lease (someone's F_SETLEASE) fails with EWOULDBLOCK at once
 * instead of waiting out lease-break-time on the event loop. Anonymous
 * memfds are 0600 and the daemon's: it may reopen them either way.
 */
int mapping_grant_fd(struct mapping *m, mmapio_mode mode, int *fd, bool *owned)
{
    int flags = O_RDONLY;

    if (mode == MMAPIO_MODE_READ_WRITE) {
        if (!m->fd_writable)
            return MMAPIO_E_PERMISSION;
        flags = O_RDWR;
    }
    int nfd = mem_reopen(m->fd, flags | O_NONBLOCK);
    if (nfd < 0) {
        if (nfd == -EWOULDBLOCK)
            return MMAPIO_E_BUSY;
        if (nfd == -EACCES || nfd == -EPERM) /* the file's mode changed */
            return MMAPIO_E_PERMISSION;
        return nfd == -EMFILE || nfd == -ENFILE ? MMAPIO_E_QUOTA
                                                 : MMAPIO_E_IO;
    }
    *fd = nfd;
    *owned = true;
    return MMAPIO_OK;
}

static int reserve(int fd, uint64_t from, uint64_t to)
{
    int r = mem_reserve(fd, from, to);
    return r == -EOPNOTSUPP ? 0 : r;
}

/* Whether [from, to) of fd may have holes. Asked first because fallocate
 * is news to inotify (IN_MODIFY): a file without holes is left alone. */
static bool has_holes(int fd, uint64_t from, uint64_t to)
{
    struct stat st;
    /* The offset is shared with read-write holders: put it back. */
    off_t pos = lseek(fd, 0, SEEK_CUR);
    off_t hole = lseek(fd, (off_t)from, SEEK_HOLE);
    if (pos >= 0)
        (void)lseek(fd, pos, SEEK_SET);
    if (hole < 0 || (uint64_t)hole < to || fstat(fd, &st) < 0)
        return true;
    /* SEEK_HOLE may be the file system's "no idea": trust the blocks too. */
    return (uint64_t)st.st_blocks * 512 < (uint64_t)st.st_size;
}

int mapping_reserve(struct mapping *m, uint64_t from, uint64_t to,
                    uint64_t max)
{
    if (m->kind != MAPPING_FILE || !m->fd_writable || to <= from ||
        !has_holes(m->fd, from, to))
        return 0;
    if (to > max || to > INT64_MAX)
        return -EFBIG;
    return reserve(m->fd, from, to);
}

/* Frees an anonymous mapping's bytes from `from` to the memfd's end
 * (reading as zeros from then on), without touching its size. */
static int punch_from(int fd, uint64_t from, uint64_t end)
{
    return mem_punch(fd, from, end);
}

static uint64_t kernel_size(int fd, uint64_t fallback)
{
    struct stat st;
    return fstat(fd, &st) == 0 ? (uint64_t)st.st_size : fallback;
}

/* Bytes the kernel has allocated for fd (0 when unknown). */
static uint64_t kernel_bytes(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 ? (uint64_t)st.st_blocks * 512 : 0;
}

/* An anonymous mapping's size (see seal): the bytes past the smaller of
 * the old and new sizes are punched, the memfd grows when it must. */
static int set_anon_size(struct mapping *m, uint64_t size)
{
    uint64_t have = kernel_size(m->fd, m->size);
    int r = punch_from(m->fd, size < m->size ? size : m->size, have);
    if (r == 0 && size > have && ftruncate(m->fd, (off_t)size) < 0)
        r = -errno;
    return r;
}

/* A carved mapping grows and shrinks inside its slot; the bytes between
 * the old and new sizes read as zeros either way. */
static int set_carved_size(struct mapping *m, uint64_t size)
{
    uint64_t lo = size < m->size ? size : m->size;
    uint64_t hi = size < m->size ? m->size : size;
    return arena_punch(m->arena, m->offset + lo, m->offset + hi);
}

static int set_file_size(struct mapping *m, uint64_t size)
{
    uint64_t old = mapping_sync_size(m);
    int r = ftruncate(m->fd, (off_t)size) < 0 ? -errno : 0;
    if (r == 0 && size > old) {
        r = reserve(m->fd, old, size);
        if (r < 0)
            (void)!ftruncate(m->fd, (off_t)old);
    }
    return r;
}

int mapping_set_size(struct mapping *m, uint64_t size, const char **why)
{
    if (size > INT64_MAX) {
        *why = "size too large";
        return MMAPIO_E_RESIZE_FAILED;
    }
    if (m->arena && size > m->arena->stride) {
        *why = "an anonymous mapping created small lives in a shared memfd "
               "and grows in place only up to arena_stride";
        return MMAPIO_E_RESIZE_FAILED;
    }
    int r = m->arena ? set_carved_size(m, size)
            : m->kind == MAPPING_ANON ? set_anon_size(m, size)
                                      : set_file_size(m, size);
    if (r < 0) {
        *why = strerror(-r);
        return r == -EFBIG || r == -ENOSPC || r == -EDQUOT
                   ? MMAPIO_E_QUOTA : MMAPIO_E_RESIZE_FAILED;
    }
    m->size = size;
    return MMAPIO_OK;
}

uint64_t mapping_size_seen(struct mapping *m, uint64_t size)
{
    if (m->kind == MAPPING_FILE) {
        m->size = size;
        m->size_fresh = true;
    }
    return m->size;
}

uint64_t mapping_sync_size(struct mapping *m)
{
    if (m->arena) /* the arena's size is sealed; the slot is the daemon's */
        return m->size;
    if (m->size_fresh) {
        m->size_fresh = false;
        return m->size;
    }
    uint64_t have = kernel_size(m->fd, m->size);
    if (m->kind == MAPPING_FILE)
        m->size = have;
    else if (have < m->size) /* a memfd that was never sealed */
        m->size = have;
    else if (have > m->size && kernel_bytes(m->fd) > m->size)
        (void)punch_from(m->fd, m->size, have); /* never more than charged */
    return m->size;
}

static uint64_t group_hash(const struct mapping *m, const void *owner)
{
    return hmap_hash_u64(hmap_hash_u64(m->id) ^ (uint64_t)(uintptr_t)owner);
}

/* owner's group of m: found, or made (NULL without memory). */
static struct holder_group *group_of(struct mapping *m, void *owner)
{
    uint64_t hash = group_hash(m, owner);
    for (struct hnode *n = hmap_find(&m->env->owners, hash); n;
         n = hmap_next_same(n)) {
        struct holder_group *g = container_of(n, struct holder_group, node);
        if (g->map == m && g->owner == owner)
            return g;
    }
    struct holder_group *g = calloc(1, sizeof(*g));
    if (!g || hmap_insert(&m->env->owners, &g->node, hash) < 0) {
        free(g);
        return NULL;
    }
    g->owner = owner;
    g->map = m;
    g->next = m->groups;
    if (m->groups)
        m->groups->prev = g;
    m->groups = g;
    m->n_groups++;
    return g;
}

int mapping_attach(struct mapping *m, struct holder *h,
                   struct holder_list *owner_list)
{
    struct holder_group *g = group_of(m, h->owner);
    if (!g)
        return -ENOMEM;
    bool writer = h->mode == MMAPIO_MODE_READ_WRITE;
    h->map = mapping_ref(m);
    h->group = g;
    g->n++;
    m->n_holders++;
    m->n_writers += writer;
    h->owner_prev = NULL;
    h->owner_next = owner_list->first;
    if (owner_list->first)
        owner_list->first->owner_prev = h;
    owner_list->first = h;
    owner_list->n++;
    return 0;
}

void mapping_detach(struct holder *h, struct holder_list *owner_list)
{
    struct mapping *m = h->map;
    struct holder_group *g = h->group;
    if (--g->n == 0) {
        if (g->prev)
            g->prev->next = g->next;
        else
            m->groups = g->next;
        if (g->next)
            g->next->prev = g->prev;
        hmap_remove(&m->env->owners, &g->node);
        m->n_groups--;
        free(g);
    }
    h->group = NULL;
    m->n_holders--;
    m->n_writers -= h->mode == MMAPIO_MODE_READ_WRITE;
    if (h->owner_prev)
        h->owner_prev->owner_next = h->owner_next;
    else
        owner_list->first = h->owner_next;
    if (h->owner_next)
        h->owner_next->owner_prev = h->owner_prev;
    h->owner_prev = h->owner_next = NULL;
    owner_list->n--;
    h->map = NULL;
    mapping_unref(m);
}
