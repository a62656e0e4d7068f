/* config: defaults, config file and settings (see config.h). */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int fits(int n, size_t size)
{
    return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

int config_default_socket(char *buf, size_t size)
{
    const char *xdg = getenv("XDG_RUNTIME_DIR");

    if (xdg && *xdg)
        return fits(snprintf(buf, size, "%s/mmapio/mmapiod.sock", xdg), size);
    if (geteuid() == 0)
        return fits(snprintf(buf, size, "/run/mmapio/mmapiod.sock"), size);
    return fits(snprintf(buf, size, "/tmp/mmapio-%u/mmapiod.sock",
                         (unsigned)geteuid()), size);
}

static int default_root(char *buf, size_t size)
{
    const char *xdg = getenv("XDG_DATA_HOME");
    const char *home = getenv("HOME");

    if (geteuid() == 0)
        return fits(snprintf(buf, size, "/var/lib/mmapio"), size);
    if (xdg && *xdg)
        return fits(snprintf(buf, size, "%s/mmapio", xdg), size);
    if (home && *home)
        return fits(snprintf(buf, size, "%s/.local/share/mmapio", home), size);
    return -ENOENT;
}

#define F(field) offsetof(struct config, field)
#define U32(key, min, max, def, def_text, what) \
    { #key, CONFIG_U32, F(key), 0, min, max, def, def_text, what }
#define U64(key, min, max, def, what) \
    { #key, CONFIG_U64, F(key), 0, min, max, def, NULL, what }

const struct config_key config_keys[] = {
    { "socket", CONFIG_STRING, F(socket_path), sizeof(((struct config *)0)->socket_path),
      0, 0, 0,
      "$XDG_RUNTIME_DIR/mmapio/mmapiod.sock when XDG_RUNTIME_DIR is set, "
      "else /run/mmapio/mmapiod.sock for root, else /tmp/mmapio-UID/mmapiod.sock",
      "The listening socket." },
    { "root", CONFIG_STRING, F(root), PATH_MAX, 0, 0, 0,
      "/var/lib/mmapio for root, else $XDG_DATA_HOME/mmapio or "
      "~/.local/share/mmapio",
      "The data root: file paths of clients are relative to it and cannot "
      "leave it." },
    U32(max_frame, 1024, 16u << 20, 64 * 1024, NULL,
        "Largest request datagram accepted, in bytes."),
    U32(max_clients, 1, 1000000, 0,
        "a quarter of the fd budget, from 16 to 10000",
        "Connections at once; past it new ones are closed at accept."),
    U32(max_clients_per_uid, 1, 1000000, 0, "a quarter of max_clients",
        "Connections of one uid at once (root and admin_group are not counted)."),
    U32(reserved_clients, 0, 1000000, UINT32_MAX, "a sixteenth of max_clients",
        "The last places of max_clients, kept for root and admin_group."),
    U32(hello_timeout_ms, 1, 3600000, 5000, NULL,
        "A client that has not said hello by then, in milliseconds, is closed."),
    U32(max_inflight, 1, 65536, 64, NULL,
        "Unanswered requests one client may have."),
    U32(max_events, 1, 1u << 20, 1024, NULL,
        "Events queued for one client before it is told of an overflow."),
    U32(max_queued_bytes, 1024, 1u << 30, 256 * 1024, NULL,
        "Reply bytes queued toward one client before its requests are no "
        "longer read."),
    U64(max_queued_bytes_per_uid, 1024, UINT64_MAX, 16u << 20,
        "The same over all the connections of one uid."),
    U32(max_queued_fds, 1, 65536, 16, NULL,
        "File descriptors queued in unread replies toward one client before "
        "its requests are no longer read."),
    U32(max_queued_fds_per_uid, 1, 1u << 20, 0,
        "a quarter of the fds kept for unread replies, at most 256",
        "The same over all the clients of one uid: past it none of them is "
        "read, not even one with nothing queued (at most a quarter of the "
        "fds kept for unread replies, which are a quarter of the fd budget)."),
    U32(max_mappings, 16, 1u << 24, 0,
        "131072 with arenas on, else max_fd_mappings' default",
        "Mappings alive at once."),
    U32(max_mappings_per_uid, 1, UINT32_MAX, 0, "a quarter of max_mappings",
        "Mappings one uid holds or watches at once, charged to each holder."),
    U32(reserved_mappings, 0, 1u << 24, UINT32_MAX, "a sixteenth of max_mappings",
        "The last of max_mappings, kept for mappings root or admin_group "
        "create."),
    U32(max_fd_mappings, 16, 1u << 24, 0,
        "what the fd budget leaves after max_clients and the open cache, "
        "at most 131072 and at most max_mappings",
        "Of max_mappings, those that hold a daemon fd at once: file mappings "
        "and anonymous ones not carved from an arena (huge pages, or larger "
        "than arena_max)."),
    U32(max_fd_mappings_per_uid, 1, UINT32_MAX, 0,
        "a quarter of max_fd_mappings",
        "Of max_mappings_per_uid, those that hold a daemon fd, charged to "
        "each holder like max_mappings_per_uid."),
    U32(reserved_fd_mappings, 0, 1u << 24, UINT32_MAX,
        "a sixteenth of max_fd_mappings",
        "The last of max_fd_mappings, kept for mappings root or admin_group "
        "create."),
    U32(max_handles_per_client, 1, UINT32_MAX, 4096, NULL,
        "Handles and watches one client may hold."),
    U32(open_cache, 0, 1u << 20, UINT32_MAX,
        "a sixteenth of what connections leave of the fd budget, from 16 to 4096",
        "File mappings nobody holds any more, kept open for the next open of "
        "the same file (0: none)."),
    U64(max_bytes_per_uid, 1, UINT64_MAX, UINT64_C(1) << 40,
        "Bytes of the mappings one uid holds or watches, charged to each holder."),
    U32(max_write_rings_per_uid, 0, 1000000, 128, NULL,
        "Write rings (about 128 KiB of the daemon's memory each, one per "
        "connection that writes) one uid's connections have at once; past "
        "it a connection tells its writes by notices."),
    U64(max_map_size, 1, INT64_MAX, UINT64_C(1) << 40,
        "Largest single mapping, in bytes."),
    U64(arena_max, 0, INT64_MAX, UINT64_C(1) << 20,
        "Anonymous mappings created at most this large, in bytes, are carved "
        "out of memfds shared with mappings of the same owner, group and mode "
        "instead of having one each (0: never)."),
    { "arena_stride", CONFIG_U64, F(arena_stride), 0, 0, INT64_MAX, 0,
      "max_map_size",
      "Bytes of a shared memfd's offset space each carved mapping reserves: "
      "it grows in place up to that size and no further (0: max_map_size). "
      "A smaller stride packs the memfd's page index densely, which costs "
      "the kernel less memory per mapping." },
    U64(arena_slots, 1, UINT64_C(1) << 32, UINT64_C(1) << 20,
        "Mappings carved out of one shared memfd before it takes no more; "
        "freed space in it is never handed out again."),
    U32(flush_threads, 1, 64, 2, NULL,
        "Worker threads for requested and final flushes (one more serves "
        "only every-millis flushes)."),
    { "admin_group", CONFIG_GROUP, 0, 0, 0, 0, 0, "none",
      "A group (name or gid) whose members see and change every mapping." },
    { "verbose", CONFIG_BOOL, F(verbose), 0, 0, 1, 0, "no",
      "Log every connection." },
};
const size_t config_n_keys = sizeof(config_keys) / sizeof(config_keys[0]);

void config_option_name(const struct config_key *k, char *buf, size_t size)
{
    snprintf(buf, size, "--%s", k->key);
    for (char *p = buf; *p; p++)
        if (*p == '_')
            *p = '-';
}

const char *config_arg_name(const struct config_key *k)
{
    switch (k->kind) {
    case CONFIG_STRING: return strcmp(k->key, "root") ? "PATH" : "DIR";
    case CONFIG_GROUP: return "GROUP";
    case CONFIG_BOOL: return "";
    default: return "N";
    }
}

void config_default_text(const struct config_key *k, char *buf, size_t size)
{
    if (k->def_text)
        snprintf(buf, size, "%s", k->def_text);
    else
        snprintf(buf, size, "%" PRIu64, k->def);
}

void config_range_text(const struct config_key *k, char *buf, size_t size)
{
    switch (k->kind) {
    case CONFIG_STRING: snprintf(buf, size, "a path"); break;
    case CONFIG_GROUP: snprintf(buf, size, "a group name or gid"); break;
    case CONFIG_BOOL: snprintf(buf, size, "yes or no"); break;
    default:
        if (k->max >= UINT32_MAX)
            snprintf(buf, size, "at least %" PRIu64, k->min);
        else
            snprintf(buf, size, "%" PRIu64 " to %" PRIu64, k->min, k->max);
    }
}

int config_defaults(struct config *c)
{
    memset(c, 0, sizeof(*c));
    for (size_t i = 0; i < config_n_keys; i++) {
        const struct config_key *k = &config_keys[i];
        if (k->kind == CONFIG_U32)
            *(uint32_t *)((char *)c + k->off) = (uint32_t)k->def;
        else if (k->kind == CONFIG_U64)
            *(uint64_t *)((char *)c + k->off) = k->def;
    }
    int r = config_default_socket(c->socket_path, sizeof(c->socket_path));
    if (r < 0)
        return r;
    return default_root(c->root, sizeof(c->root));
}

static int parse_u64(const char *v, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end;
    if (!isdigit((unsigned char)*v))
        return -EINVAL;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (errno || *end || x < min || x > max)
        return -EINVAL;
    *out = x;
    return 0;
}

/* A group name, or a numeric gid. */
static int parse_group(const char *v, gid_t *gid, bool *set)
{
    uint64_t n;
    const struct group *g = getgrnam(v);
    if (g)
        *gid = g->gr_gid;
    else if (parse_u64(v, 0, UINT32_MAX - 1, &n) == 0)
        *gid = (gid_t)n;
    else
        return -EINVAL;
    *set = true;
    return 0;
}

static int parse_bool(const char *v, bool *out)
{
    if (!strcmp(v, "true") || !strcmp(v, "yes") || !strcmp(v, "1"))
        *out = true;
    else if (!strcmp(v, "false") || !strcmp(v, "no") || !strcmp(v, "0"))
        *out = false;
    else
        return -EINVAL;
    return 0;
}

static int set_string(char *dst, size_t size, const char *v)
{
    if (!*v || strlen(v) >= size)
        return -EINVAL;
    memcpy(dst, v, strlen(v) + 1);
    return 0;
}

static int set_key(struct config *c, const struct config_key *k,
                   const char *value)
{
    char *at = (char *)c + k->off;
    uint64_t v;
    int r;

    switch (k->kind) {
    case CONFIG_STRING:
        return set_string(at, k->size, value);
    case CONFIG_GROUP:
        return parse_group(value, &c->admin_gid, &c->has_admin_group);
    case CONFIG_BOOL:
        return parse_bool(value, (bool *)at);
    case CONFIG_U32:
        r = parse_u64(value, k->min, k->max, &v);
        if (r == 0)
            *(uint32_t *)at = (uint32_t)v;
        return r;
    case CONFIG_U64:
        return parse_u64(value, k->min, k->max, (uint64_t *)at);
    }
    return -EINVAL;
}

int config_set(struct config *c, const char *key, const char *value,
               char *err, size_t err_size)
{
    for (size_t i = 0; i < config_n_keys; i++) {
        const struct config_key *k = &config_keys[i];
        if (strcmp(key, k->key))
            continue;
        int r = set_key(c, k, value);
        if (r < 0) {
            char range[64];
            config_range_text(k, range, sizeof(range));
            snprintf(err, err_size, "bad value '%s' for %s (%s)", value, key,
                     range);
        }
        return r;
    }
    snprintf(err, err_size, "unknown setting '%s'", key);
    return -EINVAL;
}

/*
 * The fd budget. Every connection and every mapping not carved from an
 * arena holds one fd, and so does every fd queued in an unsent reply
 * (conn.h); the daemon keeps CONFIG_INTERNAL_FDS for itself (stdio, the listener, the loop, inotify,
 * workers' pipes, the data root, the fds an open or a flush holds for a
 * moment, the spare fd that lets accept answer at the limit). Queued fds
 * — fds held for clients, queued in unsent replies or sent and not yet
 * received — get a quarter of the rest (max_queued_fds_total: past all
 * but its last sixteenth, kept for root and admin_group, nobody is read,
 * conn.c) and a uid a quarter of that; connections a quarter of what is left (at most 10000,
 * at least 16; set by hand, at most three quarters); of what connections
 * leave, the open cache (released file mappings kept ready) a sixteenth
 * (at most 4096, at least 16) and the final flushes that hold a mapping a
 * quarter of that (at least 16, at most 1024), and mappings that hold an
 * fd the rest (max_fd_mappings, at most 131072: so does max_mappings when
 * arenas are off; with arenas it is 131072, carved mappings holding no
 * fd); a uid a quarter of each, and a sixteenth of each is kept for root
 * and admin_group.
 */
#define CONFIG_INTERNAL_FDS 64

static void lower(uint32_t *v, uint32_t max, const char *key, char **note,
                  size_t *left)
{
    if (*v <= max)
        return;
    int n = snprintf(*note, *left, "%s lowered from %u to %u to fit the fd limit\n",
                     key, *v, max);
    if (n > 0 && (size_t)n < *left) {
        *note += n;
        *left -= (size_t)n;
    }
    *v = max;
}

static uint32_t at_least(uint64_t v, uint32_t min, uint32_t max)
{
    return v < min ? min : v > max ? max : (uint32_t)v;
}

void config_fit_fds(struct config *c, uint64_t nofile, char *note,
                    size_t note_size)
{
    uint64_t budget = nofile > 2 * CONFIG_INTERNAL_FDS ? nofile - CONFIG_INTERNAL_FDS
                                                       : CONFIG_INTERNAL_FDS;
    if (note_size)
        *note = '\0';
    /* Fds queued toward clients come first: they are not promised to
     * connections or mappings. */
    c->max_queued_fds_total = at_least(budget / 4, 16, UINT32_MAX);
    budget -= c->max_queued_fds_total;
    if (c->max_queued_fds_per_uid == 0)
        c->max_queued_fds_per_uid = at_least(c->max_queued_fds_total / 4, 1, 256);
    lower(&c->max_queued_fds_per_uid, at_least(c->max_queued_fds_total / 4, 1,
                                               UINT32_MAX),
          "max_queued_fds_per_uid", &note, &note_size);
    if (c->max_clients == 0)
        c->max_clients = at_least(budget / 4, 16, 10000);
    lower(&c->max_clients, at_least(budget / 4 * 3, 1, UINT32_MAX),
          "max_clients", &note, &note_size);
    uint64_t left = budget - (uint64_t)c->max_clients;
    if (c->open_cache == UINT32_MAX)
        c->open_cache = at_least(left / 16, 16, 4096);
    lower(&c->open_cache, (uint32_t)(left / 4), "open_cache", &note,
          &note_size);
    c->max_final_flushes = at_least(c->open_cache / 4, 16, 1024);
    uint64_t kept = c->open_cache + (uint64_t)c->max_final_flushes;
    left = left > kept ? left - kept : 0;
    /* Carved anonymous mappings need no fd: with arenas, max_mappings is
     * the control area's cap and the fds are budgeted by max_fd_mappings
     * alone; without, every mapping holds one. */
    if (c->max_mappings == 0)
        c->max_mappings = c->arena_max ? 131072 : at_least(left, 16, 131072);
    if (c->arena_max == 0)
        lower(&c->max_mappings, at_least(left, 16, UINT32_MAX), "max_mappings",
              &note, &note_size);
    if (c->max_fd_mappings == 0)
        c->max_fd_mappings = at_least(left, 16, c->max_mappings < 131072
                                                    ? c->max_mappings : 131072);
    lower(&c->max_fd_mappings, at_least(left, 16, UINT32_MAX),
          "max_fd_mappings", &note, &note_size);
    if (c->max_clients_per_uid == 0)
        c->max_clients_per_uid = at_least(c->max_clients / 4, 1, UINT32_MAX);
    if (c->reserved_clients == UINT32_MAX)
        c->reserved_clients = at_least(c->max_clients / 16, 1, UINT32_MAX);
    lower(&c->reserved_clients, c->max_clients / 2, "reserved_clients", &note,
          &note_size);
    if (c->max_mappings_per_uid == 0)
        c->max_mappings_per_uid = at_least(c->max_mappings / 4, 1, UINT32_MAX);
    if (c->reserved_mappings == UINT32_MAX)
        c->reserved_mappings = at_least(c->max_mappings / 16, 1, UINT32_MAX);
    lower(&c->reserved_mappings, c->max_mappings / 2, "reserved_mappings",
          &note, &note_size);
    if (c->max_fd_mappings_per_uid == 0)
        c->max_fd_mappings_per_uid = at_least(c->max_fd_mappings / 4, 1,
                                              UINT32_MAX);
    if (c->reserved_fd_mappings == UINT32_MAX)
        c->reserved_fd_mappings = at_least(c->max_fd_mappings / 16, 1,
                                           UINT32_MAX);
    lower(&c->reserved_fd_mappings, c->max_fd_mappings / 2,
          "reserved_fd_mappings", &note, &note_size);
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

int config_load(struct config *c, const char *path, char *err,
                size_t err_size)
{
    FILE *f = fopen(path, "re");
    char line[4096], why[256];
    unsigned lineno = 0;
    int r = 0;

    if (!f) {
        r = -errno;
        snprintf(err, err_size, "%s: %s", path, strerror(errno));
        return r;
    }
    while (r == 0 && fgets(line, sizeof(line), f)) {
        lineno++;
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        char *s = trim(line);
        if (!*s)
            continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            snprintf(err, err_size, "%s:%u: expected 'key = value'", path, lineno);
            r = -EINVAL;
            break;
        }
        *eq = '\0';
        r = config_set(c, trim(s), trim(eq + 1), why, sizeof(why));
        if (r < 0)
            snprintf(err, err_size, "%s:%u: %s", path, lineno, why);
    }
    fclose(f);
    return r;
}

uint64_t config_number(const struct config *c, const struct config_key *k)
{
    const char *at = (const char *)c + k->off;
    uint32_t v32;
    uint64_t v64;
    if (k->kind == CONFIG_U32) {
        memcpy(&v32, at, sizeof(v32));
        return v32;
    }
    if (k->kind == CONFIG_U64) {
        memcpy(&v64, at, sizeof(v64));
        return v64;
    }
    return 0;
}
