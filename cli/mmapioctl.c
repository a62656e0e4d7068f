/*
 * mmapioctl: asks mmapiod what it holds and tells it what to do.
 *
 *   mmapioctl [OPTIONS] COMMAND [ARGS] [OPTIONS]
 *
 * A client like any other: built against the public header <mmapio.h> and
 * the shared libmmapio alone; the daemon decides from our credentials what
 * we may see and change. Output goes through render.h (libsmartcols);
 * names are escaped there and in every message here (escape.h).
 *
 * Options may come before or after the command; "--" ends them (a path
 * that starts with '-'). A command takes exactly its arguments: anything
 * more, or an option it has no use for, is bad usage.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* getopt_long */
#endif
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <locale.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mmapio.h>

#include "escape.h"
#include "host.h"
#include "render.h"

enum { EXIT_REFUSED = 1, EXIT_USAGE = 2, EXIT_UNREACHABLE = 3,
       EXIT_NOT_FOUND = 4, EXIT_PERMISSION = 5, EXIT_EXISTS = 6 };

/* What the command line said besides the command and its arguments. */
struct opts {
    const char *socket;
    struct out out;
    const char *mode, *policy; /* create */
    bool all;                  /* flush */
    bool help;
};

static int exit_code(int err)
{
    switch (err) {
    case MMAPIO_E_DISCONNECTED: return EXIT_UNREACHABLE;
    case MMAPIO_E_NOT_FOUND: return EXIT_NOT_FOUND;
    case MMAPIO_E_PERMISSION: return EXIT_PERMISSION;
    case MMAPIO_E_EXISTS: return EXIT_EXISTS;
    case MMAPIO_E_INVALID_ARGUMENT: return EXIT_USAGE;
    default: return EXIT_REFUSED;
    }
}

/* "mmapioctl: WHAT: WHY" on stderr, escaped; WHY in the daemon's words
 * when it gave some (which may name WHAT already: then once). */
static int fail(int err, const char *what)
{
    const char *msg = mmapio_last_error();
    if (!msg || !*msg)
        msg = mmapio_strerror(err);
    size_t n = strlen(what);
    if (!strncmp(msg, what, n) && !strncmp(msg + n, ": ", 2))
        what = "";
    char *w = render_check(esc_text(what));
    char *m = render_check(esc_text(msg));
    fprintf(stderr, "mmapioctl: %s%s%s\n", w, *w ? ": " : "", m);
    free(w);
    free(m);
    return exit_code(err);
}

static int usage_error(const char *what, const char *arg)
{
    char *a = arg ? render_check(esc_text(arg)) : NULL;
    fprintf(stderr, "mmapioctl: %s%s%s (see mmapioctl --help)\n", what,
            a ? " " : "", a ? a : "");
    free(a);
    return EXIT_USAGE;
}

/* "anon:NAME" names an anonymous mapping; anything else is a file path. */
static const char *split_target(const char *arg, bool *anonymous)
{
    *anonymous = strncmp(arg, "anon:", 5) == 0;
    return *anonymous ? arg + 5 : arg;
}

/* ---- commands -------------------------------------------------------- */

static int cmd_status(mmapio_client *c, const struct opts *o, char **argv)
{
    mmapio_status *s;
    (void)argv;
    int r = mmapio_admin_status(c, &s);
    if (r)
        return fail(r, "status");
    render_status(&o->out, s);
    mmapio_status_free(s);
    return 0;
}

static int cmd_ls(mmapio_client *c, const struct opts *o, char **argv)
{
    mmapio_map_info *maps;
    size_t n;
    (void)argv;
    int r = mmapio_admin_list(c, &maps, &n);
    if (r)
        return fail(r, "ls");
    render_maps(&o->out, maps, n);
    mmapio_map_info_free(maps, n);
    return 0;
}

static int cmd_clients(mmapio_client *c, const struct opts *o, char **argv)
{
    mmapio_client_info *clients;
    size_t n;
    (void)argv;
    int r = mmapio_admin_clients(c, &clients, &n);
    if (r)
        return fail(r, "clients");
    render_clients(&o->out, clients, n);
    mmapio_client_info_free(clients, n);
    return 0;
}

static int cmd_stat(mmapio_client *c, const struct opts *o, char **argv)
{
    mmapio_map_info *m;
    bool anonymous;
    const char *target = split_target(argv[0], &anonymous);
    int r = mmapio_admin_stat(c, target, anonymous, &m);
    if (r)
        return fail(r, argv[0]);
    render_stat(&o->out, m);
    mmapio_map_info_free(m, 1);
    return 0;
}

/* SIZE: bytes, with an optional K, M, G or T (powers of 1024). */
static bool parse_size(const char *s, uint64_t *out)
{
    char *end;
    if (*s < '0' || *s > '9')
        return false;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    unsigned shift = 0;
    if (*end) {
        const char *units = "KMGT", *u = strchr(units, *end);
        if (!u || end[1])
            return false;
        shift = 10 * (unsigned)(u - units + 1);
    }
    if (errno || v == 0 || v > (UINT64_MAX >> shift))
        return false;
    *out = (uint64_t)v << shift;
    return true;
}

static int cmd_create(mmapio_client *c, const struct opts *o, char **argv)
{
    mmapio_options op;
    mmapio_map *m;
    bool anonymous;

    mmapio_options_init(&op);
    if (!parse_size(argv[1], &op.size))
        return usage_error("SIZE is a number of bytes above 0 with an optional "
                           "K, M, G or T:", argv[1]);
    if (o->mode) {
        char *end;
        unsigned long perm = strtoul(o->mode, &end, 8);
        if (!*o->mode || *end || perm > 0777)
            return usage_error("--mode takes octal permission bits (0 to 0777):",
                               o->mode);
        op.perm = (uint32_t)perm;
    }
    if (o->policy && mmapio_policy_parse(o->policy, &op.flush_policy))
        return usage_error("bad policy (never, manual, always, every-bytes:N, "
                           "every-writes:N or every-millis:N):", o->policy);
    const char *target = split_target(argv[0], &anonymous);
    op.anonymous = anonymous;
    op.create = true;
    op.exclusive = true;
    int r = mmapio_open(c, target, &op, &m);
    if (r)
        return fail(r, argv[0]);
    mmapio_unmap(m);
    /* What was made, as stat shows it (a file one may not read: nothing). */
    mmapio_map_info *info;
    if (mmapio_admin_stat(c, target, anonymous, &info) == MMAPIO_OK) {
        render_stat(&o->out, info);
        mmapio_map_info_free(info, 1);
    }
    return 0;
}

static int cmd_rm(mmapio_client *c, const struct opts *o, char **argv)
{
    bool anonymous;
    (void)o;
    const char *target = split_target(argv[0], &anonymous);
    int r = anonymous ? mmapio_anon_delete(c, target) : mmapio_delete(c, target);
    return r ? fail(r, argv[0]) : 0;
}

static int cmd_flush(mmapio_client *c, const struct opts *o, char **argv)
{
    mmapio_flush_report f;
    bool anonymous;
    int r;

    if (o->all == (argv[0] != NULL))
        return usage_error("flush takes PATH, anon:NAME or --all", NULL);
    if (o->all) {
        r = mmapio_admin_flush_all(c, &f);
    } else {
        const char *target = split_target(argv[0], &anonymous);
        r = mmapio_admin_flush(c, target, anonymous, &f);
    }
    if (r)
        return fail(r, o->all ? "flush --all" : argv[0]);
    render_flushed(&o->out, &f);
    return f.failed ? EXIT_REFUSED : 0;
}

static int cmd_policy(mmapio_client *c, const struct opts *o, char **argv)
{
    mmapio_flush_policy p;
    bool anonymous;

    if (mmapio_policy_parse(argv[1], &p))
        return usage_error("bad policy (never, manual, always, every-bytes:N, "
                           "every-writes:N or every-millis:N):", argv[1]);
    const char *target = split_target(argv[0], &anonymous);
    int r = mmapio_admin_set_flush_policy(c, target, anonymous, p);
    if (r)
        return fail(r, argv[0]);
    render_policy(&o->out, argv[0], p);
    return 0;
}

static volatile sig_atomic_t interrupted;

static void on_interrupt(int sig)
{
    (void)sig;
    interrupted = 1;
}

struct watching {
    const struct opts *o;
    const char *target;
    bool removed;
};

static void on_event(const mmapio_change_event *ev, void *user)
{
    struct watching *w = user;
    render_event(&w->o->out, w->target, ev);
    if (ev->kind == MMAPIO_CHANGE_REMOVED)
        w->removed = true;
}

/* Watches by name, holding no handle: nobody's behaviour changes. */
static int cmd_watch(mmapio_client *c, const struct opts *o, char **argv)
{
    mmapio_watcher *w;
    bool anonymous;
    struct watching st = { o, argv[0], false };
    const char *target = split_target(argv[0], &anonymous);
    int r = mmapio_admin_watch(c, target, anonymous, on_event, &st, &w);
    if (r)
        return fail(r, argv[0]);
    host_on_stop(on_interrupt);
    char *shown = render_check(esc_text(argv[0]));
    fprintf(stderr, "watching %s until it is removed; ^C to stop\n", shown);
    free(shown);
    while (!interrupted && !st.removed &&
           (r = mmapio_client_dispatch(c, 200)) >= 0)
        ;
    mmapio_unwatch(w);
    return r < 0 && !interrupted && !st.removed ? fail(r, "watch") : 0;
}

/* ---- the command table ------------------------------------------------ */

enum { OPT_MODE = 1, OPT_POLICY = 2, OPT_ALL = 4 };

static const struct command {
    const char *name;
    int (*run)(mmapio_client *c, const struct opts *o, char **argv);
    int min_args, max_args, options;
    const char *args, *summary;
    const char *fields;  /* render_fields_help's table, or NULL */
    const char *more;    /* the rest of its --help */
} commands[] = {
    { "status", cmd_status, 0, 0, 0, "",
      "the daemon: pid, version, uptime, socket, data root, config file, "
      "limits, memory, counters", "status",
      "Text: one field a line, with its meaning. JSON: {\"status\": [{...}]},\n"
      "the same field names, every limit under its mmapiod.conf key.\n" },
    { "ls", cmd_ls, 0, 0, 0, "",
      "every mapping you may see (root and the admin group: all)", "maps",
      "Text: one mapping a row. JSON: {\"mappings\": [{...}, ...]} with every\n"
      "field. A deleted mapping still held is listed with state \"removed\".\n" },
    { "stat", cmd_stat, 1, 1, 0, "PATH|anon:NAME",
      "one mapping in full (needs read access to it)", "maps",
      "Text: one field a line, with its meaning. JSON: as ls, with one entry.\n" },
    { "create", cmd_create, 2, 2, OPT_MODE | OPT_POLICY,
      "PATH|anon:NAME SIZE [--mode OCTAL] [--policy POLICY]",
      "make a file or anonymous mapping of SIZE bytes, then show it", "maps",
      "SIZE: bytes with an optional K, M, G or T (powers of 1024). --mode:\n"
      "permission bits (default 0644 files, 0600 anonymous). --policy: its\n"
      "flush policy (default never). One that exists already: exit 6.\n" },
    { "rm", cmd_rm, 1, 1, 0, "PATH|anon:NAME",
      "delete a file or anonymous mapping (holders keep it until they let go)",
      NULL, "Prints nothing on success.\n" },
    { "clients", cmd_clients, 0, 0, 0, "",
      "connected clients you may see, and what each holds", "clients",
      "Text: a row a client, a row under it for each handle it holds.\n"
      "JSON: {\"clients\": [{..., \"children\": [{...held...}]}]}.\n" },
    { "flush", cmd_flush, 0, 1, OPT_ALL, "PATH|anon:NAME|--all",
      "write a mapping (--all: every one of yours) to disk now, and wait", NULL,
      "JSON: {\"flush\": [{\"flushed\": N, \"failed\": N}]}; exit 1 if any "
      "failed.\n" },
    { "policy", cmd_policy, 2, 2, 0, "PATH|anon:NAME POLICY",
      "set a mapping's flush policy, for every holder", NULL,
      "POLICY: never, manual, always, every-bytes:N, every-writes:N or\n"
      "every-millis:N. JSON: {\"policy\": [{\"path\": ..., \"policy\": ...}]}.\n" },
    { "watch", cmd_watch, 1, 1, 0, "PATH|anon:NAME",
      "print its changes as they come, until it is removed or ^C", NULL,
      "Holds no handle: the writers see no difference (a writer may still\n"
      "shrink it). Needs read access to it. Each line: the local time\n"
      "(ISO 8601, ms), then modified [offset=N len=N], metadata or removed;\n"
      "it ends after removed. JSON: one object a line: time, path, kind,\n"
      "offset and len (null when the change has no range).\n" },
};
#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static const char common_help[] =
    "Options, before or after the command:\n"
    "  --socket PATH     the daemon's socket (default: $MMAPIO_SOCKET, else\n"
    "                    the per-user socket if a daemon listens there, else\n"
    "                    /run/mmapio/mmapiod.sock)\n"
    "  -J, --json        JSON (valid UTF-8; null: unknown or never)\n"
    "  -r, --raw         text one row a line, blanks in values escaped\n"
    "  -n, --noheadings  text without the header line\n"
    "  -h, --help        this help; after a command, that command's\n"
    "  --                the end of the options\n\n"
    "PATH is relative to the daemon's data root; anon:NAME names an anonymous\n"
    "mapping. Odd bytes in names are shown as \\xNN (JSON: U+FFFD).\n\n"
    "Exit status: 0 done, 1 refused or failed, 2 bad usage, 3 daemon\n"
    "unreachable, 4 not found, 5 permission denied (the same answer from\n"
    "every command: a mapping that exists but is not yours to act on is 5,\n"
    "never 4), 6 exists already.\n";

static void usage(FILE *out)
{
    fprintf(out, "Usage: mmapioctl [OPTIONS] COMMAND [ARGS]\n"
                 "       mmapioctl COMMAND --help | --help | --version\n\n"
                 "Asks mmapiod what it holds, and tells it what to do.\n\n"
                 "Commands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(out, "  %-8s %s\n           %s\n", commands[i].name,
                commands[i].args, commands[i].summary);
    fprintf(out, "\n%s", common_help);
}

static void command_help(const struct command *cmd)
{
    printf("Usage: mmapioctl [OPTIONS] %s %s\n\n%s.\n\n%s", cmd->name, cmd->args,
           cmd->summary, cmd->more);
    if (cmd->fields) {
        printf("\nFields (text columns are their names in capitals):\n");
        render_fields_help(stdout, cmd->fields);
    }
    printf("\n%s", common_help);
}

/* ---- main ------------------------------------------------------------ */

/* Reads every option wherever it stands; the operands stay in argv[optind..]
 * in their order. 0, or an exit code. */
static int parse_options(int argc, char **argv, struct opts *o, int *seen)
{
    static const struct option opts[] = {
        { "socket", required_argument, NULL, 's' },
        { "json", no_argument, NULL, 'J' },
        { "raw", no_argument, NULL, 'r' },
        { "noheadings", no_argument, NULL, 'n' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { "mode", required_argument, NULL, 'm' },
        { "policy", required_argument, NULL, 'p' },
        { "all", no_argument, NULL, 'a' },
        { 0 },
    };
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":JrnhV", opts, NULL)) != -1) {
        switch (c) {
        case 's': o->socket = optarg; break;
        case 'J': o->out.json = true; break;
        case 'r': o->out.raw = true; break;
        case 'n': o->out.noheadings = true; break;
        case 'h': o->help = true; break;
        case 'V': printf("mmapioctl %s\n", MMAPIO_VERSION); return -1;
        case 'm': o->mode = optarg; *seen |= OPT_MODE; break;
        case 'p': o->policy = optarg; *seen |= OPT_POLICY; break;
        case 'a': o->all = true; *seen |= OPT_ALL; break;
        case ':':
            return usage_error("this option needs a value:", argv[optind - 1]);
        default:
            return usage_error("unknown option", argv[optind - 1]);
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct opts o = { .out = { .f = stdout } };
    int seen = 0;

    setlocale(LC_ALL, ""); /* tables show the terminal's characters */
    int r = parse_options(argc, argv, &o, &seen);
    if (r)
        return r < 0 ? 0 : r;
    if (optind >= argc) {
        if (o.help) {
            usage(stdout);
            return 0;
        }
        usage(stderr);
        return EXIT_USAGE;
    }
    const struct command *cmd = NULL;
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (!strcmp(argv[optind], commands[i].name))
            cmd = &commands[i];
    if (!cmd)
        return usage_error("unknown command", argv[optind]);
    if (o.help) {
        command_help(cmd);
        return 0;
    }
    int n_args = argc - optind - 1;
    char **args = argv + optind + 1;
    if (n_args < cmd->min_args || n_args > cmd->max_args) {
        fprintf(stderr, "mmapioctl: %s takes %s%s (see mmapioctl %s --help)\n",
                cmd->name, *cmd->args ? cmd->args : "no arguments",
                n_args > cmd->max_args ? "; extra arguments" : "", cmd->name);
        return EXIT_USAGE;
    }
    if (seen & ~cmd->options)
        return usage_error(cmd->name, "takes no --mode, --policy or --all here");

    mmapio_client *c;
    r = mmapio_connect(o.socket, &c);
    if (r) { /* the library's words: each path tried, and why it failed */
        char *why = render_check(esc_text(mmapio_last_error()));
        fprintf(stderr, "mmapioctl: cannot reach mmapiod: %s\n",
                *why ? why : mmapio_strerror(r));
        free(why);
        return r == MMAPIO_E_PERMISSION ? EXIT_PERMISSION : EXIT_UNREACHABLE;
    }
    char *none[] = { NULL };
    r = cmd->run(c, &o, n_args ? args : none);
    mmapio_disconnect(c);
    return r;
}
