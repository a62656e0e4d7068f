/*
 * test_adminview: the admin listings' paging and visibility shared by the
 * Linux and Windows daemons (daemon/requests/adminview.c), on made-up
 * sources: page bounds by count and by bytes, `more`, holdings per client.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "adminview.h"
#include "wire.h"

TestSuite(adminview, .timeout = 10);

/* n mappings with ids 1..n, each named with `name_len` bytes. */
struct maps {
    size_t n, read;
    size_t name_len;
    char name[64 * 1024];
};

static bool maps_next(void *arg, Mmapio__MapInfo *i, Mmapio__FlushPolicy *pol)
{
    struct maps *m = arg;
    if (m->read == m->n)
        return false;
    m->read++;
    mmapio__map_info__init(i);
    mmapio__flush_policy__init(pol);
    i->id = m->read;
    i->name = m->name;
    i->policy = pol;
    return true;
}

static struct maps *maps_of(size_t n, size_t name_len)
{
    static struct maps m;
    memset(&m, 0, sizeof(m));
    m.n = n;
    m.name_len = name_len;
    memset(m.name, 'a', name_len);
    return &m;
}

static void list_page(struct maps *m, size_t hint, size_t want_n, bool want_more)
{
    struct adminview_page p;
    cr_assert_eq(adminview_list(&p, 77, hint, maps_next, m), 0);
    cr_assert_eq(p.reply.id, 77);
    cr_assert_eq(p.reply.result_case, MMAPIO__REPLY__RESULT_LIST);
    cr_assert_eq(p.reply.list, &p.list);
    cr_assert_eq(p.list.n_maps, want_n, "%zu mappings of %zu on the page, not %zu",
                 p.list.n_maps, m->n, want_n);
    cr_assert_eq(!!p.list.more, want_more, "more for %zu of %zu", want_n, m->n);
    for (size_t k = 0; k < p.list.n_maps; k++) {
        cr_assert_eq(p.list.maps[k]->id, k + 1, "in order");
        cr_assert_not_null(p.list.maps[k]->policy);
    }
    cr_assert_leq(m->read, want_n + 1, "read %zu for a page of %zu", m->read, want_n);
    size_t packed = mmapio__reply__get_packed_size(&p.reply);
    cr_assert(p.list.n_maps < 2 || packed <= ADMINVIEW_PAGE_BYTES + 64,
              "a page of %zu packs to %zu bytes", p.list.n_maps, packed);
    adminview_free(&p);
}

Test(adminview, empty_and_small)
{
    list_page(maps_of(0, 1), SIZE_MAX, 0, false);
    list_page(maps_of(0, 1), 0, 0, false);
    list_page(maps_of(10, 8), SIZE_MAX, 10, false);
    list_page(maps_of(10, 8), 10, 10, false);
}

Test(adminview, bounded_by_count)
{
    list_page(maps_of(ADMINVIEW_PAGE_MAX, 4), SIZE_MAX, ADMINVIEW_PAGE_MAX, false);
    list_page(maps_of(ADMINVIEW_PAGE_MAX + 1, 4), SIZE_MAX, ADMINVIEW_PAGE_MAX, true);
    list_page(maps_of(700, 4), 700, ADMINVIEW_PAGE_MAX, true);
}

Test(adminview, bounded_by_bytes)
{
    /* 2000-byte names: about 24 fit in 48 KiB. */
    struct maps *m = maps_of(100, 2000);
    struct adminview_page p;
    cr_assert_eq(adminview_list(&p, 1, SIZE_MAX, maps_next, m), 0);
    size_t n = p.list.n_maps;
    cr_assert(n > 10 && n < 30, "%zu entries of 2000 bytes on a page", n);
    cr_assert(p.list.more);
    cr_assert_leq(mmapio__reply__get_packed_size(&p.reply), ADMINVIEW_PAGE_BYTES);
    adminview_free(&p);
    /* Exactly as many as fit: the page is the last. */
    list_page(maps_of(n, 2000), SIZE_MAX, n, false);
}

Test(adminview, first_entry_always)
{
    /* One entry larger than a page still goes, alone. */
    list_page(maps_of(1, 60 * 1024), SIZE_MAX, 1, false);
    list_page(maps_of(3, 60 * 1024), SIZE_MAX, 1, true);
}

/* n clients with ids 1..n, each holding `held` mappings (named `name`,
 * "x" if NULL). */
struct clients {
    size_t n, read, held;
    const char *name;
};

static bool clients_next(void *arg, Mmapio__ClientInfo *ci)
{
    struct clients *c = arg;
    if (c->read == c->n)
        return false;
    c->read++;
    struct peer_cred cred = { .pid = 4000 + (pid_t)c->read, .uid = 1000, .gid = 100 };
    adminview_client(ci, c->read, &cred, "cl", (uint32_t)c->held, 5);
    for (size_t j = 0; j < c->held; j++)
        if (!adminview_held(ci, 1000 + j, c->name ? c->name : "x", j % 2 ? MMAPIO_MODE_READ_WRITE
                                                     : MMAPIO_MODE_READ_ONLY, j % 3 == 0))
            break;
    return true;
}

Test(adminview, clients_and_holdings)
{
    struct clients c = { .n = 5, .held = ADMINVIEW_HELD_MAX + 10 };
    struct adminview_page p;
    cr_assert_eq(adminview_clients(&p, 9, c.n, clients_next, &c), 0);
    cr_assert_eq(p.reply.result_case, MMAPIO__REPLY__RESULT_CLIENTS);
    cr_assert_eq(p.reply.clients, &p.clients);
    cr_assert_eq(p.clients.n_clients, 5);
    cr_assert(!p.clients.more);
    for (size_t k = 0; k < 5; k++) {
        const Mmapio__ClientInfo *ci = p.clients.clients[k];
        cr_assert_eq(ci->id, k + 1);
        cr_assert_eq(ci->pid, 4000 + (int32_t)(k + 1));
        cr_assert_eq(ci->uid, 1000);
        cr_assert_eq(ci->gid, 100);
        cr_assert_str_eq(ci->name, "cl");
        cr_assert_eq(ci->watches, 5);
        cr_assert_eq(ci->n_held, ADMINVIEW_HELD_MAX, "holdings listed at most");
        cr_assert_eq(ci->held_total, ADMINVIEW_HELD_MAX + 10);
        for (size_t j = 0; j < ci->n_held; j++) {
            cr_assert_eq(ci->held[j]->map_id, 1000 + j);
            cr_assert_eq(ci->held[j]->mode, j % 2 ? MMAPIO__MODE__MODE_READ_WRITE
                                                   : MMAPIO__MODE__MODE_READ_ONLY);
            cr_assert_eq(!!ci->held[j]->anonymous, j % 3 == 0);
        }
        /* Every client's holdings are its own. */
        if (k)
            cr_assert_neq(ci->held[0], p.clients.clients[k - 1]->held[0]);
    }
    adminview_free(&p);

    struct clients many = { .n = ADMINVIEW_PAGE_MAX + 3, .held = 1 };
    cr_assert_eq(adminview_clients(&p, 9, many.n, clients_next, &many), 0);
    cr_assert_eq(p.clients.n_clients, ADMINVIEW_PAGE_MAX);
    cr_assert(p.clients.more);
    adminview_free(&p);
}

Test(adminview, who_sees_what)
{
    cr_assert(adminview_sees(false, 1000, 1000));
    cr_assert(!adminview_sees(false, 1000, 1001));
    cr_assert(adminview_sees(true, 1000, 1001));
    cr_assert(adminview_sees(true, 0, 0));
    char out[128];
    snprintf(out, sizeof(out), ADMINVIEW_NOT_OWNER, "anon:", "n", 7u);
    cr_assert_str_eq(out, "anon:n belongs to uid 7: only its owner or an admin may do that");
}

Test(adminview, picks_by_id_after)
{
    struct adminview_picks p;
    int items[6];
    const uint64_t ids[6] = { 9, 2, 7, 4, 12, 3 };
    cr_assert_eq(adminview_picks_init(&p, 5, 3), 0);
    for (size_t i = 0; i < 6; i++)
        adminview_pick(&p, ids[i], &items[i]);
    /* 2 and 3 are not after 3: 9, 7, 4 and 12 are picked. */
    cr_assert_eq(p.n, 4);
    adminview_sort(&p);
    cr_assert_eq(adminview_next(&p), &items[3]); /* 4 */
    cr_assert_eq(adminview_next(&p), &items[2]); /* 7 */
    cr_assert_eq(adminview_next(&p), &items[0]); /* 9 */
    cr_assert_eq(adminview_next(&p), &items[4]); /* 12 */
    cr_assert_null(adminview_next(&p));
    adminview_picks_free(&p);

    cr_assert_eq(adminview_picks_init(&p, 2, 0), 0);
    for (size_t i = 0; i < 6; i++)
        adminview_pick(&p, ids[i], &items[i]);
    cr_assert_eq(p.n, 2, "never more than the room");
    adminview_sort(&p);
    cr_assert_eq(adminview_next(&p), &items[1]); /* 2 */
    cr_assert_eq(adminview_next(&p), &items[0]); /* 9 */
    adminview_picks_free(&p);
}

Test(adminview, limits_up_to_the_room)
{
    Mmapio__Limit lim[2], *p[2];
    size_t n = 0;
    adminview_limit(lim, p, &n, 2, "a", 1, "first");
    adminview_limit(lim, p, &n, 2, "b", 2, "second");
    adminview_limit(lim, p, &n, 2, "c", 3, "no room");
    cr_assert_eq(n, 2);
    cr_assert_eq(p[0], &lim[0]);
    cr_assert_eq(p[1], &lim[1]);
    cr_assert_str_eq(lim[1].name, "b");
    cr_assert_eq(lim[1].value, 2);
    cr_assert_str_eq(lim[1].what, "second");
}

Test(adminview, status_counts_and_daemon_wide_for_admins)
{
    struct adminview_daemon d = {
        .started = (int64_t)time(NULL) - 5, .pid = 42, .socket = "/run/s",
        .root = NULL, .config_file = NULL, .rss_bytes = 4096,
        .flushes = 7, .flush_failures = 1, .errors = 2, .clients_total = 9, .arenas = 3,
    };
    for (int admin = 0; admin < 2; admin++) {
        Mmapio__StatusReply st = MMAPIO__STATUS_REPLY__INIT;
        Mmapio__Reply r;
        adminview_count(&st, true, 100);
        adminview_count(&st, false, 20);
        adminview_count(&st, true, 3);
        cr_assert_eq(adminview_status(&r, 11, &st, admin, &d), &r);
        cr_assert_eq(r.id, 11);
        cr_assert_eq(r.result_case, MMAPIO__REPLY__RESULT_STATUS);
        cr_assert_eq(r.status, &st);
        cr_assert_eq(st.mappings, 3);
        cr_assert_eq(st.anonymous, 2);
        cr_assert_eq(st.files, 1);
        cr_assert_eq(st.bytes_mapped, 123);
        cr_assert_str_eq(st.version, MMAPIO_VERSION);
        cr_assert_geq(st.uptime_s, 5);
        cr_assert_eq(st.pid, 42);
        cr_assert_str_eq(st.socket, "/run/s");
        cr_assert_str_eq(st.root, "", "none is empty");
        cr_assert_str_eq(st.config_file, "");
        cr_assert_eq(!!st.all, admin);
        /* Daemon-wide counters: an admin's only. */
        cr_assert_eq(st.flushes, admin ? 7 : 0);
        cr_assert_eq(st.flush_failures, admin ? 1 : 0);
        cr_assert_eq(st.errors, admin ? 2 : 0);
        cr_assert_eq(st.clients_total, admin ? 9 : 0);
        cr_assert_eq(st.arenas, admin ? 3 : 0);
    }
}

/* Holdings of 4095-byte paths: one client's entry still fits the 64 KiB
 * frame every client reads (its holdings are cut at ADMINVIEW_HELD_BYTES). */
Test(adminview, long_holdings_fit_a_frame)
{
    static char name[4096];
    memset(name, 'p', sizeof(name) - 1);
    struct clients c = { .n = 3, .held = ADMINVIEW_HELD_MAX, .name = name };
    struct adminview_page p;
    cr_assert_eq(adminview_clients(&p, 9, c.n, clients_next, &c), 0);
    cr_assert_geq(p.clients.n_clients, 1);
    cr_assert_leq(mmapio__reply__get_packed_size(&p.reply) + 16,
                  WIRE_DEFAULT_MAX_FRAME);
    const Mmapio__ClientInfo *ci = p.clients.clients[0];
    cr_assert_gt(ci->n_held, 0);
    cr_assert_lt(ci->n_held, ADMINVIEW_HELD_MAX);
    cr_assert_eq(ci->held_total, ADMINVIEW_HELD_MAX);
    adminview_free(&p);
}
