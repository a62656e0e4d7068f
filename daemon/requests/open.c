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
#include "config.h"
#include "errmap.h"
#include "policy.h"
#include "quota.h"
#include "registry.h"
#include "resolve.h"
#include "session.h"
#include "watch.h"

static int want_of(const Mmapio__Open *req)
{
    if (req->mode == MMAPIO__MODE__MODE_READ_WRITE || req->truncate)
        return ACCESS_READ | ACCESS_WRITE;
    return ACCESS_READ;
}

static int from_errno(int e, const char **why)
{
    e = e < 0 ? -e : e;
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

/* Opens an existing file read-write if the daemon may, else read-only.
 * An fd, or a negative mmapio_err. */
static int open_existing(int dirfd, const char *base, const struct session *c,
                         bool *writable, const char **why)
{
    int fd = resolve_open(dirfd, base, O_RDWR | O_NONBLOCK, 0, &c->cred);
    *writable = fd >= 0;
    if (fd == -EACCES || fd == -EROFS || fd == -EPERM)
        fd = resolve_open(dirfd, base, O_RDONLY | O_NONBLOCK, 0, &c->cred);
    return fd < 0 ? from_errno(fd, why) : fd;
}

/* An fd, or a negative mmapio_err; *raced when the file appeared meanwhile. */
static int create_file(const struct session *c, int dirfd, const char *base,
                       mode_t perm, bool *raced, const char **why)
{
    struct stat dst;
    if (fstat(dirfd, &dst) < 0)
        return from_errno(errno, why);
    if (access_check(&c->cred, dst.st_uid, dst.st_gid, dst.st_mode,
                     ACCESS_WRITE | ACCESS_EXEC) != MMAPIO_OK) {
        *why = "no permission to create files in that directory";
        return MMAPIO_E_PERMISSION;
    }
    int fd = resolve_open(dirfd, base, O_RDWR | O_CREAT | O_EXCL | O_NONBLOCK,
                          perm, &c->cred);
    *raced = fd == -EEXIST;
    if (fd < 0)
        return from_errno(fd, why);
    /* Exact bits regardless of umask; the file belongs to whoever asked. */
    if (fchmod(fd, perm) < 0 ||
        (geteuid() == 0 && fchown(fd, c->cred.uid, c->cred.gid) < 0)) {
        int r = from_errno(errno, why);
        unlinkat(dirfd, base, 0);
        close(fd);
        return r;
    }
    return fd;
}

/* Finds or creates the registry's mapping for an open file fd (consumed). */
static int adopt_file(struct handlers *h, int fd, bool writable,
                      const struct stat *st, const char *path,
                      struct mapping **out)
{
    struct mapping *m = registry_find_file(h->reg, st->st_dev, st->st_ino);
    if (m) {
        close(fd);
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
    if (quota_charge_mapping(h->quota, m) || registry_add(h->reg, m) < 0) {
        mapping_unref(m);
        return MMAPIO_E_QUOTA;
    }
    *out = m; /* the creation reference becomes the caller's */
    return MMAPIO_OK;
}

/* create_rw on an existing mapping: empty it, then give it `size`. */
static int truncate_held(struct handlers *h, struct mapping *m, uint64_t size,
                         const char **why)
{
    if (m->n_holders > 0) {
        *why = "mapping is held by others; truncating would fault them";
        return MMAPIO_E_BUSY;
    }
    int r = quota_set_size(h->quota, m, 0, why);
    return r ? r : quota_set_size(h->quota, m, size, why);
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
    /* Resolved with the peer's search rights on every directory passed. */
    int dirfd = resolve_parent(h->root_fd, req->path, &base, &c->cred);
    if (dirfd < 0)
        return from_errno(dirfd, why);

    int fd = open_existing(dirfd, base, c, &writable, why);
    if (fd == MMAPIO_E_NOT_FOUND && req->create) {
        mode_t perm = req->perm ? (mode_t)req->perm : 0644;
        bool raced = false;
        fd = create_file(c, dirfd, base, perm, &raced, why);
        created = writable = fd >= 0;
        if (raced)
            fd = open_existing(dirfd, base, c, &writable, why);
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
    if (!created && access_check(&c->cred, st.st_uid, st.st_gid, st.st_mode,
                                 want_of(req)) != MMAPIO_OK) {
        close(fd);
        *why = "the file's owner, group and mode do not allow this access";
        r = MMAPIO_E_PERMISSION;
        goto out;
    }
    r = adopt_file(h, fd, writable, &st, req->path, &m);
    if (r) {
        if (created)
            unlinkat(dirfd, base, 0);
        goto out;
    }
    if (created)
        r = quota_set_size(h->quota, m, req->size, why);
    else if (req->truncate)
        r = truncate_held(h, m, req->size, why);
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

static int create_anon(struct handlers *h, struct session *c,
                       const Mmapio__Open *req, struct mapping **out,
                       const char **why)
{
    char label[RESOLVE_NAME_MAX + 16];
    snprintf(label, sizeof(label), "mmapio:%s", req->path);
    label[249] = '\0'; /* memfd names are at most 249 bytes */
    int fd = memfd_create(label, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    /* A memfd is born 0777: 0600 keeps a read-only holder from reopening
     * its fd read-write through /proc. The daemon's own checks decide. */
    if (fd >= 0 && fchmod(fd, 0600) < 0) {
        close(fd);
        fd = -1;
    }
    if (fd < 0)
        return from_errno(errno, why);
    struct mapping *m = mapping_new(&h->reg->env, MAPPING_ANON, req->path, fd, true);
    if (!m)
        return MMAPIO_E_QUOTA;
    m->owner = c->cred.uid;
    m->group = c->cred.gid;
    m->perm = req->perm ? (mode_t)req->perm : 0600;
    if (req->policy)
        mapping_set_policy(m, policy_from_wire(req->policy), NULL);
    int r = quota_charge_mapping(h->quota, m);
    if (r)
        *why = "over the owner's max_mappings_per_uid";
    else
        r = quota_set_size(h->quota, m, req->size, why);
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
        *why = "invalid anonymous name (1 to 255 bytes, no '/')";
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
    if (access_check(&c->cred, m->owner, m->group, m->perm, want_of(req))) {
        *why = "the mapping's owner and mode do not allow this access";
        return MMAPIO_E_PERMISSION;
    }
    if (req->truncate) {
        int r = truncate_held(h, m, req->size, why);
        if (r)
            return r;
    }
    *out = mapping_ref(m);
    return MMAPIO_OK;
}

int open_mapping(struct handlers *h, struct session *c, const Mmapio__Open *req,
                 struct mapping **out, const char **why)
{
    if ((req->create || req->truncate) && req->size == 0) {
        *why = "size 0";
        return MMAPIO_E_RESIZE_FAILED;
    }
    if (req->size > h->cfg->max_map_size) {
        *why = "size over the daemon's max_map_size";
        return MMAPIO_E_QUOTA;
    }
    return req->anonymous ? open_anon(h, c, req, out, why)
                          : open_file(h, c, req, out, why);
}
