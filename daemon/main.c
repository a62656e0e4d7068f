/*
 * mmapiod: the command line. Embedded defaults, then --config, then the
 * other options; a one-line reason and a non-zero exit when the daemon
 * cannot start. The daemon itself is assembled in daemon.c.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "daemon.h"
#include "log.h"
#include "mmapio.h"

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: mmapiod [--socket PATH] [--root DIR] [--config FILE] [--verbose]\n"
            "       mmapiod --help | --version\n"
            "\n"
            "Serves shared memory mappings to local processes.\n"
            "\n"
            "  --socket PATH   listening socket (default: $XDG_RUNTIME_DIR/mmapio/mmapiod.sock,\n"
            "                  /run/mmapio/mmapiod.sock for root, else /tmp/mmapio-UID/mmapiod.sock)\n"
            "  --root DIR      data root for file mappings (default: /var/lib/mmapio for root,\n"
            "                  else $XDG_DATA_HOME/mmapio or ~/.local/share/mmapio)\n"
            "  --config FILE   settings, one 'key = value' a line (socket, root, max_frame,\n"
            "                  max_clients, max_clients_per_uid, reserved_clients,\n"
            "                  hello_timeout_ms, max_inflight, max_events, max_queued_bytes,\n"
            "                  max_queued_bytes_per_uid, max_queued_fds, max_queued_fds_per_uid,\n"
            "                  max_mappings, max_mappings_per_uid, reserved_mappings,\n"
            "                  max_bytes_per_uid, max_map_size, flush_threads, open_cache,\n"
            "                  verbose); max_clients, max_mappings, open_cache and the\n"
            "                  per-uid shares and reserves default to shares of the fd limit\n"
            "  --max-frame N, --max-clients N, --max-clients-per-uid N,\n"
            "  --reserved-clients N, --hello-timeout-ms N, --max-inflight N,\n"
            "  --max-events N, --max-queued-bytes N, --max-queued-bytes-per-uid N,\n"
            "  --max-queued-fds N, --max-queued-fds-per-uid N,\n"
            "  --max-mappings N, --max-mappings-per-uid N, --reserved-mappings N,\n"
            "  --max-bytes-per-uid N,\n"
            "  --max-handles-per-client N, --max-map-size N, --flush-threads N,\n"
            "  --open-cache N, --admin-group GROUP\n"
            "                  the same settings as the config file, which they override\n"
            "  --verbose       log every connection\n"
            "  --help          this text\n"
            "  --version       the version\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "socket", required_argument, NULL, 's' },
        { "root", required_argument, NULL, 'r' },
        { "config", required_argument, NULL, 'c' },
        { "verbose", no_argument, NULL, 'v' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        /* Settings: the config file's keys, '-' for '_'. */
        { "max-frame", required_argument, NULL, 'S' },
        { "max-clients", required_argument, NULL, 'S' },
        { "max-clients-per-uid", required_argument, NULL, 'S' },
        { "reserved-clients", required_argument, NULL, 'S' },
        { "hello-timeout-ms", required_argument, NULL, 'S' },
        { "max-queued-bytes", required_argument, NULL, 'S' },
        { "max-queued-bytes-per-uid", required_argument, NULL, 'S' },
        { "reserved-mappings", required_argument, NULL, 'S' },
        { "max-inflight", required_argument, NULL, 'S' },
        { "max-events", required_argument, NULL, 'S' },
        { "max-queued-fds", required_argument, NULL, 'S' },
        { "max-queued-fds-per-uid", required_argument, NULL, 'S' },
        { "max-mappings", required_argument, NULL, 'S' },
        { "max-mappings-per-uid", required_argument, NULL, 'S' },
        { "max-bytes-per-uid", required_argument, NULL, 'S' },
        { "max-handles-per-client", required_argument, NULL, 'S' },
        { "max-map-size", required_argument, NULL, 'S' },
        { "flush-threads", required_argument, NULL, 'S' },
        { "open-cache", required_argument, NULL, 'S' },
        { "admin-group", required_argument, NULL, 'S' },
        { 0 },
    };
    const char *set_key[32], *set_val[32];
    int n_set = 0, idx;
    const char *sock = NULL, *root = NULL, *conf = NULL;
    bool verbose = false;
    struct daemon d;
    char err[512] = "";
    int o;

    while ((o = getopt_long(argc, argv, "", opts, &idx)) != -1) {
        switch (o) {
        case 'S':
            if (n_set < 32) {
                set_key[n_set] = opts[idx].name;
                set_val[n_set++] = optarg;
            }
            break;
        case 's': sock = optarg; break;
        case 'r': root = optarg; break;
        case 'c': conf = optarg; break;
        case 'v': verbose = true; break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("mmapiod %s\n", MMAPIO_VERSION); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "mmapiod: unexpected argument '%s' (see --help)\n", argv[optind]);
        return 2;
    }
    memset(&d, 0, sizeof(d));
    if (config_defaults(&d.cfg) < 0) {
        fprintf(stderr, "mmapiod: cannot work out the default paths; use --socket and --root\n");
        if (!sock || !root)
            return 1;
    }
    if (conf && config_load(&d.cfg, conf, err, sizeof(err)) < 0) {
        fprintf(stderr, "mmapiod: %s\n", err);
        return 1;
    }
    if ((sock && config_set(&d.cfg, "socket", sock, err, sizeof(err)) < 0) ||
        (root && config_set(&d.cfg, "root", root, err, sizeof(err)) < 0)) {
        fprintf(stderr, "mmapiod: %s\n", err);
        return 2;
    }
    for (int i = 0; i < n_set; i++) {
        char key[64];
        snprintf(key, sizeof(key), "%s", set_key[i]);
        for (char *p = key; *p; p++)
            if (*p == '-')
                *p = '_';
        if (config_set(&d.cfg, key, set_val[i], err, sizeof(err)) < 0) {
            fprintf(stderr, "mmapiod: --%s: %s\n", set_key[i], err);
            return 2;
        }
    }
    if (verbose)
        d.cfg.verbose = true;
    log_set_level(d.cfg.verbose ? LOG_LVL_DEBUG : LOG_LVL_INFO);

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
