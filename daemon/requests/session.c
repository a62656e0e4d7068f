/* session: a client as the handlers see it (see session.h). */
#include "session.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "errmap.h"
#include "flushes.h"
#include "log.h"
#include "names.h"
#include "opencache.h"
#include "policy.h"
#include "quota.h"
#include "registry.h"
#include "reqmsg.h"

/* Answers owed to a session once flushes end. */
struct pending {
    struct session *s;         /* NULL once the session ended */
    uint64_t id;
    uint32_t left, ok, failed;
    int error;
    session_flushed_fn done;
    struct pending *prev, *next;
};

/* ---- replies -------------------------------------------------------- */

void session_reply(struct session *s, Mmapio__Reply *r, int fd)
{
    s->port->reply(s, r, fd);
}

void session_reply_err(struct session *s, uint64_t id, int err,
                       const char *fmt, ...)
{
    char raw[512], msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof(raw), fmt, ap);
    va_end(ap);
    /* A message may quote a name that was refused for what it holds. */
    names_escape(raw, msg, sizeof(msg));

    Mmapio__Reply r = MMAPIO__REPLY__INIT;
    r.id = id;
    r.error = err;
    r.message = msg;
    s->h->errors++;
    session_reply(s, &r, -1);
}

void session_reply_ok(struct session *s, uint64_t id)
{
    Mmapio__Reply r = MMAPIO__REPLY__INIT;
    r.id = id;
    session_reply(s, &r, -1);
}

void session_watch_event(struct watch_owner *o, Mmapio__Event *ev)
{
    struct session *s = container_of(o, struct session, watches);
    s->port->event(s, ev);
}

/* Sends every session holding m, but `skip`, one event of `kind` with the
 * mapping's size and policy: one per session however often it holds m. */
static void tell_holders(struct mapping *m, const struct session *skip,
                         Mmapio__EventKind kind)
{
    Mmapio__Event ev = MMAPIO__EVENT__INIT;
    Mmapio__FlushPolicy pol;
    ev.kind = kind;
    ev.map_id = m->id;
    ev.size = m->size;
    policy_to_wire(m->policy, &pol);
    ev.policy = &pol;
    for (struct holder_group *g = m->groups; g; g = g->next) {
        struct session *s = g->owner;
        if (s != skip)
            s->port->event(s, &ev);
    }
}

static void on_change(struct mapping_hook *hook, struct mapping *m,
                      enum mapping_change what, const void *origin)
{
    (void)hook;
    if (what == MAPPING_RESIZED)
        tell_holders(m, origin, MMAPIO__EVENT_KIND__EVENT_RESIZED);
    else if (what == MAPPING_POLICY)
        tell_holders(m, origin, MMAPIO__EVENT_KIND__EVENT_POLICY);
}

int handlers_init(struct handlers *h, const struct config *cfg, int root_fd,
                  struct registry *reg, struct quota *q, struct flushes *fl,
                  struct watches *ws)
{
    memset(h, 0, sizeof(*h));
    h->cfg = cfg;
    h->root_fd = root_fd;
    h->reg = reg;
    h->quota = q;
    h->flushes = fl;
    h->watches = ws;
    h->started = time(NULL);
    h->hook.fn = on_change;
    return registry_add_hook(reg, &h->hook);
}

/* ---- lifetime ------------------------------------------------------- */

void session_start(struct session *s, struct handlers *h,
                   const struct session_port *port,
                   const struct peer_cred *cred)
{
    memset(s, 0, sizeof(*s));
    s->h = h;
    s->port = port;
    s->id = ++h->next_session_id;
    s->cred = *cred;
    s->watches.uid = cred->uid;
    hmap_init(&s->arena_uses);
    s->next = h->sessions;
    if (h->sessions)
        h->sessions->prev = s;
    h->sessions = s;
    h->n_sessions++;
    h->sessions_total++;
}

void session_end(struct session *s)
{
    struct handlers *h = s->h;
    watch_release_owner(h->watches, &s->watches);
    while (s->holders.first)
        session_release_holder(s->holders.first, true);
    hmap_count_free(&s->arena_uses); /* emptied with the holders */
    for (struct pending *p = s->pending; p; p = p->next)
        p->s = NULL;
    s->pending = NULL;
    if (s->prev)
        s->prev->next = s->next;
    else if (h->sessions == s)
        h->sessions = s->next;
    if (s->next)
        s->next->prev = s->prev;
    s->prev = s->next = NULL;
    h->n_sessions--;
}

/* ---- holders -------------------------------------------------------- */

/* The session's holders in one arena, of one fd kind (arena_uses). */
static uint64_t arena_key(const struct holder *hd)
{
    return hd->map->arena->id << 1 | (hd->mode != MMAPIO_MODE_READ_WRITE);
}

/* session_add_holder, with the reason of an MMAPIO_E_QUOTA in *why. */
static int add_holder(struct session *s, struct mapping *m, mmapio_mode mode,
                      struct holder **out, const char **why)
{
    struct handlers *h = s->h;
    if (s->holders.n >= h->cfg->max_handles_per_client) {
        static struct log_limit lim;
        log_limited(&lim, LOG_LVL_WARN,
                    "client %llu (pid %d) refused: max_handles_per_client (%u)",
                    (unsigned long long)s->id, (int)s->cred.pid,
                    h->cfg->max_handles_per_client);
        *why = "over max_handles_per_client";
        return MMAPIO_E_QUOTA;
    }
    /* A mapping from the open cache counts against max_mappings again. */
    if (opencache_take(h->cache, m, access_is_admin(&s->cred,
                                                    h->cfg->has_admin_group,
                                                    h->cfg->admin_gid))) {
        *why = quota_why(h->quota);
        return MMAPIO_E_QUOTA;
    }
    /* The uid's budget may still be held by releases recorded in rings
     * (m pinned meanwhile: its other holders may go, it stays ours). */
    int r = quota_hold(h->quota, m, s->cred.uid);
    if (r) {
        mapping_pin(m);
        if (h->settle_uid && h->settle_uid(h, s->cred.uid))
            r = quota_hold(h->quota, m, s->cred.uid);
        mapping_unpin(m);
    }
    *why = quota_why(h->quota);
    if (r)
        return MMAPIO_E_QUOTA;
    *why = "out of memory";
    struct holder *hd = calloc(1, sizeof(*hd));
    if (!hd || registry_add_holder(h->reg, hd) < 0) {
        free(hd);
        quota_unhold(h->quota, m, s->cred.uid);
        return MMAPIO_E_QUOTA;
    }
    hd->mode = mode;
    hd->owner = s;
    if (mapping_attach(m, hd, &s->holders) < 0) {
        registry_remove_holder(h->reg, hd);
        free(hd);
        quota_unhold(h->quota, m, s->cred.uid);
        return MMAPIO_E_QUOTA;
    }
    if (m->arena && hmap_count_add(&s->arena_uses, arena_key(hd)) == 0) {
        session_release_holder(hd, false); /* not counted: nothing to drop */
        return MMAPIO_E_QUOTA;
    }
    if (mode == MMAPIO_MODE_READ_WRITE && m->kind == MAPPING_FILE)
        flushes_wrote(h->flushes, m); /* its release flushes */
    *out = hd;
    return MMAPIO_OK;
}

int session_add_holder(struct session *s, struct mapping *m, mmapio_mode mode,
                       struct holder **out)
{
    const char *why;
    return add_holder(s, m, mode, out, &why);
}

#define REAP_MAX 64   /* other holders' clients asked, one poll each */

void session_reap_gone(struct mapping *m, const struct session *asking)
{
    unsigned asked = 0;
    mapping_ref(m);
    mapping_pin(m);
    /* One group per session. Ending a session releases its own holders
     * only (as ringdrain_settle's drain): its group may go, the next one
     * stays. */
    for (struct holder_group *g = m->groups, *next; g && asked < REAP_MAX;
         g = next) {
        next = g->next;
        struct session *o = g->owner;
        if (o == asking || !o->port->gone)
            continue;
        asked++;
        o->port->gone(o);
    }
    mapping_unpin(m);
    mapping_unref(m);
}

void session_release_holder(struct holder *hd, bool died)
{
    struct session *s = hd->owner;
    struct handlers *h = s->h;
    struct mapping *m = mapping_ref(hd->map);
    bool writer = hd->mode == MMAPIO_MODE_READ_WRITE;

    if (hd->raw_writer)
        flushes_raw_writer(h->flushes, m, -1);
    if (m->arena)
        hmap_count_drop(&s->arena_uses, arena_key(hd));
    registry_remove_holder(h->reg, hd);
    mapping_detach(hd, &s->holders);
    free(hd);
    quota_unhold(h->quota, m, s->cred.uid);

    if (m->kind == MAPPING_FILE && m->fd_writable &&
        (m->n_holders == 0 || (died && writer)))
        flushes_background(h->flushes, m);
    registry_retire_if_unused(h->reg, m);
    mapping_unref(m);
}

void session_grant(struct session *s, uint64_t id, struct mapping *m,
                   mmapio_mode mode, const char *what)
{
    session_grant_fd(s, id, m, mode, -1, what);
}

void session_out_of_fds(const char *what)
{
    static time_t last;
    time_t now = time(NULL);
    if (now - last < 10)
        return;
    last = now;
    log_warn("out of file descriptors (%s): opens are refused until some "
             "are closed", what);
}

void session_grant_fd(struct session *s, uint64_t id, struct mapping *m,
                      mmapio_mode mode, int fd, const char *what)
{
    struct holder *hd = NULL;
    bool owned = fd >= 0;
    const char *why = "";
    int r = add_holder(s, m, mode, &hd, &why);
    m->size_fresh = false; /* an open's fstat serves this grant alone */
    /* The arena's fd is already the client's unless this is its first. */
    bool arena_fd = m->arena && !r &&
                    hmap_count_of(&s->arena_uses, arena_key(hd)) == 1;
    if (!r && fd < 0 && (!m->arena || arena_fd)) {
        r = mapping_grant_fd(m, mode, &fd, &owned);
        if (r == MMAPIO_E_QUOTA && opencache_shrink(s->h->cache, 64))
            r = mapping_grant_fd(m, mode, &fd, &owned);
    }
    if (r) {
        if (owned)
            close(fd);
        if (hd)
            session_release_holder(hd, false);
        else
            registry_retire_if_unused(s->h->reg, m);
        if (r == MMAPIO_E_QUOTA && !hd) /* the holder's own quota */
            session_reply_err(s, id, r, "%s: cannot grant: %s (%s)", what,
                              errmap_text(r), why);
        else if (r == MMAPIO_E_QUOTA) {
            session_out_of_fds("grant");
            session_reply_err(s, id, r, "%s: cannot grant: the daemon is out "
                              "of file descriptors", what);
        } else
            session_reply_err(s, id, r, "%s: cannot grant: %s", what,
                              r == MMAPIO_E_BUSY ? "a lease on the file is "
                              "being broken; try again" : errmap_text(r));
        mapping_unref(m);
        return;
    }
    struct reqmsg b;
    Mmapio__Reply *rep = reqmsg_open(&b, id, hd->handle, m->id, m->size, m->slot,
                                     m->policy);
    b.u.open.arena = m->arena ? m->arena->id : 0;
    b.u.open.offset = m->offset;
    session_reply(s, rep, fd);
    if (owned)
        close(fd);
    mapping_unref(m);
}

struct holder *session_find_holder(struct session *s, uint64_t handle)
{
    struct holder *hd = registry_find_holder(s->h->reg, handle);
    return hd && hd->owner == s ? hd : NULL;
}

/* ---- answers owed --------------------------------------------------- */

static void pending_end(struct pending *p)
{
    struct session *s = p->s;
    if (s) {
        if (p->prev)
            p->prev->next = p->next;
        else
            s->pending = p->next;
        if (p->next)
            p->next->prev = p->prev;
        if (p->done)
            p->done(s, p->id, p->ok, p->failed, p->error);
        s->busy--;
        s->port->busy_changed(s);
    }
    free(p);
}

static void flushed_one(void *ctx, int result)
{
    struct pending *p = ctx;
    if (result < 0) {
        p->failed++;
        if (!p->error)
            p->error = result;
    } else {
        p->ok++;
    }
    if (--p->left == 0)
        pending_end(p);
}

int session_flush(struct session *s, uint64_t id, struct mapping **maps,
                  size_t n, session_flushed_fn done)
{
    struct pending *p = calloc(1, sizeof(*p));
    if (!p)
        return MMAPIO_E_QUOTA;
    p->s = s;
    p->id = id;
    p->done = done;
    p->left = 1; /* held until every flush is submitted */
    p->next = s->pending;
    if (s->pending)
        s->pending->prev = p;
    s->pending = p;
    s->busy++;
    s->port->busy_changed(s);
    size_t started = 0;
    for (size_t i = 0; i < n; i++) {
        p->left++;
        if (flushes_request(s->h->flushes, maps[i], s->cred.uid,
                            flushed_one, p) == MMAPIO_OK) {
            started++;
        } else {
            p->left--;
            p->failed++;
            p->error = -ENOMEM;
        }
    }
    if (n > 0 && started == 0) { /* out of memory: nothing to wait for */
        p->done = NULL;
        pending_end(p);
        return MMAPIO_E_QUOTA;
    }
    if (--p->left == 0)
        pending_end(p);
    return MMAPIO_OK;
}
