/*
 * mmapiod: the command line. Embedded defaults, then --config, then the
 * other options; a one-line reason and a non-zero exit when the daemon
 * cannot start. The daemon itself is assembled in daemon.c.
 */
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "config.h"
#include "daemon.h"
#include "log.h"
#include "mmapio.h"

#define MAX_KEYS 64

/* Prints text from column `indent`, wrapped before column 79. */
static void wrap(FILE *out, int indent, const char *text)
{
    int col = indent;
    fprintf(out, "%*s", indent, "");
    while (*text) {
        size_t n = strcspn(text, " ");
        if (col > indent && col + 1 + (int)n > 78) {
            fprintf(out, "\n%*s", indent, "");
            col = indent;
        } else if (col > indent) {
            fputc(' ', out);
            col++;
        }
        fprintf(out, "%.*s", (int)n, text);
        col += (int)n;
        text += n;
        text += strspn(text, " ");
    }
    fputc('\n', out);
}

/* What the limits left to the fd budget come to with this process's hard
 * fd limit (the daemon raises its soft limit to it). */
static void usage_budget(FILE *out)
{
    struct config c;
    struct rlimit rl;
    char note[512], line[512];
    if (config_defaults(&c) < 0 || getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return;
    uint64_t nofile = rl.rlim_max == RLIM_INFINITY ? UINT64_C(1) << 20 : rl.rlim_max;
    config_fit_fds(&c, nofile, note, sizeof(note));
    snprintf(line, sizeof(line),
             "The fd budget is RLIMIT_NOFILE less 64 fds for the daemon and a "
             "quarter for fds queued toward clients; with this hard limit "
             "(%" PRIu64 ") the defaults come to max_clients %u "
             "(max_clients_per_uid %u, reserved_clients %u) and max_mappings %u "
             "(max_mappings_per_uid %u, reserved_mappings %u), of them "
             "holding an fd max_fd_mappings %u (max_fd_mappings_per_uid %u, "
             "reserved_fd_mappings %u), open_cache %u.",
             nofile, c.max_clients, c.max_clients_per_uid, c.reserved_clients,
             c.max_mappings, c.max_mappings_per_uid, c.reserved_mappings,
             c.max_fd_mappings, c.max_fd_mappings_per_uid,
             c.reserved_fd_mappings, c.open_cache);
    wrap(out, 0, line);
}

/* Generated from config_keys: every setting, its values and default. */
static void usage(FILE *out)
{
    fprintf(out,
            "Usage: mmapiod [--config FILE] [--SETTING VALUE]... [--verbose]\n"
            "       mmapiod --help | --version\n"
            "\n"
            "Serves shared memory mappings to local processes; stays in the\n"
            "foreground and logs to stderr.\n"
            "\n"
            "  --config FILE\n");
    wrap(out, 6, "Settings, one 'key = value' a line, '#' starts a comment; "
                 "options on the command line win. Run by root with no "
                 "--config, mmapiod reads " CONFIG_DEFAULT_FILE " if it exists.");
    fprintf(out,
            "  --help\n"
            "      This text.\n"
            "  --version\n"
            "      The version.\n"
            "\n"
            "Settings: the config file's key, then the option that sets it.\n");
    for (size_t i = 0; i < config_n_keys; i++) {
        const struct config_key *k = &config_keys[i];
        char opt[64], def[256], range[64], text[768];
        config_option_name(k, opt, sizeof(opt));
        config_default_text(k, def, sizeof(def));
        config_range_text(k, range, sizeof(range));
        const char *arg = config_arg_name(k);
        fprintf(out, "  %s, %s%s%s\n", k->key, opt, *arg ? " " : "", arg);
        snprintf(text, sizeof(text), "%s Values: %s. Default: %s.", k->what,
                 range, def);
        wrap(out, 6, text);
    }
    fputc('\n', out);
    usage_budget(out);
}

/* The long options: --config, --help, --version and one per setting. */
static void make_options(struct option *opts, char names[][64])
{
    size_t n = 0;
    opts[n++] = (struct option){ "config", required_argument, NULL, 'c' };
    opts[n++] = (struct option){ "help", no_argument, NULL, 'h' };
    opts[n++] = (struct option){ "version", no_argument, NULL, 'V' };
    for (size_t i = 0; i < config_n_keys; i++) {
        config_option_name(&config_keys[i], names[i], 64);
        opts[n++] = (struct option){ names[i] + 2,
            config_keys[i].kind == CONFIG_BOOL ? no_argument : required_argument,
            NULL, 'S' };
    }
    opts[n] = (struct option){ 0 };
}

int main(int argc, char **argv)
{
    static struct option opts[MAX_KEYS + 4];
    static char names[MAX_KEYS][64];
    const struct config_key *set_key[MAX_KEYS * 2];
    const char *set_val[MAX_KEYS * 2];
    int n_set = 0, idx;
    const char *conf = NULL;
    struct daemon d;
    char err[512] = "";
    int o;

    if (config_n_keys > MAX_KEYS)
        return 1;
    make_options(opts, names);
    while ((o = getopt_long(argc, argv, "", opts, &idx)) != -1) {
        switch (o) {
        case 'S':
            if (n_set == MAX_KEYS * 2) {
                fprintf(stderr, "mmapiod: too many options\n");
                return 2;
            }
            set_key[n_set] = &config_keys[idx - 3];
            set_val[n_set++] = optarg ? optarg : "yes";
            break;
        case 'c': conf = optarg; break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("mmapiod %s\n", MMAPIO_VERSION); return 0;
        default:
            fprintf(stderr, "mmapiod: see mmapiod --help\n");
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "mmapiod: unexpected argument '%s' (see --help)\n", argv[optind]);
        return 2;
    }
    memset(&d, 0, sizeof(d));
    (void)config_defaults(&d.cfg); /* a path it cannot work out stays "" */
    /* The installed settings, for root's daemon started by hand. */
    if (!conf && geteuid() == 0 && access(CONFIG_DEFAULT_FILE, F_OK) == 0)
        conf = CONFIG_DEFAULT_FILE;
    if (conf && config_load(&d.cfg, conf, err, sizeof(err)) < 0) {
        fprintf(stderr, "mmapiod: %s\n", err);
        return 1;
    }
    if (conf && !realpath(conf, d.cfg.config_file))
        snprintf(d.cfg.config_file, sizeof(d.cfg.config_file), "%s", conf);
    d.config_file = d.cfg.config_file[0] ? d.cfg.config_file : NULL;
    for (int i = 0; i < n_set; i++) {
        if (config_set(&d.cfg, set_key[i]->key, set_val[i], err, sizeof(err)) < 0) {
            char opt[64];
            config_option_name(set_key[i], opt, sizeof(opt));
            fprintf(stderr, "mmapiod: %s: %s\n", opt, err);
            return 2;
        }
    }
    if (!d.cfg.socket_path[0] || !d.cfg.root[0]) {
        fprintf(stderr, "mmapiod: cannot work out the default %s; use %s\n",
                d.cfg.socket_path[0] ? "data root" : "socket",
                d.cfg.socket_path[0] ? "--root" : "--socket");
        return 1;
    }
    log_set_level(d.cfg.verbose ? LOG_LVL_DEBUG : LOG_LVL_INFO);
    if (conf)
        log_info("settings from %s", d.cfg.config_file);

    if (daemon_init(&d, err, sizeof(err)) < 0) {
        fprintf(stderr, "mmapiod: %s\n", err);
        daemon_fini(&d);
        return 1;
    }
    daemon_run(&d);
    daemon_fini(&d);
    log_info("stopped");
    return 0;
}
