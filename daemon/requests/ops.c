/* ops: request validation and dispatch (see ops.h). */
#include "ops.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "access.h"
#include "admin.h"
#include "config.h"
#include "errmap.h"
#include "closer.h"
#include "copy.h"
#include "flushes.h"
#include "fromfd.h"
#include "log.h"
#include "names.h"
#include "open.h"
#include "pbarena.h"
#include "policy.h"
#include "quota.h"
#include "registry.h"
#include "reqmsg.h"
#include "resolve.h"
#include "session.h"
#include "watch.h"
#include "wire.h"
#include "reattach.h"
#include "ringdrain.h"

static void reply_flush(struct session *s, uint64_t id, uint32_t ok,
                        uint32_t failed, int error)
{
    if (failed)
        session_reply_err(s, id, MMAPIO_E_FLUSH_FAILED, "flush failed: %s",
                          strerror(-error));
    else
        session_reply_ok(s, id);
}

static struct holder *find_holder(struct session *s, uint64_t id, uint64_t handle)
{
    struct holder *h = session_find_holder(s, handle);
    if (h)
        return h;
    session_reply_err(s, id, MMAPIO_E_NOT_FOUND, "no handle %llu on this connection",
              (unsigned long long)handle);
    return NULL;
}

static bool check_writer(struct session *s, uint64_t id, const struct holder *h)
{
    if (h->mode == MMAPIO_MODE_READ_WRITE)
        return true;
    session_reply_err(s, id, MMAPIO_E_INVALID_MODE, "handle is %s",
              h->mode == MMAPIO_MODE_READ_ONLY ? "read-only" : "copy-on-write");
    return false;
}

/* The mapping's size as the kernel has it now. A change the daemon did not
 * make is announced like any other: the quota service reserves a file's
 * growth, or undoes it, before any holder hears of it (quota.h). */
static uint64_t current_size(struct mapping *m)
{
    uint64_t was = m->size;
    if (mapping_sync_size(m) != was)
        mapping_changed(m, MAPPING_RESIZED, NULL);
    return m->size;
}

/* ---- operations ------------------------------------------------------- */

static void op_hello(struct session *s, uint64_t id, const Mmapio__Hello *m)
{
    if (m->protocol != WIRE_PROTOCOL) {
        s->close_when_sent = true;
        session_reply_err(s, id, MMAPIO_E_PROTOCOL, REQMSG_BAD_PROTOCOL,
                  m->protocol, WIRE_PROTOCOL);
        return;
    }
    /* Shown by mmapioctl and in logs: odd bytes become \xNN. */
    if (m->client_name)
        names_escape(m->client_name, s->name, sizeof(s->name));
    s->hello_done = true;

    struct reqmsg b;
    session_reply(s, reqmsg_hello(&b, id, s->h->cfg->max_frame,
                                  s->h->cfg->max_inflight, s->h->cfg->max_events,
                                  s->h->reg->env.ctl.n_slots),
                  s->h->reg->env.ctl.ro_fd);
}

static void op_open(struct session *s, uint64_t id, const Mmapio__Open *o)
{
    struct mapping *m;
    const char *why = "";
    int fd;

    if (!reqmsg_open_valid(o)) {
        session_reply_err(s, id, MMAPIO_E_INVALID_ARGUMENT, REQMSG_BAD_OPEN);
        return;
    }
    int r = open_mapping_fd(s->h, s, o, &m, &fd, &why);
    if (r) {
        session_reply_err(s, id, r, "%s: %s", o->path, why);
        return;
    }
    session_grant_fd(s, id, m, (mmapio_mode)o->mode, fd, o->path);
}

static void op_close(struct session *s, uint64_t id, const Mmapio__Close *m)
{
    if (m->no_reply) {
        struct holder *h = session_find_holder(s, m->handle);
        if (h)
            session_release_holder(h, false);
        return;
    }
    struct holder *h = find_holder(s, id, m->handle);
    if (!h)
        return;
    session_release_holder(h, false);
    session_reply_ok(s, id);
}

static void op_resize(struct session *s, uint64_t id, const Mmapio__Resize *m)
{
    struct holder *h = find_holder(s, id, m->handle);
    const char *why = "";
    if (!h || !check_writer(s, id, h))
        return;
    struct mapping *map = h->map;
    if (m->size == 0 || m->size > s->h->cfg->max_map_size) {
        session_reply_err(s, id, MMAPIO_E_RESIZE_FAILED, "size %llu not allowed",
                  (unsigned long long)m->size);
        return;
    }
    uint64_t old = current_size(map);
    if (m->size < old)
        ringdrain_settle(map, s); /* releases recorded, not yet read */
    if (m->size < old && map->n_holders > 1)
        session_reap_gone(map, s); /* holders whose process just exited */
    if (m->size < old && map->n_holders > 1) {
        session_reply_err(s, id, MMAPIO_E_BUSY,
                  "%u other holders; shrinking would fault their accesses",
                  map->n_holders - 1);
        return;
    }
    int r = quota_set_size(s->h->quota, map, m->size, s->cred.uid, &why);
    if (r) {
        session_reply_err(s, id, r, "resize failed: %s", why);
        return;
    }
    if (m->size != old)
        mapping_changed(map, MAPPING_RESIZED, s);
    session_reply_ok(s, id);
}

static void op_flush(struct session *s, uint64_t id, const Mmapio__Flush *m)
{
    struct holder *h = find_holder(s, id, m->handle);
    if (!h)
        return;
    struct mapping *map = h->map;
    uint64_t size = current_size(map);
    if (m->offset > size || m->len > size - m->offset) {
        session_reply_err(s, id, MMAPIO_E_OUT_OF_BOUNDS, "range beyond %llu bytes",
                  (unsigned long long)size);
        return;
    }
    /* Read-only and copy-on-write handles have nothing of theirs to flush;
     * anonymous memory has no disk. */
    if (h->mode != MMAPIO_MODE_READ_WRITE || map->kind == MAPPING_ANON ||
        !map->fd_writable) {
        session_reply_ok(s, id);
        return;
    }
    if (session_flush(s, id, &map, 1, reply_flush))
        session_reply_err(s, id, MMAPIO_E_QUOTA, "out of memory");
}

static void op_stat(struct session *s, uint64_t id, const Mmapio__Stat *m)
{
    struct holder *h = find_holder(s, id, m->handle);
    if (!h)
        return;
    struct reqmsg b;
    uint64_t size = current_size(h->map);
    ringdrain_settle(h->map, s); /* releases recorded: holders counted right */
    session_reply(s, reqmsg_stat(&b, id, size, h->map->n_holders, h->map->policy), -1);
}

static void delete_anon(struct session *s, uint64_t id, const char *name)
{
    struct mapping *m = resolve_check_name(name) ? NULL
                        : registry_find_anon(s->h->reg, name);
    if (!m) {
        session_reply_err(s, id, MMAPIO_E_NOT_FOUND, REQMSG_NO_ANON, name);
        return;
    }
    if (access_is_owner(&s->cred, m->owner)) {
        session_reply_err(s, id, MMAPIO_E_PERMISSION, "'%s' belongs to uid %u", name,
                  (unsigned)m->owner);
        return;
    }
    mapping_mark_removed(m);
    registry_remove(s->h->reg, m);
    session_reply_ok(s, id);
}

static int unlink_file(struct session *s, const char *path, struct stat *st)
{
    const char *base;
    struct stat dst;
    int u, r = resolve_check_path(path);
    if (r)
        return r;
    int dirfd = resolve_parent(s->h->root_fd, path, &base, &s->cred);
    if (dirfd < 0)
        return dirfd == -EXDEV ? MMAPIO_E_PERMISSION : errmap_from_errno(dirfd);
    if (fstatat(dirfd, base, st, AT_SYMLINK_NOFOLLOW) < 0 || fstat(dirfd, &dst) < 0)
        r = errmap_from_errno(errno);
    else if (S_ISDIR(st->st_mode))
        r = MMAPIO_E_INVALID_ARGUMENT;
    else if ((u = resolve_unlink(dirfd, base, &s->cred)) != -ENOTSUP)
        r = u == -EACCES || u == -EPERM ? MMAPIO_E_PERMISSION /* the kernel's word */
            : u < 0 ? errmap_from_errno(-u) : MMAPIO_OK;
    else if (access_check(&s->cred, dst.st_uid, dst.st_gid, dst.st_mode,
                          ACCESS_WRITE | ACCESS_EXEC))
        r = MMAPIO_E_PERMISSION;
    else if ((dst.st_mode & S_ISVTX) && s->cred.uid != 0 &&
             s->cred.uid != st->st_uid && s->cred.uid != dst.st_uid)
        r = MMAPIO_E_PERMISSION; /* sticky directory: owners only */
    else if (unlinkat(dirfd, base, 0) < 0)
        r = errmap_from_errno(errno);
    close(dirfd);
    return r;
}

static void op_delete(struct session *s, uint64_t id, const Mmapio__Delete *m)
{
    struct stat st;
    if (!names_valid(m->path)) {
        session_reply_err(s, id, MMAPIO_E_INVALID_ARGUMENT, NAMES_REFUSED);
        return;
    }
    if (m->anonymous) {
        delete_anon(s, id, m->path);
        return;
    }
    int r = unlink_file(s, m->path, &st);
    if (r) {
        session_reply_err(s, id, r, "cannot delete %s: %s", m->path, errmap_text(r));
        return;
    }
    /* REMOVED only once the file's last link is gone: a file that keeps
     * another name still exists (inotify's IN_ATTRIB tells its watchers
     * METADATA). */
    struct mapping *map = registry_find_file(s->h->reg, st.st_dev, st.st_ino);
    struct stat now;
    if (map && S_ISREG(st.st_mode) &&
        (fstat(map->fd, &now) < 0 || now.st_nlink == 0))
        mapping_mark_removed(map);
    session_reply_ok(s, id);
}

static void op_set_policy(struct session *s, uint64_t id, const Mmapio__SetPolicy *m)
{
    struct holder *h = find_holder(s, id, m->handle);
    if (!h || !check_writer(s, id, h))
        return;
    mmapio_flush_policy p;
    if (!reqmsg_policy(m->policy, &p)) {
        session_reply_err(s, id, MMAPIO_E_INVALID_ARGUMENT, REQMSG_BAD_POLICY);
        return;
    }
    mapping_set_policy(h->map, p, s);
    session_reply_ok(s, id);
}

static void op_watch(struct session *s, uint64_t id, const Mmapio__Watch *m)
{
    struct holder *h = find_holder(s, id, m->handle);
    uint64_t wid;
    if (!h)
        return;
    int r = watch_add(s->h->watches, &s->watches, h->map, &wid);
    if (r) {
        session_reply_err(s, id, r, "cannot watch: %s", errmap_text(r));
        return;
    }
    struct reqmsg b;
    session_reply(s, reqmsg_watch(&b, id, wid, 0), -1);
}

static void op_unwatch(struct session *s, uint64_t id, const Mmapio__Unwatch *m)
{
    int r = watch_remove(s->h->watches, &s->watches, m->watch_id);
    if (r)
        session_reply_err(s, id, r, "no watch %llu on this connection",
                  (unsigned long long)m->watch_id);
    else
        session_reply_ok(s, id);
}

/* Notices a client's socket holds at most, about (its default send
 * buffer over the kernel's cost of a small datagram): a run this long
 * may have ended in notices the client had to drop. */
#define NOTICE_RUN_FULL 200

/* The client dropped notices and cannot say of which holders (a notice
 * of handle 0, or a run of notices that may have filled its socket).
 * Every mapping it holds read-write may have changed: their watchers get
 * an overflow, their timed flush is due. Work in proportion to what the
 * client holds. */
static void notices_lost(struct session *s)
{
    uint64_t pass = ++s->h->walk; /* each mapping told once */
    for (struct holder *h = s->holders.first; h; h = h->owner_next) {
        if (h->mode != MMAPIO_MODE_READ_WRITE || h->group->mark == pass)
            continue;
        h->group->mark = pass;
        watch_notify(s->h->watches, h->map,
                     MMAPIO__EVENT_KIND__EVENT_OVERFLOW, false, 0, 0);
        flushes_dirty(s->h->flushes, h->map);
    }
}

void ops_drained(struct session *s)
{
    if (s->notice_run >= NOTICE_RUN_FULL)
        notices_lost(s);
    s->notice_run = 0;
}

void ops_closing(struct session *s, bool unread)
{
    if (unread)
        s->notice_run = NOTICE_RUN_FULL;
    ops_drained(s);
}

/* One-way: never answered. A notice that does not fit is dropped. */
static void op_notice(struct session *s, const Mmapio__Notice *n)
{
    if (n->handle == 0 && n->lost) {
        notices_lost(s);
        return;
    }
    struct holder *h = session_find_holder(s, n->handle);
    if (!h || h->mode != MMAPIO_MODE_READ_WRITE)
        return;
    struct mapping *m = h->map;
    if (n->lost)
        watch_notify(s->h->watches, m, MMAPIO__EVENT_KIND__EVENT_OVERFLOW, false, 0, 0);
    switch (n->kind) {
    case MMAPIO__NOTICE_KIND__NOTICE_DIRTY:
        flushes_dirty(s->h->flushes, m);
        break;
    case MMAPIO__NOTICE_KIND__NOTICE_WRITE:
        if (n->offset > m->size || n->len > m->size - n->offset)
            return;
        watch_notify(s->h->watches, m, MMAPIO__EVENT_KIND__EVENT_MODIFIED, true,
                     n->offset, n->len);
        if (n->hold_ms)
            watch_hold(s->h->watches, m, n->hold_ms);
        flushes_dirty(s->h->flushes, m);
        break;
    case MMAPIO__NOTICE_KIND__NOTICE_RING:
        break; /* read by ringdrain_kick before this */
    case MMAPIO__NOTICE_KIND__NOTICE_RAW_WRITER:
        if (!h->raw_writer) {
            h->raw_writer = true;
            flushes_raw_writer(s->h->flushes, m, +1);
        }
        break;
    case MMAPIO__NOTICE_KIND__NOTICE_FLUSH:
        /* A writer's threshold, handed over: flushed in its uid's turn,
         * or joined to the flush already queued (flushes.h). */
        if (m->kind == MAPPING_FILE && m->fd_writable &&
            flushes_request(s->h->flushes, m, s->cred.uid, NULL, NULL))
            log_warn("out of memory: threshold flush of %s dropped", m->name);
        break;
    default:
        break;
    }
}

/* ---- dispatch --------------------------------------------------------- */

/* Unknown fields anywhere in the message tree: a peer we do not understand. */
static bool has_unknown(const ProtobufCMessage *m)
{
    if (!m)
        return false;
    if (m->n_unknown_fields)
        return true;
    const ProtobufCMessageDescriptor *d = m->descriptor;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->type != PROTOBUF_C_TYPE_MESSAGE || f->label == PROTOBUF_C_LABEL_REPEATED)
            continue;
        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            uint32_t which;
            memcpy(&which, (const char *)m + f->quantifier_offset, sizeof(which));
            if (which != f->id)
                continue;
        }
        const ProtobufCMessage *sub;
        memcpy(&sub, (const char *)m + f->offset, sizeof(sub));
        if (has_unknown(sub))
            return true;
    }
    return false;
}

static void dispatch(struct session *s, const Mmapio__Request *q)
{
    switch (q->op_case) {
    case MMAPIO__REQUEST__OP_HELLO: op_hello(s, q->id, q->hello); break;
    case MMAPIO__REQUEST__OP_PING: session_reply_ok(s, q->id); break;
    case MMAPIO__REQUEST__OP_OPEN: op_open(s, q->id, q->open); break;
    case MMAPIO__REQUEST__OP_CLOSE: op_close(s, q->id, q->close); break;
    case MMAPIO__REQUEST__OP_RESIZE: op_resize(s, q->id, q->resize); break;
    case MMAPIO__REQUEST__OP_FLUSH: op_flush(s, q->id, q->flush); break;
    case MMAPIO__REQUEST__OP_STAT: op_stat(s, q->id, q->stat); break;
    case MMAPIO__REQUEST__OP_DELETE_MAP: op_delete(s, q->id, q->delete_map); break;
    case MMAPIO__REQUEST__OP_SET_POLICY: op_set_policy(s, q->id, q->set_policy); break;
    case MMAPIO__REQUEST__OP_WATCH: op_watch(s, q->id, q->watch); break;
    case MMAPIO__REQUEST__OP_UNWATCH: op_unwatch(s, q->id, q->unwatch); break;
    case MMAPIO__REQUEST__OP_ADMIN_STATUS:
        ringdrain_settle_all(s->h); /* holders released in rings: gone */
        admin_status(s, q->id);
        break;
    case MMAPIO__REQUEST__OP_ADMIN_LIST:
        ringdrain_settle_all(s->h);
        admin_list(s, q->id, q->admin_list);
        break;
    case MMAPIO__REQUEST__OP_ADMIN_CLIENTS:
        ringdrain_settle_all(s->h);
        admin_clients(s, q->id, q->admin_clients);
        break;
    case MMAPIO__REQUEST__OP_ADMIN_FLUSH: admin_flush(s, q->id, q->admin_flush); break;
    case MMAPIO__REQUEST__OP_ADMIN_POLICY: admin_policy(s, q->id, q->admin_policy); break;
    case MMAPIO__REQUEST__OP_ADMIN_STAT:
        ringdrain_settle_all(s->h);
        admin_stat(s, q->id, q->admin_stat);
        break;
    case MMAPIO__REQUEST__OP_ADMIN_WATCH: admin_watch(s, q->id, q->admin_watch); break;
    case MMAPIO__REQUEST__OP_FD_OFFER: fromfd_offer(s, q->id); break;
    case MMAPIO__REQUEST__OP_FROM_FD: fromfd_open(s, q->id, q->from_fd, -1); break;
    case MMAPIO__REQUEST__OP_COPY: copy_request(s, q->id, q->copy); break;
    case MMAPIO__REQUEST__OP_WRITE_RING: ringdrain_request(s, q->id); break;
    case MMAPIO__REQUEST__OP_REATTACH: reattach_request(s, q->id, q->reattach, -1); break;
    case MMAPIO__REQUEST__OP_WAIT:
    case MMAPIO__REQUEST__OP_WAKE:
        session_reply_err(s, q->id, MMAPIO_E_INVALID_ARGUMENT,
                          "wait/wake through the daemon is for systems without a "
                          "shared-memory futex: on Linux the library uses the kernel's");
        break;
    default:
        session_reply_err(s, q->id, MMAPIO_E_PROTOCOL, "unknown operation %d", (int)q->op_case);
        break;
    }
}

/* An Open recognised by wire_is_open: what the decoder would have made
 * of it (wire_is_open accepts only protobuf-c's bytes), dispatched. */
static void quick_open(struct session *s, uint64_t id, const struct wire_open *wo)
{
    char path[WIRE_QUICK_PATH + 1];
    Mmapio__Request q = MMAPIO__REQUEST__INIT;
    Mmapio__Open op = MMAPIO__OPEN__INIT;
    Mmapio__FlushPolicy pol = MMAPIO__FLUSH_POLICY__INIT;
    Mmapio__Owner owner = MMAPIO__OWNER__INIT;
    memcpy(path, wo->path, wo->path_len);
    path[wo->path_len] = '\0';
    op.path = path;
    op.anonymous = wo->anonymous;
    op.mode = (Mmapio__Mode)wo->mode;
    op.create = wo->create;
    op.truncate = wo->truncate;
    op.exclusive = wo->exclusive;
    op.size = wo->size;
    pol.kind = (Mmapio__FlushKind)wo->policy_kind;
    pol.value = wo->policy_value;
    op.policy = &pol;
    op.perm = wo->perm;
    owner.uid = wo->owner_uid;
    op.owner = wo->has_owner ? &owner : NULL;
    op.huge_pages = wo->huge_pages;
    q.id = id;
    q.op_case = MMAPIO__REQUEST__OP_OPEN;
    q.open = &op;
    ringdrain_kick(s, &q); /* writes made before this request come first */
    dispatch(s, &q);
}

/* Decoding room for the common requests (ping, open, close, notices...):
 * they cost no malloc; a bigger one spills to malloc (pbarena.h). */
#define DECODE_ARENA 2048

bool ops_handle(struct session *s, const uint8_t *buf, size_t len, bool had_fds)
{
    _Alignas(16) uint8_t room[DECODE_ARENA];
    struct pbarena a;
    bool one_way = false;
    uint64_t id;
    /* A ping in the bytes protobuf-c packs it in: what the full path below
     * does for it, without decoding (wire.h). */
    if (s->hello_done && !had_fds && wire_is_ping(buf, len, &id)) {
        if (s->ring) {
            Mmapio__Request q = MMAPIO__REQUEST__INIT;
            q.id = id;
            q.op_case = MMAPIO__REQUEST__OP_PING;
            ringdrain_kick(s, &q);
        }
        session_reply_ok(s, id);
        return false;
    }
    /* An open likewise, read by hand into the messages dispatch takes. */
    struct wire_open wo;
    if (s->hello_done && !had_fds && wire_is_open(buf, len, &id, &wo)) {
        quick_open(s, id, &wo);
        return false;
    }
    pbarena_init(&a, room, sizeof(room));
    Mmapio__Request *q = mmapio__request__unpack(&a.alloc, len, buf);
    if (!q) {
        s->close_when_sent = !s->hello_done;
        session_reply_err(s, 0, MMAPIO_E_PROTOCOL, "malformed request");
        return false;
    }
    if (had_fds)
        session_reply_err(s, q->id, MMAPIO_E_PROTOCOL, "requests may not carry file descriptors");
    else if (has_unknown(&q->base))
        session_reply_err(s, q->id, MMAPIO_E_PROTOCOL, "request has fields this daemon does not know");
    else if (s->hello_done && q->op_case == MMAPIO__REQUEST__OP_NOTICE) {
        ringdrain_kick(s, q);
        /* A RING notice a full socket refused loses nothing (its writer
         * arms the ring again, wring.h): only the others make a run. */
        if (q->notice->kind != MMAPIO__NOTICE_KIND__NOTICE_RING)
            s->notice_run++;
        op_notice(s, q->notice);
        one_way = true;
    }
    else if (!s->hello_done && q->op_case != MMAPIO__REQUEST__OP_HELLO) {
        s->close_when_sent = true;
        session_reply_err(s, q->id, MMAPIO_E_PROTOCOL, "the first request must be hello");
    } else {
        ringdrain_kick(s, q); /* writes made before this request come first */
        dispatch(s, q);
    }
    pbarena_free_unpacked(&a, &q->base);
    return one_way;
}

void ops_handle_fd(struct session *s, const uint8_t *buf, size_t len, int fd)
{
    _Alignas(16) uint8_t room[DECODE_ARENA];
    struct pbarena a;
    pbarena_init(&a, room, sizeof(room));
    Mmapio__Request *q = mmapio__request__unpack(&a.alloc, len, buf);
    if (q && s->hello_done && q->op_case == MMAPIO__REQUEST__OP_FROM_FD &&
        !has_unknown(&q->base)) {
        fromfd_open(s, q->id, q->from_fd, fd);
        pbarena_free_unpacked(&a, &q->base);
        return;
    }
    if (q && s->hello_done && q->op_case == MMAPIO__REQUEST__OP_REATTACH &&
        !has_unknown(&q->base)) {
        reattach_request(s, q->id, q->reattach, fd);
        pbarena_free_unpacked(&a, &q->base);
        return;
    }
    if (q)
        pbarena_free_unpacked(&a, &q->base);
    closer_give(s->cred.uid, fd);
    ops_handle(s, buf, len, true);
}
