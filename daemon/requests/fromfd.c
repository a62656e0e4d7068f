/*
 * fromfd: a caller's own fd as a mapping (mmapio_from_fd; see fromfd.h).
 *
 * The fd is input like any other: only a regular file (a memfd is one)
 * of a local file system is kept (FUSE and network file systems could
 * hold the loop in fstat, a reopen or the last close); everything else is refused with INVALID_ARGUMENT and handed to
 * the closer thread (closer.h), never closed here. The mode asked for must
 * be one the fd's own access allows (mapping needs read access, a
 * read-write mapping a read-write fd: else PERMISSION); an empty file
 * cannot be mapped writable or copy-on-write (RESIZE_FAILED).
 *
 * Which mapping it becomes:
 *   - a file the registry already holds (same device and inode): that
 *     mapping, as if opened by path;
 *   - a file under the data root: opened by its path there, as the peer,
 *     with every check of an ordinary open (open.c), and then the same
 *     mapping any later open by path finds;
 *   - anything else (outside the root, a memfd, a file the peer could not
 *     open by path): a private mapping, held by this client alone. It
 *     never enters the registry, so it is found by no name, no identity
 *     (it cannot shadow or collide with a registered file's dev/ino) and
 *     no listing; it lives while its holders do.
 * Holders, policies, watches and flushes then work as for any mapping.
 */
#include "fromfd.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "access.h"
#include "closer.h"
#include "config.h"
#include "errmap.h"
#include "membackend.h"
#include "names.h"
#include "open.h"
#include "policy.h"
#include "quota.h"
#include "registry.h"
#include "session.h"
#include "watch.h"

void fromfd_offer(struct session *s, uint64_t id)
{
    /* An fd whose close never ends (a FUSE file whose server does not
     * answer) holds its uid's closer: no more fds of that uid come in
     * while it is behind, else they pile up to CLOSER_HARD (closer.h).
     * Other uids have closers of their own. The kernel refuses fds
     * outside the window. */
    if (closer_busy(s->cred.uid)) {
        session_reply_err(s, id, MMAPIO_E_BUSY, "the daemon is behind in "
                          "closing fds it was given; try again");
        return;
    }
    s->fd_wanted = true;
    if (s->port->want_fd)
        s->port->want_fd(s);
    session_reply_ok(s, id);
}

/* The fd's access against the mode: MMAPIO_OK or PERMISSION. */
static int check_access(int fd, mmapio_mode mode)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || (fl & O_PATH))
        return MMAPIO_E_PERMISSION;
    int acc = fl & O_ACCMODE;
    if (acc == O_WRONLY)
        return MMAPIO_E_PERMISSION; /* mapping needs read access */
    if (mode == MMAPIO_MODE_READ_WRITE && acc != O_RDWR)
        return MMAPIO_E_PERMISSION;
    return MMAPIO_OK;
}

/* The path of fd relative to the data root, if it is under it: 0, or -1. */
static int path_under_root(const struct handlers *h, int fd, char *rel,
                           size_t cap)
{
    char root[PATH_MAX], at[PATH_MAX];
    int nr = mem_fd_path(h->root_fd, root, sizeof(root));
    int na = mem_fd_path(fd, at, sizeof(at));
    if (nr <= 0 || na <= 0)
        return -1;
    size_t lr = (size_t)nr;
    if (lr == 1) /* the root is "/" */
        lr = 0;
    if (strncmp(at, root, lr) || at[lr] != '/' || !at[lr + 1] ||
        strlen(at + lr + 1) >= cap)
        return -1;
    strcpy(rel, at + lr + 1);
    return 0;
}

/* The registered mapping of the file under the root that fd is (opened
 * by path as the peer, open.c), or NULL. */
static struct mapping *by_path(struct session *s, int fd, mmapio_mode mode,
                               const struct stat *st)
{
    char rel[PATH_MAX];
    const char *why = "";
    struct mapping *m = NULL;
    if (path_under_root(s->h, fd, rel, sizeof(rel)) < 0)
        return NULL;
    Mmapio__Open o = MMAPIO__OPEN__INIT;
    o.path = rel;
    o.mode = (Mmapio__Mode)mode;
    if (open_mapping(s->h, s, &o, &m, &why) != MMAPIO_OK)
        return NULL;
    if (m->kind == MAPPING_FILE && m->dev == st->st_dev && m->ino == st->st_ino)
        return m;
    registry_retire_if_unused(s->h->reg, m); /* renamed meanwhile */
    mapping_unref(m);
    return NULL;
}

/* A private mapping owning fd (consumed). MMAPIO_OK or QUOTA. */
static int make_private(struct session *s, int fd, const char *path,
                        const struct stat *st, struct mapping **out)
{
    char name[128];
    bool writable = (fcntl(fd, F_GETFL) & O_ACCMODE) == O_RDWR;
    names_escape(path && *path ? path : "(fd)", name, sizeof(name));
    struct mapping *m = mapping_new(&s->h->reg->env, MAPPING_FILE, name, fd,
                                    writable);
    if (!m)
        return MMAPIO_E_QUOTA;
    m->dev = st->st_dev;
    m->ino = st->st_ino;
    m->size = (uint64_t)st->st_size;
    m->owner = st->st_uid;
    m->group = st->st_gid;
    m->perm = st->st_mode & 07777;
    bool admin = access_is_admin(&s->cred, s->h->cfg->has_admin_group,
                                 s->h->cfg->admin_gid);
    if (quota_admit(s->h->quota, m, admin)) {
        mapping_unref(m);
        return MMAPIO_E_QUOTA;
    }
    watch_track_file(s->h->watches, m);
    *out = m;
    return MMAPIO_OK;
}

/* The mapping fd stands for (fd consumed). MMAPIO_OK or an error. */
static int find_mapping(struct session *s, int fd, mmapio_mode mode,
                        const char *path, const struct stat *st,
                        struct mapping **out)
{
    struct mapping *m = registry_find_file(s->h->reg, st->st_dev, st->st_ino);
    if (!m)
        m = by_path(s, fd, mode, st);
    else
        mapping_ref(m);
    if (m) {
        closer_give(s->cred.uid, fd);
        *out = m;
        return MMAPIO_OK;
    }
    return make_private(s, fd, path, st, out);
}


/* The mount of fd, as /proc/self/fdinfo says (asks no file system). */
static int fd_mnt_id(int fd)
{
    char path[64], line[128];
    int id = -1;
    snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    while (id < 0 && fgets(line, sizeof(line), f))
        if (sscanf(line, "mnt_id: %d", &id) != 1)
            id = -1;
    fclose(f);
    return id;
}

/* File systems whose open, stat or close may wait on someone else: a
 * FUSE server (possibly the peer itself), a network. */
static bool may_block(const char *type)
{
    static const char *const slow[] = { "fuse", "nfs", "cifs", "smb", "9p",
                                        "ceph", "afs", "gfs2", "ocfs2",
                                        "glusterfs", "lustre", NULL };
    for (const char *const *t = slow; *t; t++)
        if (!strncmp(type, *t, strlen(*t)))
            return true;
    return false;
}

/* 1: mount id found in `mountinfo` and local; 0: found, may block; -1:
 * not listed there. */
static int mount_local(const char *mountinfo, int id)
{
    char line[4096], type[64];
    int r = -1, mid;
    FILE *f = fopen(mountinfo, "re");
    if (!f)
        return -1;
    while (r < 0 && fgets(line, sizeof(line), f)) {
        const char *dash = strstr(line, " - ");
        if (sscanf(line, "%d", &mid) != 1 || mid != id || !dash ||
            sscanf(dash + 3, "%63s", type) != 1)
            continue;
        r = !may_block(type);
    }
    fclose(f);
    return r;
}

/*
 * Whether the daemon may touch fd's file at all: asked before fstat,
 * which a FUSE server can hold (getattr), as it can a reopen or the last
 * close. Only files on mounts the daemon (or the peer, in its own mount
 * namespace) sees as a local file system, and memfds (on no listed mount),
 * pass.
 */
static bool safe_to_touch(const struct session *s, int fd)
{
    char proc[64];
    int id = fd_mnt_id(fd);
    if (id < 0)
        return false;
    int r = mount_local("/proc/self/mountinfo", id);
    if (r < 0) {
        snprintf(proc, sizeof(proc), "/proc/%d/mountinfo", (int)s->cred.pid);
        r = mount_local(proc, id);
    }
    if (r >= 0)
        return r == 1;
    return mem_is_section(fd) == 1;
}

/* Checks fd (kept only when it passes: consumed either way). */
static int validate(const struct session *s, int fd, mmapio_mode mode,
                    struct stat *st, const char **why)
{
    if (!safe_to_touch(s, fd)) {
        *why = "not a file of a local file system, nor a memfd";
        return MMAPIO_E_INVALID_ARGUMENT;
    }
    if (fstat(fd, st) < 0 || !S_ISREG(st->st_mode)) {
        *why = "not a regular file or memfd";
        return MMAPIO_E_INVALID_ARGUMENT;
    }
    if (check_access(fd, mode)) {
        *why = "the fd's own access does not allow this mode";
        return MMAPIO_E_PERMISSION;
    }
    if (st->st_size == 0 && mode != MMAPIO_MODE_READ_ONLY) {
        *why = "empty file";
        return MMAPIO_E_RESIZE_FAILED;
    }
    return MMAPIO_OK;
}

void fromfd_open(struct session *s, uint64_t id, const Mmapio__FromFd *q,
                 int fd)
{
    struct stat st;
    struct mapping *m;
    const char *why = "";
    s->fd_wanted = false;
    if (fd < 0) {
        session_reply_err(s, id, MMAPIO_E_INVALID_ARGUMENT,
                          "from_fd carries no fd (send fd_offer first)");
        return;
    }
    if ((unsigned)q->mode > MMAPIO__MODE__MODE_COPY_ON_WRITE ||
        !names_valid(q->path)) {
        closer_give(s->cred.uid, fd);
        session_reply_err(s, id, MMAPIO_E_INVALID_ARGUMENT, "bad mode or path");
        return;
    }
    mmapio_mode mode = (mmapio_mode)q->mode;
    int r = validate(s, fd, mode, &st, &why);
    if (!r && (uint64_t)st.st_size > s->h->cfg->max_map_size) {
        why = "size over the daemon's max_map_size";
        r = MMAPIO_E_QUOTA;
    }
    if (r) {
        closer_give(s->cred.uid, fd);
        session_reply_err(s, id, r, "from_fd: %s", why);
        return;
    }
    r = find_mapping(s, fd, mode, q->path, &st, &m);
    if (r) {
        session_reply_err(s, id, r, "from_fd: %s", errmap_text(r));
        return;
    }
    session_grant(s, id, m, mode, "from_fd");
}
