/* ops: request validation and dispatch, holders (see ops.h). */
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
#include "conn.h"
#include "errmap.h"
#include "flushes.h"
#include "log.h"
#include "mapping.h"
#include "open.h"
#include "policy.h"
#include "resolve.h"
#include "sd.h"
#include "server.h"
#include "watch.h"
#include "wire.h"

/* ---- replies -------------------------------------------------------- */

void ops_reply_err(struct conn *c, uint64_t id, int err, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    Mmapio__Reply r = MMAPIO__REPLY__INIT;
    r.id = id;
    r.error = err;
    r.message = msg;
    c->d->stats.errors++;
    conn_send_reply(c, &r, -1);
}

void ops_reply_ok(struct conn *c, uint64_t id)
{
    Mmapio__Reply r = MMAPIO__REPLY__INIT;
    r.id = id;
    conn_send_reply(c, &r, -1);
}

void ops_tell_holders(struct mapping *m, struct conn *skip,
                      Mmapio__EventKind kind)
{
    Mmapio__Event ev = MMAPIO__EVENT__INIT;
    Mmapio__FlushPolicy pol;
    uint64_t stamp = conn_new_stamp();
    ev.kind = kind;
    ev.map_id = m->id;
    ev.size = m->size;
    policy_to_wire(m->policy, &pol);
    ev.policy = &pol;
    for (struct holder *h = m->holders; h; h = h->map_next) {
        struct conn *c = h->conn;
        if (c == skip || c->mark == stamp)
            continue;
        c->mark = stamp;
        conn_send_event(c, &ev);
    }
}

void ops_reply_flush(struct conn *c, uint64_t id, int result)
{
    if (result < 0)
        ops_reply_err(c, id, MMAPIO_E_FLUSH_FAILED, "flush failed: %s",
                  strerror(-result));
    else
        ops_reply_ok(c, id);
}

/* ---- holders ---------------------------------------------------------- */

static int add_holder(struct conn *c, struct mapping *m, mmapio_mode mode,
                      struct holder **out)
{
    if (c->n_holders >= c->d->cfg.max_handles_per_client) {
        log_warn("client %llu (pid %d) refused: max_handles_per_client (%u)",
                 (unsigned long long)c->id, (int)c->cred.pid,
                 c->d->cfg.max_handles_per_client);
        return MMAPIO_E_QUOTA;
    }
    struct holder *h = calloc(1, sizeof(*h));
    if (!h || registry_add_holder(&c->d->reg, h) < 0) {
        free(h);
        return MMAPIO_E_QUOTA;
    }
    h->mode = mode;
    h->conn = c;
    mapping_attach(m, h);
    h->conn_next = c->holders;
    if (c->holders)
        c->holders->conn_prev = h;
    c->holders = h;
    c->n_holders++;
    *out = h;
    return MMAPIO_OK;
}

/*
 * Lets go of a holder. Pending data of a file is flushed when its last
 * holder goes, and when a writer's connection died (it may have written
 * just before). A file nobody holds leaves the registry.
 */
static void release_holder(struct holder *h, bool died)
{
    struct conn *c = h->conn;
    struct daemon *d = c->d;
    struct mapping *m = mapping_ref(h->map);
    bool writer = h->mode == MMAPIO_MODE_READ_WRITE;

    if (h->raw_writer)
        flushes_raw_writer(m, -1);
    if (h->conn_prev)
        h->conn_prev->conn_next = h->conn_next;
    else
        c->holders = h->conn_next;
    if (h->conn_next)
        h->conn_next->conn_prev = h->conn_prev;
    c->n_holders--;
    registry_remove_holder(&d->reg, h);
    mapping_detach(m, h);
    free(h);

    if (m->kind == MAPPING_FILE && m->fd_writable &&
        (m->n_holders == 0 || (died && writer)))
        flushes_background(m);
    mapping_retire_if_unused(m);
    mapping_unref(m);
}

void ops_release_all(struct conn *c)
{
    watch_release_conn(c);
    while (c->holders)
        release_holder(c->holders, true);
}

static struct holder *find_holder(struct conn *c, uint64_t id, uint64_t handle)
{
    struct holder *h = registry_find_holder(&c->d->reg, handle);
    if (h && h->conn == c)
        return h;
    ops_reply_err(c, id, MMAPIO_E_NOT_FOUND, "no handle %llu on this connection",
              (unsigned long long)handle);
    return NULL;
}

static bool check_writer(struct conn *c, uint64_t id, const struct holder *h)
{
    if (h->mode == MMAPIO_MODE_READ_WRITE)
        return true;
    ops_reply_err(c, id, MMAPIO_E_INVALID_MODE, "handle is %s",
              h->mode == MMAPIO_MODE_READ_ONLY ? "read-only" : "copy-on-write");
    return false;
}

/* ---- operations ------------------------------------------------------- */

static void op_hello(struct conn *c, uint64_t id, const Mmapio__Hello *m)
{
    if (m->protocol != WIRE_PROTOCOL) {
        c->close_when_sent = true;
        ops_reply_err(c, id, MMAPIO_E_PROTOCOL,
                  "protocol version %u not supported (this daemon speaks %u)",
                  m->protocol, WIRE_PROTOCOL);
        return;
    }
    if (m->client_name)
        snprintf(c->name, sizeof(c->name), "%s", m->client_name);
    c->hello_done = true;

    Mmapio__HelloReply hr = MMAPIO__HELLO_REPLY__INIT;
    hr.protocol = WIRE_PROTOCOL;
    hr.server_version = (char *)MMAPIO_VERSION;
    hr.max_frame = c->d->cfg.max_frame;
    hr.max_inflight = c->d->cfg.max_inflight;
    hr.max_events = c->d->cfg.max_events;
    hr.ctl_slots = c->d->ctl.n_slots;
    Mmapio__Reply r = MMAPIO__REPLY__INIT;
    r.id = id;
    r.result_case = MMAPIO__REPLY__RESULT_HELLO;
    r.hello = &hr;
    conn_send_reply(c, &r, c->d->ctl.ro_fd);
}

static void op_open(struct conn *c, uint64_t id, const Mmapio__Open *o)
{
    struct mapping *m;
    struct holder *h = NULL;
    const char *why = "";
    int fd = -1;
    bool owned = false;

    if ((unsigned)o->mode > MMAPIO__MODE__MODE_COPY_ON_WRITE || o->perm > 0777 ||
        (o->policy && !policy_valid(policy_from_wire(o->policy)))) {
        ops_reply_err(c, id, MMAPIO_E_INVALID_ARGUMENT,
                  "bad mode, permission bits or flush policy");
        return;
    }
    int r = open_mapping(c->d, c, o, &m, &why);
    if (r) {
        ops_reply_err(c, id, r, "%s: %s", o->path, why);
        return;
    }
    r = add_holder(c, m, (mmapio_mode)o->mode, &h);
    if (!r)
        r = mapping_grant_fd(m, h->mode, &fd, &owned);
    if (r) {
        if (h)
            release_holder(h, false);
        else
            mapping_retire_if_unused(m);
        ops_reply_err(c, id, r, "%s: cannot grant: %s", o->path, errmap_text(r));
        mapping_unref(m);
        return;
    }
    Mmapio__OpenReply orep = MMAPIO__OPEN_REPLY__INIT;
    Mmapio__FlushPolicy pol;
    orep.handle = h->handle;
    orep.map_id = m->id;
    orep.size = m->size;
    orep.ctl_slot = m->slot;
    policy_to_wire(m->policy, &pol);
    orep.policy = &pol;
    Mmapio__Reply rep = MMAPIO__REPLY__INIT;
    rep.id = id;
    rep.result_case = MMAPIO__REPLY__RESULT_OPEN;
    rep.open = &orep;
    conn_send_reply(c, &rep, fd);
    if (owned)
        close(fd);
    mapping_unref(m);
}

static void op_close(struct conn *c, uint64_t id, const Mmapio__Close *m)
{
    struct holder *h = find_holder(c, id, m->handle);
    if (!h)
        return;
    release_holder(h, false);
    ops_reply_ok(c, id);
}

static void op_resize(struct conn *c, uint64_t id, const Mmapio__Resize *m)
{
    struct holder *h = find_holder(c, id, m->handle);
    const char *why = "";
    if (!h || !check_writer(c, id, h))
        return;
    struct mapping *map = h->map;
    if (m->size == 0 || m->size > c->d->cfg.max_map_size) {
        ops_reply_err(c, id, MMAPIO_E_RESIZE_FAILED, "size %llu not allowed",
                  (unsigned long long)m->size);
        return;
    }
    uint64_t old = mapping_sync_size(map);
    if (m->size < old && map->n_holders > 1) {
        ops_reply_err(c, id, MMAPIO_E_BUSY,
                  "%u other holders; shrinking would fault their accesses",
                  map->n_holders - 1);
        return;
    }
    int r = mapping_set_size(map, m->size, &why);
    if (r) {
        ops_reply_err(c, id, r, "resize failed: %s", why);
        return;
    }
    if (m->size != old)
        ops_tell_holders(map, c, MMAPIO__EVENT_KIND__EVENT_RESIZED);
    ops_reply_ok(c, id);
}

static void op_flush(struct conn *c, uint64_t id, const Mmapio__Flush *m)
{
    struct holder *h = find_holder(c, id, m->handle);
    if (!h)
        return;
    struct mapping *map = h->map;
    uint64_t size = mapping_sync_size(map);
    if (m->offset > size || m->len > size - m->offset) {
        ops_reply_err(c, id, MMAPIO_E_OUT_OF_BOUNDS, "range beyond %llu bytes",
                  (unsigned long long)size);
        return;
    }
    /* Read-only and copy-on-write handles have nothing of theirs to flush;
     * anonymous memory has no disk. */
    if (h->mode != MMAPIO_MODE_READ_WRITE || map->kind == MAPPING_ANON ||
        !map->fd_writable) {
        ops_reply_ok(c, id);
        return;
    }
    if (flushes_request(map, c, id))
        ops_reply_err(c, id, MMAPIO_E_QUOTA, "out of memory");
}

static void op_stat(struct conn *c, uint64_t id, const Mmapio__Stat *m)
{
    struct holder *h = find_holder(c, id, m->handle);
    if (!h)
        return;
    Mmapio__StatReply sr = MMAPIO__STAT_REPLY__INIT;
    Mmapio__FlushPolicy pol;
    sr.size = mapping_sync_size(h->map);
    policy_to_wire(h->map->policy, &pol);
    sr.policy = &pol;
    sr.holders = h->map->n_holders;
    Mmapio__Reply r = MMAPIO__REPLY__INIT;
    r.id = id;
    r.result_case = MMAPIO__REPLY__RESULT_STAT;
    r.stat = &sr;
    conn_send_reply(c, &r, -1);
}

void ops_mark_removed(struct mapping *m)
{
    if (m->removed)
        return;
    m->removed = true;
    watch_notify(m, MMAPIO__EVENT_KIND__EVENT_REMOVED, false, 0, 0);
}

static void delete_anon(struct conn *c, uint64_t id, const char *name)
{
    struct mapping *m = resolve_check_name(name) ? NULL
                        : registry_find_anon(&c->d->reg, name);
    if (!m) {
        ops_reply_err(c, id, MMAPIO_E_NOT_FOUND, "no anonymous mapping '%s'", name);
        return;
    }
    if (access_is_owner(&c->cred, m->owner)) {
        ops_reply_err(c, id, MMAPIO_E_PERMISSION, "'%s' belongs to uid %u", name,
                  (unsigned)m->owner);
        return;
    }
    ops_mark_removed(m);
    sd_anon_deleted(c->d, m);
    registry_remove(&c->d->reg, m);
    ops_reply_ok(c, id);
}

static int unlink_file(struct conn *c, const char *path, struct stat *st)
{
    const char *base;
    struct stat dst;
    int r = resolve_check_path(path);
    if (r)
        return r;
    int dirfd = resolve_parent(c->d->root_fd, path, &base, &c->cred);
    if (dirfd < 0)
        return dirfd == -EXDEV ? MMAPIO_E_PERMISSION : errmap_from_errno(dirfd);
    if (fstatat(dirfd, base, st, AT_SYMLINK_NOFOLLOW) < 0 || fstat(dirfd, &dst) < 0)
        r = errmap_from_errno(errno);
    else if (S_ISDIR(st->st_mode))
        r = MMAPIO_E_INVALID_ARGUMENT;
    else if (access_check(&c->cred, dst.st_uid, dst.st_gid, dst.st_mode,
                          ACCESS_WRITE | ACCESS_EXEC))
        r = MMAPIO_E_PERMISSION;
    else if ((dst.st_mode & S_ISVTX) && c->cred.uid != 0 &&
             c->cred.uid != st->st_uid && c->cred.uid != dst.st_uid)
        r = MMAPIO_E_PERMISSION; /* sticky directory: owners only */
    else if (unlinkat(dirfd, base, 0) < 0)
        r = errmap_from_errno(errno);
    close(dirfd);
    return r;
}

static void op_delete(struct conn *c, uint64_t id, const Mmapio__Delete *m)
{
    struct stat st;
    if (m->anonymous) {
        delete_anon(c, id, m->path);
        return;
    }
    int r = unlink_file(c, m->path, &st);
    if (r) {
        ops_reply_err(c, id, r, "cannot delete %s: %s", m->path, errmap_text(r));
        return;
    }
    struct mapping *map = registry_find_file(&c->d->reg, st.st_dev, st.st_ino);
    if (map && S_ISREG(st.st_mode))
        ops_mark_removed(map);
    ops_reply_ok(c, id);
}

static void op_set_policy(struct conn *c, uint64_t id, const Mmapio__SetPolicy *m)
{
    struct holder *h = find_holder(c, id, m->handle);
    if (!h || !check_writer(c, id, h))
        return;
    mmapio_flush_policy p = policy_from_wire(m->policy);
    if (!m->policy || !policy_valid(p)) {
        ops_reply_err(c, id, MMAPIO_E_INVALID_ARGUMENT, "invalid flush policy");
        return;
    }
    mapping_set_policy(h->map, p);
    flushes_policy_changed(h->map);
    ops_tell_holders(h->map, c, MMAPIO__EVENT_KIND__EVENT_POLICY);
    ops_reply_ok(c, id);
}

static void op_watch(struct conn *c, uint64_t id, const Mmapio__Watch *m)
{
    struct holder *h = find_holder(c, id, m->handle);
    uint64_t wid;
    if (!h)
        return;
    int r = watch_add(c, h, &wid);
    if (r) {
        ops_reply_err(c, id, r, "cannot watch: %s", errmap_text(r));
        return;
    }
    Mmapio__WatchReply wr = MMAPIO__WATCH_REPLY__INIT;
    wr.watch_id = wid;
    Mmapio__Reply rep = MMAPIO__REPLY__INIT;
    rep.id = id;
    rep.result_case = MMAPIO__REPLY__RESULT_WATCH;
    rep.watch = &wr;
    conn_send_reply(c, &rep, -1);
}

static void op_unwatch(struct conn *c, uint64_t id, const Mmapio__Unwatch *m)
{
    int r = watch_remove(c, m->watch_id);
    if (r)
        ops_reply_err(c, id, r, "no watch %llu on this connection",
                  (unsigned long long)m->watch_id);
    else
        ops_reply_ok(c, id);
}

/* One-way: never answered. A notice that does not fit is dropped. */
static void op_notice(struct conn *c, const Mmapio__Notice *n)
{
    struct holder *h = registry_find_holder(&c->d->reg, n->handle);
    if (!h || h->conn != c || h->mode != MMAPIO_MODE_READ_WRITE)
        return;
    struct mapping *m = h->map;
    if (n->lost)
        watch_notify(m, MMAPIO__EVENT_KIND__EVENT_OVERFLOW, false, 0, 0);
    switch (n->kind) {
    case MMAPIO__NOTICE_KIND__NOTICE_DIRTY:
        flushes_dirty(m);
        break;
    case MMAPIO__NOTICE_KIND__NOTICE_WRITE:
        if (n->offset > m->size || n->len > m->size - n->offset)
            return;
        watch_notify(m, MMAPIO__EVENT_KIND__EVENT_MODIFIED, true, n->offset, n->len);
        flushes_dirty(m);
        break;
    case MMAPIO__NOTICE_KIND__NOTICE_RAW_WRITER:
        if (!h->raw_writer) {
            h->raw_writer = true;
            flushes_raw_writer(m, +1);
        }
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

static void dispatch(struct conn *c, const Mmapio__Request *q)
{
    switch (q->op_case) {
    case MMAPIO__REQUEST__OP_HELLO: op_hello(c, q->id, q->hello); break;
    case MMAPIO__REQUEST__OP_PING: ops_reply_ok(c, q->id); break;
    case MMAPIO__REQUEST__OP_OPEN: op_open(c, q->id, q->open); break;
    case MMAPIO__REQUEST__OP_CLOSE: op_close(c, q->id, q->close); break;
    case MMAPIO__REQUEST__OP_RESIZE: op_resize(c, q->id, q->resize); break;
    case MMAPIO__REQUEST__OP_FLUSH: op_flush(c, q->id, q->flush); break;
    case MMAPIO__REQUEST__OP_STAT: op_stat(c, q->id, q->stat); break;
    case MMAPIO__REQUEST__OP_DELETE_MAP: op_delete(c, q->id, q->delete_map); break;
    case MMAPIO__REQUEST__OP_SET_POLICY: op_set_policy(c, q->id, q->set_policy); break;
    case MMAPIO__REQUEST__OP_WATCH: op_watch(c, q->id, q->watch); break;
    case MMAPIO__REQUEST__OP_UNWATCH: op_unwatch(c, q->id, q->unwatch); break;
    case MMAPIO__REQUEST__OP_ADMIN_STATUS: admin_status(c, q->id); break;
    case MMAPIO__REQUEST__OP_ADMIN_LIST: admin_list(c, q->id, q->admin_list); break;
    case MMAPIO__REQUEST__OP_ADMIN_CLIENTS: admin_clients(c, q->id, q->admin_clients); break;
    case MMAPIO__REQUEST__OP_ADMIN_FLUSH: admin_flush(c, q->id, q->admin_flush); break;
    case MMAPIO__REQUEST__OP_ADMIN_POLICY: admin_policy(c, q->id, q->admin_policy); break;
    default:
        ops_reply_err(c, q->id, MMAPIO_E_PROTOCOL, "unknown operation %d", (int)q->op_case);
        break;
    }
}

void ops_handle(struct conn *c, const uint8_t *buf, size_t len, bool had_fds)
{
    Mmapio__Request *q = mmapio__request__unpack(NULL, len, buf);
    if (!q) {
        c->close_when_sent = !c->hello_done;
        ops_reply_err(c, 0, MMAPIO_E_PROTOCOL, "malformed request");
        return;
    }
    if (had_fds)
        ops_reply_err(c, q->id, MMAPIO_E_PROTOCOL, "requests may not carry file descriptors");
    else if (has_unknown(&q->base))
        ops_reply_err(c, q->id, MMAPIO_E_PROTOCOL, "request has fields this daemon does not know");
    else if (c->hello_done && q->op_case == MMAPIO__REQUEST__OP_NOTICE)
        op_notice(c, q->notice);
    else if (!c->hello_done && q->op_case != MMAPIO__REQUEST__OP_HELLO) {
        c->close_when_sent = true;
        ops_reply_err(c, q->id, MMAPIO_E_PROTOCOL, "the first request must be hello");
    } else
        dispatch(c, q);
    mmapio__request__free_unpacked(q, NULL);
}
