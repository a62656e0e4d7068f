/* open: Open requests to mappings, with every access check (see open.h). */
#include "open.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "access.h"
#include "asuser.h"
#include "config.h"
#include "errmap.h"
#include "flushes.h"
#include "hugepages.h"
#include "membackend.h"
#include "opencache.h"
#include "policy.h"
#include "quota.h"
#include "registry.h"
#include "resolve.h"
#include "ringdrain.h"
#include "session.h"
#include "watch.h"

static int want_of(const Mmapio__Open *req)
{
    if (req->mode == MMAPIO__MODE__MODE_READ_WRITE || req->truncate)
        return ACCESS_READ | ACCESS_WRITE;
    return ACCESS_READ;
}

/* An existing mapping's owner against the one the request insists on
 * (Open.owner: mmapio_options.owner). */
static int owner_check(const Mmapio__Open *req, uid_t owner, const char **why)
{
    if (!req->owner || req->owner->uid == owner)
        return MMAPIO_OK;
    *why = "it belongs to another uid than the one asked for";
    return MMAPIO_E_PERMISSION;
}

/* An open met EMFILE or ENFILE (open_mapping_fd retries once). */
static bool out_of_fds;

static int from_errno(int e, const char **why)
{
    e = e < 0 ? -e : e;
    if (e == EMFILE || e == ENFILE) {
        out_of_fds = true;
        *why = "the daemon is out of file descriptors";
        return MMAPIO_E_QUOTA;
    }
    if (e == EXDEV || e == ELOOP) {
        *why = "path leads outside the data root";
        return MMAPIO_E_PERMISSION;
    }
    if (e == EWOULDBLOCK) { /* O_NONBLOCK met someone's lease */
        *why = "a lease on the file is being broken; try again";
        return MMAPIO_E_BUSY;
    }
    *why = strerror(e);
    return errmap_from_errno(e);
}

/* The daemon's own fd of an existing file in dirfd (which was reached
 * with the peer's rights): read-write if the daemon may, else read-only.
 * Whether the peer may have it is asked apart (peer_may_open). An fd, or a
 * negative mmapio_err. */
static int open_existing(int dirfd, const char *base, bool *writable,
                         const char **why)
{
    int fd = resolve_open(dirfd, base, O_RDWR | O_NONBLOCK, 0, NULL);
    *writable = fd >= 0;
    if (fd == -EACCES || fd == -EROFS || fd == -EPERM)
        fd = resolve_open(dirfd, base, O_RDONLY | O_NONBLOCK, 0, NULL);
    return fd < 0 ? from_errno(fd, why) : fd;
}

/*
 * Access as the kernel decides it for the peer: dirfd/base opened as the
 * peer (asuser.h) with the access it asked for — mode bits, POSIX ACLs and
 * security modules alike — and it must be the very file the daemon holds
 * (st). Where the daemon cannot act as the peer, the mode bits decide.
 * MMAPIO_OK or an error.
 */
static int peer_may_open(int dirfd, const char *base, const struct session *c,
                         int want, const struct stat *st, const char **why)
{
    if (c->cred.uid == 0)
        return MMAPIO_OK;
    if (!asuser_works()) {
        if (access_check(&c->cred, st->st_uid, st->st_gid, st->st_mode,
                         want) == MMAPIO_OK)
            return MMAPIO_OK;
        *why = "the file's owner, group and mode do not allow this access";
        return MMAPIO_E_PERMISSION;
    }
    int flags = (want & ACCESS_WRITE) ? O_RDWR : O_RDONLY;
    int fd = resolve_open(dirfd, base, flags | O_NONBLOCK, 0, &c->cred);
    if (fd == -EACCES || fd == -EPERM) {
        *why = "the file's permissions do not allow this access";
        return MMAPIO_E_PERMISSION;
    }
    if (fd < 0)
        return from_errno(fd, why);
    struct stat pst;
    int r = fstat(fd, &pst) < 0 ? from_errno(errno, why) : MMAPIO_OK;
    close(fd);
    if (!r && (pst.st_dev != st->st_dev || pst.st_ino != st->st_ino)) {
        *why = "the file was replaced while being opened";
        r = MMAPIO_E_BUSY;
    }
    return r;
}

/* May the peer create files in dirfd? Asked only where the kernel cannot
 * decide it (the creation itself is done as the peer otherwise). */
static int may_create_in(const struct session *c, int dirfd, const char **why)
{
    struct stat dst;
    if (asuser_works())
        return MMAPIO_OK;
    if (fstat(dirfd, &dst) < 0)
        return from_errno(errno, why);
    if (access_check(&c->cred, dst.st_uid, dst.st_gid, dst.st_mode,
                     ACCESS_WRITE | ACCESS_EXEC) != MMAPIO_OK) {
        *why = "no permission to create files in that directory";
        return MMAPIO_E_PERMISSION;
    }
    return MMAPIO_OK;
}

/* Created as the peer where the daemon can act as it: the file is the
 * peer's from birth; else a root daemon gives it away. 0 or -1 (errno). */
static int give_to_peer(int fd, const struct session *c)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -1;
    if (st.st_uid == c->cred.uid || geteuid() != 0)
        return 0;
    return fchown(fd, c->cred.uid, c->cred.gid);
}

/* An fd, or a negative mmapio_err; *raced when the file appeared meanwhile. */
static int create_file(const struct session *c, int dirfd, const char *base,
                       mode_t perm, bool *raced, const char **why)
{
    int r = may_create_in(c, dirfd, why);
    if (r)
        return r;
    int fd = resolve_open(dirfd, base, O_RDWR | O_CREAT | O_EXCL | O_NONBLOCK,
                          perm, &c->cred);
    *raced = fd == -EEXIST;
    if (fd == -EACCES || fd == -EPERM) {
        *why = "no permission to create files in that directory";
        return MMAPIO_E_PERMISSION;
    }
    if (fd < 0)
        return from_errno(fd, why);
    /* Exact bits regardless of umask; the file belongs to whoever asked. */
    if (fchmod(fd, perm) < 0 || give_to_peer(fd, c) < 0) {
        r = from_errno(errno, why);
        unlinkat(dirfd, base, 0);
        close(fd);
        return r;
    }
    return fd;
}

/* Root or admin_group: may take the mappings kept in reserve. */
static bool by_admin(const struct handlers *h, const struct session *c)
{
    return access_is_admin(&c->cred, h->cfg->has_admin_group, h->cfg->admin_gid);
}

/* Finds or creates the registry's mapping for an open file fd (consumed);
 * `admin`: the requester may take the reserve (quota_admit). */
static int adopt_file(struct handlers *h, int fd, bool writable, bool admin,
                      const struct stat *st, const char *path,
                      struct mapping **out)
{
    struct mapping *m = registry_find_file(h->reg, st->st_dev, st->st_ino);
    /* A cached one that is not what a new mapping would be (its fd
     * read-only where the daemon may now write; another owner) gives way. */
    if (m && opencache_holds(h->cache, m) &&
        ((writable && !m->fd_writable) || m->owner != st->st_uid ||
         m->group != st->st_gid)) {
        opencache_drop(h->cache, m);
        m = NULL;
    }
    if (m) {
        close(fd);
        m->perm = st->st_mode & 07777;
        *out = mapping_ref(m);
        return MMAPIO_OK;
    }
    m = mapping_new(&h->reg->env, MAPPING_FILE, path, fd, writable);
    if (!m)
        return MMAPIO_E_QUOTA;
    m->dev = st->st_dev;
    m->ino = st->st_ino;
    m->size = (uint64_t)st->st_size;
    m->owner = st->st_uid;
    m->group = st->st_gid;
    m->perm = st->st_mode & 07777;
    /* Counted against the daemon's fds now; charged to its holders as
     * they come (quota.h), never to its owner. */
    if (quota_admit(h->quota, m, admin) || registry_add(h->reg, m) < 0) {
        mapping_unref(m);
        return MMAPIO_E_QUOTA;
    }
    *out = m; /* the creation reference becomes the caller's */
    return MMAPIO_OK;
}

/* create_rw on an existing mapping: empty it, then give it `size`. */
static int truncate_held(struct handlers *h, struct mapping *m, uint64_t size,
                         const struct session *c, const char **why)
{
    uid_t by = c->cred.uid;
    ringdrain_settle(m, NULL); /* releases recorded, not yet read */
    if (m->n_holders > 0) /* holders whose process just exited; never the
                           * asker, whose request this is */
        session_reap_gone(m, c);
    if (m->n_holders > 0) {
        *why = "mapping is held by others; truncating would fault them";
        return MMAPIO_E_BUSY;
    }
    int r = quota_set_size(h->quota, m, 0, by, why);
    return r ? r : quota_set_size(h->quota, m, size, by, why);
}

/* A writable grant of a file: its holes are reserved first (fallocate of
 * the whole file; nothing when it has none), so that no write through the
 * mapping can die of SIGBUS on a full disk; refused when the disk cannot,
 * or when the holes reach past max_map_size (a size the daemon would never
 * have made). */
static int reserve_for_writer(struct mapping *m, uint64_t max,
                              const char **why)
{
    uint64_t was = m->size;
    /* A size grown outside the daemon is announced first: the quota
     * service reserves or undoes it, the holders hear of it. */
    if (mapping_sync_size(m) != was)
        mapping_changed(m, MAPPING_RESIZED, NULL);
    int r = mapping_reserve(m, 0, m->size, max);
    if (r == 0)
        return MMAPIO_OK;
    *why = r == -ENOSPC || r == -EDQUOT ? "not enough disk to back the mapping"
           : r == -EFBIG ? "holes past max_map_size cannot be reserved"
                         : strerror(-r);
    return r == -EIO ? MMAPIO_E_IO : MMAPIO_E_QUOTA;
}

/*
 * A file the registry holds already (held, or kept by the open cache),
 * the short way: one open of the path beneath the root, as the peer and in
 * the mode it asks for (so the kernel decides access, as peer_may_open
 * does), whose device and inode find the mapping. The file the path leads
 * to now is the one served, whatever was renamed, replaced or unlinked
 * since; its size is re-read when the holder is added (quota_hold). That
 * open is a fresh open file description of the file in the right mode:
 * it is the grant (*grant), so no reopen is needed either. OPEN_MISS when
 * it does not apply or anything is amiss: open_file then decides, and
 * words any refusal.
 */
#define OPEN_MISS 1

static int open_known(struct handlers *h, struct session *c,
                      const Mmapio__Open *req, struct mapping **out,
                      int *grant, const char **why)
{
    if (req->truncate || req->exclusive ||
        !registry_has_file_path(h->reg, req->path) ||
        (c->cred.groups_unknown && c->cred.uid != 0 && asuser_works()))
        return OPEN_MISS;
    int want = want_of(req);
    int flags = (want & ACCESS_WRITE) ? O_RDWR : O_RDONLY;
    int fd = resolve_open(h->root_fd, req->path, flags | O_NONBLOCK, 0,
                          &c->cred);
    if (fd < 0)
        return OPEN_MISS;
    struct stat st;
    struct mapping *m = NULL;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
        m = registry_find_file(h->reg, st.st_dev, st.st_ino);
    /* Without asuser the open was the daemon's, after a walk that checked
     * the peer's search rights: the mode bits decide the rest. */
    if (!m || m->removed || (flags == O_RDWR && !m->fd_writable) ||
        m->owner != st.st_uid || m->group != st.st_gid ||
        (c->cred.uid != 0 && !asuser_works() &&
         access_check(&c->cred, st.st_uid, st.st_gid, st.st_mode, want)) ||
        owner_check(req, st.st_uid, why)) {
        close(fd);
        return OPEN_MISS;
    }
    m->perm = st.st_mode & 07777;
    /* A grant goes straight to session_grant_fd: the size its quota_hold
     * would re-read is this fstat's. */
    uint64_t was = m->size;
    if (grant && mapping_size_seen(m, (uint64_t)st.st_size) != was)
        mapping_changed(m, MAPPING_RESIZED, NULL);
    if (req->mode == MMAPIO__MODE__MODE_READ_WRITE) {
        int r = reserve_for_writer(m, h->cfg->max_map_size, why);
        if (r) {
            close(fd);
            return r;
        }
    }
    watch_track_file(h->watches, m);
    if (grant)
        *grant = fd;
    else
        close(fd);
    *out = mapping_ref(m);
    return MMAPIO_OK;
}

static int open_file(struct handlers *h, struct session *c, const Mmapio__Open *req,
                     struct mapping **out, const char **why)
{
    const char *base;
    bool writable = true, created = false;
    struct stat st;
    struct mapping *m = NULL;
    int r = resolve_check_path(req->path);
    if (r) {
        *why = r == MMAPIO_E_PERMISSION ? "path leads outside the data root"
                                        : "invalid path";
        return r;
    }
    if (c->cred.groups_unknown && c->cred.uid != 0 && asuser_works()) {
        /* The kernel could only decide for a peer with fewer groups. */
        *why = "more supplementary groups than the daemon can act with";
        return MMAPIO_E_PERMISSION;
    }
    /* Resolved with the peer's search rights on every directory passed. */
    int dirfd = resolve_parent(h->root_fd, req->path, &base, &c->cred);
    if (dirfd < 0)
        return from_errno(dirfd, why);

    int fd = open_existing(dirfd, base, &writable, why);
    if (fd == MMAPIO_E_NOT_FOUND && req->create) {
        mode_t perm = req->perm ? (mode_t)req->perm : 0644;
        bool raced = false;
        fd = create_file(c, dirfd, base, perm, &raced, why);
        created = writable = fd >= 0;
        if (raced)
            fd = open_existing(dirfd, base, &writable, why);
    }
    if (fd < 0) {
        r = fd;
        goto out;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        *why = "not a regular file";
        r = MMAPIO_E_INVALID_ARGUMENT;
        goto out;
    }
    if (!created && req->exclusive) {
        close(fd);
        *why = "file exists";
        r = MMAPIO_E_EXISTS;
        goto out;
    }
    if (!created && (r = owner_check(req, st.st_uid, why)) != MMAPIO_OK) {
        close(fd);
        goto out;
    }
    if (!created &&
        (r = peer_may_open(dirfd, base, c, want_of(req), &st, why))) {
        close(fd);
        goto out;
    }
    r = adopt_file(h, fd, writable, by_admin(h, c), &st, req->path, &m);
    if (r) {
        *why = quota_why(h->quota);
        if (created)
            unlinkat(dirfd, base, 0);
        goto out;
    }
    if (created || req->truncate) /* sized by the daemon: flush it */
        flushes_wrote(h->flushes, m);
    if (created)
        r = quota_set_size(h->quota, m, req->size, c->cred.uid, why);
    else if (req->truncate)
        r = truncate_held(h, m, req->size, c, why);
    if (!r && !created && req->mode == MMAPIO__MODE__MODE_READ_WRITE)
        r = reserve_for_writer(m, h->cfg->max_map_size, why);
    if (r && created)
        unlinkat(dirfd, base, 0);
    if (!r && created && req->policy)
        mapping_set_policy(m, policy_from_wire(req->policy), NULL);
    /* Watched from here on: the daemon's own sizing is not news. */
    if (!r)
        watch_track_file(h->watches, m);
out:
    close(dirfd);
    if (r && m) {
        registry_retire_if_unused(h->reg, m);
        mapping_unref(m);
        m = NULL;
    }
    if (!r)
        *out = m;
    return r;
}

/*
 * The memfd of a new anonymous mapping. Asked for huge pages, it comes
 * from the hugetlb pool when the pool has room for it and its size is a
 * whole number of huge pages: hugetlbfs sizes, maps and unmaps in whole
 * huge pages only, so any other size would make the memfd (and every
 * holder's mapping) larger than the size asked, charged and reported.
 * Anything else, or a pool that refuses, gets a plain memfd: the client
 * advises transparent huge pages on its mapping. Never a failure of its
 * own. An fd, or -errno.
 */
static int anon_memfd(const char *label, const Mmapio__Open *req,
                      bool *hugetlb)
{
    uint64_t page, free_bytes;
    *hugetlb = false;
    if (req->huge_pages && hugepages_pool(&page, &free_bytes) &&
        req->size % page == 0 && req->size <= free_bytes) {
        int fd = mem_section_new(label, 0, MEM_SEALABLE | MEM_HUGETLB);
        if (fd >= 0) {
            *hugetlb = true;
            return fd;
        }
    }
    return mem_section_new(label, 0, MEM_SEALABLE);
}

/* A new anonymous mapping with a memfd of its own. */
static struct mapping *own_memfd(struct handlers *h, const Mmapio__Open *req,
                                 const char **why, int *err)
{
    char label[RESOLVE_NAME_MAX + 16];
    snprintf(label, sizeof(label), "mmapio:%s", req->path);
    bool hugetlb = false;
    int fd = anon_memfd(label, req, &hugetlb);
    /* 0600 (mem_section_new) keeps a read-only holder from reopening its
     * fd read-write. The daemon's own checks decide. */
    if (fd < 0) {
        *err = from_errno(-fd, why);
        return NULL;
    }
    struct mapping *m = mapping_new(&h->reg->env, MAPPING_ANON, req->path, fd, true);
    if (m)
        m->hugetlb = hugetlb;
    *err = MMAPIO_E_QUOTA;
    return m;
}

static int create_anon(struct handlers *h, struct session *c,
                       const Mmapio__Open *req, struct mapping **out,
                       const char **why)
{
    mode_t perm = req->perm ? (mode_t)req->perm : 0600;
    struct mapping *m;
    int r = MMAPIO_E_QUOTA;
    /* Small ones share a memfd with their access class (model/arena.h). */
    if (arenas_fit(&h->reg->env.arenas, req->size, req->huge_pages)) {
        m = mapping_new_carved(&h->reg->env, req->path, c->cred.uid,
                               c->cred.gid, perm, NULL, 0);
        if (!m)
            r = from_errno(errno, why);
    } else {
        m = own_memfd(h, req, why, &r);
    }
    if (!m)
        return r;
    m->owner = c->cred.uid;
    m->group = c->cred.gid;
    m->perm = perm;
    m->huge_asked = req->huge_pages;
    if (req->policy)
        mapping_set_policy(m, policy_from_wire(req->policy), NULL);
    r = quota_admit(h->quota, m, by_admin(h, c));
    if (r == MMAPIO_OK)
        r = quota_charge_mapping(h->quota, m);
    if (r)
        *why = quota_why(h->quota);
    else
        r = quota_set_size(h->quota, m, req->size, c->cred.uid, why);
    if (!r && registry_add(h->reg, m) < 0)
        r = MMAPIO_E_QUOTA;
    if (r) {
        mapping_unref(m);
        return r;
    }
    *out = m;
    return MMAPIO_OK;
}

static int open_anon(struct handlers *h, struct session *c, const Mmapio__Open *req,
                     struct mapping **out, const char **why)
{
    if (resolve_check_name(req->path)) {
        *why = "invalid anonymous name (1 to 255 bytes of UTF-8, no '/', "
               "no control characters)";
        return MMAPIO_E_INVALID_ARGUMENT;
    }
    struct mapping *m = registry_find_anon(h->reg, req->path);
    if (!m) {
        if (!req->create) {
            *why = "no anonymous mapping of that name";
            return MMAPIO_E_NOT_FOUND;
        }
        return create_anon(h, c, req, out, why);
    }
    if (req->exclusive) {
        *why = "an anonymous mapping of that name exists";
        return MMAPIO_E_EXISTS;
    }
    int r = owner_check(req, m->owner, why);
    if (r)
        return r;
    if (access_check(&c->cred, m->owner, m->group, m->perm, want_of(req))) {
        *why = "the mapping's owner and mode do not allow this access";
        return MMAPIO_E_PERMISSION;
    }
    if (req->truncate) {
        r = truncate_held(h, m, req->size, c, why);
        if (r)
            return r;
    }
    *out = mapping_ref(m);
    return MMAPIO_OK;
}

int open_mapping(struct handlers *h, struct session *c, const Mmapio__Open *req,
                 struct mapping **out, const char **why)
{
    return open_mapping_fd(h, c, req, out, NULL, why);
}

int open_mapping_fd(struct handlers *h, struct session *c,
                    const Mmapio__Open *req, struct mapping **out, int *grant,
                    const char **why)
{
    if (grant)
        *grant = -1;
    if ((req->create || req->truncate) && req->size == 0) {
        *why = "size 0";
        return MMAPIO_E_RESIZE_FAILED;
    }
    if (req->size > h->cfg->max_map_size) {
        *why = "size over the daemon's max_map_size";
        return MMAPIO_E_QUOTA;
    }
    if (req->anonymous) {
        int r = open_anon(h, c, req, out, why);
        if (r == MMAPIO_OK && req->huge_pages)
            (*out)->huge_asked = true; /* for mmapioctl ls */
        if (r == MMAPIO_OK && !(*out)->creator_pid)
            (*out)->creator_pid = c->cred.pid;
        return r;
    }
    int r = open_known(h, c, req, out, grant, why);
    if (r == OPEN_MISS) {
        out_of_fds = false;
        r = open_file(h, c, req, out, why);
        /* Short of fds: the cache gives some back, once. */
        if (out_of_fds && opencache_shrink(h->cache, 64)) {
            out_of_fds = false;
            r = open_file(h, c, req, out, why);
        }
        if (out_of_fds)
            session_out_of_fds("open");
    }
    if (r)
        return r;
    /* Out of the cache, counted again (a holder or pin follows). */
    r = opencache_take(h->cache, *out, by_admin(h, c));
    if (r) {
        *why = quota_why(h->quota);
        (*out)->size_fresh = false;
        registry_retire_if_unused(h->reg, *out);
        mapping_unref(*out);
        if (grant && *grant >= 0)
            close(*grant);
        if (grant)
            *grant = -1;
        return r;
    }
    if (req->huge_pages)
        (*out)->huge_asked = true; /* for mmapioctl ls */
    if (!(*out)->creator_pid) /* for mmapioctl ls */
        (*out)->creator_pid = c->cred.pid;
    return MMAPIO_OK;
}
