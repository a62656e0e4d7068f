/*
 * winops (Windows): sessions and the requests served (winops.h): hello,
 * open, close, delete, stat, resize, set_policy, notices, and the
 * dispatch to winopen (files' opens, reattaches, deletes, copies),
 * winflush, winwatch and winwait. Runs on the daemon's one loop thread.
 */
#include "winops.h"
#include "winadmin.h"
#include "winflush.h"
#include "winfromfd.h"
#include "winopen.h"
#include "winstate.h"
#include "winwait.h"
#include "winwatch.h"

#include <aclapi.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "beneath.h"
#include "ctlarea.h"
#include "filesection.h"
#include "log.h"
#include "membackend.h"
#include "mmapio.h"
#include "mmapio.pb-c.h"
#include "names.h"
#include "peercred.h"
#include "policy.h"
#include "reqmsg.h"
#include "sidmap.h"
#include "wire.h"

#define UNSUPPORTED "not supported on Windows"

static void release(struct wsession *s, struct wholder *h)
{
    for (struct wholder **p = &s->holders; *p; p = &(*p)->next)
        if (*p == h) {
            *p = h->next;
            break;
        }
    s->n_holders--;
    struct wmap *m = h->m;
    m->holders--;
    /* A writer leaves a file written under a policy that flushes: its
     * final flush, now, not at the policy's pace. */
    if (h->mode == MMAPIO_MODE_READ_WRITE && !m->anonymous && m->dirty &&
        m->policy.kind != MMAPIO_FLUSH_NEVER && m->policy.kind != MMAPIO_FLUSH_MANUAL)
        winflush_policy(s->w, m);
    map_maybe_free(s->w, m);
    free(h);
}

/* ---- requests ---------------------------------------------------------- */

static void op_hello(struct wsession *s, uint64_t id, const Mmapio__Hello *m)
{
    if (m->protocol != WIRE_PROTOCOL) {
        s->w->port.close_when_sent(s->conn);
        reply_err(s, id, MMAPIO_E_PROTOCOL, REQMSG_BAD_PROTOCOL, m->protocol,
                  WIRE_PROTOCOL);
        return;
    }
    /* Impersonation works once the pipe was read from: now. */
    int r = peer_identity(PLATFORM_FD(s->pipe), &s->cred);
    if (r < 0) {
        s->w->port.close_when_sent(s->conn);
        if (r == -ENOSPC)
            reply_err(s, id, MMAPIO_E_QUOTA, "your account has no uid: the daemon numbers "
                      "at most %u accounts and groups outside this machine's", SIDMAP_CAP);
        else
            reply_err(s, id, MMAPIO_E_PERMISSION, "who you are cannot be told (%d)", r);
        return;
    }
    struct uidq *q = uidq_of(s->w, s->cred.uid, true);
    if (!q || q->clients >= s->w->cfg.max_clients_per_uid) {
        s->w->port.close_when_sent(s->conn);
        reply_err(s, id, MMAPIO_E_QUOTA, "max_clients_per_uid (%u) reached",
                  s->w->cfg.max_clients_per_uid);
        return;
    }
    q->clients++;
    names_escape(m->client_name, s->name, sizeof(s->name));
    s->hello_done = true;
    s->w->port.admitted(s->conn);
    struct reqmsg b;
    Mmapio__Reply *rep = reqmsg_hello(&b, id, s->w->cfg.max_frame, s->w->cfg.max_inflight,
                                      s->w->cfg.max_events, CTL_SLOTS);
    b.u.hello.uid_known = true; /* a SID's number: the client cannot work it out */
    b.u.hello.uid = s->cred.uid;
    send_reply(s, rep, s->w->ctl, GRANT_RO);
}

static void open_anon(struct wsession *s, uint64_t id, const Mmapio__Open *o,
                      mmapio_mode mode)
{
    struct winops *w = s->w;
    int err;
    const char *why;
    if (beneath_check_name(o->path) != MMAPIO_OK) {
        reply_err(s, id, MMAPIO_E_INVALID_ARGUMENT, "%s: not a valid anonymous name",
                  o->path);
        return;
    }
    struct wmap *m = find_anon(w, o->path);
    if (m) {
        if (o->exclusive) {
            reply_err(s, id, MMAPIO_E_EXISTS, "%s: exists", o->path);
        } else if ((o->owner && o->owner->uid != m->owner) || !anon_allows(s, m, mode)) {
            reply_err(s, id, MMAPIO_E_PERMISSION, "%s: not yours to open so", o->path);
        } else if (o->truncate && o->size != m->size) {
            reply_err(s, id, MMAPIO_E_RESIZE_FAILED,
                      "%s: a section's size is fixed on Windows", o->path);
        } else if (s->n_holders >= w->cfg.max_holders_per_client) {
            reply_err(s, id, MMAPIO_E_QUOTA, "max_holders_per_client reached");
        } else {
            grant(s, id, m, mode, m->section);
        }
        return;
    }
    if (!o->create) {
        reply_err(s, id, MMAPIO_E_NOT_FOUND, "%s: no such anonymous mapping", o->path);
        return;
    }
    if (o->size == 0 || o->size > w->cfg.max_map_size) {
        reply_err(s, id, MMAPIO_E_INVALID_ARGUMENT,
                  "%s: size must be 1..max_map_size (%llu) (a section cannot be "
                  "empty nor grow on Windows)", o->path,
                  (unsigned long long)w->cfg.max_map_size);
        return;
    }
    if (s->n_holders >= w->cfg.max_holders_per_client) {
        reply_err(s, id, MMAPIO_E_QUOTA, "max_holders_per_client reached");
        return;
    }
    m = map_new(w, s->cred.uid, true, o->size, o->path, &err, &why);
    if (!m) {
        reply_err(s, id, err, "%s: %s", o->path, why);
        return;
    }
    m->group = s->cred.gid;
    m->creator_pid = (int32_t)s->cred.pid;
    m->perm = o->perm ? o->perm : 0600;
    if (o->policy)
        m->policy = policy_from_wire(o->policy);
    atomic_store(&w->slots[m->slot].policy, ctl_pack_policy(m->policy));
    int fd = mem_section_new(o->path, o->size, 0);
    if (fd < 0) {
        m->named = false;
        map_maybe_free(w, m);
        reply_err(s, id, public_err(fd), "%s: cannot make the section: %s", o->path,
                  errno_text(fd));
        return;
    }
    m->section = PLATFORM_HANDLE(fd);
    grant(s, id, m, mode, m->section);
}

static void op_open(struct wsession *s, uint64_t id, const Mmapio__Open *o)
{
    if (!reqmsg_open_valid(o)) {
        reply_err(s, id, MMAPIO_E_INVALID_ARGUMENT, REQMSG_BAD_OPEN);
        return;
    }
    if (!names_valid(o->path)) {
        reply_err(s, id, MMAPIO_E_INVALID_ARGUMENT, NAMES_REFUSED);
        return;
    }
    if (o->anonymous)
        open_anon(s, id, o, (mmapio_mode)o->mode);
    else
        winopen_request(s, id, o); /* on worker threads */
}

/* A holder of the daemon's previous instance back to its very file, on
 * worker threads; an anonymous mapping does not come back (the daemon
 * keeps no state file on Windows). */
static void op_reattach(struct wsession *s, uint64_t id, const Mmapio__Reattach *q)
{
    if ((unsigned)q->mode > MMAPIO__MODE__MODE_COPY_ON_WRITE)
        reply_err(s, id, MMAPIO_E_INVALID_ARGUMENT, "reattach: bad mode");
    else if (!names_valid(q->path) || !*q->path)
        reply_err(s, id, MMAPIO_E_INVALID_ARGUMENT, "reattach: bad path or name");
    else if (q->carved || q->offset != 0)
        reply_err(s, id, MMAPIO_E_INVALID_ARGUMENT,
                  "%s: only a carved anonymous mapping lies at an offset", q->path);
    else if (q->anonymous)
        reply_err(s, id, MMAPIO_E_NOT_FOUND, "%s: an anonymous mapping does not come back "
                  "after a restart on Windows (the daemon keeps no state file)", q->path);
    else
        winopen_reattach(s, id, q);
}

/* A copy of a file to another beneath the root, on worker threads. */
static void op_copy(struct wsession *s, uint64_t id, const Mmapio__Copy *q)
{
    if (!names_valid(q->src) || !names_valid(q->dst) || !*q->src || !*q->dst)
        reply_err(s, id, MMAPIO_E_INVALID_ARGUMENT, "bad path");
    else
        winopen_copy(s, id, q->src, q->dst);
}

static void op_close(struct wsession *s, uint64_t id, const Mmapio__Close *c)
{
    struct wholder *h = NULL;
    for (h = s->holders; h && h->handle != c->handle; h = h->next)
        ;
    if (h)
        release(s, h);
    if (!c->no_reply) {
        if (h)
            reply_ok(s, id);
        else
            reply_err(s, id, MMAPIO_E_NOT_FOUND, "no such handle");
    }
}

static void op_delete(struct wsession *s, uint64_t id, const Mmapio__Delete *d)
{
    if (!names_valid(d->path)) {
        reply_err(s, id, MMAPIO_E_INVALID_ARGUMENT, NAMES_REFUSED);
        return;
    }
    if (d->anonymous) {
        struct wmap *m = find_anon(s->w, d->path);
        if (!m) {
            reply_err(s, id, MMAPIO_E_NOT_FOUND, "%s: no such anonymous mapping", d->path);
        } else if (m->owner != s->cred.uid) {
            reply_err(s, id, MMAPIO_E_PERMISSION, "%s: not yours", d->path);
        } else {
            m->named = false; /* its holders keep it; then it is freed */
            winwatch_notify(s->w, m, MMAPIO__EVENT_KIND__EVENT_REMOVED, false, 0, 0);
            map_maybe_free(s->w, m);
            reply_ok(s, id);
        }
        return;
    }
    winopen_delete(s, id, d->path); /* on a worker thread */
}

static void op_stat(struct wsession *s, uint64_t id, const Mmapio__Stat *st)
{
    struct wholder *h = find_holder(s, id, st->handle);
    if (!h)
        return;
    LARGE_INTEGER size;
    if (h->m->file && GetFileSizeEx(h->m->file, &size))
        h->m->size = (uint64_t)size.QuadPart;
    struct reqmsg b;
    send_reply(s, reqmsg_stat(&b, id, h->m->size, h->m->holders, h->m->policy), NULL, 0);
}

/* A section's size is fixed on Windows, and a mapped file's cannot
 * change: only the size it has is granted. */
static void op_resize(struct wsession *s, uint64_t id, const Mmapio__Resize *rz)
{
    struct wholder *h = find_holder(s, id, rz->handle);
    if (!h)
        return;
    if (h->mode != MMAPIO_MODE_READ_WRITE)
        reply_err(s, id, MMAPIO_E_INVALID_MODE, "the handle is not read-write");
    else if (rz->size != h->m->size)
        reply_err(s, id, MMAPIO_E_RESIZE_FAILED, "%s: %s", h->m->name,
                  h->m->anonymous ? "a section's size is fixed on Windows"
                                  : "a mapped file's size cannot change on Windows");
    else
        reply_ok(s, id);
}

/* Every policy: the timed one flushes on the thread pool's timers, the
 * counted ones when a writer's NOTICE_FLUSH says its threshold passed. */
static void op_set_policy(struct wsession *s, uint64_t id, const Mmapio__SetPolicy *p)
{
    struct wholder *h = find_holder(s, id, p->handle);
    if (!h)
        return;
    mmapio_flush_policy pol;
    if (h->mode != MMAPIO_MODE_READ_WRITE) {
        reply_err(s, id, MMAPIO_E_INVALID_MODE, "the handle is not read-write");
    } else if (!reqmsg_policy(p->policy, &pol)) {
        reply_err(s, id, MMAPIO_E_INVALID_ARGUMENT, REQMSG_BAD_POLICY);
    } else {
        winadmin_set_policy(s->w, h->m, pol);
        reply_ok(s, id);
    }
}

/* The client dropped notices and cannot say of which holders (a notice
 * of handle 0 with `lost`): every mapping it holds read-write may have
 * changed, so their watchers get OVERFLOW and their timed flush is due,
 * as on Linux. */
static void notices_lost(struct wsession *s)
{
    for (struct wholder *h = s->holders; h; h = h->next)
        if (h->mode == MMAPIO_MODE_READ_WRITE) {
            winwatch_notify(s->w, h->m, MMAPIO__EVENT_KIND__EVENT_OVERFLOW, false, 0, 0);
            h->m->dirty = true;
            winflush_timed(s->w, h->m);
        }
}

/* One-way, never answered: a notice that does not fit is dropped. */
static void op_notice(struct wsession *s, const Mmapio__Notice *n)
{
    if (n->handle == 0 && n->lost) {
        notices_lost(s);
        return;
    }
    struct wholder *h = s->holders;
    while (h && h->handle != n->handle)
        h = h->next;
    if (!h || h->mode != MMAPIO_MODE_READ_WRITE)
        return;
    if (n->lost) /* this holder's notices before this one were dropped */
        winwatch_notify(s->w, h->m, MMAPIO__EVENT_KIND__EVENT_OVERFLOW, false, 0, 0);
    if (n->kind == MMAPIO__NOTICE_KIND__NOTICE_DIRTY ||
        n->kind == MMAPIO__NOTICE_KIND__NOTICE_WRITE)
        h->m->dirty = true;
    if (n->kind == MMAPIO__NOTICE_KIND__NOTICE_DIRTY) {
        winflush_timed(s->w, h->m);
    } else if (n->kind == MMAPIO__NOTICE_KIND__NOTICE_WRITE) {
        struct wmap *m = h->m;
        if (n->offset > m->size || n->len > m->size - n->offset)
            return;
        winwatch_notify(s->w, m, MMAPIO__EVENT_KIND__EVENT_MODIFIED, true, n->offset, n->len);
        if (n->hold_ms)
            winwatch_hold(s->w, m, n->hold_ms);
        winflush_timed(s->w, m);
    }
    else if (n->kind == MMAPIO__NOTICE_KIND__NOTICE_FLUSH &&
             (h->m->policy.kind == MMAPIO_FLUSH_EVERY_BYTES ||
              h->m->policy.kind == MMAPIO_FLUSH_EVERY_WRITES))
        winflush_policy(s->w, h->m); /* a writer's threshold, handed over */
}

/* Unknown fields in the request or its operation: refused, so that no
 * check a newer client asks for is skipped. */
static bool unknown_fields(const Mmapio__Request *q)
{
    if (q->base.n_unknown_fields)
        return true;
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field(q->base.descriptor, (unsigned)q->op_case);
    if (!f || f->type != PROTOBUF_C_TYPE_MESSAGE)
        return false;
    const ProtobufCMessage *op;
    memcpy(&op, (const char *)q + f->offset, sizeof(op));
    return op && op->n_unknown_fields;
}

void winops_request(struct wsession *s, const uint8_t *pb, size_t len,
                    const uint64_t *handles, unsigned n_handles)
{
    Mmapio__Request *q = mmapio__request__unpack(NULL, len, pb);
    if (!q) {
        if (!s->hello_done)
            s->w->port.close_when_sent(s->conn);
        reply_err(s, 0, MMAPIO_E_PROTOCOL, "malformed request");
        return;
    }
    uint64_t id = q->id;
    if (s->hello_done && q->op_case == MMAPIO__REQUEST__OP_NOTICE) {
        if (!unknown_fields(q) && !n_handles)
            op_notice(s, q->notice); /* one-way: never answered */
    } else if (unknown_fields(q)) {
        reply_err(s, id, MMAPIO_E_PROTOCOL, "request has fields this daemon does not know");
    } else if (!s->hello_done && q->op_case != MMAPIO__REQUEST__OP_HELLO) {
        s->w->port.close_when_sent(s->conn);
        reply_err(s, id, MMAPIO_E_PROTOCOL, "the first request must be hello");
    } else if (q->op_case == MMAPIO__REQUEST__OP_FROM_FD) {
        winfromfd_open(s, id, q->from_fd, handles, n_handles); /* a caller's own file */
    } else if (q->op_case == MMAPIO__REQUEST__OP_FD_OFFER) {
        reply_ok(s, id); /* the pipe takes handle values in any frame */
    } else if (n_handles) {
        reply_err(s, id, MMAPIO_E_PROTOCOL, "requests may not carry handles");
    } else {
        switch (q->op_case) {
        case MMAPIO__REQUEST__OP_HELLO:
            if (s->hello_done)
                reply_err(s, id, MMAPIO_E_PROTOCOL, "hello again");
            else
                op_hello(s, id, q->hello);
            break;
        case MMAPIO__REQUEST__OP_PING: reply_ok(s, id); break;
        case MMAPIO__REQUEST__OP_OPEN: op_open(s, id, q->open); break;
        case MMAPIO__REQUEST__OP_CLOSE: op_close(s, id, q->close); break;
        case MMAPIO__REQUEST__OP_COPY: op_copy(s, id, q->copy); break;
        case MMAPIO__REQUEST__OP_REATTACH: op_reattach(s, id, q->reattach); break;
        case MMAPIO__REQUEST__OP_DELETE_MAP: op_delete(s, id, q->delete_map); break;
        case MMAPIO__REQUEST__OP_STAT: op_stat(s, id, q->stat); break;
        case MMAPIO__REQUEST__OP_RESIZE: op_resize(s, id, q->resize); break;
        case MMAPIO__REQUEST__OP_SET_POLICY: op_set_policy(s, id, q->set_policy); break;
        case MMAPIO__REQUEST__OP_FLUSH: winflush_request(s, id, q->flush); break;
        case MMAPIO__REQUEST__OP_WATCH: winwatch_request(s, id, q->watch); break;
        case MMAPIO__REQUEST__OP_UNWATCH: winwatch_unwatch(s, id, q->unwatch); break;
        case MMAPIO__REQUEST__OP_WAIT: winwait_wait(s, id, q->wait); break;
        case MMAPIO__REQUEST__OP_WAKE: winwait_wake(s, id, q->wake); break;
        case MMAPIO__REQUEST__OP_ADMIN_STATUS: case MMAPIO__REQUEST__OP_ADMIN_LIST:
        case MMAPIO__REQUEST__OP_ADMIN_CLIENTS: case MMAPIO__REQUEST__OP_ADMIN_FLUSH:
        case MMAPIO__REQUEST__OP_ADMIN_POLICY: case MMAPIO__REQUEST__OP_ADMIN_STAT:
        case MMAPIO__REQUEST__OP_ADMIN_WATCH:
            winadmin_request(s, id, q);
            break;
        case MMAPIO__REQUEST__OP__NOT_SET:
            reply_err(s, id, MMAPIO_E_PROTOCOL, "no operation");
            break;
        default:
            reply_err(s, id, MMAPIO_E_INVALID_ARGUMENT, "%s (operation %d)", UNSUPPORTED,
                      (int)q->op_case);
            break;
        }
    }
    mmapio__request__free_unpacked(q, NULL);
}

/* ---- sessions and the whole ------------------------------------------- */

struct wsession *winops_session_new(struct winops *w, void *conn, HANDLE pipe)
{
    struct wsession *s = calloc(1, sizeof(*s));
    if (s) {
        s->w = w;
        s->conn = conn;
        s->pipe = pipe;
        winadmin_session_add(w, s);
    }
    return s;
}

void winops_session_end(struct wsession *s)
{
    winwait_session_end(s); /* before its holders: no reply to it */
    for (struct wwatch *x = s->w->watches, *next; x && s->n_watches; x = next) {
        next = x->next;
        if (x->s == s)
            winwatch_drop(s->w, x);
    }
    while (s->holders)
        release(s, s->holders);
    struct uidq *q = s->hello_done ? uidq_of(s->w, s->cred.uid, false) : NULL;
    if (q)
        q->clients--;
    winadmin_session_remove(s->w, s);
    if (s->token) /* workers have copies */
        CloseHandle(s->token);
    s->token = NULL;
    s->gone = true;
    if (s->flushes == 0 && s->opens == 0)
        free(s);
}

int winops_new(struct winops **out, const struct winops_config *cfg,
               const struct winops_port *port)
{
    struct winops *w = calloc(1, sizeof(*w));
    if (!w)
        return -ENOMEM;
    w->cfg = *cfg;
    w->port = *port;
    w->started = (int64_t)time(NULL);
    w->watchsys = -1;
    w->map_gone = winwait_map_gone;
    if (w->cfg.max_mappings > CTL_SLOTS)
        w->cfg.max_mappings = CTL_SLOTS;
    int fd = mem_section_new("mmapio-ctl", (uint64_t)CTL_SLOTS * sizeof(struct ctl_slot), 0);
    if (fd < 0) {
        free(w);
        return fd;
    }
    w->ctl = PLATFORM_HANDLE(fd);
    w->slots = MapViewOfFile(w->ctl, FILE_MAP_READ | FILE_MAP_WRITE, 0, 0, 0);
    w->free_slots = malloc(CTL_SLOTS * sizeof(uint32_t));
    if (!w->slots || !w->free_slots) {
        winops_free(w);
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < CTL_SLOTS; i++)
        w->free_slots[w->n_free++] = CTL_SLOTS - 1 - i; /* slot 0 first */
    winwatch_start(w);
    *out = w;
    return 0;
}

void winops_free(struct winops *w)
{
    if (!w)
        return;
    winopen_final(w);
    winflush_final(w);
    winwatch_stop(w);
    winwait_final(w);
    while (w->watches) {
        struct wwatch *x = w->watches;
        w->watches = x->next;
        free(x);
    }
    while (w->maps) {
        struct wmap *m = w->maps;
        m->holders = 0;
        m->watchers = 0;
        m->named = false;
        map_maybe_free(w, m);
    }
    while (w->uids) {
        struct uidq *q = w->uids;
        w->uids = q->next;
        free(q);
    }
    if (w->slots)
        UnmapViewOfFile(w->slots);
    if (w->ctl)
        CloseHandle(w->ctl);
    free(w->free_slots);
    free(w);
}
