/*
 * winadmin (Windows): the admin requests (winadmin.h), as
 * daemon/requests/admin.c answers them on Linux.
 */
#include "winadmin.h"
#include "winflush.h"
#include "winopen.h"
#include "winwatch.h"

#include <errno.h>
#include <psapi.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "adminview.h"
#include "filesection.h"
#include "names.h"
#include "policy.h"
#include "reqmsg.h"

#define LIMITS_MAX 16          /* numbers in the status (fill_limits) */
#define ADMIN_WATCHES_MAX 256  /* watches by name per client, as winwatch's */
#define ADMIN_FLUSHES_MAX 16   /* flushes under way per client, as winflush's */

/* ---- who may see what --------------------------------------------------- */

static PSID user_sid(HANDLE tok, TOKEN_USER **buf)
{
    DWORD len = 0;
    GetTokenInformation(tok, TokenUser, NULL, 0, &len);
    *buf = len ? malloc(len) : NULL;
    if (*buf && GetTokenInformation(tok, TokenUser, *buf, len, &len))
        return (*buf)->User.Sid;
    return NULL;
}

/* An admin is a member of Administrators (an elevated token: a filtered
 * one has the group for deny only) or the daemon's own account — root's
 * and the daemon's user's place on Linux. Asked of the caller's token by
 * impersonation (the pipe was read from: the request). */
static bool is_admin(const struct wsession *s)
{
    HANDLE tok = NULL, self = NULL;
    if (!ImpersonateNamedPipeClient(s->pipe))
        return false;
    BOOL got = OpenThreadToken(GetCurrentThread(), TOKEN_QUERY, TRUE, &tok);
    if (!RevertToSelf())
        abort(); /* still the client: nothing after this may run */
    if (!got)
        return false;
    BOOL member = FALSE;
    BYTE admins[SECURITY_MAX_SID_SIZE];
    DWORD n = sizeof(admins);
    if (CreateWellKnownSid(WinBuiltinAdministratorsSid, NULL, admins, &n) &&
        !CheckTokenMembership(tok, admins, &member))
        member = FALSE;
    if (!member && OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &self)) {
        TOKEN_USER *a = NULL, *b = NULL;
        PSID them = user_sid(tok, &a), us = user_sid(self, &b);
        member = them && us && EqualSid(them, us);
        free(a);
        free(b);
        CloseHandle(self);
    }
    CloseHandle(tok);
    return member;
}

static bool may_see(const struct wsession *s, bool admin, const struct wmap *m)
{
    return !m->private_map && adminview_sees(admin, s->cred.uid, m->owner);
}

/* ---- the sessions' list ------------------------------------------------- */

void winadmin_session_add(struct winops *w, struct wsession *s)
{
    s->id = ++w->sessions_total;
    s->next = w->sessions;
    w->sessions = s;
    w->n_sessions++;
}

void winadmin_session_remove(struct winops *w, struct wsession *s)
{
    for (struct wsession **p = &w->sessions; *p; p = &(*p)->next)
        if (*p == s) {
            *p = s->next;
            w->n_sessions--;
            return;
        }
}

/* ---- status ------------------------------------------------------------- */

/* The settings the Windows daemon has, by their mmapiod.conf keys. */
static size_t fill_limits(const struct winops_config *c, Mmapio__Limit *lim,
                          Mmapio__Limit **p)
{
    const struct { const char *name; uint64_t value; const char *what; } v[] = {
        {"max_frame", c->max_frame, "largest frame (message) in bytes"},
        {"max_inflight", c->max_inflight, "requests a client may have unanswered"},
        {"max_events", c->max_events, "events queued for a client"},
        {"max_map_size", c->max_map_size, "largest mapping in bytes"},
        {"max_mappings", c->max_mappings, "mappings in the daemon"},
        {"max_mappings_per_uid", c->max_mappings_per_uid, "mappings per account"},
        {"max_bytes_per_uid", c->max_bytes_per_uid, "anonymous bytes per account"},
        {"max_holders_per_client", c->max_holders_per_client, "handles per connection"},
        {"max_clients", c->max_clients, "connections in the daemon"},
        {"max_clients_per_uid", c->max_clients_per_uid, "connections per account"},
        {"hello_timeout_ms", c->hello_timeout_ms, "time to say hello, in ms"},
    };
    size_t n = 0;
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
        adminview_limit(lim, p, &n, LIMITS_MAX, v[i].name, v[i].value, v[i].what);
    return n;
}

static void op_status(struct wsession *s, uint64_t id, bool admin)
{
    struct winops *w = s->w;
    Mmapio__StatusReply st = MMAPIO__STATUS_REPLY__INIT;
    for (const struct wmap *m = w->maps; m; m = m->next) {
        if (!may_see(s, admin, m))
            continue;
        adminview_count(&st, m->anonymous, m->size);
        st.removed_held += m->anonymous && !m->named;
    }
    for (const struct wsession *o = w->sessions; o; o = o->next)
        st.clients += o->hello_done && adminview_sees(admin, s->cred.uid, o->cred.uid);
    PROCESS_MEMORY_COUNTERS pmc = {.cb = sizeof(pmc)};
    Mmapio__Limit lim[LIMITS_MAX], *limp[LIMITS_MAX];
    st.n_limits = fill_limits(&w->cfg, lim, limp);
    st.limits = limp;
    /* No configuration file on Windows; write_rings, carved, arenas: none. */
    struct adminview_daemon d = {
        .started = w->started, .pid = (int32_t)GetCurrentProcessId(),
        .socket = w->cfg.pipe_name, .root = w->cfg.root_path,
        .rss_bytes = K32GetProcessMemoryInfo(GetCurrentProcess(), &pmc, sizeof(pmc))
                         ? pmc.WorkingSetSize : 0,
        .flushes = w->flushes, .flush_failures = w->flush_failures,
        .errors = w->errors, .clients_total = w->sessions_total,
    };
    Mmapio__Reply r;
    send_reply(s, adminview_status(&r, id, &st, admin, &d), NULL, 0);
}

/* ---- list and stat ------------------------------------------------------ */

static void fill_info(const struct winops *w, struct wmap *m, Mmapio__MapInfo *i,
                      Mmapio__FlushPolicy *pol)
{
    LARGE_INTEGER size;
    if (m->file && GetFileSizeEx(m->file, &size))
        m->size = (uint64_t)size.QuadPart;
    mmapio__map_info__init(i);
    i->id = m->id;
    i->name = m->name;
    i->anonymous = m->anonymous;
    i->size = m->size;
    policy_to_wire(m->policy, pol);
    i->policy = pol;
    i->holders = m->holders;
    for (const struct wsession *o = w->sessions; o && m->holders; o = o->next)
        for (const struct wholder *h = o->holders; h; h = h->next)
            i->rw_holders += h->m == m && h->mode == MMAPIO_MODE_READ_WRITE;
    i->owner = m->owner;
    i->perm = m->anonymous ? m->perm : 0; /* a file has an ACL, no mode bits */
    i->created = m->created;
    i->creator_pid = m->creator_pid;
    i->watchers = m->watchers;
    i->removed = m->anonymous && !m->named;
    i->flushes = m->flushes;
    i->last_flush = m->last_flush;
    /* pending_bytes (unknown: pending_known false): not known on Windows;
     * huge_pages: never used. */
}

/* A page built (r 0) sent and freed, or the want of memory told. */
static void send_page(struct wsession *s, uint64_t id, int r, struct adminview_page *page)
{
    if (r < 0) {
        reply_err(s, id, MMAPIO_E_QUOTA, "out of memory");
        return;
    }
    send_reply(s, &page->reply, NULL, 0);
    adminview_free(page);
}

/* AdminList's and AdminClients' source (adminview_*_fn): the picks, by id. */
struct picked {
    struct winops *w;
    struct adminview_picks picks;
};

static bool list_next(void *arg, Mmapio__MapInfo *i, Mmapio__FlushPolicy *pol)
{
    struct picked *a = arg;
    struct wmap *m = adminview_next(&a->picks);
    if (m)
        fill_info(a->w, m, i, pol);
    return m != NULL;
}

static void op_list(struct wsession *s, uint64_t id, bool admin,
                    const Mmapio__AdminList *q)
{
    struct winops *w = s->w;
    struct picked a = { .w = w };
    struct adminview_page page;
    if (adminview_picks_init(&a.picks, w->n_maps, q->after_id) < 0) {
        reply_err(s, id, MMAPIO_E_QUOTA, "out of memory");
        return;
    }
    for (struct wmap *m = w->maps; m; m = m->next)
        if (may_see(s, admin, m))
            adminview_pick(&a.picks, m->id, m);
    adminview_sort(&a.picks);
    send_page(s, id, adminview_list(&page, id, a.picks.n, list_next, &a), &page);
    adminview_picks_free(&a.picks);
}

/* ---- clients ------------------------------------------------------------ */

static bool client_next(void *arg, Mmapio__ClientInfo *ci)
{
    struct picked *a = arg;
    const struct wsession *o = adminview_next(&a->picks);
    if (!o)
        return false;
    adminview_client(ci, o->id, &o->cred, o->name, o->n_holders, o->n_watches);
    for (const struct wholder *h = o->holders; h; h = h->next)
        if (!adminview_held(ci, h->m->id, h->m->name, h->mode, h->m->anonymous))
            break;
    return true;
}

static void op_clients(struct wsession *s, uint64_t id, bool admin,
                       const Mmapio__AdminClients *q)
{
    struct winops *w = s->w;
    struct picked a = { .w = w };
    struct adminview_page page;
    if (adminview_picks_init(&a.picks, w->n_sessions, q->after_id) < 0) {
        reply_err(s, id, MMAPIO_E_QUOTA, "out of memory");
        return;
    }
    /* Past hello only: before it nobody knows whose a connection is. */
    for (struct wsession *o = w->sessions; o; o = o->next)
        if (o->hello_done && adminview_sees(admin, s->cred.uid, o->cred.uid))
            adminview_pick(&a.picks, o->id, o);
    adminview_sort(&a.picks);
    send_page(s, id, adminview_clients(&page, id, a.picks.n, client_next, &a), &page);
    adminview_picks_free(&a.picks);
}

/* ---- by name ------------------------------------------------------------ */

static void refuse_not_owner(struct wsession *s, uint64_t id, const char *path,
                             bool anonymous, uint32_t owner)
{
    reply_err(s, id, MMAPIO_E_PERMISSION, ADMINVIEW_NOT_OWNER,
              anonymous ? "anon:" : "", path, (unsigned)owner);
}

/* An admin request by a file's path, once the file is looked up on a
 * worker (winopen_lookup): what goes on. */
enum { BY_STAT, BY_WATCH, BY_FLUSH, BY_POLICY };
struct byname {
    bool admin;
    int op;
    mmapio_flush_policy policy; /* BY_POLICY */
};

static void stat_reply(struct wsession *s, uint64_t id, struct wmap *m);
static void watch_make(struct wsession *s, uint64_t id, struct wmap *m);
static void flush_start(struct wsession *s, uint64_t id, bool admin, struct wmap *one);
static void policy_set(struct wsession *s, uint64_t id, struct wmap *m, mmapio_flush_policy p);
static void looked_up(struct wsession *s, uint64_t id, void *ctx, struct wlookup *r);

/* Looks `path` up on a worker, then goes on with `op`. */
static void by_name(struct wsession *s, uint64_t id, const char *path, bool admin, int op,
                    mmapio_flush_policy policy)
{
    struct byname *b = malloc(sizeof(*b));
    if (!b) {
        reply_err(s, id, MMAPIO_E_QUOTA, "out of memory");
        return;
    }
    *b = (struct byname){.admin = admin, .op = op, .policy = policy};
    /* Stat and watch: readable as the caller; flush and policy: the
     * file's owner is what decides. */
    ACCESS_MASK access = op == BY_STAT || op == BY_WATCH ? GENERIC_READ
                                                         : FILE_READ_ATTRIBUTES | READ_CONTROL;
    winopen_lookup(s, id, path, access, admin, looked_up, b);
}

/*
 * The mapping an anonymous name names, if the caller may act on it (its
 * owner, or an admin): AdminFlush and AdminPolicy. As on Linux, a name
 * with nothing behind it is NOT_FOUND, one that is not the caller's
 * PERMISSION; a file (looked_up) is judged by its own owner before the
 * table is asked. NULL with the error replied.
 */
static struct wmap *find_named(struct wsession *s, uint64_t id, const char *path, bool admin)
{
    struct wmap *m = beneath_check_name(path) == MMAPIO_OK ? find_anon(s->w, path) : NULL;
    if (!m)
        reply_err(s, id, MMAPIO_E_NOT_FOUND, REQMSG_NO_ANON, path);
    else if (!may_see(s, admin, m))
        refuse_not_owner(s, id, path, true, m->owner);
    return m && may_see(s, admin, m) ? m : NULL;
}

/*
 * The anonymous mapping `name` for a caller who may read it (its owner
 * and bits), or an admin: AdminStat and AdminWatch. A file (looked_up)
 * by its ACL, as an open read-only would decide. NULL with the error
 * replied.
 */
static struct wmap *get_readable(struct wsession *s, uint64_t id, const char *path, bool admin)
{
    struct wmap *m = beneath_check_name(path) == MMAPIO_OK ? find_anon(s->w, path) : NULL;
    if (!m)
        reply_err(s, id, MMAPIO_E_NOT_FOUND, "anon:%s: no such anonymous mapping", path);
    else if (!admin && !anon_allows(s, m, MMAPIO_MODE_READ_ONLY))
        reply_err(s, id, MMAPIO_E_PERMISSION, "anon:%s: not yours to read", path);
    else
        return m;
    return NULL;
}

/* A file stat'ed or watched by path, found readable: its entry, else (a
 * stat) what the file says, or (a watch, which holds it) a new entry. */
static void readable_file(struct wsession *s, uint64_t id, const struct byname *b,
                          struct wlookup *r)
{
    struct wmap *m = find_file(s->w, r->vol, r->index);
    if (m) {
        CloseHandle(r->f);
    } else if (b->op == BY_STAT) {
        struct wmap tmp = {.name = (char *)r->path, .size = r->size, .owner = r->owner,
                           .policy = {MMAPIO_FLUSH_NEVER, 0}};
        CloseHandle(r->f);
        stat_reply(s, id, &tmp);
        return;
    } else {
        int err;
        const char *why;
        m = map_new(s->w, s->cred.uid, false, r->size, r->path, &err, &why);
        if (!m) {
            CloseHandle(r->f);
            reply_err(s, id, err, "%s: %s", r->path, why);
            return;
        }
        m->file = r->f; /* kept for stat, as an open's */
        m->vol = r->vol;
        m->index = r->index;
        m->creator_pid = (int32_t)s->cred.pid;
    }
    if (b->op == BY_STAT)
        stat_reply(s, id, m);
    else
        watch_make(s, id, m);
}

/* On the loop: the file an admin request named, looked up. */
static void looked_up(struct wsession *s, uint64_t id, void *ctx, struct wlookup *r)
{
    const struct byname *b = ctx;
    if (r->code != MMAPIO_OK) {
        reply_err(s, id, r->code, "%s: %s", r->path, r->why);
        return;
    }
    if (!r->known) {
        CloseHandle(r->f);
        reply_err(s, id, MMAPIO_E_IO, "%s: cannot read its attributes", r->path);
        return;
    }
    if (b->op == BY_STAT || b->op == BY_WATCH) {
        readable_file(s, id, b, r);
        return;
    }
    CloseHandle(r->f);
    if (!b->admin && r->owner != s->cred.uid) {
        refuse_not_owner(s, id, r->path, false, r->owner);
        return;
    }
    struct wmap *m = find_file(s->w, r->vol, r->index);
    if (!m)
        reply_err(s, id, MMAPIO_E_NOT_FOUND, REQMSG_UNMAPPED, r->path);
    else if (b->op == BY_FLUSH)
        flush_start(s, id, b->admin, m);
    else
        policy_set(s, id, m, b->policy);
}

static const mmapio_flush_policy NO_POLICY = {MMAPIO_FLUSH_NEVER, 0};

static void stat_reply(struct wsession *s, uint64_t id, struct wmap *m)
{
    Mmapio__MapInfo info;
    Mmapio__FlushPolicy pol;
    struct reqmsg b;
    fill_info(s->w, m, &info, &pol);
    send_reply(s, reqmsg_map(&b, id, &info), NULL, 0);
}

static void op_stat(struct wsession *s, uint64_t id, bool admin, const Mmapio__AdminStat *q)
{
    if (!names_valid(q->path)) {
        reply_err(s, id, MMAPIO_E_INVALID_ARGUMENT, NAMES_REFUSED);
    } else if (!q->anonymous) {
        by_name(s, id, q->path, admin, BY_STAT, NO_POLICY);
    } else {
        struct wmap *m = get_readable(s, id, q->path, admin);
        if (m)
            stat_reply(s, id, m);
    }
}

/* A watch without a holder: it keeps the entry (map_maybe_free counts
 * watchers) and changes nothing for anyone else. Events and unwatch are
 * winwatch's, as for a watch by handle. */
static void op_watch(struct wsession *s, uint64_t id, bool admin, const Mmapio__AdminWatch *q)
{
    if (!names_valid(q->path)) {
        reply_err(s, id, MMAPIO_E_INVALID_ARGUMENT, NAMES_REFUSED);
    } else if (!q->anonymous) {
        by_name(s, id, q->path, admin, BY_WATCH, NO_POLICY);
    } else {
        struct wmap *m = get_readable(s, id, q->path, admin);
        if (m)
            watch_make(s, id, m);
    }
}

static void watch_make(struct wsession *s, uint64_t id, struct wmap *m)
{
    struct winops *w = s->w;
    struct wwatch *x = s->n_watches < ADMIN_WATCHES_MAX ? calloc(1, sizeof(*x)) : NULL;
    if (!x) {
        reply_err(s, id, MMAPIO_E_QUOTA, "cannot watch: %d watches per client at most",
                  ADMIN_WATCHES_MAX);
        map_maybe_free(w, m); /* an entry made for the watch goes again */
        return;
    }
    *x = (struct wwatch){.next = w->watches, .id = ++w->next_watch, .s = s, .m = m};
    w->watches = x;
    s->n_watches++;
    m->watchers++;
    atomic_fetch_add(&w->slots[m->slot].watchers, 1); /* writers notice now */
    struct reqmsg b;
    send_reply(s, reqmsg_watch(&b, id, x->id, m->id), NULL, 0);
}

/* ---- flush and policy by name ------------------------------------------- */

/* One AdminFlush: answered when its last file is on the disk. */
struct abatch {
    struct wsession *s;
    uint64_t id;
    unsigned pending;
    uint32_t flushed, failed;
};

struct aflush {
    struct abatch *b;
    struct winops *w;
    uint64_t map_id;
    HANDLE file; /* a duplicate of the mapping's writer handle */
    bool ok;
};

static void batch_reply(struct abatch *b)
{
    struct reqmsg m;
    send_reply(b->s, reqmsg_flushed(&m, b->id, b->flushed, b->failed), NULL, 0);
}

/* One reference to b less; the last answers (or frees a session that
 * went meanwhile, as winflush does). */
static void batch_put(struct abatch *b)
{
    if (--b->pending)
        return;
    struct wsession *s = b->s;
    s->flushes--;
    if (!s->gone)
        batch_reply(b);
    else if (s->flushes == 0 && s->opens == 0)
        free(s);
    free(b);
}

/* On the loop: one file done. */
static void aflush_done(void *arg)
{
    struct aflush *f = arg;
    struct abatch *b = f->b;
    CloseHandle(f->file);
    winflush_count(f->w, f->map_id, f->ok);
    if (f->ok)
        b->flushed++;
    else
        b->failed++;
    free(f);
    batch_put(b);
}

/* On a pool thread: the whole file's pages, then its metadata and the
 * device's cache. */
static void CALLBACK aflush_work(PTP_CALLBACK_INSTANCE inst, void *arg)
{
    (void)inst;
    struct aflush *f = arg;
    HANDLE sec = mem_file_section(f->file, false);
    void *view = sec ? MapViewOfFile(sec, FILE_MAP_READ, 0, 0, 0) : NULL;
    f->ok = view && FlushViewOfFile(view, 0) && FlushFileBuffers(f->file);
    if (view)
        UnmapViewOfFile(view);
    if (sec)
        CloseHandle(sec);
    f->w->port.post(aflush_done, f);
}

/* Files with a writer's handle only: an anonymous mapping has no disk,
 * and one never mapped writable has nothing to write (Linux: the same). */
static void op_flush(struct wsession *s, uint64_t id, bool admin, const Mmapio__AdminFlush *q)
{
    struct wmap *one = NULL;
    if (q->all) {
        flush_start(s, id, admin, NULL);
    } else if (!names_valid(q->path)) {
        reply_err(s, id, MMAPIO_E_INVALID_ARGUMENT, NAMES_REFUSED);
    } else if (!q->anonymous) {
        by_name(s, id, q->path, admin, BY_FLUSH, NO_POLICY);
    } else if ((one = find_named(s, id, q->path, admin))) {
        flush_start(s, id, admin, one);
    }
}

/* `one` mapping, or (NULL) every one the caller may see. */
static void flush_start(struct wsession *s, uint64_t id, bool admin, struct wmap *one)
{
    struct winops *w = s->w;
    if (s->flushes >= ADMIN_FLUSHES_MAX) {
        reply_err(s, id, MMAPIO_E_BUSY, "%d flushes of this client under way",
                  ADMIN_FLUSHES_MAX);
        return;
    }
    struct abatch *b = calloc(1, sizeof(*b));
    if (!b) {
        reply_err(s, id, MMAPIO_E_QUOTA, "out of memory");
        return;
    }
    *b = (struct abatch){.s = s, .id = id, .pending = 1}; /* 1: until all are out */
    s->flushes++;
    for (struct wmap *m = one ? one : w->maps; m; m = one ? NULL : m->next) {
        if (m->anonymous || !m->wfile || !may_see(s, admin || one, m))
            continue;
        struct aflush *f = calloc(1, sizeof(*f));
        if (!f || !DuplicateHandle(GetCurrentProcess(), m->wfile, GetCurrentProcess(),
                                   &f->file, 0, FALSE, DUPLICATE_SAME_ACCESS)) {
            free(f);
            b->failed++;
            continue;
        }
        f->b = b;
        f->w = w;
        f->map_id = m->id;
        b->pending++;
        if (!TrySubmitThreadpoolCallback(aflush_work, f, NULL)) {
            f->ok = false;
            aflush_done(f);
        }
    }
    batch_put(b); /* all are out */
}

void winadmin_set_policy(struct winops *w, struct wmap *m, mmapio_flush_policy p)
{
    m->policy = p;
    atomic_store(&w->slots[m->slot].policy, ctl_pack_policy(p));
    winwatch_notify(w, m, MMAPIO__EVENT_KIND__EVENT_POLICY, false, 0, 0);
    if (m->armed && p.kind != MMAPIO_FLUSH_EVERY_MILLIS) {
        SetThreadpoolTimer(m->timer, NULL, 0, 0);
        m->armed = false;
    } else if (m->armed) { /* a new pace from now */
        m->armed = false;
        winflush_timed(w, m);
    }
}

static void op_policy(struct wsession *s, uint64_t id, bool admin, const Mmapio__AdminPolicy *q)
{
    mmapio_flush_policy p;
    if (!reqmsg_policy(q->policy, &p)) {
        reply_err(s, id, MMAPIO_E_INVALID_ARGUMENT, REQMSG_BAD_POLICY);
        return;
    }
    struct wmap *m = NULL;
    if (!names_valid(q->path))
        reply_err(s, id, MMAPIO_E_INVALID_ARGUMENT, NAMES_REFUSED);
    else if (!q->anonymous)
        by_name(s, id, q->path, admin, BY_POLICY, p);
    else if ((m = find_named(s, id, q->path, admin)))
        policy_set(s, id, m, p);
}

static void policy_set(struct wsession *s, uint64_t id, struct wmap *m, mmapio_flush_policy p)
{
    winadmin_set_policy(s->w, m, p);
    reply_ok(s, id);
}

void winadmin_request(struct wsession *s, uint64_t id, const Mmapio__Request *q)
{
    bool admin = is_admin(s);
    switch (q->op_case) {
    case MMAPIO__REQUEST__OP_ADMIN_STATUS: op_status(s, id, admin); break;
    case MMAPIO__REQUEST__OP_ADMIN_LIST: op_list(s, id, admin, q->admin_list); break;
    case MMAPIO__REQUEST__OP_ADMIN_CLIENTS: op_clients(s, id, admin, q->admin_clients); break;
    case MMAPIO__REQUEST__OP_ADMIN_STAT: op_stat(s, id, admin, q->admin_stat); break;
    case MMAPIO__REQUEST__OP_ADMIN_WATCH: op_watch(s, id, admin, q->admin_watch); break;
    case MMAPIO__REQUEST__OP_ADMIN_FLUSH: op_flush(s, id, admin, q->admin_flush); break;
    case MMAPIO__REQUEST__OP_ADMIN_POLICY: op_policy(s, id, admin, q->admin_policy); break;
    default: reply_err(s, id, MMAPIO_E_PROTOCOL, "not an admin request"); break;
    }
}
