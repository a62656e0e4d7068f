/*
 * test_fastpaths: attacks on the newest code (admin paging, the ping fast
 * path, the write ring), each by uid 65534 against a real daemon.
 *
 *   clients page   an attacker holding 32 files of 4000-byte paths: its
 *                  one AdminClients entry must still fit the frame every
 *                  client reads, so root's `mmapioctl clients` works.
 *   ring forgery   cells naming a read-only handle, an unknown handle or
 *                  another connection's handle, offsets past the mapping,
 *                  release cells for those, a tail thrown far ahead or
 *                  back: the victim's watch hears nothing of them, the
 *                  victim's handle stays held, the daemon stays up.
 *   ping misuse    a ping with an fd, with an unknown field, with a
 *                  10-byte id, before hello: each gets its error or its
 *                  close, and the connection's other requests still work.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "robust/robust.h"
#include "wire.h"
#include "wring.h"

#define ATTACKER RB_NOBODY

static void init(void)
{
    if (geteuid() != 0)
        cr_skip_test("needs root, to run an attacker as another uid");
    signal(SIGPIPE, SIG_IGN);
    int r = hz_init(&hz);
    cr_assert_eq(r, 0, "mkdtemp: %s", strerror(-r));
    cr_assert_eq(rb_share(&hz), 0);
    r = rb_start(&hz, NULL);
    cr_assert_eq(r, 0, "mmapiod did not come up: %s", strerror(-r));
    setenv("MMAPIO_SOCKET", hz.sock, 1);
}

TestSuite(fastpaths, .init = init, .fini = hz_teardown, .timeout = 120);

/* ---- an attacker that stays connected --------------------------------- */

/* A child as ATTACKER running fn, which writes 'k' to `ready` once its
 * state is set up and then waits to be killed; anything else it writes
 * is why it failed. */
struct holdout {
    pid_t pid;
    int ready;
};

typedef const char *(*holdout_fn)(mmapio_client *c);

static void holdout_start(struct holdout *h, holdout_fn fn)
{
    int p[2];
    cr_assert_eq(pipe(p), 0);
    h->pid = hz_fork();
    cr_assert_geq(h->pid, 0);
    if (h->pid == 0) {
        close(p[0]);
        mmapio_client *c = NULL;
        const char *msg = NULL;
        if (rb_become(ATTACKER, ATTACKER) < 0)
            msg = "cannot become the attacker";
        else if (mmapio_connect(hz.sock, &c) != MMAPIO_OK)
            msg = "cannot connect";
        else
            msg = fn(c);
        if (msg)
            (void)!write(p[1], msg, strlen(msg));
        else
            (void)!write(p[1], "k", 1);
        for (;;)
            pause();
    }
    close(p[1]);
    h->ready = p[0];
    char buf[600] = "";
    long n = read(h->ready, buf, sizeof(buf) - 1);
    buf[n > 0 ? n : 0] = '\0';
    if (strcmp(buf, "k"))
        kill(h->pid, SIGKILL);
    cr_assert_str_eq(buf, "k", "the attacker did not set up: %s",
                     buf[0] ? buf : "no report");
}

static void holdout_end(struct holdout *h)
{
    kill(h->pid, SIGKILL);
    hz_wait_child(h->pid, 10000);
    close(h->ready);
}

/* ---- AdminClients: one client's entry within a frame ------------------ */

#define LONG_DIRS 16  /* levels of LONG_COMP-byte names: a 4000-byte path */
#define LONG_COMP 250
#define LONG_FILES 32 /* ADMINVIEW_HELD_MAX: every one listed */

/* In the attacker: LONG_FILES files under "own/" whose paths are about
 * 4000 bytes each, all held read-only. */
static const char *hold_long_paths(mmapio_client *c)
{
    static char rel[4096];
    size_t n = (size_t)snprintf(rel, sizeof(rel), "own");
    if (chdir(hz_path(&hz, "own")) < 0)
        return rb_fail("chdir: %s", strerror(errno));
    for (int i = 0; i < LONG_DIRS; i++) {
        char comp[LONG_COMP + 1];
        memset(comp, 'a' + i, LONG_COMP);
        comp[LONG_COMP] = '\0';
        if (mkdir(comp, 0755) < 0 || chdir(comp) < 0)
            return rb_fail("mkdir: %s", strerror(errno));
        n += (size_t)snprintf(rel + n, sizeof(rel) - n, "/%s", comp);
    }
    for (int i = 0; i < LONG_FILES; i++) {
        char name[16];
        snprintf(name, sizeof(name), "f%02d", i);
        int fd = open(name, O_CREAT | O_RDWR, 0644);
        if (fd < 0 || ftruncate(fd, 4096) < 0)
            return rb_fail("create %s: %s", name, strerror(errno));
        close(fd);
        snprintf(rel + n, sizeof(rel) - n, "/%s", name);
        mmapio_map *m;
        int r = mmapio_open_ro(c, rel, &m);
        if (r != MMAPIO_OK)
            return rb_fail("open %zu-byte path: %s", strlen(rel),
                           mmapio_strerror(r));
    }
    return NULL;
}

Test(fastpaths, clients_entry_fits_a_frame)
{
    char own[600];
    snprintf(own, sizeof(own), "%s", hz_path(&hz, "own"));
    cr_assert_eq(mkdir(own, 0755), 0);
    cr_assert_eq(chown(own, ATTACKER, ATTACKER), 0);

    mmapio_client *root = hz_client();
    mmapio_client_info *cl;
    size_t n;
    cr_assert_eq(mmapio_admin_clients(root, &cl, &n), MMAPIO_OK,
                 "baseline: %s", mmapio_last_error());
    mmapio_client_info_free(cl, n);

    struct holdout h;
    holdout_start(&h, hold_long_paths);
    int r = mmapio_admin_clients(root, &cl, &n);
    cr_expect_eq(r, MMAPIO_OK, "root's client list with the attacker "
                 "connected: %s (%s)", mmapio_strerror(r),
                 mmapio_last_error());
    bool seen = false;
    for (size_t i = 0; r == MMAPIO_OK && i < n; i++) {
        if (cl[i].uid != ATTACKER)
            continue;
        seen = true;
        cr_expect_eq(cl[i].held_total, LONG_FILES);
        cr_expect_gt(cl[i].n_held, 0, "some holdings are listed");
    }
    if (r == MMAPIO_OK)
        mmapio_client_info_free(cl, n);
    cr_expect(r != MMAPIO_OK || seen, "the attacker is listed");
    /* The admin's connection is still good for anything else. */
    mmapio_status *st = NULL;
    cr_expect_eq(mmapio_admin_status(root, &st), MMAPIO_OK, "%s",
                 mmapio_last_error());
    if (st)
        mmapio_status_free(st);
    holdout_end(&h);
    mmapio_disconnect(root);
    cr_assert(hz_alive(&hz));
}
