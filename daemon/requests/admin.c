/* admin: status, lists, stat, watch, flush and policy for mmapioctl
 * (see admin.h). */
#include "admin.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "access.h"
#include "adminview.h"
#include "config.h"
#include "errmap.h"
#include "flushes.h"
#include "names.h"
#include "open.h"
#include "opencache.h"
#include "policy.h"
#include "registry.h"
#include "reqmsg.h"
#include "resolve.h"
#include "session.h"
#include "watch.h"
#include "writeback.h"

static bool is_admin(const struct session *c)
{
    return access_is_admin(&c->cred, c->h->cfg->has_admin_group,
                           c->h->cfg->admin_gid);
}

/* Files in the open cache are nobody's mappings any more: not listed,
 * counted or found by name, as before they were kept. */
static bool may_see(const struct session *c, struct mapping *m)
{
    return adminview_sees(is_admin(c), c->cred.uid, m->owner) &&
           !opencache_holds(c->h->cache, m);
}

/* Dirty bytes of a file in the page cache (platform/writeback.h); false
 * when the kernel cannot tell (and for anonymous memory: no disk). */
static bool dirty_bytes(const struct mapping *m, uint64_t *out)
{
    struct writeback_pending p;

    *out = 0;
    if (m->kind != MAPPING_FILE || writeback_pending(m->fd, &p) < 0)
        return false;
    *out = p.dirty;
    return true;
}

/* ---- deleted but still held ------------------------------------------ */

/*
 * A deleted anonymous mapping leaves the registry (its name may be taken
 * again) but lives while someone holds it, as ipcs's "dest" segments do.
 * The listing finds those through the holders of every session: what c
 * may see, by id, without duplicates.
 */
/* The removed mappings still held that c may see, of ids after `after`,
 * by id. 0, or -ENOMEM (the set is then empty). Work in proportion to the
 * removed ones. */
static int removed_held(const struct session *c, uint64_t after,
                        struct adminview_picks *out)
{
    const struct mapping_env *env = &c->h->reg->env;
    size_t cap = 0;
    for (struct mapping *m = env->removed_first; m; m = m->removed_next)
        cap += !m->registered && m->n_holders > 0;
    int r = adminview_picks_init(out, cap, after);
    for (struct mapping *m = env->removed_first; m; m = m->removed_next)
        if (!m->registered && m->n_holders > 0 && may_see(c, m))
            adminview_pick(out, m->id, m);
    adminview_sort(out);
    return r;
}

/* Resident memory of the daemon, from /proc/self/statm; 0 if unknown. */
static uint64_t rss_bytes(void)
{
    unsigned long long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "re");
    if (!f)
        return 0;
    if (fscanf(f, "%llu %llu", &size, &resident) != 2)
        resident = 0;
    fclose(f);
    return resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

/* ---- status ---------------------------------------------------------- */

/* Every number of the configuration, by its config key (config_keys). */
#define LIMITS_MAX 64
static size_t fill_limits(const struct config *cfg, Mmapio__Limit *lim,
                          Mmapio__Limit **p)
{
    size_t n = 0;
    for (size_t i = 0; i < config_n_keys; i++) {
        const struct config_key *k = &config_keys[i];
        if (k->kind != CONFIG_U32 && k->kind != CONFIG_U64)
            continue;
        /* More numbers than LIMITS_MAX: the first of them. */
        adminview_limit(lim, p, &n, LIMITS_MAX, k->key, config_number(cfg, k),
                        k->what);
    }
    return n;
}

/* One mapping in c's status, if c may see it. */
static void count_one(const struct session *c, struct mapping *m,
                      Mmapio__StatusReply *s)
{
    if (!may_see(c, m))
        return;
    adminview_count(s, m->kind == MAPPING_ANON, m->size);
    s->carved += m->arena != NULL;
}

/* A walk over what c may see, in id order after `after`: everything for
 * an admin, else only c's own mappings (never the others'). */
static void walk_visible(const struct session *c, uint64_t after,
                         struct registry_walk *w)
{
    registry_walk_start(c->h->reg, is_admin(c) ? NULL : &c->cred.uid, after,
                        w);
}

void admin_status(struct session *c, uint64_t id)
{
    struct handlers *h = c->h;
    bool all = is_admin(c);
    Mmapio__StatusReply s = MMAPIO__STATUS_REPLY__INIT;
    struct registry_walk w;
    struct mapping *m;

    walk_visible(c, 0, &w);
    while ((m = registry_walk_next(&w)))
        count_one(c, m, &s);
    struct adminview_picks rs;
    removed_held(c, 0, &rs); /* without memory: counted as none */
    while ((m = adminview_next(&rs)))
        count_one(c, m, &s);
    s.removed_held = rs.n;
    adminview_picks_free(&rs);
    for (struct session *o = h->sessions; o; o = o->next)
        if (adminview_sees(all, c->cred.uid, o->cred.uid)) {
            s.clients++;
            s.write_rings += o->ring != NULL;
        }
    Mmapio__Limit lim[LIMITS_MAX], *limp[LIMITS_MAX];
    s.n_limits = fill_limits(h->cfg, lim, limp);
    s.limits = limp;
    struct adminview_daemon d = {
        .started = (int64_t)h->started, .pid = (int32_t)getpid(),
        .socket = h->cfg->socket_path, .root = h->cfg->root,
        .config_file = h->config_file, .rss_bytes = rss_bytes(),
        .flushes = h->flushes->n_flushes, .flush_failures = h->flushes->n_failures,
        .errors = h->errors, .clients_total = h->sessions_total,
        .arenas = h->reg->env.arenas.n,
    };
    Mmapio__Reply r;
    session_reply(c, adminview_status(&r, id, &s, all, &d), -1);
}

/* ---- list ------------------------------------------------------------ */

struct gather {
    const struct session *c;
    uint64_t after;
    struct mapping **v;
    size_t n, cap;
    bool oom;
};

static void gather_one(struct mapping *m, void *arg)
{
    struct gather *g = arg;
    if (m->id <= g->after || !may_see(g->c, m) || g->oom)
        return;
    if (g->n == g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 64;
        struct mapping **v = realloc(g->v, cap * sizeof(*v));
        if (!v) {
            g->oom = true;
            return;
        }
        g->v = v;
        g->cap = cap;
    }
    g->v[g->n++] = m;
}

static void fill_info(struct handlers *h, struct mapping *m,
                      Mmapio__MapInfo *i, Mmapio__FlushPolicy *pol)
{
    mmapio__map_info__init(i);
    i->id = m->id;
    i->name = m->name;
    i->anonymous = m->kind == MAPPING_ANON;
    i->size = m->size;
    policy_to_wire(m->policy, pol);
    i->policy = pol;
    i->holders = m->n_holders;
    i->rw_holders = m->n_writers;
    i->owner = m->owner;
    i->perm = m->perm;
    i->pending_known = dirty_bytes(m, &i->pending_bytes);
    i->created = (int64_t)m->created;
    i->creator_pid = (int32_t)m->creator_pid;
    flushes_counts(h->flushes, m, &i->flushes, &i->last_flush);
    i->watchers = watch_count(h->watches, m);
    i->removed = m->removed;
    i->huge_pages = m->hugetlb ? MMAPIO__HUGE_PAGES__HUGE_HUGETLB
                    : m->huge_asked ? MMAPIO__HUGE_PAGES__HUGE_TRANSPARENT
                                    : MMAPIO__HUGE_PAGES__HUGE_NONE;
}

/* A page built (r 0) sent and freed, or the want of memory told. */
static void send_page(struct session *c, uint64_t id, int r, struct adminview_page *page)
{
    if (r < 0) {
        session_reply_err(c, id, MMAPIO_E_QUOTA, "out of memory");
        return;
    }
    session_reply(c, &page->reply, -1);
    adminview_free(page);
}

/* AdminList's source (adminview_map_fn): the registry's walk and the
 * removed ones still held, merged by id; files in the open cache are
 * passed over. */
struct list_src {
    struct session *c;
    struct registry_walk w;
    struct mapping *m; /* the walk's next */
    struct adminview_picks rs;
    struct mapping *r; /* rs's next */
};

static bool list_next(void *arg, Mmapio__MapInfo *i, Mmapio__FlushPolicy *pol)
{
    struct list_src *l = arg;
    while (l->m && opencache_holds(l->c->h->cache, l->m))
        l->m = registry_walk_next(&l->w);
    if (!l->m && !l->r)
        return false;
    bool removed = l->r && (!l->m || l->r->id < l->m->id);
    fill_info(l->c->h, removed ? l->r : l->m, i, pol);
    if (removed)
        l->r = adminview_next(&l->rs);
    else
        l->m = registry_walk_next(&l->w);
    return true;
}

/* A page costs the page: the walk starts at after_id by binary search
 * in the caller's own mappings (an admin's: all), and stops when full. */
void admin_list(struct session *c, uint64_t id, const Mmapio__AdminList *q)
{
    struct list_src l = { .c = c };
    struct adminview_page page;
    if (removed_held(c, q->after_id, &l.rs) < 0) {
        session_reply_err(c, id, MMAPIO_E_QUOTA, "out of memory");
        return;
    }
    l.r = adminview_next(&l.rs);
    walk_visible(c, q->after_id, &l.w);
    l.m = registry_walk_next(&l.w);
    send_page(c, id, adminview_list(&page, id, SIZE_MAX, list_next, &l), &page);
    adminview_picks_free(&l.rs);
}

/* ---- clients --------------------------------------------------------- */

static bool client_next(void *arg, Mmapio__ClientInfo *ci)
{
    const struct session *o = adminview_next(arg);
    if (!o)
        return false;
    adminview_client(ci, o->id, &o->cred, o->name, o->holders.n, o->watches.n);
    for (const struct holder *h = o->holders.first; h; h = h->owner_next)
        if (!adminview_held(ci, h->map->id, h->map->name, h->mode,
                            h->map->kind == MAPPING_ANON))
            break;
    return true;
}

void admin_clients(struct session *c, uint64_t id, const Mmapio__AdminClients *q)
{
    struct handlers *hs = c->h;
    bool all = is_admin(c);
    struct adminview_picks picks;
    struct adminview_page page;
    if (adminview_picks_init(&picks, hs->n_sessions, q->after_id) < 0) {
        session_reply_err(c, id, MMAPIO_E_QUOTA, "out of memory");
        return;
    }
    for (struct session *o = hs->sessions; o; o = o->next)
        if (adminview_sees(all, c->cred.uid, o->cred.uid))
            adminview_pick(&picks, o->id, o);
    adminview_sort(&picks);
    send_page(c, id, adminview_clients(&page, id, picks.n, client_next, &picks), &page);
    adminview_picks_free(&picks);
}

/* ---- flush and policy by name --------------------------------------- */

/*
 * The one rule for a refusal, in every admin request: a name with nothing
 * behind it is NOT_FOUND; a mapping (or file) that exists but is not the
 * caller's to act on is PERMISSION, never "not found". Files are judged
 * on the file itself before the registry is asked, so the answer never
 * tells whether someone else maps it; an anonymous name's existence is
 * no secret (creating it again says EXISTS).
 */
static void refuse_not_owner(struct session *c, uint64_t id, const char *path,
                             bool anonymous, uid_t owner)
{
    session_reply_err(c, id, MMAPIO_E_PERMISSION, ADMINVIEW_NOT_OWNER,
                      anonymous ? "anon:" : "", path, (unsigned)owner);
}

/* stat(2) of the file `path` under the root, looked up as `as` (NULL:
 * as the daemon). MMAPIO_OK or the reason. */
static int file_identity(const struct handlers *h, const char *path,
                         const struct peer_cred *as, struct stat *st)
{
    int r = resolve_check_path(path);
    int fd = r ? -1 : resolve_open(h->root_fd, path, O_PATH, 0, as);
    if (!r && fd < 0)
        r = fd == -EXDEV ? MMAPIO_E_PERMISSION : errmap_from_errno(fd);
    if (!r && fstat(fd, st) < 0)
        r = errmap_from_errno(errno);
    if (fd >= 0)
        close(fd);
    return r;
}

/* The registered mapping a path or anonymous name names, if the caller
 * may act on it (its owner, or an admin). NULL with the error replied. */
static struct mapping *find_named(struct session *c, uint64_t id,
                                  const char *path, bool anonymous)
{
    struct handlers *h = c->h;
    struct mapping *m = NULL;

    if (!names_valid(path)) {
        session_reply_err(c, id, MMAPIO_E_INVALID_ARGUMENT, NAMES_REFUSED);
        return NULL;
    }
    if (anonymous) {
        m = resolve_check_name(path) ? NULL : registry_find_anon(h->reg, path);
        if (!m) {
            session_reply_err(c, id, MMAPIO_E_NOT_FOUND,
                              REQMSG_NO_ANON, path);
            return NULL;
        }
    } else {
        struct stat st;
        int r = file_identity(h, path, &c->cred, &st);
        if (r) {
            session_reply_err(c, id, r, "%s: %s", path, errmap_text(r));
            return NULL;
        }
        if (!is_admin(c) && st.st_uid != c->cred.uid) {
            refuse_not_owner(c, id, path, false, st.st_uid);
            return NULL;
        }
        m = registry_find_file(h->reg, st.st_dev, st.st_ino);
        if (!m || opencache_holds(h->cache, m)) {
            session_reply_err(c, id, MMAPIO_E_NOT_FOUND,
                              REQMSG_UNMAPPED, path);
            return NULL;
        }
    }
    if (!may_see(c, m)) {
        refuse_not_owner(c, id, path, anonymous, m->owner);
        return NULL;
    }
    return m;
}

static void flushed_reply(struct session *c, uint64_t id, uint32_t ok,
                          uint32_t failed, int error)
{
    struct reqmsg b;
    session_reply(c, reqmsg_flushed(&b, id, ok, failed), -1);
}

void admin_flush(struct session *c, uint64_t id, const Mmapio__AdminFlush *q)
{
    struct gather g = { .c = c };
    struct mapping *one = NULL;

    if (q->all) {
        struct registry_walk w;
        struct mapping *m;
        walk_visible(c, 0, &w);
        while ((m = registry_walk_next(&w)))
            if (m->kind == MAPPING_FILE && m->fd_writable)
                gather_one(m, &g);
        if (g.oom) {
            free(g.v);
            session_reply_err(c, id, MMAPIO_E_QUOTA, "out of memory");
            return;
        }
    } else {
        one = find_named(c, id, q->path, q->anonymous);
        if (!one)
            return;
        if (one->kind == MAPPING_FILE && one->fd_writable) {
            g.v = &one;
            g.n = 1;
        }
    }
    if (session_flush(c, id, g.v, g.n, flushed_reply))
        session_reply_err(c, id, MMAPIO_E_QUOTA, "out of memory");
    if (!one)
        free(g.v);
}

void admin_policy(struct session *c, uint64_t id, const Mmapio__AdminPolicy *q)
{
    mmapio_flush_policy p;
    if (!reqmsg_policy(q->policy, &p)) {
        session_reply_err(c, id, MMAPIO_E_INVALID_ARGUMENT, REQMSG_BAD_POLICY);
        return;
    }
    struct mapping *m = find_named(c, id, q->path, q->anonymous);
    if (!m)
        return;
    mapping_set_policy(m, p, NULL);
    session_reply_ok(c, id);
}

/* ---- one mapping, and watching it, by name --------------------------- */

/*
 * The mapping `path` names, for a caller who may read it as an open
 * read-only would decide (the kernel's rules for a file, the owner and
 * mode for an anonymous one), or an admin: a new reference, which the caller gives
 * back with put_named. A file nobody maps is set up for the time being.
 * NULL with the error replied.
 */
static struct mapping *get_readable(struct session *c, uint64_t id,
                                    const char *path, bool anonymous)
{
    if (!names_valid(path)) {
        session_reply_err(c, id, MMAPIO_E_INVALID_ARGUMENT, NAMES_REFUSED);
        return NULL;
    }
    Mmapio__Open o = MMAPIO__OPEN__INIT;
    struct mapping *m = NULL;
    const char *why = "";
    o.path = (char *)path;
    o.anonymous = anonymous;
    o.mode = MMAPIO__MODE__MODE_READ_ONLY;
    int r = open_mapping(c->h, c, &o, &m, &why);
    if (r == MMAPIO_E_PERMISSION && is_admin(c)) {
        /* An admin sees every mapping (as ls shows it): one that is
         * mapped, found as the daemon finds it. */
        struct stat st;
        m = anonymous ? registry_find_anon(c->h->reg, path)
            : file_identity(c->h, path, NULL, &st) == MMAPIO_OK
                ? registry_find_file(c->h->reg, st.st_dev, st.st_ino) : NULL;
        if (m)
            return mapping_ref(m);
    }
    if (r) {
        session_reply_err(c, id, r, "%s%s: %s", anonymous ? "anon:" : "",
                          path, *why ? why : errmap_text(r));
        return NULL;
    }
    return m;
}

static void put_named(struct session *c, struct mapping *m)
{
    registry_retire_if_unused(c->h->reg, m);
    mapping_unref(m);
}

void admin_stat(struct session *c, uint64_t id, const Mmapio__AdminStat *q)
{
    struct mapping *m = get_readable(c, id, q->path, q->anonymous);
    if (!m)
        return;
    Mmapio__MapInfo info;
    Mmapio__FlushPolicy pol;
    struct reqmsg b;
    fill_info(c->h, m, &info, &pol);
    session_reply(c, reqmsg_map(&b, id, &info), -1);
    put_named(c, m);
}

/* A watch without a holder: it keeps the mapping alive (and is charged
 * like a holder, watch.h), but changes nothing for anyone else, so a
 * writer may still shrink it. */
void admin_watch(struct session *c, uint64_t id, const Mmapio__AdminWatch *q)
{
    uint64_t wid;
    struct mapping *m = get_readable(c, id, q->path, q->anonymous);
    if (!m)
        return;
    int r = watch_add(c->h->watches, &c->watches, m, &wid);
    if (r) {
        session_reply_err(c, id, r, "cannot watch: %s", errmap_text(r));
    } else {
        struct reqmsg b;
        session_reply(c, reqmsg_watch(&b, id, wid, m->id), -1);
    }
    put_named(c, m);
}
