/*
 * mmapioctl: asks mmapiod what it holds and tells it what to do.
 *
 *   mmapioctl [--socket PATH] [--json] COMMAND ...
 *
 * A client like any other: built against the public header <mmapio.h> and
 * the shared libmmapio alone, it asks through the library's admin calls
 * (mmapio_admin_status, _list, _clients, _flush, _set_flush_policy); the
 * daemon decides from our credentials what we may see and change. Human
 * output is aligned tables; --json gives one JSON document per command
 * (one object a line for `watch`).
 *
 * Exit status: 0 done, 1 the daemon refused or failed, 2 bad usage,
 * 3 the daemon cannot be reached, 4 not found, 5 permission denied.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* getopt_long, localtime_r, strdup */
#endif
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mmapio.h>

enum { EXIT_REFUSED = 1, EXIT_USAGE = 2, EXIT_UNREACHABLE = 3,
       EXIT_NOT_FOUND = 4, EXIT_PERMISSION = 5 };

static bool json;

/* ---- odd bytes ------------------------------------------------------- */

/*
 * Whatever the daemon (or a program's own name) holds reaches a terminal
 * only as text that cannot move the cursor, forge a line or send escape
 * sequences: valid UTF-8 characters other than controls (C0, DEL, C1)
 * are shown as they are, anything else byte by byte as \xNN; --json
 * gives controls as \u00NN and a byte that is not UTF-8 as U+FFFD, so
 * the document is always valid UTF-8. The daemon refuses such names
 * itself; this holds whatever a daemon sends.
 */

/* Length (1..4) of the valid, non-control UTF-8 character at p, else 0. */
static size_t good_char(const unsigned char *p)
{
    uint32_t cp = p[0], min = 0;
    int more = 0;
    if (cp >= 0xC2 && cp <= 0xDF) { more = 1; cp &= 0x1F; min = 0x80; }
    else if (cp >= 0xE0 && cp <= 0xEF) { more = 2; cp &= 0x0F; min = 0x800; }
    else if (cp >= 0xF0 && cp <= 0xF4) { more = 3; cp &= 0x07; min = 0x10000; }
    else if (cp >= 0x80) return 0;
    for (int i = 1; i <= more; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF) ||
        cp < 0x20 || (cp >= 0x7F && cp <= 0x9F))
        return 0;
    return (size_t)more + 1;
}

/* s for a terminal, odd bytes as \xNN; malloc'd (exits without memory). */
static char *text_escape(const char *s)
{
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    char *out = malloc(strlen((const char *)p) * 4 + 1), *o = out;
    if (!out) {
        perror("mmapioctl");
        exit(EXIT_REFUSED);
    }
    while (*p) {
        size_t n = good_char(p);
        if (n) {
            memcpy(o, p, n);
            o += n;
            p += n;
        } else {
            o += sprintf(o, "\\x%02x", *p++);
        }
    }
    *o = '\0';
    return out;
}

/* A C1 control in UTF-8 (U+0080..U+009F: C2 80..C2 9F)? */
static bool is_c1(const unsigned char *p)
{
    return p[0] == 0xC2 && p[1] >= 0x80 && p[1] <= 0x9F;
}

static void json_str(const char *s)
{
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    putchar('"');
    while (*p) {
        size_t n = good_char(p);
        if (n == 1 && (*p == '"' || *p == '\\')) {
            printf("\\%c", *p);
        } else if (n) {
            fwrite(p, 1, n, stdout);
        } else if (*p < 0x80 || is_c1(p)) { /* a control: exact */
            n = *p < 0x80 ? 1 : 2;
            printf("\\u%04x", n == 1 ? p[0] : p[1]);
        } else {
            printf("\\ufffd"); /* a byte that is not UTF-8 */
            n = 1;
        }
        p += n;
    }
    putchar('"');
}

/* ---- output helpers -------------------------------------------------- */

#define MAX_COLS 12

struct table {
    size_t n_cols, n_rows, cap;
    char **cells; /* row-major, n_cols per row; row 0 is the header */
};

static void table_add(struct table *t, ...)
{
    va_list ap;
    if (t->n_rows == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 16;
        t->cells = realloc(t->cells, t->cap * t->n_cols * sizeof(char *));
        if (!t->cells) {
            perror("mmapioctl");
            exit(EXIT_REFUSED);
        }
    }
    va_start(ap, t);
    for (size_t i = 0; i < t->n_cols; i++) {
        const char *s = va_arg(ap, const char *);
        t->cells[t->n_rows * t->n_cols + i] = text_escape(s);
    }
    va_end(ap);
    t->n_rows++;
}

static void table_print(struct table *t)
{
    size_t w[MAX_COLS] = { 0 };
    for (size_t r = 0; r < t->n_rows; r++)
        for (size_t i = 0; i < t->n_cols; i++) {
            size_t l = strlen(t->cells[r * t->n_cols + i]);
            if (l > w[i])
                w[i] = l;
        }
    for (size_t r = 0; r < t->n_rows; r++) {
        for (size_t i = 0; i < t->n_cols; i++) {
            const char *s = t->cells[r * t->n_cols + i];
            if (i + 1 == t->n_cols)
                printf("%s\n", s);
            else
                printf("%-*s  ", (int)w[i], s);
            free(t->cells[r * t->n_cols + i]);
        }
    }
    free(t->cells);
}

static const char *u64s(char *buf, uint64_t v)
{
    snprintf(buf, 24, "%" PRIu64, v);
    return buf;
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

/* A policy's text; a newer daemon's kind we cannot name is "unknown". */
static const char *policy_text(mmapio_flush_policy p, char *buf, size_t size)
{
    if (mmapio_policy_format(p, buf, size) != MMAPIO_OK)
        snprintf(buf, size, "unknown");
    return buf;
}

static const char *when(int64_t t, char *buf, size_t size)
{
    if (t <= 0)
        return "never";
    struct tm tm;
    time_t tt = (time_t)t;
    strftime(buf, size, "%Y-%m-%dT%H:%M:%S", localtime_r(&tt, &tm));
    return buf;
}

/* ---- talking to the daemon ------------------------------------------- */

static int exit_code(int err)
{
    switch (err) {
    case MMAPIO_E_DISCONNECTED: return EXIT_UNREACHABLE;
    case MMAPIO_E_NOT_FOUND: return EXIT_NOT_FOUND;
    case MMAPIO_E_PERMISSION: return EXIT_PERMISSION;
    case MMAPIO_E_INVALID_ARGUMENT: return EXIT_USAGE;
    default: return EXIT_REFUSED;
    }
}

/* Says why a call failed, in the daemon's words when it gave some. */
static int fail(int err, const char *what)
{
    const char *msg = mmapio_last_error();
    char *w = text_escape(what), *m = text_escape(*msg ? msg : mmapio_strerror(err));
    fprintf(stderr, "mmapioctl: %s: %s\n", w, m);
    free(w);
    free(m);
    return exit_code(err);
}

/* "anon:NAME" names an anonymous mapping; anything else is a file path. */
static const char *split_target(const char *arg, bool *anonymous)
{
    *anonymous = strncmp(arg, "anon:", 5) == 0;
    return *anonymous ? arg + 5 : arg;
}

/* ---- commands -------------------------------------------------------- */

static int cmd_status(mmapio_client *c, int argc, char **argv)
{
    mmapio_status *s;
    char b[24];
    (void)argc;
    (void)argv;

    int r = mmapio_admin_status(c, &s);
    if (r)
        return fail(r, "status");
    if (json) {
        printf("{\"version\":");
        json_str(s->version);
        printf(",\"uptime_s\":%" PRIu64 ",\"clients\":%u,\"mappings\":%" PRIu64
               ",\"anonymous\":%" PRIu64 ",\"files\":%" PRIu64
               ",\"bytes_mapped\":%" PRIu64 ",\"all\":%s",
               s->uptime_s, s->clients, s->mappings, s->anonymous, s->files,
               s->bytes_mapped, s->all ? "true" : "false");
        if (s->all)
            printf(",\"flushes\":%" PRIu64 ",\"flush_failures\":%" PRIu64
                   ",\"errors\":%" PRIu64 ",\"clients_total\":%" PRIu64,
                   s->flushes, s->flush_failures, s->errors, s->clients_total);
        printf("}\n");
    } else {
        struct table t = { .n_cols = 2 };
        table_add(&t, "version", s->version);
        table_add(&t, "uptime", u64s(b, s->uptime_s));
        table_add(&t, "clients", u64s(b, s->clients));
        table_add(&t, "mappings", u64s(b, s->mappings));
        table_add(&t, "  anonymous", u64s(b, s->anonymous));
        table_add(&t, "  files", u64s(b, s->files));
        table_add(&t, "bytes mapped", u64s(b, s->bytes_mapped));
        if (s->all) {
            table_add(&t, "flushes", u64s(b, s->flushes));
            table_add(&t, "flush failures", u64s(b, s->flush_failures));
            table_add(&t, "errors", u64s(b, s->errors));
            table_add(&t, "clients since start", u64s(b, s->clients_total));
        } else {
            table_add(&t, "scope", "your own mappings and clients");
        }
        table_print(&t);
    }
    mmapio_status_free(s);
    return 0;
}

/* The HUGE column: no, thp (transparent huge pages advised), hugetlb. */
static const char *huge_text(mmapio_huge_pages h)
{
    return h == MMAPIO_HUGE_HUGETLB ? "hugetlb"
           : h == MMAPIO_HUGE_TRANSPARENT ? "thp" : "no";
}

static void print_map(const mmapio_map_info *m, struct table *t, bool first)
{
    char id[24], size[24], holders[24], pending[24], pol[64], last[32], owner[24];
    policy_text(m->policy, pol, sizeof(pol));
    const char *last_text = when(m->last_flush, last, sizeof(last));
    if (json) {
        printf("%s{\"id\":%" PRIu64 ",\"name\":", first ? "" : ",", m->id);
        json_str(m->name);
        printf(",\"kind\":\"%s\",\"size\":%" PRIu64 ",\"policy\":\"%s\""
               ",\"holders\":%u,\"rw_holders\":%u,\"watchers\":%u,\"owner\":%u"
               ",\"perm\":\"%04o\",\"pending_bytes\":%" PRIu64
               ",\"last_flush\":%" PRId64 ",\"flushes\":%" PRIu64
               ",\"removed\":%s,\"huge_pages\":\"%s\"}",
               m->anonymous ? "anonymous" : "file", m->size, pol, m->holders,
               m->rw_holders, m->watchers, m->owner, m->perm,
               m->pending_bytes, m->last_flush, m->flushes,
               m->removed ? "true" : "false", huge_text(m->huge_pages));
        return;
    }
    char name[4200];
    snprintf(name, sizeof(name), "%s%s%s", m->anonymous ? "anon:" : "",
             m->name, m->removed ? " (removed)" : "");
    char mode[32];
    snprintf(mode, sizeof(mode), "%04o", m->perm);
    snprintf(holders, sizeof(holders), "%u (%u rw)", m->holders, m->rw_holders);
    table_add(t, u64s(id, m->id), name, m->anonymous ? "anon" : "file",
              u64s(size, m->size), mode, u64s(owner, m->owner), pol, holders,
              u64s(pending, m->pending_bytes), last_text,
              huge_text(m->huge_pages));
}

static int cmd_ls(mmapio_client *c, int argc, char **argv)
{
    struct table t = { .n_cols = 11 };
    mmapio_map_info *maps;
    size_t n;
    (void)argc;
    (void)argv;

    int r = mmapio_admin_list(c, &maps, &n);
    if (r)
        return fail(r, "ls");
    if (json)
        printf("[");
    else
        table_add(&t, "ID", "NAME", "KIND", "SIZE", "MODE", "OWNER", "POLICY",
                  "HOLDERS", "PENDING", "LAST FLUSH", "HUGE");
    for (size_t i = 0; i < n; i++)
        print_map(&maps[i], &t, i == 0);
    if (json)
        printf("]\n");
    else
        table_print(&t);
    mmapio_map_info_free(maps, n);
    return 0;
}

static void print_client(const mmapio_client_info *ci, struct table *t,
                         bool first)
{
    if (json) {
        printf("%s{\"id\":%" PRIu64 ",\"pid\":%d,\"uid\":%u,\"gid\":%u,"
               "\"name\":", first ? "" : ",", ci->id, ci->pid, ci->uid, ci->gid);
        json_str(ci->name);
        printf(",\"watches\":%u,\"held_total\":%u,\"held\":[", ci->watches,
               ci->held_total);
        for (size_t i = 0; i < ci->n_held; i++) {
            printf("%s{\"map_id\":%" PRIu64 ",\"name\":", i ? "," : "",
                   ci->held[i].map_id);
            json_str(ci->held[i].name);
            printf(",\"mode\":\"%s\"}", mode_name(ci->held[i].mode));
        }
        printf("]}");
        return;
    }
    char id[24], pid[24], uid[24], held[1024] = "", w[24];
    size_t off = 0;
    for (size_t i = 0; i < ci->n_held && off < sizeof(held) - 64; i++)
        off += (size_t)snprintf(held + off, sizeof(held) - off, "%s%s(%s)",
                                i ? " " : "", ci->held[i].name,
                                mode_name(ci->held[i].mode));
    if (ci->held_total > ci->n_held && off < sizeof(held) - 32)
        snprintf(held + off, sizeof(held) - off, " +%u more",
                 ci->held_total - (unsigned)ci->n_held);
    table_add(t, u64s(id, ci->id), u64s(pid, (uint64_t)ci->pid),
              u64s(uid, ci->uid), ci->name, u64s(w, ci->watches),
              held[0] ? held : "-");
}

static int cmd_clients(mmapio_client *c, int argc, char **argv)
{
    struct table t = { .n_cols = 6 };
    mmapio_client_info *clients;
    size_t n;
    (void)argc;
    (void)argv;

    int r = mmapio_admin_clients(c, &clients, &n);
    if (r)
        return fail(r, "clients");
    if (json)
        printf("[");
    else
        table_add(&t, "ID", "PID", "UID", "NAME", "WATCHES", "HOLDS");
    for (size_t i = 0; i < n; i++)
        print_client(&clients[i], &t, i == 0);
    if (json)
        printf("]\n");
    else
        table_print(&t);
    mmapio_client_info_free(clients, n);
    return 0;
}

static int usage_error(const char *what, const char *arg)
{
    fprintf(stderr, "mmapioctl: %s%s%s (see mmapioctl --help)\n", what,
            arg ? " " : "", arg ? arg : "");
    return EXIT_USAGE;
}

static int cmd_flush(mmapio_client *c, int argc, char **argv)
{
    mmapio_flush_report f;
    bool anonymous;
    int r;

    if (argc != 2)
        return usage_error("flush takes PATH, anon:NAME or --all", NULL);
    if (!strcmp(argv[1], "--all")) {
        r = mmapio_admin_flush_all(c, &f);
    } else {
        const char *target = split_target(argv[1], &anonymous);
        r = mmapio_admin_flush(c, target, anonymous, &f);
    }
    if (r)
        return fail(r, argv[1]);
    if (json)
        printf("{\"flushed\":%u,\"failed\":%u}\n", f.flushed, f.failed);
    else
        printf("flushed %u mapping%s%s\n", f.flushed, f.flushed == 1 ? "" : "s",
               f.failed ? ", some failed (see the daemon's log)" : "");
    return f.failed ? EXIT_REFUSED : 0;
}

static int cmd_policy(mmapio_client *c, int argc, char **argv)
{
    mmapio_flush_policy p;
    bool anonymous;
    char text[64];

    if (argc != 3)
        return usage_error("policy takes PATH and POLICY", NULL);
    if (mmapio_policy_parse(argv[2], &p))
        return usage_error("bad policy (never, manual, always, every-bytes:N, "
                           "every-writes:N or every-millis:N):", argv[2]);
    const char *target = split_target(argv[1], &anonymous);
    int r = mmapio_admin_set_flush_policy(c, target, anonymous, p);
    if (r)
        return fail(r, argv[1]);
    policy_text(p, text, sizeof(text));
    if (json) {
        printf("{\"path\":");
        json_str(argv[1]);
        printf(",\"policy\":\"%s\"}\n", text);
    }
    else {
        printf("%s: policy %s\n", argv[1], text);
    }
    return 0;
}

static volatile sig_atomic_t interrupted;

static void on_interrupt(int sig)
{
    (void)sig;
    interrupted = 1;
}

static void print_event(const mmapio_change_event *ev, void *user)
{
    static const char *const kinds[] = { "modified", "metadata", "removed" };
    const char *k = (unsigned)ev->kind < 3 ? kinds[ev->kind] : "unknown";
    (void)user;
    if (json && ev->has_range)
        printf("{\"kind\":\"%s\",\"offset\":%" PRIu64 ",\"len\":%" PRIu64 "}\n",
               k, ev->offset, ev->len);
    else if (json)
        printf("{\"kind\":\"%s\"}\n", k);
    else if (ev->has_range)
        printf("%s offset=%" PRIu64 " len=%" PRIu64 "\n", k, ev->offset, ev->len);
    else
        printf("%s\n", k);
    fflush(stdout);
}

/* Holds the mapping read-only while watching, like any other reader. */
static int cmd_watch(mmapio_client *c, int argc, char **argv)
{
    mmapio_options o;
    mmapio_map *m;
    mmapio_watcher *w;
    bool anonymous;

    if (argc != 2)
        return usage_error("watch takes PATH or anon:NAME", NULL);
    mmapio_options_init(&o);
    o.mode = MMAPIO_MODE_READ_ONLY;
    const char *target = split_target(argv[1], &anonymous);
    o.anonymous = anonymous;
    int r = mmapio_open(c, target, &o, &m);
    if (r)
        return fail(r, argv[1]);
    r = mmapio_watch(m, print_event, NULL, &w);
    if (r) {
        mmapio_unmap(m);
        return fail(r, argv[1]);
    }
    struct sigaction sa = { .sa_handler = on_interrupt };
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    if (!json)
        fprintf(stderr, "watching %s; ^C to stop\n", argv[1]);
    while (!interrupted && (r = mmapio_client_dispatch(c, 200)) >= 0)
        ;
    mmapio_unwatch(w);
    mmapio_unmap(m);
    return r < 0 && !interrupted ? fail(r, "watch") : 0;
}

/* ---- main ------------------------------------------------------------ */

static const struct command {
    const char *name;
    int (*run)(mmapio_client *c, int argc, char **argv);
    const char *args, *help;
} commands[] = {
    { "status", cmd_status, "", "version, uptime, clients, mappings, flushes, errors" },
    { "ls", cmd_ls, "", "every mapping you may see: size, mode, policy, holders, pending bytes" },
    { "clients", cmd_clients, "", "connected clients: pid, uid, name, what each holds" },
    { "flush", cmd_flush, "PATH|anon:NAME|--all", "flush to disk now, and wait for it" },
    { "policy", cmd_policy, "PATH|anon:NAME POLICY", "set the flush policy for every holder" },
    { "watch", cmd_watch, "PATH|anon:NAME", "print change events until interrupted" },
};
#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: mmapioctl [--socket PATH] [--json] COMMAND [ARGS]\n"
            "       mmapioctl COMMAND --help | --help | --version\n\n"
            "Asks mmapiod what it holds. PATH is relative to the daemon's data\n"
            "root; anon:NAME names an anonymous mapping. POLICY is never, manual,\n"
            "always, every-bytes:N, every-writes:N or every-millis:N.\n\nCommands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(out, "  %-8s %-22s %s\n", commands[i].name, commands[i].args,
                commands[i].help);
    fprintf(out,
            "\nOptions:\n"
            "  --socket PATH  the daemon's socket (default: $MMAPIO_SOCKET, else\n"
            "                 the daemon's default path)\n"
            "  --json         machine-readable output\n\n"
            "Exit status: 0 done, 1 refused or failed, 2 bad usage, 3 daemon\n"
            "unreachable, 4 not found, 5 permission denied.\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "socket", required_argument, NULL, 's' },
        { "json", no_argument, NULL, 'j' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { 0 },
    };
    const char *sock = NULL;
    int o;

    /* Options stop at the command: its own arguments may start with -. */
    while ((o = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
        switch (o) {
        case 's': sock = optarg; break;
        case 'j': json = true; break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("mmapioctl %s\n", MMAPIO_VERSION); return 0;
        default: usage(stderr); return EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const struct command *cmd = NULL;
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (!strcmp(argv[optind], commands[i].name))
            cmd = &commands[i];
    if (!cmd)
        return usage_error("unknown command", argv[optind]);
    if (optind + 1 < argc && !strcmp(argv[optind + 1], "--help")) {
        printf("Usage: mmapioctl [--socket PATH] [--json] %s %s\n  %s\n",
               cmd->name, cmd->args, cmd->help);
        return 0;
    }
    mmapio_client *c;
    int r = mmapio_connect(sock, &c);
    if (r) { /* the library's words: each path tried, and why it failed */
        char *why = text_escape(mmapio_last_error());
        fprintf(stderr, "mmapioctl: cannot reach mmapiod: %s\n", why);
        free(why);
        return exit_code(r);
    }
    r = cmd->run(c, argc - optind, argv + optind);
    mmapio_disconnect(c);
    return r;
}
