/*
 * config: the daemon's settings. Embedded defaults first, then the
 * --config file (key = value lines), then command-line options; each later
 * source overrides the earlier. Every limit a client can push against is
 * here, with a sane default.
 */
#ifndef MMAPIOD_CONFIG_H
#define MMAPIOD_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct config {
    char socket_path[108];          /* sun_path holds 108 bytes */
    char root[PATH_MAX];
    uint32_t max_frame;             /* largest datagram accepted */
    uint32_t max_clients;           /* 0: from the fd budget (daemon.c) */
    uint32_t max_clients_per_uid;   /* 0: a share of max_clients */
    uint32_t reserved_clients;      /* of max_clients, only for root and
                                     * admin_group; UINT32_MAX: a share */
    uint32_t hello_timeout_ms;      /* a client must say hello by then */
    uint32_t max_inflight;          /* unanswered requests per client */
    uint32_t max_events;            /* queued events per client */
    uint32_t max_queued_bytes;      /* bytes queued toward one client */
    uint64_t max_queued_bytes_per_uid; /* ... toward all of a uid's clients */
    uint32_t max_queued_fds;        /* fds queued toward one client */
    uint32_t max_queued_fds_per_uid; /* ... toward all of a uid's clients */
    uint32_t max_queued_fds_total;  /* ... toward every client: a share of
                                     * the fd budget (config_fit_fds); 0:
                                     * not fitted, RLIMIT_NOFILE / 4 */
    uint32_t max_mappings;          /* mappings alive at once (control
                                     * slots); 0: from the fd budget */
    uint32_t max_mappings_per_uid;  /* mappings a uid may own; 0: a share */
    uint32_t reserved_mappings;     /* of max_mappings, only for root and
                                     * admin_group; UINT32_MAX: a share */
    uint32_t max_handles_per_client; /* holders (and watches) per client */
    uint32_t open_cache;            /* released file mappings kept ready to
                                     * reopen; UINT32_MAX: from the fd
                                     * budget; 0: none */
    uint32_t max_final_flushes;     /* final flushes holding their mapping
                                     * at once (not a setting: from
                                     * open_cache, config_fit_fds) */
    uint64_t max_bytes_per_uid;     /* bytes of mappings a uid may own */
    uint64_t max_map_size;          /* largest single mapping */
    uint32_t flush_threads;
    bool has_admin_group;           /* admin_group: sees and changes all */
    gid_t admin_gid;
    bool verbose;
};

/* Fills the embedded defaults (socket and root from the environment and
 * uid, as API.md gives them). 0, or -ENAMETOOLONG. */
int config_defaults(struct config *c);

/* Applies one "key = value" setting. 0, or -EINVAL with a reason in err. */
int config_set(struct config *c, const char *key, const char *value,
               char *err, size_t err_size);

/* Reads a config file: '#' comments, blank lines, "key = value" lines.
 * 0, or -errno / -EINVAL with "FILE:LINE: reason" in err. */
int config_load(struct config *c, const char *path, char *err,
                size_t err_size);

/*
 * Fits the limits that hold fds to the fds the daemon has (`nofile`, its
 * RLIMIT_NOFILE): settings left at 0 (or UINT32_MAX for the reserves) get
 * their share of the budget, explicit ones are lowered when they promise
 * more than it holds. One line per lowered setting goes to note[] (may
 * be empty).
 */
void config_fit_fds(struct config *c, uint64_t nofile, char *note,
                    size_t note_size);

/* The default socket path as API.md gives it (shared with the library). */
int config_default_socket(char *buf, size_t size);

#endif
