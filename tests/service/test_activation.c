/*
 * test_activation: mmapiod started by systemd-socket-activate with a
 * sequential-packet socket serves the socket it was given (LISTEN_FDS):
 * the first connection starts it, a client then creates, writes and reads
 * an anonymous and a file mapping, and it exits 0 on SIGTERM.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "svc.h"

static struct hz_daemon d = { .pid = -1 };

static void setup(void)
{
    signal(SIGPIPE, SIG_IGN);
    int r = hz_init(&d);
    cr_assert_eq(r, 0, "mkdtemp: %s", strerror(-r));
}

static void teardown(void)
{
    hz_cleanup(&d);
}

TestSuite(activation, .init = setup, .fini = teardown, .timeout = 60);

/* Connects, retrying while the tool has not bound its socket yet. */
static mmapio_client *connect_retry(const char *sock, pid_t pid)
{
    mmapio_client *c = NULL;
    int64_t end = hz_now_ms() + 30000;
    int r;
    while ((r = mmapio_connect(sock, &c)) != MMAPIO_OK) {
        int st;
        cr_assert_neq(waitpid(pid, &st, WNOHANG), pid,
                      "systemd-socket-activate exited (status 0x%x)",
                      (unsigned)st);
        cr_assert_lt(hz_now_ms(), end, "cannot connect to %s: %s", sock,
                     mmapio_strerror(r));
        svc_sleep_ms(10);
    }
    return c;
}

Test(activation, seqpacket_socket_from_systemd_socket_activate)
{
    if (!svc_have("systemd-socket-activate"))
        cr_skip_test("systemd-socket-activate is not installed");
    const char *bin = hz_build_file("MMAPIOD", "../../daemon/mmapiod");
    cr_assert_not_null(bin, "no mmapiod ($MMAPIOD)");

    char sock[256];
    snprintf(sock, sizeof(sock), "%s/sa.sock", d.dir);
    /* The tool passes on only the variables it is told to. */
    const char *argv[32];
    size_t n = 0;
    argv[n++] = "systemd-socket-activate";
    argv[n++] = "--seqpacket";
    argv[n++] = "-l";
    argv[n++] = sock;
    static const char *const pass[] = { "ASAN_OPTIONS", "UBSAN_OPTIONS",
                                        "LSAN_OPTIONS" };
    char env[3][1024];
    for (size_t i = 0; i < 3; i++)
        if (getenv(pass[i])) {
            snprintf(env[i], sizeof(env[i]), "%s=%s", pass[i], getenv(pass[i]));
            argv[n++] = "-E";
            argv[n++] = env[i];
        }
    /* $MMAPIOD_WRAPPER (e.g. valgrind) goes between the tool and mmapiod. */
    static char wrap[512];
    const char *w = getenv("MMAPIOD_WRAPPER");
    if (w && *w) {
        snprintf(wrap, sizeof(wrap), "%s", w);
        for (char *tok = strtok(wrap, " "); tok && n < 16; tok = strtok(NULL, " "))
            argv[n++] = tok;
    }
    argv[n++] = bin;
    argv[n++] = "--root";
    argv[n++] = d.root;
    argv[n] = NULL;

    pid_t pid = hz_fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGPIPE, SIG_DFL);
        unsetenv("LISTEN_FDS");
        unsetenv("LISTEN_PID");
        unsetenv("NOTIFY_SOCKET");
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    d.pid = pid; /* the tool, then (exec) the daemon: killed by cleanup */

    mmapio_client *c = connect_retry(sock, pid);
    /* The daemon serves the tool's socket: it did not bind its default
     * one, and the tool's process is now mmapiod. */
    char cmd[4096], link[64];
    snprintf(link, sizeof(link), "/proc/%d/cmdline", (int)pid);
    long cl = hz_read_file(link, cmd, sizeof(cmd) - 1);
    cr_assert_gt(cl, 0);
    for (long i = 0; i < cl; i++)
        if (!cmd[i])
            cmd[i] = ' ';
    cmd[cl] = '\0';
    cr_expect(strstr(cmd, "mmapiod --root") != NULL,
              "the connection was served, but pid %d is %s", (int)pid, cmd);

    hz_assert_ok(mmapio_ping(c));

    mmapio_map *a, *f, *a2;
    uint8_t in[512], out[512];
    for (size_t i = 0; i < sizeof(in); i++)
        in[i] = (uint8_t)(i * 13 + 1);
    hz_assert_ok(mmapio_anon_create(c, "activated", 8192, &a));
    hz_assert_ok(mmapio_update_region(a, 1000, in, sizeof(in)));
    hz_assert_ok(mmapio_read_into(a, 1000, out, sizeof(out)));
    cr_assert_arr_eq(out, in, sizeof(in));

    hz_assert_ok(mmapio_create_rw(c, "act.bin", 4096, &f));
    hz_assert_ok(mmapio_update_region(f, 7, in, 100));
    hz_assert_ok(mmapio_flush(f));
    char path[512];
    snprintf(path, sizeof(path), "%s/act.bin", d.root);
    long got = hz_read_file(path, out, sizeof(out));
    cr_assert_eq(got, 512, "act.bin: %ld bytes read", got);
    cr_assert_arr_eq(out + 7, in, 100, "act.bin does not hold the bytes");

    /* A second connection through the same socket sees the same bytes. */
    mmapio_client *c2 = connect_retry(sock, pid);
    hz_assert_ok(mmapio_anon_open(c2, "activated", &a2));
    hz_assert_ok(mmapio_read_into(a2, 1000, out, sizeof(out)));
    cr_assert_arr_eq(out, in, sizeof(in));
    hz_assert_ok(mmapio_ping(c2));

    mmapio_unmap(a2);
    mmapio_unmap(a);
    mmapio_unmap(f);
    mmapio_disconnect(c2);
    mmapio_disconnect(c);

    cr_assert_eq(kill(pid, SIGTERM), 0);
    int st;
    cr_assert_eq(hz_wait_exit(pid, 10000, &st), 0, "mmapiod ignored SIGTERM");
    d.pid = -1;
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
              "mmapiod did not exit 0 on SIGTERM (wait status 0x%x)",
              (unsigned)st);
    /* The socket was systemd's: the daemon leaves it in place. */
    struct stat sst;
    cr_expect_eq(stat(sock, &sst), 0, "the daemon removed a socket it did "
                 "not create");
}
