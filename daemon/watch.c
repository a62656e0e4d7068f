/* watch: subscriptions, inotify and change events (see watch.h). */
#include "watch.h"

#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conn.h"
#include "ctl.h"
#include "log.h"
#include "mapping.h"
#include "ops.h"
#include "server.h"

#define FILE_EVENTS (IN_MODIFY | IN_ATTRIB | IN_MOVE_SELF | IN_DELETE_SELF)

static struct mapping *find_wd(struct daemon *d, int wd)
{
    for (struct hnode *n = hmap_find(&d->wds, hmap_hash_u64((uint64_t)wd)); n;
         n = hmap_next_same(n)) {
        struct mapping *m = container_of(n, struct mapping, wd_node);
        if (m->wd == wd)
            return m;
    }
    return NULL;
}

void watch_notify(struct mapping *m, Mmapio__EventKind kind, bool has_range,
                  uint64_t offset, uint64_t len)
{
    uint64_t stamp = conn_new_stamp();
    Mmapio__Event ev = MMAPIO__EVENT__INIT;
    ev.kind = kind;
    ev.map_id = m->id;
    ev.size = m->size;
    ev.has_range = has_range;
    ev.offset = offset;
    ev.len = len;
    for (struct watch *w = m->watches; w; w = w->map_next) {
        if (w->conn->mark == stamp)
            continue;
        w->conn->mark = stamp;
        conn_send_event(w->conn, &ev);
    }
}

static void on_file_event(struct mapping *m, uint32_t mask)
{
    struct stat st;
    if (fstat(m->fd, &st) < 0)
        return;
    if (mask & IN_MODIFY) {
        watch_notify(m, MMAPIO__EVENT_KIND__EVENT_MODIFIED, false, 0, 0);
        if ((uint64_t)st.st_size != m->size) {
            m->size = (uint64_t)st.st_size;
            ops_tell_holders(m, NULL, MMAPIO__EVENT_KIND__EVENT_RESIZED);
        }
    }
    if (mask & (IN_ATTRIB | IN_MOVE_SELF | IN_DELETE_SELF)) {
        if (st.st_nlink == 0 && !m->removed) {
            m->removed = true;
            watch_notify(m, MMAPIO__EVENT_KIND__EVENT_REMOVED, false, 0, 0);
        } else if (st.st_nlink > 0) {
            watch_notify(m, MMAPIO__EVENT_KIND__EVENT_METADATA, false, 0, 0);
        }
    }
}

static void on_inotify(evutil_socket_t fd, short what, void *arg)
{
    struct daemon *d = arg;
    _Alignas(struct inotify_event) char buf[16384];

    for (int round = 0; round < 16; round++) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n <= 0)
            return;
        for (char *p = buf; p < buf + n;) {
            struct inotify_event *ie = (struct inotify_event *)p;
            p += sizeof(*ie) + ie->len;
            if (ie->mask & IN_Q_OVERFLOW)
                log_warn("inotify queue overflowed; some file changes were not seen");
            struct mapping *m = find_wd(d, ie->wd);
            if (m)
                on_file_event(m, ie->mask);
        }
    }
}

int watch_init(struct daemon *d)
{
    hmap_init(&d->wds);
    hmap_init(&d->watch_ids);
    d->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (d->inotify_fd < 0)
        return -errno;
    d->ev_inotify = event_new(d->base, d->inotify_fd, EV_READ | EV_PERSIST,
                              on_inotify, d);
    if (!d->ev_inotify || event_add(d->ev_inotify, NULL) < 0)
        return -ENOMEM;
    return 0;
}

void watch_fini(struct daemon *d)
{
    if (d->ev_inotify)
        event_free(d->ev_inotify);
    d->ev_inotify = NULL;
    if (d->inotify_fd >= 0)
        close(d->inotify_fd);
    d->inotify_fd = -1;
    hmap_free(&d->wds);
    hmap_free(&d->watch_ids);
}

void watch_track_file(struct daemon *d, struct mapping *m)
{
    char proc[64];
    snprintf(proc, sizeof(proc), "/proc/self/fd/%d", m->fd);
    int wd = inotify_add_watch(d->inotify_fd, proc, FILE_EVENTS);
    if (wd < 0) {
        log_warn("cannot watch %s: %s", m->name, strerror(errno));
        return;
    }
    /* One inode, one wd: a second mapping of it cannot exist (registry). */
    if (hmap_insert(&d->wds, &m->wd_node, hmap_hash_u64((uint64_t)wd)) < 0) {
        inotify_rm_watch(d->inotify_fd, wd);
        return;
    }
    m->wd = wd;
}

void watch_forget(struct mapping *m)
{
    if (m->wd < 0)
        return;
    hmap_remove(&m->d->wds, &m->wd_node);
    /* inotify gives one inode one wd: keep it if a newer mapping uses it. */
    if (!find_wd(m->d, m->wd))
        inotify_rm_watch(m->d->inotify_fd, m->wd);
    m->wd = -1;
}

int watch_add(struct conn *c, struct holder *h, uint64_t *id)
{
    struct daemon *d = c->d;
    if (c->n_watches >= d->cfg.max_handles_per_client)
        return MMAPIO_E_QUOTA;
    struct watch *w = calloc(1, sizeof(*w));
    if (!w)
        return MMAPIO_E_QUOTA;
    w->id = ++d->next_watch;
    if (hmap_insert(&d->watch_ids, &w->node, hmap_hash_u64(w->id)) < 0) {
        free(w);
        return MMAPIO_E_QUOTA;
    }
    w->conn = c;
    w->map = mapping_ref(h->map);
    w->map_next = w->map->watches;
    if (w->map_next)
        w->map_next->map_prev = w;
    w->map->watches = w;
    w->map->n_watches++;
    w->conn_next = c->watches;
    if (w->conn_next)
        w->conn_next->conn_prev = w;
    c->watches = w;
    c->n_watches++;
    /* Before the reply: from now on every writer reports its writes. */
    atomic_store(&ctl_slot(w->map->ctl, w->map->slot)->watchers, w->map->n_watches);
    *id = w->id;
    return MMAPIO_OK;
}

static void drop(struct watch *w)
{
    struct mapping *m = w->map;
    struct conn *c = w->conn;
    if (w->map_prev)
        w->map_prev->map_next = w->map_next;
    else
        m->watches = w->map_next;
    if (w->map_next)
        w->map_next->map_prev = w->map_prev;
    if (w->conn_prev)
        w->conn_prev->conn_next = w->conn_next;
    else
        c->watches = w->conn_next;
    if (w->conn_next)
        w->conn_next->conn_prev = w->conn_prev;
    c->n_watches--;
    m->n_watches--;
    atomic_store(&ctl_slot(m->ctl, m->slot)->watchers, m->n_watches);
    hmap_remove(&c->d->watch_ids, &w->node);
    mapping_retire_if_unused(m);
    mapping_unref(m);
    free(w);
}

int watch_remove(struct conn *c, uint64_t id)
{
    for (struct hnode *n = hmap_find(&c->d->watch_ids, hmap_hash_u64(id)); n;
         n = hmap_next_same(n)) {
        struct watch *w = container_of(n, struct watch, node);
        if (w->id == id && w->conn == c) {
            drop(w);
            return MMAPIO_OK;
        }
    }
    return MMAPIO_E_NOT_FOUND;
}

void watch_release_conn(struct conn *c)
{
    while (c->watches)
        drop(c->watches);
}
