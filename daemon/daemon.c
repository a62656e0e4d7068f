/* daemon: every layer's object, wired (see daemon.h). */
#include "daemon.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "copier.h"
#include "dirs.h"
#include "log.h"
#include "ringdrain.h"

/* Every mapping and every connection is an fd: take all the fds the hard
 * limit allows, then fit the limits to them (config_fit_fds). */
static uint64_t fit_fd_limit(struct config *c)
{
    struct rlimit rl;
    char note[512];
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        rl.rlim_cur = rl.rlim_max = 1024;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            getrlimit(RLIMIT_NOFILE, &rl);
    }
    uint64_t nofile = rl.rlim_cur == RLIM_INFINITY ? UINT64_C(1) << 20 : rl.rlim_cur;
    config_fit_fds(c, nofile, note, sizeof(note));
    for (char *line = note, *nl; (nl = strchr(line, '\n')); line = nl + 1) {
        *nl = '\0';
        log_warn("%s", line);
    }
    return nofile;
}

static int open_root(struct daemon *d, char *err, size_t err_size)
{
    int r = dirs_mkdir_p(d->cfg.root, geteuid() == 0 ? 0755 : 0700);
    if (r == 0 && access(d->cfg.root, W_OK | X_OK) < 0)
        r = -errno;
    if (r == 0 && (d->root_fd = open(d->cfg.root, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
        r = -errno;
    if (r < 0)
        snprintf(err, err_size, "data root %s is not usable: %s", d->cfg.root,
                 strerror(-r));
    return r;
}

/* The services and the handlers, each observing the registry. */
static int setup_services(struct daemon *d, char *err, size_t err_size)
{
    const struct config *c = &d->cfg;
    int r = quota_init(&d->quota, &d->reg, c->max_mappings_per_uid,
                       c->max_bytes_per_uid);
    quota_set_total(&d->quota, c->max_mappings, c->reserved_mappings);
    quota_set_fd_total(&d->quota, c->max_fd_mappings, c->reserved_fd_mappings,
                       c->max_fd_mappings_per_uid);
    d->quota.max_rings = c->max_write_rings_per_uid;
    if (r == 0 && (r = flushes_init(&d->flushes, &d->reg, d->base,
                                    c->flush_threads,
                                    c->max_final_flushes)) < 0) {
        snprintf(err, err_size, "cannot start flush workers: %s", strerror(-r));
        return r;
    }
    if (r == 0 && (r = watches_init(&d->watches, &d->reg, &d->quota, d->base,
                                    c->max_handles_per_client,
                                    session_watch_event)) < 0) {
        snprintf(err, err_size, "cannot set up file watching: %s", strerror(-r));
        return r;
    }
    if (r == 0 && (r = opencache_init(&d->cache, &d->reg, &d->quota, d->base,
                                      c->open_cache)) < 0) {
        snprintf(err, err_size, "cannot set up the open cache: %s", strerror(-r));
        return r;
    }
    if (r == 0)
        r = fdstore_init(&d->store, &d->reg, &d->quota);
    if (r == 0)
        r = statefile_init(&d->state, &d->reg, &d->quota, d->base, d->root_fd);
    if (r == 0)
        r = handlers_init(&d->handlers, c, d->root_fd, &d->reg, &d->quota,
                          &d->flushes, &d->watches);
    if (r == 0)
        d->handlers.config_file = d->config_file; /* for mmapioctl status */
    if (r == 0 && !(d->handlers.copier = copier_new(d->base)))
        r = -ENOMEM;
    d->handlers.cache = &d->cache;
    d->handlers.state = &d->state;
    d->handlers.settle_uid = ringdrain_settle_uid;
    if (r < 0)
        snprintf(err, err_size, "cannot set up the daemon: %s", strerror(-r));
    return r;
}

int daemon_init(struct daemon *d, char *err, size_t err_size)
{
    d->root_fd = -1;
    d->watches.sys_fd = -1;
    d->store.meta_fd = d->store.taken_meta = -1;
    d->state.dir_fd = -1;
    d->server.listen_fd = d->server.spare_fd = -1;
    signal(SIGPIPE, SIG_IGN);
    signal(SIGXFSZ, SIG_IGN); /* a file size limit fails the write (EFBIG) */
    d->nofile = fit_fd_limit(&d->cfg);
    /* A control slot for every mapping: held, cached or finally flushing. */
    int r = registry_init(&d->reg, d->cfg.max_mappings + d->cfg.open_cache +
                                       d->cfg.max_final_flushes);
    if (r < 0) {
        snprintf(err, err_size, "cannot create the control area: %s", strerror(-r));
        return r;
    }
    /* A slot of max_map_size each (unless arena_stride says less): a
     * carved mapping grows in place. */
    arenas_configure(&d->reg.env.arenas, d->cfg.arena_max,
                     d->cfg.arena_stride && d->cfg.arena_stride < d->cfg.max_map_size
                         ? d->cfg.arena_stride : d->cfg.max_map_size,
                     d->cfg.arena_slots);
    d->base = event_base_new();
    if (!d->base) {
        snprintf(err, err_size, "cannot set up the event loop");
        return -ENOMEM;
    }
    r = open_root(d, err, err_size);
    if (r == 0)
        r = setup_services(d, err, err_size);
    if (r < 0)
        return r;
    d->server.cfg = &d->cfg;
    d->server.base = d->base;
    d->server.reg = &d->reg;
    d->server.flushes = &d->flushes;
    d->server.store = &d->store;
    d->server.handlers = &d->handlers;
    return server_init(&d->server, err, err_size);
}

int daemon_run(struct daemon *d)
{
    const struct config *c = &d->cfg;
    /* Said once serving: a daemon that cannot start says one line only. */
    log_info("fd limit %llu: max_clients %u (%u per uid, %u kept for admins), "
             "max_mappings %u (%u per uid, %u kept for admins), "
             "max_fd_mappings %u (%u per uid, %u kept for admins), "
             "max_queued_fds_total %u (%u per uid), open_cache %u, "
             "max_final_flushes %u",
             (unsigned long long)d->nofile, c->max_clients,
             c->max_clients_per_uid, c->reserved_clients, c->max_mappings,
             c->max_mappings_per_uid, c->reserved_mappings, c->max_fd_mappings,
             c->max_fd_mappings_per_uid, c->reserved_fd_mappings,
             c->max_queued_fds_total, c->max_queued_fds_per_uid, c->open_cache,
             c->max_final_flushes);
    return server_run(&d->server);
}

void daemon_fini(struct daemon *d)
{
    /* Clients keep what they mapped: freed arena slots are not punched. */
    arenas_stop(&d->reg.env.arenas);
    server_fini(&d->server);     /* clients closed: final flushes queued */
    copier_free(d->handlers.copier); /* running copies end */
    d->handlers.copier = NULL;
    flushes_fini(&d->flushes);   /* every queued flush runs to its end */
    opencache_fini(&d->cache);   /* cached mappings leave the registry */
    fdstore_fini(&d->store);     /* stop storing before mappings go */
    statefile_fini(&d->state);   /* no more records */
    registry_fini(&d->reg);
    watches_fini(&d->watches);
    quota_fini(&d->quota);
    if (d->base)
        event_base_free(d->base);
    d->base = NULL;
    if (d->root_fd >= 0)
        close(d->root_fd);
    d->root_fd = -1;
}
