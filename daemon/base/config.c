/* config: defaults, config file and settings (see config.h). */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <inttypes.h>
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

int config_defaults(struct config *c)
{
    memset(c, 0, sizeof(*c));
    c->max_frame = 64 * 1024;
    c->max_clients = 0;             /* config_fit_fds */
    c->max_clients_per_uid = 0;
    c->reserved_clients = UINT32_MAX;
    c->hello_timeout_ms = 5000;
    c->max_inflight = 64;
    c->max_events = 1024;
    c->max_queued_bytes = 256 * 1024;
    c->max_queued_bytes_per_uid = 16u << 20;
    c->max_mappings = 0;
    c->max_mappings_per_uid = 0;
    c->reserved_mappings = UINT32_MAX;
    c->max_queued_fds = 16;
    c->max_queued_fds_per_uid = 256;
    c->max_handles_per_client = 4096;
    c->open_cache = UINT32_MAX;     /* config_fit_fds */
    c->max_bytes_per_uid = UINT64_C(1) << 40;
    c->max_map_size = UINT64_C(1) << 40;
    c->flush_threads = 2;
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

struct u32_key {
    const char *key;
    size_t off;
    uint32_t min, max;
};

static const struct u32_key u32_keys[] = {
    { "max_frame", offsetof(struct config, max_frame), 1024, 16u << 20 },
    { "max_clients", offsetof(struct config, max_clients), 1, 1000000 },
    { "max_inflight", offsetof(struct config, max_inflight), 1, 65536 },
    { "max_clients_per_uid", offsetof(struct config, max_clients_per_uid), 1, 1000000 },
    { "reserved_clients", offsetof(struct config, reserved_clients), 0, 1000000 },
    { "hello_timeout_ms", offsetof(struct config, hello_timeout_ms), 1, 3600000 },
    { "max_events", offsetof(struct config, max_events), 1, 1u << 20 },
    { "max_queued_bytes", offsetof(struct config, max_queued_bytes), 1024, 1u << 30 },
    { "max_queued_fds", offsetof(struct config, max_queued_fds), 1, 65536 },
    { "max_queued_fds_per_uid", offsetof(struct config, max_queued_fds_per_uid), 1, 1u << 20 },
    { "max_mappings", offsetof(struct config, max_mappings), 16, 1u << 24 },
    { "reserved_mappings", offsetof(struct config, reserved_mappings), 0, 1u << 24 },
    { "max_handles_per_client", offsetof(struct config, max_handles_per_client), 1, UINT32_MAX },
    { "max_mappings_per_uid", offsetof(struct config, max_mappings_per_uid), 1, UINT32_MAX },
    { "open_cache", offsetof(struct config, open_cache), 0, 1u << 20 },
    { "flush_threads", offsetof(struct config, flush_threads), 1, 64 },
};

static int set_string(char *dst, size_t size, const char *v)
{
    if (!*v || strlen(v) >= size)
        return -EINVAL;
    memcpy(dst, v, strlen(v) + 1);
    return 0;
}

int config_set(struct config *c, const char *key, const char *value,
               char *err, size_t err_size)
{
    uint64_t v;
    int r = -EINVAL;

    if (!strcmp(key, "socket"))
        r = set_string(c->socket_path, sizeof(c->socket_path), value);
    else if (!strcmp(key, "root"))
        r = set_string(c->root, sizeof(c->root), value);
    else if (!strcmp(key, "max_bytes_per_uid"))
        r = parse_u64(value, 1, UINT64_MAX, &c->max_bytes_per_uid);
    else if (!strcmp(key, "max_queued_bytes_per_uid"))
        r = parse_u64(value, 1024, UINT64_MAX, &c->max_queued_bytes_per_uid);
    else if (!strcmp(key, "max_map_size"))
        r = parse_u64(value, 1, INT64_MAX, &c->max_map_size);
    else if (!strcmp(key, "admin_group"))
        r = parse_group(value, &c->admin_gid, &c->has_admin_group);
    else if (!strcmp(key, "verbose"))
        r = parse_bool(value, &c->verbose);
    else {
        for (size_t i = 0; i < sizeof(u32_keys) / sizeof(u32_keys[0]); i++) {
            const struct u32_key *k = &u32_keys[i];
            if (strcmp(key, k->key))
                continue;
            r = parse_u64(value, k->min, k->max, &v);
            if (r == 0)
                *(uint32_t *)((char *)c + k->off) = (uint32_t)v;
            goto out;
        }
        snprintf(err, err_size, "unknown setting '%s'", key);
        return -EINVAL;
    }
out:
    if (r < 0)
        snprintf(err, err_size, "bad value '%s' for %s", value, key);
    return r;
}

/*
 * The fd budget. Every connection and every mapping holds one fd, and so
 * does every fd queued in an unsent reply (conn.h); the daemon keeps
 * CONFIG_INTERNAL_FDS for itself (stdio, the listener, the loop, inotify,
 * workers' pipes, the data root, the fds an open or a flush holds for a
 * moment, the spare fd that lets accept answer at the limit). Queued fds
 * get a quarter of the rest (max_queued_fds_total), connections an eighth
 * of what is left (at most 10000, at least 16); of what connections leave,
 * the open cache (released file mappings kept ready) a sixteenth (at most
 * 4096, at least 16) and the final flushes that hold a mapping a quarter
 * of that (at least 16, at most 1024), and mappings the rest (at most
 * 131072); a uid a quarter of each, and a sixteenth of each is kept for
 * root and admin_group. A connection costs two fds: its socket,
 * and the one reply fd it may queue past max_queued_fds_total (a client
 * with no fd queued is always read, conn.c).
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
    if (c->max_clients == 0)
        c->max_clients = at_least(budget / 8, 16, 10000);
    lower(&c->max_clients, at_least(budget / 4, 1, UINT32_MAX), "max_clients",
          &note, &note_size);
    uint64_t left = budget - 2 * (uint64_t)c->max_clients;
    if (c->open_cache == UINT32_MAX)
        c->open_cache = at_least(left / 16, 16, 4096);
    lower(&c->open_cache, (uint32_t)(left / 4), "open_cache", &note,
          &note_size);
    c->max_final_flushes = at_least(c->open_cache / 4, 16, 1024);
    uint64_t kept = c->open_cache + (uint64_t)c->max_final_flushes;
    left = left > kept ? left - kept : 0;
    if (c->max_mappings == 0)
        c->max_mappings = at_least(left, 16, 131072);
    lower(&c->max_mappings, at_least(left, 16, UINT32_MAX), "max_mappings",
          &note, &note_size);
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
