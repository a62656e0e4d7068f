/* adminview: what the admin requests show and how they page, for both
 * daemons (see adminview.h). */
#include "adminview.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ENTRY_FRAMING 8 /* a repeated field's tag and length, at most */

/* The source being paged, as the page's loop reads it. */
struct source {
    struct adminview_page *p;
    adminview_map_fn *map;
    adminview_client_fn *client;
    void *src;
};

/* Slots for a page of at most `hint` items, and one more: the item read
 * to tell whether the page is the last. */
static size_t page_slots(size_t hint)
{
    return (hint < ADMINVIEW_PAGE_MAX ? hint : ADMINVIEW_PAGE_MAX) + 1;
}

/* The source's next mapping in slot k (its pointer too), and its packed
 * size; false at the end. */
static bool fill_map(struct source *s, size_t k, size_t *packed)
{
    Mmapio__MapInfo *i = &s->p->maps[k];
    if (!s->map(s->src, i, &s->p->pols[k]))
        return false;
    s->p->map_p[k] = i;
    *packed = mmapio__map_info__get_packed_size(i);
    return true;
}

static bool fill_client(struct source *s, size_t k, size_t *packed)
{
    Mmapio__ClientInfo *ci = &s->p->cls[k];
    Mmapio__HeldInfo **held_p = &s->p->held_p[k * ADMINVIEW_HELD_MAX];
    mmapio__client_info__init(ci);
    for (size_t j = 0; j < ADMINVIEW_HELD_MAX; j++)
        held_p[j] = &s->p->held[k * ADMINVIEW_HELD_MAX + j];
    ci->held = held_p;
    if (!s->client(s->src, ci))
        return false;
    s->p->cl_p[k] = ci;
    *packed = mmapio__client_info__get_packed_size(ci);
    return true;
}

/* The page's loop over `slots` slots: the entries taken, and *more when
 * an item read was left off (the page was full). */
static size_t take(struct source *s, size_t slots,
                   bool (*fill)(struct source *, size_t, size_t *), bool *more)
{
    size_t n = 0, bytes = 0, packed;
    *more = false;
    while (fill(s, n, &packed)) {
        bytes += packed + ENTRY_FRAMING;
        if (n + 1 == slots || (bytes > ADMINVIEW_PAGE_BYTES && n > 0)) {
            *more = true;
            break;
        }
        n++;
    }
    return n;
}

/* The page of a source of mappings (s->map) or clients. */
static int build(struct adminview_page *p, uint64_t id, size_t hint, struct source *s)
{
    size_t slots = page_slots(hint), n;
    bool maps = s->map != NULL, more;
    memset(p, 0, sizeof(*p));
    mmapio__reply__init(&p->reply);
    p->reply.id = id;
    if (maps) {
        p->maps = calloc(slots, sizeof(*p->maps));
        p->map_p = calloc(slots, sizeof(*p->map_p));
        p->pols = calloc(slots, sizeof(*p->pols));
    } else {
        p->cls = calloc(slots, sizeof(*p->cls));
        p->cl_p = calloc(slots, sizeof(*p->cl_p));
        p->held = calloc(slots * ADMINVIEW_HELD_MAX, sizeof(*p->held));
        p->held_p = calloc(slots * ADMINVIEW_HELD_MAX, sizeof(*p->held_p));
    }
    if (maps ? !p->maps || !p->map_p || !p->pols
             : !p->cls || !p->cl_p || !p->held || !p->held_p) {
        adminview_free(p);
        return -ENOMEM;
    }
    n = take(s, slots, maps ? fill_map : fill_client, &more);
    if (maps) {
        mmapio__list_reply__init(&p->list);
        p->list.maps = p->map_p;
        p->list.n_maps = n;
        p->list.more = more;
        p->reply.result_case = MMAPIO__REPLY__RESULT_LIST;
        p->reply.list = &p->list;
    } else {
        mmapio__clients_reply__init(&p->clients);
        p->clients.clients = p->cl_p;
        p->clients.n_clients = n;
        p->clients.more = more;
        p->reply.result_case = MMAPIO__REPLY__RESULT_CLIENTS;
        p->reply.clients = &p->clients;
    }
    return 0;
}

int adminview_list(struct adminview_page *p, uint64_t id, size_t hint,
                   adminview_map_fn *next, void *src)
{
    struct source s = { .p = p, .map = next, .src = src };
    return build(p, id, hint, &s);
}

int adminview_clients(struct adminview_page *p, uint64_t id, size_t hint,
                      adminview_client_fn *next, void *src)
{
    struct source s = { .p = p, .client = next, .src = src };
    return build(p, id, hint, &s);
}

void adminview_free(struct adminview_page *p)
{
    free(p->maps);
    free(p->map_p);
    free(p->pols);
    free(p->cls);
    free(p->cl_p);
    free(p->held);
    free(p->held_p);
}

void adminview_count(Mmapio__StatusReply *st, bool anonymous, uint64_t size)
{
    st->mappings++;
    st->bytes_mapped += size;
    st->anonymous += anonymous;
    st->files += !anonymous;
}

Mmapio__Reply *adminview_status(Mmapio__Reply *r, uint64_t id, Mmapio__StatusReply *st,
                                bool admin, const struct adminview_daemon *d)
{
    st->version = (char *)MMAPIO_VERSION;
    st->uptime_s = (uint64_t)((int64_t)time(NULL) - d->started);
    st->started = d->started;
    st->all = admin;
    st->pid = d->pid;
    st->socket = (char *)(d->socket ? d->socket : "");
    st->root = (char *)(d->root ? d->root : "");
    st->config_file = (char *)(d->config_file ? d->config_file : "");
    st->rss_bytes = d->rss_bytes;
    if (admin) { /* daemon-wide counters are for the admin */
        st->flushes = d->flushes;
        st->flush_failures = d->flush_failures;
        st->errors = d->errors;
        st->clients_total = d->clients_total;
        st->arenas = d->arenas;
    }
    mmapio__reply__init(r);
    r->id = id;
    r->result_case = MMAPIO__REPLY__RESULT_STATUS;
    r->status = st;
    return r;
}

void adminview_limit(Mmapio__Limit *lim, Mmapio__Limit **p, size_t *n, size_t max,
                     const char *name, uint64_t value, const char *what)
{
    if (*n == max)
        return;
    mmapio__limit__init(&lim[*n]);
    lim[*n].name = (char *)name;
    lim[*n].value = value;
    lim[*n].what = (char *)what;
    p[*n] = &lim[*n];
    ++*n;
}

void adminview_client(Mmapio__ClientInfo *ci, uint64_t id, const struct peer_cred *cred,
                      const char *name, uint32_t held_total, uint32_t watches)
{
    ci->id = id;
    ci->pid = (int32_t)cred->pid;
    ci->uid = cred->uid;
    ci->gid = cred->gid;
    ci->name = (char *)name;
    ci->held_total = held_total;
    ci->watches = watches;
}

bool adminview_held(Mmapio__ClientInfo *ci, uint64_t map_id, const char *name,
                    mmapio_mode mode, bool anonymous)
{
    if (ci->n_held >= ADMINVIEW_HELD_MAX)
        return false;
    size_t bytes = name ? strlen(name) : 0;
    for (size_t j = 0; j < ci->n_held; j++)
        bytes += ci->held[j]->name ? strlen(ci->held[j]->name) : 0;
    if (bytes > ADMINVIEW_HELD_BYTES)
        return false;
    Mmapio__HeldInfo *hi = ci->held[ci->n_held];
    mmapio__held_info__init(hi);
    hi->map_id = map_id;
    hi->name = (char *)name;
    hi->mode = (Mmapio__Mode)mode;
    hi->anonymous = anonymous;
    ci->n_held++;
    return true;
}

int adminview_picks_init(struct adminview_picks *p, size_t cap, uint64_t after)
{
    *p = (struct adminview_picks){ .cap = cap, .after = after };
    p->v = malloc((cap ? cap : 1) * sizeof(*p->v));
    if (!p->v)
        p->cap = 0; /* picks nothing */
    return p->v ? 0 : -ENOMEM;
}

void adminview_pick(struct adminview_picks *p, uint64_t id, void *item)
{
    if (id > p->after && p->n < p->cap)
        p->v[p->n++] = (struct adminview_pick){ id, item };
}

static int by_id(const void *a, const void *b)
{
    const struct adminview_pick *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id;
}

void adminview_sort(struct adminview_picks *p)
{
    if (p->n)
        qsort(p->v, p->n, sizeof(*p->v), by_id);
    p->k = 0;
}

void *adminview_next(struct adminview_picks *p)
{
    return p->k < p->n ? p->v[p->k++].item : NULL;
}

void adminview_picks_free(struct adminview_picks *p)
{
    free(p->v);
    p->v = NULL;
    p->n = p->cap = p->k = 0;
}
