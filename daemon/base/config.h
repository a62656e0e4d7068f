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
                                     * slots); 0: 131072 with arenas, else
                                     * from the fd budget */
    uint32_t max_mappings_per_uid;  /* mappings a uid may own; 0: a share */
    uint32_t reserved_mappings;     /* of max_mappings, only for root and
                                     * admin_group; UINT32_MAX: a share */
    uint32_t max_fd_mappings;       /* of those, holding a daemon fd (not
                                     * carved); 0: from the fd budget */
    uint32_t max_fd_mappings_per_uid; /* ... a uid may hold; 0: a share */
    uint32_t reserved_fd_mappings;  /* of max_fd_mappings, only for root
                                     * and admin_group; UINT32_MAX: a share */
    uint32_t max_handles_per_client; /* holders (and watches) per client */
    uint32_t open_cache;            /* released file mappings kept ready to
                                     * reopen; UINT32_MAX: from the fd
                                     * budget; 0: none */
    uint32_t max_final_flushes;     /* final flushes holding their mapping
                                     * at once (not a setting: from
                                     * open_cache, config_fit_fds) */
    uint64_t max_bytes_per_uid;     /* bytes of mappings a uid may own */
    uint32_t max_write_rings_per_uid; /* write rings (wring.h) of a uid's
                                     * connections at once */
    uint64_t max_map_size;          /* largest single mapping */
    uint64_t arena_max;             /* anonymous mappings up to this size
                                     * share memfds (model/arena.h); 0: none */
    uint64_t arena_stride;          /* offset space per carved mapping: its
                                     * largest size (0: max_map_size) */
    uint64_t arena_slots;           /* mappings one arena memfd ever holds */
    uint32_t flush_threads;
    bool has_admin_group;           /* admin_group: sees and changes all */
    gid_t admin_gid;
    bool verbose;
    char config_file[PATH_MAX];     /* the file read, "" for none */
};

/*
 * Every setting, its default and its bounds, once: config_defaults,
 * config_set, mmapiod --help and the option list are made from this table,
 * and a test checks the man page against it (tests/test_docs.c). A key
 * `max_frame` is the config file's `max_frame = N` and the option
 * `--max-frame N`.
 */
enum config_kind {
    CONFIG_STRING,  /* a path */
    CONFIG_U32,
    CONFIG_U64,
    CONFIG_GROUP,   /* a group name or gid */
    CONFIG_BOOL,    /* yes/no, true/false, 1/0 */
};

struct config_key {
    const char *key;
    enum config_kind kind;
    size_t off;             /* where in struct config */
    size_t size;            /* CONFIG_STRING: the buffer's size */
    uint64_t min, max;      /* numbers: the accepted range */
    uint64_t def;           /* numbers: the embedded default */
    const char *def_text;   /* the default in words (NULL: `def`) */
    const char *what;       /* what it is, one sentence */
};

extern const struct config_key config_keys[];
extern const size_t config_n_keys;

/* The key's option name (`--` and '-' for '_') into buf. */
void config_option_name(const struct config_key *k, char *buf, size_t size);

/* A number's value in c (CONFIG_U32 and CONFIG_U64 keys; 0 for others). */
uint64_t config_number(const struct config *c, const struct config_key *k);

/* What an option takes: "N", "PATH", "DIR", "GROUP", or "" (a switch). */
const char *config_arg_name(const struct config_key *k);

/* The default as documented ("65536", or def_text) into buf. */
void config_default_text(const struct config_key *k, char *buf, size_t size);

/* The accepted values ("1024 to 16777216", "at least 1", "a path") into buf. */
void config_range_text(const struct config_key *k, char *buf, size_t size);

/* The config file read when root starts mmapiod with no --config, if it
 * exists (SYSCONFDIR/mmapio/mmapiod.conf, as installed). */
#ifndef MMAPIO_SYSCONFDIR
#define MMAPIO_SYSCONFDIR "/etc"
#endif
#define CONFIG_DEFAULT_FILE MMAPIO_SYSCONFDIR "/mmapio/mmapiod.conf"

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
