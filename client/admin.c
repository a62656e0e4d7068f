/*
 * admin: what mmapioctl asks the daemon (status, mappings, clients, flush
 * and policy by name), as plain structs for any program.
 *
 * Each call is one or more round trips on the connection (client.h). The
 * lists come a page at a time (the daemon keeps a page well under a
 * frame); each request asks for the entries after the last id seen, until
 * the daemon says there are no more. Ids must grow from page to page, so a
 * confused daemon cannot keep us paging forever (MMAPIO_E_PROTOCOL).
 * Every string is copied out of the reply: the results outlive it, and on
 * any failure everything gathered so far is freed and nothing returned.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "errors.h"
#include "names.h"
#include "policy.h"

static char *text_dup(const char *s)
{
    return strdup(s ? s : "");
}

/* Room for `more` entries of `size` bytes after `len` in *v. */
static int reserve(void **v, size_t *cap, size_t len, size_t more,
                   size_t size)
{
    if (more > SIZE_MAX / size - len)
        return MMAPIO_E_QUOTA;
    size_t need = len + more;
    if (need <= *cap)
        return MMAPIO_OK;
    size_t nc = *cap ? *cap : 64;
    while (nc < need)
        nc = nc > SIZE_MAX / 2 / size ? need : nc * 2;
    void *p = realloc(*v, nc * size);
    if (!p)
        return MMAPIO_E_QUOTA;
    *v = p;
    *cap = nc;
    return MMAPIO_OK;
}

/* ---- status ---------------------------------------------------------- */

static void status_from_wire(const Mmapio__StatusReply *w, mmapio_status *s)
{
    s->uptime_s = w->uptime_s;
    s->clients = w->clients;
    s->mappings = w->mappings;
    s->anonymous = w->anonymous;
    s->files = w->files;
    s->bytes_mapped = w->bytes_mapped;
    s->all = w->all;
    s->flushes = w->flushes;
    s->flush_failures = w->flush_failures;
    s->errors = w->errors;
    s->clients_total = w->clients_total;
    s->pid = w->pid;
    s->started = w->started;
    s->rss_bytes = w->rss_bytes;
    s->removed_held = w->removed_held;
    s->write_rings = w->write_rings;
    s->carved = w->carved;
    s->arenas = w->arenas;
}

/* The strings and limits of a status; MMAPIO_E_QUOTA without memory
 * (what was copied stays for mmapio_status_free). */
static int status_strings(const Mmapio__StatusReply *w, mmapio_status *s)
{
    s->version = text_dup(w->version);
    s->socket = text_dup(w->socket);
    s->root = text_dup(w->root);
    if (w->config_file && *w->config_file)
        s->config_file = text_dup(w->config_file);
    if (!s->version || !s->socket || !s->root ||
        (w->config_file && *w->config_file && !s->config_file))
        return MMAPIO_E_QUOTA;
    if (w->n_limits == 0)
        return MMAPIO_OK;
    s->limits = calloc(w->n_limits, sizeof(*s->limits));
    if (!s->limits)
        return MMAPIO_E_QUOTA;
    while (s->n_limits < w->n_limits) {
        const Mmapio__Limit *wl = w->limits[s->n_limits];
        mmapio_limit *l = &s->limits[s->n_limits++]; /* freed as it is */
        l->name = text_dup(wl->name);
        l->what = text_dup(wl->what);
        if (!l->name || !l->what)
            return MMAPIO_E_QUOTA;
        l->value = wl->value;
    }
    return MMAPIO_OK;
}

int mmapio_admin_status(mmapio_client *c, mmapio_status **out)
{
    Mmapio__AdminStatus q = MMAPIO__ADMIN_STATUS__INIT;
    Mmapio__Request req = MMAPIO__REQUEST__INIT;
    struct client_reply rep;

    if (!c || !out)
        return error_set(MMAPIO_E_INVALID_ARGUMENT, NULL);
    req.op_case = MMAPIO__REQUEST__OP_ADMIN_STATUS;
    req.admin_status = &q;
    int r = client_call(c, &req, MMAPIO__REPLY__RESULT_STATUS, &rep);
    if (r != MMAPIO_OK)
        return r;
    mmapio_status *s = calloc(1, sizeof(*s));
    if (!s || status_strings(rep.reply->status, s) != MMAPIO_OK) {
        mmapio_status_free(s);
        client_reply_free(&rep);
        return error_set(MMAPIO_E_QUOTA, NULL);
    }
    status_from_wire(rep.reply->status, s);
    client_reply_free(&rep);
    *out = s;
    return MMAPIO_OK;
}

void mmapio_status_free(mmapio_status *s)
{
    if (!s)
        return;
    free(s->version);
    free(s->socket);
    free(s->root);
    free(s->config_file);
    for (size_t i = 0; i < s->n_limits; i++) {
        free(s->limits[i].name);
        free(s->limits[i].what);
    }
    free(s->limits);
    free(s);
}

/* ---- mappings -------------------------------------------------------- */

struct map_list {
    mmapio_map_info *v;
    size_t n, cap;
};

static int map_info_from_wire(const Mmapio__MapInfo *w, mmapio_map_info *i)
{
    memset(i, 0, sizeof(*i));
    i->name = text_dup(w->name);
    if (!i->name)
        return MMAPIO_E_QUOTA;
    i->id = w->id;
    i->anonymous = w->anonymous;
    i->size = w->size;
    i->policy = policy_from_wire(w->policy);
    i->holders = w->holders;
    i->rw_holders = w->rw_holders;
    i->watchers = w->watchers;
    i->owner = w->owner;
    i->perm = w->perm;
    i->pending_bytes = w->pending_bytes;
    i->last_flush = w->last_flush;
    i->flushes = w->flushes;
    i->removed = w->removed;
    i->huge_pages = w->huge_pages == MMAPIO__HUGE_PAGES__HUGE_HUGETLB
                        ? MMAPIO_HUGE_HUGETLB
                    : w->huge_pages == MMAPIO__HUGE_PAGES__HUGE_TRANSPARENT
                        ? MMAPIO_HUGE_TRANSPARENT : MMAPIO_HUGE_NONE;
    i->pending_known = w->pending_known;
    i->created = w->created;
    i->creator_pid = w->creator_pid;
    return MMAPIO_OK;
}

/* Appends one page; *after is the last id taken. */
static int map_list_take(struct map_list *l, const Mmapio__ListReply *page,
                         uint64_t *after)
{
    int r = reserve((void **)&l->v, &l->cap, l->n, page->n_maps,
                    sizeof(*l->v));
    for (size_t k = 0; r == MMAPIO_OK && k < page->n_maps; k++) {
        if (page->maps[k]->id <= *after)
            return MMAPIO_E_PROTOCOL;
        r = map_info_from_wire(page->maps[k], &l->v[l->n]);
        if (r == MMAPIO_OK) {
            *after = page->maps[k]->id;
            l->n++;
        }
    }
    return r;
}

/* One page after q->after_id; *more says whether another follows. */
static int map_list_page(mmapio_client *c, Mmapio__AdminList *q,
                         struct map_list *l, bool *more)
{
    Mmapio__Request req = MMAPIO__REQUEST__INIT;
    struct client_reply rep;

    req.op_case = MMAPIO__REQUEST__OP_ADMIN_LIST;
    req.admin_list = q;
    int r = client_call(c, &req, MMAPIO__REPLY__RESULT_LIST, &rep);
    if (r != MMAPIO_OK)
        return r;
    const Mmapio__ListReply *page = rep.reply->list;
    r = map_list_take(l, page, &q->after_id);
    *more = page->more && page->n_maps > 0;
    client_reply_free(&rep);
    return r == MMAPIO_OK ? r : error_set(r, NULL);
}

int mmapio_admin_list(mmapio_client *c, mmapio_map_info **maps, size_t *n)
{
    Mmapio__AdminList q = MMAPIO__ADMIN_LIST__INIT;
    struct map_list l = { NULL, 0, 0 };
    bool more = true;
    int r = MMAPIO_OK;

    if (!c || !maps || !n)
        return error_set(MMAPIO_E_INVALID_ARGUMENT, NULL);
    while (r == MMAPIO_OK && more)
        r = map_list_page(c, &q, &l, &more);
    if (r != MMAPIO_OK || l.n == 0) {
        mmapio_map_info_free(l.v, l.n);
        l.v = NULL;
        l.n = 0;
    }
    if (r != MMAPIO_OK)
        return r;
    *maps = l.v;
    *n = l.n;
    return MMAPIO_OK;
}

int mmapio_admin_stat(mmapio_client *c, const char *path, bool anonymous,
                      mmapio_map_info **out)
{
    Mmapio__AdminStat q = MMAPIO__ADMIN_STAT__INIT;
    Mmapio__Request req = MMAPIO__REQUEST__INIT;
    struct client_reply rep;

    if (!c || !path || !out)
        return error_set(MMAPIO_E_INVALID_ARGUMENT, NULL);
    if (!names_valid(path))
        return error_set(MMAPIO_E_INVALID_ARGUMENT, NAMES_REFUSED);
    q.path = (char *)path;
    q.anonymous = anonymous;
    req.op_case = MMAPIO__REQUEST__OP_ADMIN_STAT;
    req.admin_stat = &q;
    int r = client_call(c, &req, MMAPIO__REPLY__RESULT_MAP, &rep);
    if (r != MMAPIO_OK)
        return r;
    mmapio_map_info *i = calloc(1, sizeof(*i));
    r = i ? map_info_from_wire(rep.reply->map, i) : MMAPIO_E_QUOTA;
    client_reply_free(&rep);
    if (r != MMAPIO_OK) {
        free(i);
        return error_set(r, NULL);
    }
    *out = i;
    return MMAPIO_OK;
}

void mmapio_map_info_free(mmapio_map_info *maps, size_t n)
{
    if (!maps)
        return;
    for (size_t i = 0; i < n; i++)
        free(maps[i].name);
    free(maps);
}

/* ---- clients --------------------------------------------------------- */

struct client_list {
    mmapio_client_info *v;
    size_t n, cap;
};

static void client_info_clear(mmapio_client_info *i)
{
    for (size_t k = 0; k < i->n_held; k++)
        free(i->held[k].name);
    free(i->held);
    free(i->name);
}

static int held_from_wire(const Mmapio__ClientInfo *w, mmapio_client_info *i)
{
    if (w->n_held == 0)
        return MMAPIO_OK;
    i->held = calloc(w->n_held, sizeof(*i->held));
    if (!i->held)
        return MMAPIO_E_QUOTA;
    for (size_t k = 0; k < w->n_held; k++, i->n_held++) {
        mmapio_held_info *h = &i->held[k];
        h->name = text_dup(w->held[k]->name);
        if (!h->name)
            return MMAPIO_E_QUOTA;
        h->map_id = w->held[k]->map_id;
        h->mode = (mmapio_mode)w->held[k]->mode;
        h->anonymous = w->held[k]->anonymous;
    }
    return MMAPIO_OK;
}

/* Fills *i; on failure *i holds nothing (cleared). */
static int client_info_from_wire(const Mmapio__ClientInfo *w,
                                 mmapio_client_info *i)
{
    memset(i, 0, sizeof(*i));
    i->name = text_dup(w->name);
    int r = i->name ? held_from_wire(w, i) : MMAPIO_E_QUOTA;
    if (r != MMAPIO_OK) {
        client_info_clear(i);
        return r;
    }
    i->id = w->id;
    i->pid = w->pid;
    i->uid = w->uid;
    i->gid = w->gid;
    i->watches = w->watches;
    i->held_total = w->held_total;
    return MMAPIO_OK;
}

/* Appends one page; *after is the last id taken. */
static int client_list_take(struct client_list *l,
                            const Mmapio__ClientsReply *page, uint64_t *after)
{
    int r = reserve((void **)&l->v, &l->cap, l->n, page->n_clients,
                    sizeof(*l->v));
    for (size_t k = 0; r == MMAPIO_OK && k < page->n_clients; k++) {
        if (page->clients[k]->id <= *after)
            return MMAPIO_E_PROTOCOL;
        r = client_info_from_wire(page->clients[k], &l->v[l->n]);
        if (r == MMAPIO_OK) {
            *after = page->clients[k]->id;
            l->n++;
        }
    }
    return r;
}

static int client_list_page(mmapio_client *c, Mmapio__AdminClients *q,
                            struct client_list *l, bool *more)
{
    Mmapio__Request req = MMAPIO__REQUEST__INIT;
    struct client_reply rep;

    req.op_case = MMAPIO__REQUEST__OP_ADMIN_CLIENTS;
    req.admin_clients = q;
    int r = client_call(c, &req, MMAPIO__REPLY__RESULT_CLIENTS, &rep);
    if (r != MMAPIO_OK)
        return r;
    const Mmapio__ClientsReply *page = rep.reply->clients;
    r = client_list_take(l, page, &q->after_id);
    *more = page->more && page->n_clients > 0;
    client_reply_free(&rep);
    return r == MMAPIO_OK ? r : error_set(r, NULL);
}

int mmapio_admin_clients(mmapio_client *c, mmapio_client_info **clients,
                         size_t *n)
{
    Mmapio__AdminClients q = MMAPIO__ADMIN_CLIENTS__INIT;
    struct client_list l = { NULL, 0, 0 };
    bool more = true;
    int r = MMAPIO_OK;

    if (!c || !clients || !n)
        return error_set(MMAPIO_E_INVALID_ARGUMENT, NULL);
    while (r == MMAPIO_OK && more)
        r = client_list_page(c, &q, &l, &more);
    if (r != MMAPIO_OK || l.n == 0) {
        mmapio_client_info_free(l.v, l.n);
        l.v = NULL;
        l.n = 0;
    }
    if (r != MMAPIO_OK)
        return r;
    *clients = l.v;
    *n = l.n;
    return MMAPIO_OK;
}

void mmapio_client_info_free(mmapio_client_info *clients, size_t n)
{
    if (!clients)
        return;
    for (size_t i = 0; i < n; i++)
        client_info_clear(&clients[i]);
    free(clients);
}

/* ---- acting by name -------------------------------------------------- */

static int admin_flush(mmapio_client *c, Mmapio__AdminFlush *q,
                       mmapio_flush_report *report)
{
    Mmapio__Request req = MMAPIO__REQUEST__INIT;
    struct client_reply rep;

    req.op_case = MMAPIO__REQUEST__OP_ADMIN_FLUSH;
    req.admin_flush = q;
    int r = client_call(c, &req, MMAPIO__REPLY__RESULT_FLUSHED, &rep);
    if (r != MMAPIO_OK)
        return r;
    if (report) {
        report->flushed = rep.reply->flushed->flushed;
        report->failed = rep.reply->flushed->failed;
    }
    client_reply_free(&rep);
    return MMAPIO_OK;
}

/* The daemon judges the name itself: one it cannot hold is NOT_FOUND;
 * only what no name may hold (names.h) is refused here. */
int mmapio_admin_flush(mmapio_client *c, const char *path, bool anonymous,
                       mmapio_flush_report *report)
{
    Mmapio__AdminFlush q = MMAPIO__ADMIN_FLUSH__INIT;

    if (!c || !path)
        return error_set(MMAPIO_E_INVALID_ARGUMENT, NULL);
    if (!names_valid(path))
        return error_set(MMAPIO_E_INVALID_ARGUMENT, NAMES_REFUSED);
    q.path = (char *)path;
    q.anonymous = anonymous;
    return admin_flush(c, &q, report);
}

int mmapio_admin_flush_all(mmapio_client *c, mmapio_flush_report *report)
{
    Mmapio__AdminFlush q = MMAPIO__ADMIN_FLUSH__INIT;

    if (!c)
        return error_set(MMAPIO_E_INVALID_ARGUMENT, NULL);
    q.all = true;
    return admin_flush(c, &q, report);
}

int mmapio_admin_set_flush_policy(mmapio_client *c, const char *path,
                                  bool anonymous, mmapio_flush_policy p)
{
    Mmapio__AdminPolicy q = MMAPIO__ADMIN_POLICY__INIT;
    Mmapio__FlushPolicy pol;
    Mmapio__Request req = MMAPIO__REQUEST__INIT;

    if (!c || !path || !policy_valid(p))
        return error_set(MMAPIO_E_INVALID_ARGUMENT, NULL);
    if (!names_valid(path))
        return error_set(MMAPIO_E_INVALID_ARGUMENT, NAMES_REFUSED);
    q.path = (char *)path;
    q.anonymous = anonymous;
    policy_to_wire(p, &pol);
    q.policy = &pol;
    req.op_case = MMAPIO__REQUEST__OP_ADMIN_POLICY;
    req.admin_policy = &q;
    /* The daemon writes the new policy into the slot before it answers. */
    return client_call(c, &req, MMAPIO__REPLY__RESULT__NOT_SET, NULL);
}
