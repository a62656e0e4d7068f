/*
 * winops (Windows): sessions, the mappings' table and the requests served
 * (winops.h). Runs on the daemon's one loop thread.
 */
#include "winops.h"

#include <aclapi.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
#include "wire.h"

#define UNSUPPORTED "not supported on Windows"
#define CTL_SLOTS 65536u

/* What the client may do with a grant's section handle. SECTION_QUERY
 * lets it learn the size; a read-only or copy-on-write grant has no
 * FILE_MAP_WRITE and the section's DACL refuses it to any duplicate. */
#define GRANT_RW (SECTION_QUERY | FILE_MAP_READ | FILE_MAP_WRITE)
#define GRANT_RO (SECTION_QUERY | FILE_MAP_READ)

struct wmap {
    struct wmap *next;
    uint64_t id;
    bool anonymous;
    bool named;           /* still found by its name (not deleted) */
    char *name;           /* the anonymous name, or the path it was opened by */
    HANDLE section;       /* anonymous: the section, read-write */
    HANDLE file;          /* files: the first opener's handle */
    HANDLE wfile;         /* files: a writer's handle, for the daemon's own flushes */
    PTP_TIMER timer;      /* EVERY_MILLIS: the next timed flush */
    struct wtimer *tctx;
    bool armed, flushing, dirty_again;
    bool dirty;           /* a writer's notice since the last policy flush */
    uint64_t vol, index;  /* files: which file */
    uint64_t size;
    uint32_t owner, group; /* anonymous: its creator's; files: charged to the first opener */
    uint32_t perm;        /* anonymous: permission bits, as on Linux */
    unsigned holders;
    unsigned watchers;    /* watches keep the entry too */
    uint32_t slot;
    mmapio_flush_policy policy;
};

/* A timer's context: the mapping by id, which the loop looks up again. */
struct wtimer {
    struct winops *w;
    uint64_t map_id;
};

struct wholder {
    struct wholder *next;
    uint64_t handle;
    struct wmap *m;
    mmapio_mode mode;
};

/* A client's watch of a mapping: its events (MODIFIED from writers'
 * notices, POLICY, REMOVED) go to that client. */
struct wwatch {
    struct wwatch *next;
    uint64_t id;
    struct wsession *s;
    struct wmap *m;
};

#define MAX_WATCHES_PER_CLIENT 256

struct uidq {
    struct uidq *next;
    uint32_t uid;
    uint64_t bytes;
    uint32_t maps;
    uint32_t clients; /* sessions past hello */
};

struct winops {
    struct winops_config cfg;
    struct winops_port port;
    struct wmap *maps;
    uint32_t n_maps;
    uint64_t next_id;
    struct uidq *uids;
    struct wwatch *watches; /* every client's */
    uint64_t next_watch;
    HANDLE ctl;                 /* the control area, read-write */
    struct ctl_slot *slots;
    uint32_t *free_slots, n_free;
};

struct wsession {
    struct winops *w;
    void *conn;
    HANDLE pipe;
    bool hello_done;
    struct peer_cred cred;
    struct wholder *holders;
    uint32_t n_holders;
    uint64_t next_handle;
    uint32_t flushes; /* on worker threads */
    uint32_t n_watches;
    bool gone;        /* the connection ended; freed after its flushes */
};

static void timed_flush(struct winops *w, struct wmap *m);
static void policy_flush(struct winops *w, struct wmap *m);

/* ---- replies ----------------------------------------------------------- */

static void send_reply(struct wsession *s, Mmapio__Reply *r, HANDLE h, DWORD access)
{
    Mmapio__ServerMessage msg = MMAPIO__SERVER_MESSAGE__INIT;
    msg.body_case = MMAPIO__SERVER_MESSAGE__BODY_REPLY;
    msg.reply = r;
    size_t n = mmapio__server_message__get_packed_size(&msg);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf) {
        s->w->port.close_when_sent(s->conn);
        return;
    }
    mmapio__server_message__pack(&msg, buf);
    if (s->w->port.send(s->conn, buf, n, &h, &access, h ? 1 : 0) < 0)
        s->w->port.close_when_sent(s->conn);
    free(buf);
}

static void reply_ok(struct wsession *s, uint64_t id)
{
    Mmapio__Reply r = MMAPIO__REPLY__INIT;
    r.id = id;
    send_reply(s, &r, NULL, 0);
}

static void reply_err(struct wsession *s, uint64_t id, int err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void reply_err(struct wsession *s, uint64_t id, int err, const char *fmt, ...)
{
    char text[512], safe[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    Mmapio__Reply r = MMAPIO__REPLY__INIT;
    r.id = id;
    r.error = err;
    r.message = names_escape(text, safe, sizeof(safe)); /* a client's path may be in it */
    send_reply(s, &r, NULL, 0);
}

/* -errno from the seams and the walk, as the public error codes. */
static int public_err(int e)
{
    switch (e) {
    case -ENOENT: case -ENOTDIR: return MMAPIO_E_NOT_FOUND;
    case -EEXIST: return MMAPIO_E_EXISTS;
    case -EACCES: case -EPERM: case -ELOOP: case -EXDEV: return MMAPIO_E_PERMISSION;
    case -EBUSY: return MMAPIO_E_BUSY;
    case -ENOMEM: case -ENOSPC: return MMAPIO_E_QUOTA;
    case -EINVAL: case -EISDIR: case -EOPNOTSUPP: return MMAPIO_E_INVALID_ARGUMENT;
    default: return MMAPIO_E_IO;
    }
}

static const char *errno_text(int e)
{
    switch (e) {
    case -ELOOP: return "a junction or link on the way (refused beneath the root)";
    case -EBUSY: return "someone holds an opportunistic lock on it";
    case -EISDIR: return "a directory";
    default: return strerror(-e);
    }
}

/* ---- the table --------------------------------------------------------- */

static struct uidq *uidq_of(struct winops *w, uint32_t uid, bool make)
{
    for (struct uidq *q = w->uids; q; q = q->next)
        if (q->uid == uid)
            return q;
    struct uidq *q = make ? calloc(1, sizeof(*q)) : NULL;
    if (q) {
        q->uid = uid;
        q->next = w->uids;
        w->uids = q;
    }
    return q;
}

static struct wmap *find_anon(struct winops *w, const char *name)
{
    for (struct wmap *m = w->maps; m; m = m->next)
        if (m->anonymous && m->named && !strcmp(m->name, name))
            return m;
    return NULL;
}

static struct wmap *find_file(struct winops *w, uint64_t vol, uint64_t index)
{
    for (struct wmap *m = w->maps; m; m = m->next)
        if (!m->anonymous && m->vol == vol && m->index == index)
            return m;
    return NULL;
}

static struct wmap *find_id(struct winops *w, uint64_t id)
{
    for (struct wmap *m = w->maps; m; m = m->next)
        if (m->id == id)
            return m;
    return NULL;
}

/* A new entry charged to `uid` (anonymous bytes, mappings): NULL with
 * *err and *why when a budget says no. */
static struct wmap *map_new(struct winops *w, uint32_t uid, bool anonymous,
                            uint64_t size, const char *name, int *err, const char **why)
{
    struct uidq *q = uidq_of(w, uid, true);
    *err = MMAPIO_E_QUOTA;
    if (!q || w->n_free == 0 || w->n_maps >= w->cfg.max_mappings) {
        *why = "max_mappings reached";
        return NULL;
    }
    if (q->maps >= w->cfg.max_mappings_per_uid) {
        *why = "max_mappings_per_uid reached";
        return NULL;
    }
    if (anonymous && q->bytes + size > w->cfg.max_bytes_per_uid) {
        *why = "max_bytes_per_uid reached";
        return NULL;
    }
    struct wmap *m = calloc(1, sizeof(*m));
    if (!m || !(m->name = strdup(name))) {
        free(m);
        *why = "out of memory";
        return NULL;
    }
    m->id = ++w->next_id;
    m->anonymous = anonymous;
    m->named = true;
    m->owner = uid;
    m->size = size;
    m->slot = w->free_slots[--w->n_free];
    m->policy = (mmapio_flush_policy){MMAPIO_FLUSH_NEVER, 0};
    atomic_store(&w->slots[m->slot].policy, ctl_pack_policy(m->policy));
    atomic_store(&w->slots[m->slot].watchers, 0);
    q->maps++;
    if (anonymous)
        q->bytes += size;
    m->next = w->maps;
    w->maps = m;
    w->n_maps++;
    return m;
}

/* Gone from the table once it has no holder and no name (files: no holder). */
static void map_maybe_free(struct winops *w, struct wmap *m)
{
    if (m->holders || m->watchers || (m->anonymous && m->named))
        return;
    for (struct wmap **p = &w->maps; *p; p = &(*p)->next)
        if (*p == m) {
            *p = m->next;
            break;
        }
    w->n_maps--;
    struct uidq *q = uidq_of(w, m->owner, false);
    if (q) {
        q->maps--;
        if (m->anonymous)
            q->bytes -= m->size;
    }
    if (m->timer) {
        SetThreadpoolTimer(m->timer, NULL, 0, 0);
        WaitForThreadpoolTimerCallbacks(m->timer, TRUE);
        CloseThreadpoolTimer(m->timer);
        free(m->tctx);
    }
    if (m->wfile)
        CloseHandle(m->wfile);
    atomic_store(&w->slots[m->slot].policy, 0);
    w->free_slots[w->n_free++] = m->slot;
    if (m->section)
        CloseHandle(m->section);
    if (m->file)
        CloseHandle(m->file);
    free(m->name);
    free(m);
}

/* A new holder and the OpenReply with the section duplicated into the
 * client; `section` stays the caller's. */
static void grant(struct wsession *s, uint64_t id, struct wmap *m, mmapio_mode mode,
                  HANDLE section)
{
    struct wholder *h = calloc(1, sizeof(*h));
    if (!h) {
        reply_err(s, id, MMAPIO_E_QUOTA, "out of memory");
        map_maybe_free(s->w, m);
        return;
    }
    h->handle = ++s->next_handle;
    h->m = m;
    h->mode = mode;
    h->next = s->holders;
    s->holders = h;
    s->n_holders++;
    m->holders++;

    Mmapio__OpenReply orep = MMAPIO__OPEN_REPLY__INIT;
    Mmapio__FlushPolicy pol;
    orep.handle = h->handle;
    orep.map_id = m->id;
    orep.size = m->size;
    orep.ctl_slot = m->slot;
    policy_to_wire(m->policy, &pol);
    orep.policy = &pol;
    Mmapio__Reply r = MMAPIO__REPLY__INIT;
    r.id = id;
    r.result_case = MMAPIO__REPLY__RESULT_OPEN;
    r.open = &orep;
    send_reply(s, &r, section, mode == MMAPIO_MODE_READ_WRITE ? GRANT_RW : GRANT_RO);
}

static struct wholder *find_holder(struct wsession *s, uint64_t id, uint64_t handle)
{
    for (struct wholder *h = s->holders; h; h = h->next)
        if (h->handle == handle)
            return h;
    reply_err(s, id, MMAPIO_E_NOT_FOUND, "no such handle");
    return NULL;
}

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
        policy_flush(s->w, m);
    map_maybe_free(s->w, m);
    free(h);
}

/* ---- watches --------------------------------------------------------- */

/* An event to every watcher of m. A watcher that does not read its
 * events is dropped with the connection (the bytes queued toward it are
 * bounded), not told OVERFLOW. */
static void notify(struct winops *w, struct wmap *m, Mmapio__EventKind kind, bool range,
                   uint64_t off, uint64_t len)
{
    Mmapio__Event ev = MMAPIO__EVENT__INIT;
    Mmapio__FlushPolicy pol;
    ev.kind = kind;
    ev.map_id = m->id;
    ev.size = m->size;
    policy_to_wire(m->policy, &pol);
    ev.policy = &pol;
    ev.has_range = range;
    ev.offset = off;
    ev.len = len;
    Mmapio__ServerMessage msg = MMAPIO__SERVER_MESSAGE__INIT;
    msg.body_case = MMAPIO__SERVER_MESSAGE__BODY_EVENT;
    msg.event = &ev;
    uint8_t buf[128]; /* an Event packs to well under this */
    size_t n = mmapio__server_message__get_packed_size(&msg);
    if (n > sizeof(buf))
        return;
    mmapio__server_message__pack(&msg, buf);
    for (struct wwatch *x = w->watches; x; x = x->next)
        if (x->m == m && w->port.send(x->s->conn, buf, n, NULL, NULL, 0) < 0)
            w->port.close_when_sent(x->s->conn);
}

static void watch_drop(struct winops *w, struct wwatch *x)
{
    for (struct wwatch **p = &w->watches; *p; p = &(*p)->next)
        if (*p == x) {
            *p = x->next;
            break;
        }
    x->s->n_watches--;
    x->m->watchers--;
    atomic_fetch_sub(&w->slots[x->m->slot].watchers, 1);
    map_maybe_free(w, x->m);
    free(x);
}

/* ---- acting as the caller --------------------------------------------- */

/* beneath_open as the client (its token decides every access). */
static HANDLE open_as_caller(struct wsession *s, const char *path, ACCESS_MASK access,
                             enum beneath_how how, bool *created, int *err)
{
    if (!ImpersonateNamedPipeClient(s->pipe)) {
        *err = -EACCES;
        return NULL;
    }
    HANDLE h = beneath_open(s->w->cfg.root, path, access, how, created, err);
    if (!RevertToSelf())
        abort(); /* still the client: nothing after this may run */
    return h;
}

/* The RID of a file's owner, or UINT32_MAX. */
static uint32_t file_owner(HANDLE f)
{
    PSID sid = NULL;
    PSECURITY_DESCRIPTOR sd = NULL;
    uint32_t rid = UINT32_MAX;
    if (GetSecurityInfo(f, SE_FILE_OBJECT, OWNER_SECURITY_INFORMATION, &sid,
                        NULL, NULL, NULL, &sd) == ERROR_SUCCESS && sid &&
        IsValidSid(sid) && *GetSidSubAuthorityCount(sid) > 0)
        rid = (uint32_t)*GetSidSubAuthority(sid, *GetSidSubAuthorityCount(sid) - 1u);
    LocalFree(sd);
    return rid;
}

/* An anonymous mapping's permission bits for this caller, as on Linux. */
static bool anon_allows(const struct wsession *s, const struct wmap *m, mmapio_mode mode)
{
    unsigned shift = s->cred.uid == m->owner ? 6 : s->cred.gid == m->group ? 3 : 0;
    unsigned bits = (m->perm >> shift) & 7u;
    return mode == MMAPIO_MODE_READ_WRITE ? (bits & 6u) == 6u : (bits & 4u) != 0;
}

/* ---- requests ---------------------------------------------------------- */

static void op_hello(struct wsession *s, uint64_t id, const Mmapio__Hello *m)
{
    if (m->protocol != WIRE_PROTOCOL) {
        s->w->port.close_when_sent(s->conn);
        reply_err(s, id, MMAPIO_E_PROTOCOL,
                  "protocol version %u not supported (this daemon speaks %u)",
                  m->protocol, WIRE_PROTOCOL);
        return;
    }
    /* Impersonation works once the pipe was read from: now. */
    int r = peer_identity(PLATFORM_FD(s->pipe), &s->cred);
    if (r < 0) {
        s->w->port.close_when_sent(s->conn);
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
    s->hello_done = true;
    s->w->port.admitted(s->conn);
    Mmapio__HelloReply hr = MMAPIO__HELLO_REPLY__INIT;
    hr.protocol = WIRE_PROTOCOL;
    hr.server_version = (char *)MMAPIO_VERSION;
    hr.max_frame = s->w->cfg.max_frame;
    hr.max_inflight = s->w->cfg.max_inflight;
    hr.max_events = s->w->cfg.max_events;
    hr.ctl_slots = CTL_SLOTS;
    Mmapio__Reply rep = MMAPIO__REPLY__INIT;
    rep.id = id;
    rep.result_case = MMAPIO__REPLY__RESULT_HELLO;
    rep.hello = &hr;
    send_reply(s, &rep, s->w->ctl, GRANT_RO);
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

static void open_file(struct wsession *s, uint64_t id, const Mmapio__Open *o,
                      mmapio_mode mode)
{
    struct winops *w = s->w;
    const char *why;
    int r = beneath_check_path(o->path, &why);
    if (r != MMAPIO_OK) {
        reply_err(s, id, r, "%s: %s", o->path, why);
        return;
    }
    if (s->n_holders >= w->cfg.max_holders_per_client) {
        reply_err(s, id, MMAPIO_E_QUOTA, "max_holders_per_client reached");
        return;
    }
    bool sizing = o->create || o->truncate;
    bool writer = mode == MMAPIO_MODE_READ_WRITE || sizing;
    ACCESS_MASK access = GENERIC_READ | (writer ? GENERIC_WRITE : 0);
    enum beneath_how how = o->exclusive ? BENEATH_EXCLUSIVE
                         : o->create ? BENEATH_CREATE : BENEATH_OPEN;
    bool created;
    int err = 0;
    HANDLE f = open_as_caller(s, o->path, access, how, &created, &err);
    if (!f) {
        reply_err(s, id, public_err(err), "%s: %s", o->path, errno_text(err));
        return;
    }
    BY_HANDLE_FILE_INFORMATION fi;
    LARGE_INTEGER size;
    if (!GetFileInformationByHandle(f, &fi) || !GetFileSizeEx(f, &size)) {
        CloseHandle(f);
        reply_err(s, id, MMAPIO_E_IO, "%s: cannot read its attributes", o->path);
        return;
    }
    uint64_t index = (uint64_t)fi.nFileIndexHigh << 32 | fi.nFileIndexLow;
    struct wmap *m = find_file(w, fi.dwVolumeSerialNumber, index);
    if (o->owner && o->owner->uid != file_owner(f)) {
        CloseHandle(f);
        reply_err(s, id, MMAPIO_E_PERMISSION, "%s: belongs to another account", o->path);
        return;
    }
    if ((created || o->truncate) && (uint64_t)size.QuadPart != o->size) {
        if (o->size > w->cfg.max_map_size || (m && !created)) {
            CloseHandle(f);
            reply_err(s, id, m ? MMAPIO_E_BUSY : MMAPIO_E_INVALID_ARGUMENT,
                      "%s: %s", o->path, m ? "mapped: its size cannot change on Windows"
                                           : "bigger than max_map_size");
            return;
        }
        FILE_END_OF_FILE_INFO eof = {.EndOfFile.QuadPart = (LONGLONG)o->size};
        if (!SetFileInformationByHandle(f, FileEndOfFileInfo, &eof, sizeof(eof))) {
            CloseHandle(f);
            reply_err(s, id, MMAPIO_E_IO, "%s: cannot set its size", o->path);
            return;
        }
        size.QuadPart = (LONGLONG)o->size;
    }
    if (size.QuadPart == 0) {
        CloseHandle(f);
        reply_err(s, id, MMAPIO_E_INVALID_ARGUMENT,
                  "%s: an empty file cannot be mapped on Windows", o->path);
        return;
    }
    HANDLE sec = mem_file_section(f, mode == MMAPIO_MODE_READ_WRITE);
    if (!sec) {
        CloseHandle(f);
        reply_err(s, id, MMAPIO_E_IO, "%s: cannot make its section (%lu)", o->path,
                  (unsigned long)GetLastError());
        return;
    }
    if (!m) {
        m = map_new(w, s->cred.uid, false, (uint64_t)size.QuadPart, o->path, &err, &why);
        if (!m) {
            CloseHandle(sec);
            CloseHandle(f);
            reply_err(s, id, err, "%s: %s", o->path, why);
            return;
        }
        m->file = f; /* kept for stat */
        m->vol = fi.dwVolumeSerialNumber;
        m->index = index;
        if (o->policy)
            m->policy = policy_from_wire(o->policy);
        atomic_store(&w->slots[m->slot].policy, ctl_pack_policy(m->policy));
    } else {
        m->size = (uint64_t)size.QuadPart;
    }
    if (mode == MMAPIO_MODE_READ_WRITE && !m->wfile &&
        !DuplicateHandle(GetCurrentProcess(), f, GetCurrentProcess(), &m->wfile, 0,
                         FALSE, DUPLICATE_SAME_ACCESS))
        m->wfile = NULL; /* then timed flushes of it are skipped */
    if (m->file != f)
        CloseHandle(f);
    grant(s, id, m, mode, sec);
    CloseHandle(sec); /* the client's duplicate keeps it */
}

static void op_open(struct wsession *s, uint64_t id, const Mmapio__Open *o)
{
    if ((unsigned)o->mode > MMAPIO__MODE__MODE_COPY_ON_WRITE || o->perm > 0777 ||
        (o->policy && !policy_valid(policy_from_wire(o->policy)))) {
        reply_err(s, id, MMAPIO_E_INVALID_ARGUMENT, "bad mode, permission bits or flush policy");
        return;
    }
    if (!names_valid(o->path)) {
        reply_err(s, id, MMAPIO_E_INVALID_ARGUMENT, NAMES_REFUSED);
        return;
    }
    if (o->anonymous)
        open_anon(s, id, o, (mmapio_mode)o->mode);
    else
        open_file(s, id, o, (mmapio_mode)o->mode);
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
            notify(s->w, m, MMAPIO__EVENT_KIND__EVENT_REMOVED, false, 0, 0);
            map_maybe_free(s->w, m);
            reply_ok(s, id);
        }
        return;
    }
    const char *why;
    int r = beneath_check_path(d->path, &why);
    if (r != MMAPIO_OK) {
        reply_err(s, id, r, "%s: %s", d->path, why);
        return;
    }
    bool created;
    int err = 0;
    HANDLE f = open_as_caller(s, d->path, DELETE, BENEATH_OPEN, &created, &err);
    FILE_DISPOSITION_INFO del = {.DeleteFile = TRUE};
    if (!f) {
        reply_err(s, id, public_err(err), "cannot delete %s: %s", d->path, errno_text(err));
        return;
    }
    BY_HANDLE_FILE_INFORMATION fi;
    struct wmap *m = GetFileInformationByHandle(f, &fi)
        ? find_file(s->w, fi.dwVolumeSerialNumber,
                    (uint64_t)fi.nFileIndexHigh << 32 | fi.nFileIndexLow)
        : NULL;
    BOOL ok = SetFileInformationByHandle(f, FileDispositionInfo, &del, sizeof(del));
    CloseHandle(f);
    if (ok && m && fi.nNumberOfLinks <= 1) /* its last name */
        notify(s->w, m, MMAPIO__EVENT_KIND__EVENT_REMOVED, false, 0, 0);
    if (ok)
        reply_ok(s, id);
    else
        reply_err(s, id, MMAPIO_E_IO, "cannot delete %s (%lu)", d->path,
                  (unsigned long)GetLastError());
}

static void op_stat(struct wsession *s, uint64_t id, const Mmapio__Stat *st)
{
    struct wholder *h = find_holder(s, id, st->handle);
    if (!h)
        return;
    LARGE_INTEGER size;
    if (h->m->file && GetFileSizeEx(h->m->file, &size))
        h->m->size = (uint64_t)size.QuadPart;
    Mmapio__StatReply sr = MMAPIO__STAT_REPLY__INIT;
    Mmapio__FlushPolicy pol;
    sr.size = h->m->size;
    sr.holders = h->m->holders;
    policy_to_wire(h->m->policy, &pol);
    sr.policy = &pol;
    Mmapio__Reply r = MMAPIO__REPLY__INIT;
    r.id = id;
    r.result_case = MMAPIO__REPLY__RESULT_STAT;
    r.stat = &sr;
    send_reply(s, &r, NULL, 0);
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
    mmapio_flush_policy pol = policy_from_wire(p->policy);
    if (h->mode != MMAPIO_MODE_READ_WRITE) {
        reply_err(s, id, MMAPIO_E_INVALID_MODE, "the handle is not read-write");
    } else if (!p->policy || !policy_valid(pol)) {
        reply_err(s, id, MMAPIO_E_INVALID_ARGUMENT, "invalid flush policy");
    } else {
        struct wmap *m = h->m;
        m->policy = pol;
        atomic_store(&s->w->slots[m->slot].policy, ctl_pack_policy(pol));
        notify(s->w, m, MMAPIO__EVENT_KIND__EVENT_POLICY, false, 0, 0);
        if (m->armed && pol.kind != MMAPIO_FLUSH_EVERY_MILLIS) {
            SetThreadpoolTimer(m->timer, NULL, 0, 0);
            m->armed = false;
        } else if (m->armed) { /* a new pace from now */
            m->armed = false;
            timed_flush(s->w, m);
        }
        reply_ok(s, id);
    }
}

/* A flush on a worker thread (the disk's time is not the loop's): the
 * file's pages in [off, off + len) through a view of its own, then the
 * file's metadata and the device's cache. The result goes back to the
 * loop (winops_port.post); a session gone by then gets no reply. */
struct wflush {
    struct wsession *s;   /* NULL: the daemon's own flush, of map_id */
    struct winops *w;
    uint64_t map_id;
    uint64_t id;
    HANDLE file;    /* writable, opened as the caller */
    uint64_t off, len;
    bool ok;
    DWORD err;
};

#define MAX_FLUSHES_PER_CLIENT 16

static void flush_done(void *arg)
{
    struct wflush *f = arg;
    struct wsession *s = f->s;
    CloseHandle(f->file);
    if (!s) { /* the daemon's own: a policy's */
        struct wmap *m = find_id(f->w, f->map_id);
        if (!f->ok)
            log_warn("%s: a policy's flush failed (%lu)", m ? m->name : "?",
                     (unsigned long)f->err);
        if (m) {
            m->flushing = false;
            if (m->dirty_again) /* written during the flush: once more at its pace */
                timed_flush(f->w, m);
        }
        free(f);
        return;
    }
    s->flushes--;
    if (s->gone) {
        if (s->flushes == 0)
            free(s);
    } else if (f->ok) {
        reply_ok(s, f->id);
    } else {
        reply_err(s, f->id, MMAPIO_E_FLUSH_FAILED, "the flush failed (%lu)",
                  (unsigned long)f->err);
    }
    free(f);
}

static void CALLBACK flush_work(PTP_CALLBACK_INSTANCE inst, void *arg)
{
    (void)inst;
    struct wflush *f = arg;
    HANDLE sec = mem_file_section(f->file, false);
    char *view = sec ? MapViewOfFile(sec, FILE_MAP_READ, 0, 0, 0) : NULL;
    /* len 0 from 0: the whole view (the daemon's own flushes); at the
     * end of the file: no bytes, the metadata only. */
    bool none = f->len == 0 && f->off != 0;
    f->ok = view && (none || FlushViewOfFile(view + f->off, (SIZE_T)f->len)) &&
            FlushFileBuffers(f->file);
    f->err = f->ok ? 0 : GetLastError();
    if (view)
        UnmapViewOfFile(view);
    if (sec)
        CloseHandle(sec);
    f->w->port.post(flush_done, f);
}

static void op_flush(struct wsession *s, uint64_t id, const Mmapio__Flush *fl)
{
    struct wholder *h = find_holder(s, id, fl->handle);
    if (!h)
        return;
    if (h->m->anonymous) {
        reply_ok(s, id); /* nothing on a disk */
        return;
    }
    if (h->mode != MMAPIO_MODE_READ_WRITE) {
        reply_err(s, id, MMAPIO_E_INVALID_MODE, "the handle is not read-write");
        return;
    }
    LARGE_INTEGER size;
    if (!GetFileSizeEx(h->m->file, &size)) {
        reply_err(s, id, MMAPIO_E_IO, "%s: its size cannot be read", h->m->name);
        return;
    }
    uint64_t total = (uint64_t)size.QuadPart;
    if (fl->offset > total || fl->len > total - fl->offset) {
        reply_err(s, id, MMAPIO_E_OUT_OF_BOUNDS, "beyond the file's %llu bytes",
                  (unsigned long long)total);
        return;
    }
    if (s->flushes >= MAX_FLUSHES_PER_CLIENT) {
        reply_err(s, id, MMAPIO_E_BUSY, "%d flushes of this client under way",
                  MAX_FLUSHES_PER_CLIENT);
        return;
    }
    struct wflush *f = calloc(1, sizeof(*f));
    bool created;
    int err = 0;
    /* Writable, as the caller: the daemon's own handle may be read-only. */
    HANDLE file = f ? open_as_caller(s, h->m->name, GENERIC_READ | GENERIC_WRITE,
                                     BENEATH_OPEN, &created, &err) : NULL;
    if (!file) {
        free(f);
        reply_err(s, id, MMAPIO_E_FLUSH_FAILED, "%s: %s", h->m->name,
                  f ? errno_text(err) : "out of memory");
        return;
    }
    *f = (struct wflush){.s = s, .w = s->w, .id = id, .file = file, .off = fl->offset,
                         .len = fl->len ? fl->len : total - fl->offset};
    s->flushes++;
    if (!TrySubmitThreadpoolCallback(flush_work, f, NULL)) {
        f->ok = false;
        f->err = GetLastError();
        flush_done(f);
    }
}

static void op_watch(struct wsession *s, uint64_t id, const Mmapio__Watch *wa)
{
    struct wholder *h = find_holder(s, id, wa->handle);
    if (!h)
        return;
    struct wwatch *x = s->n_watches < MAX_WATCHES_PER_CLIENT ? calloc(1, sizeof(*x)) : NULL;
    if (!x) {
        reply_err(s, id, MMAPIO_E_QUOTA, "cannot watch: %d watches per client at most",
                  MAX_WATCHES_PER_CLIENT);
        return;
    }
    *x = (struct wwatch){.next = s->w->watches, .id = ++s->w->next_watch, .s = s,
                         .m = h->m};
    s->w->watches = x;
    s->n_watches++;
    h->m->watchers++;
    atomic_fetch_add(&s->w->slots[h->m->slot].watchers, 1); /* writers notice now */
    Mmapio__WatchReply wr = MMAPIO__WATCH_REPLY__INIT;
    wr.watch_id = x->id;
    wr.map_id = h->m->id;
    Mmapio__Reply r = MMAPIO__REPLY__INIT;
    r.id = id;
    r.result_case = MMAPIO__REPLY__RESULT_WATCH;
    r.watch = &wr;
    send_reply(s, &r, NULL, 0);
}

static void op_unwatch(struct wsession *s, uint64_t id, const Mmapio__Unwatch *u)
{
    struct wwatch *x = s->w->watches;
    while (x && !(x->s == s && x->id == u->watch_id))
        x = x->next;
    if (!x) {
        reply_err(s, id, MMAPIO_E_NOT_FOUND, "no watch %llu on this connection",
                  (unsigned long long)u->watch_id);
        return;
    }
    watch_drop(s->w, x);
    reply_ok(s, id);
}

/* ---- flush policies ------------------------------------------------------ */

/* The daemon's own flush of m, now: the flush generation moves first (a
 * write after it sends a new DIRTY notice), then the file's bytes go to
 * the disk on a worker thread. Anonymous mappings have no disk. */
static void policy_flush(struct winops *w, struct wmap *m)
{
    atomic_fetch_add(&w->slots[m->slot].flush_gen, 1);
    m->dirty = false;
    if (m->anonymous || !m->wfile)
        return;
    if (m->flushing) {
        m->dirty_again = true;
        return;
    }
    struct wflush *f = calloc(1, sizeof(*f));
    HANDLE dup = NULL;
    if (!f || !DuplicateHandle(GetCurrentProcess(), m->wfile, GetCurrentProcess(), &dup,
                               0, FALSE, DUPLICATE_SAME_ACCESS)) {
        free(f);
        log_warn("%s: a policy's flush could not start", m->name);
        return;
    }
    *f = (struct wflush){.w = w, .map_id = m->id, .file = dup}; /* the whole file */
    m->flushing = true;
    m->dirty_again = false;
    if (!TrySubmitThreadpoolCallback(flush_work, f, NULL)) {
        f->err = GetLastError();
        flush_done(f);
    }
}

/* On the loop: m's timer came due. */
static void timer_due(void *arg)
{
    struct wtimer *t = arg;
    struct wmap *m = find_id(t->w, t->map_id);
    if (m) {
        m->armed = false;
        policy_flush(t->w, m);
    }
    free(t);
}

/* On a pool thread: hands the mapping's id to the loop (the mapping may
 * be gone by the time the loop looks). */
static void CALLBACK timer_fired(PTP_CALLBACK_INSTANCE inst, void *arg, PTP_TIMER timer)
{
    (void)inst;
    (void)timer;
    const struct wtimer *t = arg;
    struct wtimer *copy = malloc(sizeof(*copy));
    if (copy) {
        *copy = *t;
        t->w->port.post(timer_due, copy);
    }
}

/* EVERY_MILLIS: a flush at the policy's pace after the first write. */
static void timed_flush(struct winops *w, struct wmap *m)
{
    if (m->armed || m->policy.kind != MMAPIO_FLUSH_EVERY_MILLIS)
        return;
    if (!m->timer) {
        m->tctx = malloc(sizeof(*m->tctx));
        if (m->tctx) {
            *m->tctx = (struct wtimer){w, m->id};
            m->timer = CreateThreadpoolTimer(timer_fired, m->tctx, NULL);
        }
        if (!m->timer) {
            free(m->tctx);
            m->tctx = NULL;
            log_warn("%s: no timer for its policy", m->name);
            return;
        }
    }
    ULARGE_INTEGER due; /* relative, in 100 ns units (at most ~29,000 years) */
    uint64_t ms = m->policy.value < INT64_MAX / 10000 ? m->policy.value : INT64_MAX / 10000;
    due.QuadPart = (ULONGLONG)-(LONGLONG)(ms * 10000u);
    FILETIME ft = {due.LowPart, due.HighPart};
    SetThreadpoolTimer(m->timer, &ft, 0, 0);
    m->armed = true;
}

/* One-way, never answered: a notice that does not fit is dropped. */
static void op_notice(struct wsession *s, const Mmapio__Notice *n)
{
    struct wholder *h = s->holders;
    while (h && h->handle != n->handle)
        h = h->next;
    if (!h || h->mode != MMAPIO_MODE_READ_WRITE)
        return;
    if (n->kind == MMAPIO__NOTICE_KIND__NOTICE_DIRTY ||
        n->kind == MMAPIO__NOTICE_KIND__NOTICE_WRITE)
        h->m->dirty = true;
    if (n->kind == MMAPIO__NOTICE_KIND__NOTICE_DIRTY) {
        timed_flush(s->w, h->m);
    } else if (n->kind == MMAPIO__NOTICE_KIND__NOTICE_WRITE) {
        struct wmap *m = h->m;
        if (n->offset > m->size || n->len > m->size - n->offset)
            return;
        notify(s->w, m, MMAPIO__EVENT_KIND__EVENT_MODIFIED, true, n->offset, n->len);
        timed_flush(s->w, m);
    }
    else if (n->kind == MMAPIO__NOTICE_KIND__NOTICE_FLUSH &&
             (h->m->policy.kind == MMAPIO_FLUSH_EVERY_BYTES ||
              h->m->policy.kind == MMAPIO_FLUSH_EVERY_WRITES))
        policy_flush(s->w, h->m); /* a writer's threshold, handed over */
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

void winops_request(struct wsession *s, const uint8_t *pb, size_t len, unsigned n_handles)
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
    } else if (q->op_case == MMAPIO__REQUEST__OP_FROM_FD ||
               q->op_case == MMAPIO__REQUEST__OP_REATTACH ||
               q->op_case == MMAPIO__REQUEST__OP_FD_OFFER) {
        reply_err(s, id, MMAPIO_E_INVALID_ARGUMENT, UNSUPPORTED);
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
        case MMAPIO__REQUEST__OP_DELETE_MAP: op_delete(s, id, q->delete_map); break;
        case MMAPIO__REQUEST__OP_STAT: op_stat(s, id, q->stat); break;
        case MMAPIO__REQUEST__OP_RESIZE: op_resize(s, id, q->resize); break;
        case MMAPIO__REQUEST__OP_SET_POLICY: op_set_policy(s, id, q->set_policy); break;
        case MMAPIO__REQUEST__OP_FLUSH: op_flush(s, id, q->flush); break;
        case MMAPIO__REQUEST__OP_WATCH: op_watch(s, id, q->watch); break;
        case MMAPIO__REQUEST__OP_UNWATCH: op_unwatch(s, id, q->unwatch); break;
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
    }
    return s;
}

void winops_session_end(struct wsession *s)
{
    for (struct wwatch *x = s->w->watches, *next; x && s->n_watches; x = next) {
        next = x->next;
        if (x->s == s)
            watch_drop(s->w, x);
    }
    while (s->holders)
        release(s, s->holders);
    struct uidq *q = s->hello_done ? uidq_of(s->w, s->cred.uid, false) : NULL;
    if (q)
        q->clients--;
    s->gone = true;
    if (s->flushes == 0)
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
    *out = w;
    return 0;
}

void winops_free(struct winops *w)
{
    if (!w)
        return;
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
