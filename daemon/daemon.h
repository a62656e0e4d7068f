/*
 * daemon: mmapiod assembled. Owns one of each layer's objects and wires
 * them bottom up: the model (registry and control area), the services
 * that observe it (quota, flushes, watches, fd store), the request
 * handlers, then the transport (listener and connections). Shutdown runs
 * top down: clients are told and closed, queued flushes finish, then the
 * model is dropped.
 */
#ifndef MMAPIOD_DAEMON_H
#define MMAPIOD_DAEMON_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "fdstore.h"
#include "flushes.h"
#include "quota.h"
#include "registry.h"
#include "opencache.h"
#include "server.h"
#include "statefile.h"
#include "session.h"
#include "watch.h"

struct event_base;

struct daemon {
    struct config cfg;          /* filled by the caller before daemon_init */
    const char *config_file;    /* the file cfg was read from; NULL: none */
    uint64_t nofile;            /* the fd limit the budgets were fitted to */
    struct event_base *base;
    int root_fd;                /* O_PATH directory fd of the data root */
    struct registry reg;
    struct quota quota;
    struct flushes flushes;
    struct watches watches;
    struct opencache cache;
    struct fdstore store;
    struct statefile state;
    struct handlers handlers;
    struct server server;
};

/* Sets everything up from d->cfg. On failure a one-line reason is in err,
 * a negative errno is returned, and daemon_fini cleans up. */
int daemon_init(struct daemon *d, char *err, size_t err_size);
/* Serves until SIGTERM or SIGINT. */
int daemon_run(struct daemon *d);
void daemon_fini(struct daemon *d);

#endif
