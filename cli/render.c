/* render: mmapioctl's tables and JSON, through platform/table.h
 * (render.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* asprintf */
#endif
#include "render.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "escape.h"
#include "host.h"
#include "table.h"

enum kind { STR, NUM, BOOL };

void *render_check(void *p)
{
    if (!p) {
        fputs("mmapioctl: out of memory\n", stderr);
        exit(1);
    }
    return p;
}

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...)
{
    char *s = NULL;
    va_list ap;
    va_start(ap, f);
    int r = vasprintf(&s, f, ap);
    va_end(ap);
    return render_check(r < 0 ? NULL : s);
}

static char *num(uint64_t v)
{
    return fmt("%" PRIu64, v);
}

/* ---- tables ----------------------------------------------------------- */

struct tbl {
    const struct out *o;
    struct table *tb;
};

static struct tbl tbl_new(const struct out *o, const char *name)
{
    struct tbl t = { o, render_check(table_new(o->f, name, o->json, o->raw,
                                               o->noheadings)) };
    return t;
}

/* A column named `key` in JSON, KEY in text. */
static void tbl_col(struct tbl *t, const char *key, enum kind k, bool tree)
{
    char head[64];
    size_t i = 0;
    for (; key[i] && i < sizeof(head) - 1; i++)
        head[i] = t->o->json ? key[i] : (char)toupper((unsigned char)key[i]);
    head[i] = '\0';
    if (!table_column(t->tb, head,
                      k == NUM    ? TABLE_NUMBER
                      : k == BOOL ? TABLE_BOOLEAN
                                  : TABLE_STRING,
                      k == NUM && !t->o->json, tree))
        render_check(NULL);
}

static struct table_row *tbl_line(struct tbl *t, struct table_row *parent)
{
    return render_check(table_row(t->tb, parent));
}

/* Sets a cell to v (taken; NULL: null in JSON, "-" in text). JSON text
 * is made valid UTF-8; the table escapes the rest for both. */
static void tbl_set(struct tbl *t, struct table_row *l, size_t col, char *v)
{
    if (!v) {
        if (!t->o->json)
            table_set(l, col, render_check(strdup("-")));
        return;
    }
    if (t->o->json) {
        char *u = render_check(esc_utf8(v));
        free(v);
        v = u;
    }
    table_set(l, col, v);
}

static void tbl_print(struct tbl *t)
{
    table_print(t->tb);
    fflush(t->o->f);
}

/* A vertical table for people: FIELD, VALUE, MEANING. */
static struct tbl tbl_fields(const struct out *o, const char *name)
{
    struct tbl t = tbl_new(o, name);
    tbl_col(&t, "field", STR, false);
    tbl_col(&t, "value", STR, false);
    tbl_col(&t, "meaning", STR, false);
    return t;
}

static void tbl_field(struct tbl *t, const char *key, char *v, const char *meaning)
{
    struct table_row *l = tbl_line(t, NULL);
    tbl_set(t, l, 0, render_check(strdup(key)));
    tbl_set(t, l, 1, v);
    tbl_set(t, l, 2, render_check(strdup(meaning)));
}

/* ---- values ----------------------------------------------------------- */

/* Local time, ISO 8601 with the offset. */
static char *when_text(int64_t t)
{
    char buf[64], zone[8];
    struct tm tm;
    time_t tt = (time_t)t;
    if (!host_localtime(tt, &tm) ||
        !strftime(buf, sizeof(buf) - sizeof(zone), "%Y-%m-%dT%H:%M:%S", &tm))
        return num((uint64_t)t);
    host_zone(tt, &tm, zone, sizeof(zone));
    strcat(buf, zone);
    return render_check(strdup(buf));
}

/* Unix seconds: a number in JSON, a time for people; NULL when 0. */
static char *when(const struct out *o, int64_t t)
{
    if (t <= 0)
        return NULL;
    return o->json ? fmt("%" PRId64, t) : when_text(t);
}

/* A boolean: "yes" or "no" for people, true or false in JSON (the
 * table's rule: "n..." is false). */
static char *yes_no(bool v)
{
    return fmt("%s", v ? "yes" : "no");
}

static char *user_name(uint32_t uid)
{
    return host_user_name(uid);
}

static char *policy_text(mmapio_flush_policy p)
{
    char buf[MMAPIO_POLICY_TEXT_MAX];
    if (mmapio_policy_format(p, buf, sizeof(buf)) != MMAPIO_OK)
        return render_check(strdup("unknown")); /* a newer daemon's kind */
    return render_check(strdup(buf));
}

static const char *mode_name(mmapio_mode m)
{
    switch (m) {
    case MMAPIO_MODE_READ_ONLY: return "ro";
    case MMAPIO_MODE_READ_WRITE: return "rw";
    case MMAPIO_MODE_COPY_ON_WRITE: return "cow";
    default: return "?";
    }
}

/* ---- mappings --------------------------------------------------------- */

enum map_field {
    MF_ID, MF_NAME, MF_KIND, MF_SIZE, MF_PERM, MF_OWNER, MF_OWNER_NAME,
    MF_POLICY, MF_HOLDERS, MF_RW_HOLDERS, MF_WATCHERS, MF_PENDING,
    MF_FLUSHES, MF_LAST_FLUSH, MF_CREATED, MF_CREATOR_PID, MF_STATE,
    MF_REMOVED, MF_HUGE, MF_COUNT
};

static const struct field {
    const char *key;
    enum kind kind;
    bool in_ls;          /* a column of ls's text table */
    const char *meaning;
} map_fields[MF_COUNT] = {
    [MF_ID] = { "id", NUM, true, "the daemon's id of the mapping (while it runs)" },
    [MF_NAME] = { "name", STR, true, "path under the data root, or the anonymous "
                  "name (text: anon:NAME)" },
    [MF_KIND] = { "kind", STR, true, "file or anonymous" },
    [MF_SIZE] = { "size", NUM, true, "bytes" },
    [MF_PERM] = { "perm", STR, true, "permission bits, octal" },
    [MF_OWNER] = { "owner", NUM, true, "uid of the owner (a file's owner, an "
                   "anonymous mapping's creator)" },
    [MF_OWNER_NAME] = { "owner_name", STR, true, "the owner's user name; null: "
                        "no such user here" },
    [MF_POLICY] = { "policy", STR, true, "flush policy, for every holder" },
    [MF_HOLDERS] = { "holders", NUM, true, "handles open on it, in every process" },
    [MF_RW_HOLDERS] = { "rw_holders", NUM, false, "of the holders, read-write" },
    [MF_WATCHERS] = { "watchers", NUM, false, "watches on it" },
    [MF_PENDING] = { "pending_bytes", NUM, true, "dirty bytes in the page cache, "
                     "not yet on disk; null: anonymous (no disk), or the kernel "
                     "cannot tell (before Linux 6.5)" },
    [MF_FLUSHES] = { "flushes", NUM, false, "flushes of it done by the daemon" },
    [MF_LAST_FLUSH] = { "last_flush", NUM, true, "time of the daemon's last flush "
                        "(JSON: unix seconds); null: never" },
    [MF_CREATED] = { "created", NUM, true, "when the daemon set it up (a file: "
                     "first mapped since the daemon started; JSON: unix "
                     "seconds); null: unknown" },
    [MF_CREATOR_PID] = { "creator_pid", NUM, true, "the process whose open set "
                         "it up; null: unknown" },
    [MF_STATE] = { "state", STR, true, "live, or removed: deleted but still "
                   "held (ipcs's \"dest\"), gone with its last holder" },
    [MF_REMOVED] = { "removed", BOOL, false, "state is removed" },
    [MF_HUGE] = { "huge_pages", STR, true, "no, thp (transparent huge pages "
                  "advised) or hugetlb" },
};

static char *map_value(const struct out *o, const mmapio_map_info *m,
                       enum map_field f)
{
    switch (f) {
    case MF_ID: return num(m->id);
    case MF_NAME:
        return o->json || !m->anonymous ? render_check(strdup(m->name))
                                        : fmt("anon:%s", m->name);
    case MF_KIND: return fmt("%s", m->anonymous ? "anonymous" : "file");
    case MF_SIZE: return num(m->size);
    case MF_PERM: return fmt("%04o", m->perm);
    case MF_OWNER: return num(m->owner);
    case MF_OWNER_NAME: return user_name(m->owner);
    case MF_POLICY: return policy_text(m->policy);
    case MF_HOLDERS: return num(m->holders);
    case MF_RW_HOLDERS: return num(m->rw_holders);
    case MF_WATCHERS: return num(m->watchers);
    case MF_PENDING: return m->pending_known ? num(m->pending_bytes) : NULL;
    case MF_FLUSHES: return num(m->flushes);
    case MF_LAST_FLUSH: return when(o, m->last_flush);
    case MF_CREATED: return when(o, m->created);
    case MF_CREATOR_PID:
        return m->creator_pid > 0 ? num((uint64_t)m->creator_pid) : NULL;
    case MF_STATE: return fmt("%s", m->removed ? "removed" : "live");
    case MF_REMOVED: return yes_no(m->removed);
    case MF_HUGE:
        return fmt("%s", m->huge_pages == MMAPIO_HUGE_HUGETLB ? "hugetlb"
                         : m->huge_pages == MMAPIO_HUGE_TRANSPARENT ? "thp"
                                                                    : "no");
    default: return NULL;
    }
}

/* The "mappings" table: all fields in JSON, ls's columns in text. */
static void maps_table(const struct out *o, const mmapio_map_info *m, size_t n)
{
    struct tbl t = tbl_new(o, "mappings");
    enum map_field cols[MF_COUNT];
    size_t nc = 0;
    for (int f = 0; f < MF_COUNT; f++)
        if (o->json || map_fields[f].in_ls) {
            tbl_col(&t, map_fields[f].key, map_fields[f].kind, false);
            cols[nc++] = (enum map_field)f;
        }
    for (size_t i = 0; i < n; i++) {
        struct table_row *l = tbl_line(&t, NULL);
        for (size_t c = 0; c < nc; c++)
            tbl_set(&t, l, c, map_value(o, &m[i], cols[c]));
    }
    tbl_print(&t);
}

void render_maps(const struct out *o, const mmapio_map_info *m, size_t n)
{
    maps_table(o, m, n);
}

void render_stat(const struct out *o, const mmapio_map_info *m)
{
    if (o->json) {
        maps_table(o, m, 1);
        return;
    }
    struct tbl t = tbl_fields(o, "mapping");
    for (int f = 0; f < MF_COUNT; f++)
        tbl_field(&t, map_fields[f].key, map_value(o, m, (enum map_field)f),
                  map_fields[f].meaning);
    tbl_print(&t);
}

/* ---- status ----------------------------------------------------------- */

enum status_field {
    SF_PID, SF_VERSION, SF_STARTED, SF_UPTIME, SF_SOCKET, SF_ROOT, SF_CONFIG,
    SF_SCOPE, SF_CLIENTS, SF_RINGS, SF_MAPPINGS, SF_ANON, SF_CARVED, SF_FILES,
    SF_REMOVED,
    SF_BYTES, SF_RSS, SF_FLUSHES, SF_FLUSH_FAILURES, SF_ERRORS,
    SF_CLIENTS_TOTAL, SF_ARENAS, SF_ALL, SF_COUNT
};

static const struct field status_fields[SF_COUNT] = {
    [SF_PID] = { "pid", NUM, true, "the daemon's process id" },
    [SF_VERSION] = { "version", STR, true, "the daemon's version" },
    [SF_STARTED] = { "started", NUM, true, "when it started (JSON: unix seconds)" },
    [SF_UPTIME] = { "uptime_s", NUM, true, "seconds since it started" },
    [SF_SOCKET] = { "socket", STR, true, "the socket it listens on" },
    [SF_ROOT] = { "root", STR, true, "its data root: PATH arguments are under it" },
    [SF_CONFIG] = { "config_file", STR, true, "the file its settings came from; "
                    "null: built-in defaults and options only" },
    [SF_SCOPE] = { "scope", STR, true, "what the counts cover: everyone (root "
                   "and the admin group) or your own" },
    [SF_CLIENTS] = { "clients", NUM, true, "clients connected now" },
    [SF_RINGS] = { "write_rings", NUM, true, "of the clients, those with a "
                   "write ring (max_write_rings_per_uid each uid)" },
    [SF_MAPPINGS] = { "mappings", NUM, true, "mappings alive, deleted ones still "
                      "held included" },
    [SF_ANON] = { "anonymous", NUM, true, "of the mappings, anonymous" },
    [SF_CARVED] = { "carved", NUM, true, "of the anonymous, small ones sharing "
                    "memfds with their owner and mode (arenas)" },
    [SF_FILES] = { "files", NUM, true, "of the mappings, files" },
    [SF_REMOVED] = { "removed_held", NUM, true, "of the mappings, deleted but "
                     "still held" },
    [SF_BYTES] = { "bytes_mapped", NUM, true, "the mappings' sizes, added up" },
    [SF_RSS] = { "rss_bytes", NUM, true, "the daemon's resident memory" },
    [SF_FLUSHES] = { "flushes", NUM, true, "flushes done since the start "
                     "(everyone's; null unless you see everyone)" },
    [SF_FLUSH_FAILURES] = { "flush_failures", NUM, true, "flushes that failed "
                            "(the daemon's log says why)" },
    [SF_ERRORS] = { "errors", NUM, true, "error replies sent to clients" },
    [SF_CLIENTS_TOTAL] = { "clients_total", NUM, true, "connections accepted "
                           "since the start" },
    [SF_ARENAS] = { "arenas", NUM, true, "memfds the carved mappings share "
                    "(everyone's; null unless you see everyone)" },
    [SF_ALL] = { "all", BOOL, true, "the counts cover everyone" },
};

static char *uptime_text(uint64_t s)
{
    if (s < 60)
        return fmt("%" PRIu64 " s", s);
    if (s < 3600)
        return fmt("%" PRIu64 " s (%" PRIu64 "m %02" PRIu64 "s)", s, s / 60, s % 60);
    if (s < 86400)
        return fmt("%" PRIu64 " s (%" PRIu64 "h %02" PRIu64 "m %02" PRIu64 "s)",
                   s, s / 3600, s / 60 % 60, s % 60);
    return fmt("%" PRIu64 " s (%" PRIu64 "d %02" PRIu64 "h %02" PRIu64 "m)",
               s, s / 86400, s / 3600 % 24, s / 60 % 60);
}

static char *status_value(const struct out *o, const mmapio_status *s,
                          enum status_field f)
{
    switch (f) {
    case SF_PID: return s->pid > 0 ? num((uint64_t)s->pid) : NULL;
    case SF_VERSION: return render_check(strdup(s->version));
    case SF_STARTED: return when(o, s->started);
    case SF_UPTIME: return o->json ? num(s->uptime_s) : uptime_text(s->uptime_s);
    case SF_SOCKET:
        return s->socket && *s->socket ? render_check(strdup(s->socket)) : NULL;
    case SF_ROOT:
        return s->root && *s->root ? render_check(strdup(s->root)) : NULL;
    case SF_CONFIG:
        return s->config_file ? render_check(strdup(s->config_file)) : NULL;
    case SF_SCOPE: return fmt("%s", s->all ? "everyone" : "your own");
    case SF_CLIENTS: return num(s->clients);
    case SF_RINGS: return num(s->write_rings);
    case SF_MAPPINGS: return num(s->mappings);
    case SF_ANON: return num(s->anonymous);
    case SF_FILES: return num(s->files);
    case SF_CARVED: return num(s->carved);
    case SF_REMOVED: return num(s->removed_held);
    case SF_BYTES: return num(s->bytes_mapped);
    case SF_RSS: return s->rss_bytes ? num(s->rss_bytes) : NULL;
    case SF_FLUSHES: return s->all ? num(s->flushes) : NULL;
    case SF_FLUSH_FAILURES: return s->all ? num(s->flush_failures) : NULL;
    case SF_ERRORS: return s->all ? num(s->errors) : NULL;
    case SF_CLIENTS_TOTAL: return s->all ? num(s->clients_total) : NULL;
    case SF_ARENAS: return s->all ? num(s->arenas) : NULL;
    case SF_ALL: return yes_no(s->all);
    default: return NULL;
    }
}

#define LIMIT_MEANING "limit: the mmapiod.conf key of the same name, in effect"

void render_status(const struct out *o, const mmapio_status *s)
{
    if (!o->json) {
        struct tbl t = tbl_fields(o, "status");
        for (int f = 0; f < SF_COUNT; f++)
            tbl_field(&t, status_fields[f].key,
                      status_value(o, s, (enum status_field)f),
                      status_fields[f].meaning);
        for (size_t i = 0; i < s->n_limits; i++)
            tbl_field(&t, s->limits[i].name, num(s->limits[i].value),
                      s->limits[i].what && *s->limits[i].what
                          ? s->limits[i].what : LIMIT_MEANING);
        tbl_print(&t);
        return;
    }
    struct tbl t = tbl_new(o, "status");
    for (int f = 0; f < SF_COUNT; f++)
        tbl_col(&t, status_fields[f].key, status_fields[f].kind, false);
    for (size_t i = 0; i < s->n_limits; i++)
        tbl_col(&t, s->limits[i].name, NUM, false);
    struct table_row *l = tbl_line(&t, NULL);
    for (int f = 0; f < SF_COUNT; f++)
        tbl_set(&t, l, (size_t)f, status_value(o, s, (enum status_field)f));
    for (size_t i = 0; i < s->n_limits; i++)
        tbl_set(&t, l, SF_COUNT + i, num(s->limits[i].value));
    tbl_print(&t);
}

/* ---- clients ---------------------------------------------------------- */

enum client_field {
    CF_ID, CF_PID, CF_UID, CF_NAME, CF_WATCHES, CF_HELD_TOTAL, CF_MODE,
    CF_MAP_ID, CF_COUNT
};

static const struct field client_fields[CF_COUNT] = {
    [CF_ID] = { "id", NUM, true, "the daemon's id of the connection" },
    [CF_PID] = { "pid", NUM, true, "the client's process id (from the kernel)" },
    [CF_UID] = { "uid", NUM, true, "the client's uid (from the kernel)" },
    [CF_NAME] = { "name", STR, true, "the program's name, as it said hello; "
                  "in a row under it (JSON: children), a mapping it holds" },
    [CF_WATCHES] = { "watches", NUM, true, "watches it has open" },
    [CF_HELD_TOTAL] = { "held_total", NUM, true, "handles it holds (the daemon "
                        "lists the first 32 under it)" },
    [CF_MODE] = { "mode", STR, true, "a held handle's mode: ro, rw or cow" },
    [CF_MAP_ID] = { "map_id", NUM, true, "a held handle's mapping (ls's id)" },
};

void render_clients(const struct out *o, const mmapio_client_info *c, size_t n)
{
    struct tbl t = tbl_new(o, "clients");
    for (int f = 0; f < CF_COUNT; f++)
        tbl_col(&t, client_fields[f].key, client_fields[f].kind,
                f == CF_NAME);
    for (size_t i = 0; i < n; i++) {
        struct table_row *l = tbl_line(&t, NULL);
        tbl_set(&t, l, CF_ID, num(c[i].id));
        tbl_set(&t, l, CF_PID, num((uint64_t)c[i].pid));
        tbl_set(&t, l, CF_UID, num(c[i].uid));
        tbl_set(&t, l, CF_NAME, render_check(strdup(c[i].name)));
        tbl_set(&t, l, CF_WATCHES, num(c[i].watches));
        tbl_set(&t, l, CF_HELD_TOTAL, num(c[i].held_total));
        tbl_set(&t, l, CF_MODE, NULL);
        tbl_set(&t, l, CF_MAP_ID, NULL);
        for (size_t k = 0; k < c[i].n_held; k++) {
            const mmapio_held_info *h = &c[i].held[k];
            struct table_row *hl = tbl_line(&t, l); /* the rest: null */
            tbl_set(&t, hl, CF_NAME, o->json || !h->anonymous
                                         ? render_check(strdup(h->name))
                                         : fmt("anon:%s", h->name));
            tbl_set(&t, hl, CF_MODE, fmt("%s", mode_name(h->mode)));
            tbl_set(&t, hl, CF_MAP_ID, num(h->map_id));
        }
    }
    tbl_print(&t);
}

/* ---- what was done ---------------------------------------------------- */

void render_flushed(const struct out *o, const mmapio_flush_report *f)
{
    if (!o->json) {
        fprintf(o->f, "flushed %u mapping%s%s\n", f->flushed,
                f->flushed == 1 ? "" : "s",
                f->failed ? ", some failed (see the daemon's log)" : "");
        return;
    }
    struct tbl t = tbl_new(o, "flush");
    tbl_col(&t, "flushed", NUM, false);
    tbl_col(&t, "failed", NUM, false);
    struct table_row *l = tbl_line(&t, NULL);
    tbl_set(&t, l, 0, num(f->flushed));
    tbl_set(&t, l, 1, num(f->failed));
    tbl_print(&t);
}

void render_policy(const struct out *o, const char *target,
                   mmapio_flush_policy p)
{
    struct tbl t = tbl_new(o, "policy");
    tbl_col(&t, "path", STR, false);
    tbl_col(&t, "policy", STR, false);
    struct table_row *l = tbl_line(&t, NULL);
    tbl_set(&t, l, 0, render_check(strdup(target)));
    tbl_set(&t, l, 1, policy_text(p));
    tbl_print(&t);
}

/* ---- events ----------------------------------------------------------- */

void render_event(const struct out *o, const char *target,
                  const mmapio_change_event *ev)
{
    static const char *const kinds[] = { "modified", "metadata", "removed",
                                         "disconnected", "reconnected" };
    const char *k = (unsigned)ev->kind < 5 ? kinds[ev->kind] : "unknown";
    struct timeval tv;
    struct tm tm;
    char stamp[48], zone[8];
    gettimeofday(&tv, NULL);
    time_t sec = tv.tv_sec;
    host_localtime(sec, &tm);
    strftime(stamp, 24, "%Y-%m-%dT%H:%M:%S", &tm);
    host_zone(sec, &tm, zone, sizeof(zone));
    snprintf(stamp + strlen(stamp), sizeof(stamp) - strlen(stamp), ".%03d%s",
             (int)(tv.tv_usec / 1000), zone);
    if (o->json) {
        fprintf(o->f, "{\"time\":\"%s\",\"path\":", stamp);
        esc_json_put(o->f, target);
        fprintf(o->f, ",\"kind\":\"%s\"", k);
        if (ev->has_range)
            fprintf(o->f, ",\"offset\":%" PRIu64 ",\"len\":%" PRIu64,
                    ev->offset, ev->len);
        else
            fputs(",\"offset\":null,\"len\":null", o->f);
        fputs("}\n", o->f);
    } else if (ev->has_range) {
        fprintf(o->f, "%s %s offset=%" PRIu64 " len=%" PRIu64 "\n", stamp, k,
                ev->offset, ev->len);
    } else {
        fprintf(o->f, "%s %s\n", stamp, k);
    }
    fflush(o->f);
}

/* ---- help ------------------------------------------------------------- */

void render_fields_help(FILE *f, const char *which)
{
    const struct field *v = map_fields;
    size_t n = MF_COUNT;
    if (!strcmp(which, "status")) {
        v = status_fields;
        n = SF_COUNT;
    } else if (!strcmp(which, "clients")) {
        v = client_fields;
        n = CF_COUNT;
    }
    for (size_t i = 0; i < n; i++)
        fprintf(f, "  %-14s %s%s\n", v[i].key, v[i].meaning,
                v == map_fields && !v[i].in_ls ? " (stat and --json only)" : "");
    if (v == status_fields)
        fprintf(f, "  %-14s %s\n", "max_*, ...", LIMIT_MEANING);
}
