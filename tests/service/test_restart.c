/*
 * test_restart: anonymous mappings outlive a restart through systemd's fd
 * store. The test plays systemd: it keeps what mmapiod stores (FDSTORE=1
 * by FDNAME, dropped on FDSTOREREMOVE=1), stops it, and starts a new
 * mmapiod with the stored fds at 3.. (LISTEN_FDS, LISTEN_PID,
 * LISTEN_FDNAMES), once with the listening socket in front as systemd
 * passes it, once without. The new daemon serves each mapping under its
 * name again with its bytes, owner, mode and flush policy; what was
 * deleted stays deleted; clients of the old daemon get
 * MMAPIO_E_DISCONNECTED and keep their mapped memory. The same again with
 * small mappings carved from arenas (one stored memfd per arena, offsets
 * in the meta log).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <grp.h>

#include "svc.h"

#define KEYS(...) ((const char *const[]){ __VA_ARGS__, NULL })
#define NOBODY ((uid_t)65534)
#define OTHER ((uid_t)65533)

static struct hz_daemon d = { .pid = -1 };
static struct svc_fdstore store;
/* --arena-max: a memfd stored per mapping ("0"), unless a test carves
 * them from arenas. */
static const char *arena_max = "0";

static void setup(void)
{
    signal(SIGPIPE, SIG_IGN);
    int r = hz_init(&d);
    cr_assert_eq(r, 0, "mkdtemp: %s", strerror(-r));
    chmod(d.dir, 0755); /* other uids' clients reach the socket */
}

static void teardown(void)
{
    hz_cleanup(&d);
    svc_fdstore_clear(&store);
}

TestSuite(restart, .init = setup, .fini = teardown, .timeout = 90);

static void dump(struct svc_notify *s, const char *what)
{
    struct svc_msg m;
    for (size_t i = 0; svc_notify_get(s, i, &m); i++) {
        fprintf(stderr, "%s[%zu] (+%zu fds): %s\n", what, i, m.n_fds, m.text);
        free(m.text);
    }
}

/*
 * Starts mmapiod on d.sock/d.root with a fresh notify socket `s` at
 * DIR/name, handing over `listen_fd` (if >= 0) and the fd store; waits
 * for READY=1.
 */
static void start(struct svc_notify *s, const char *name, int listen_fd)
{
    char path[300], ns[320];
    snprintf(path, sizeof(path), "%s/%s", d.dir, name);
    int r = svc_notify_open(s, path);
    cr_assert_eq(r, 0, "notify socket: %s", strerror(-r));
    snprintf(ns, sizeof(ns), "NOTIFY_SOCKET=%s", path);

    int fds[SVC_STORE_MAX + 1];
    size_t n = 0;
    char names[SVC_STORE_MAX * 32 + 64] = "";
    if (listen_fd >= 0) {
        fds[n++] = listen_fd;
        snprintf(names, sizeof(names), "mmapiod.socket%s",
                 store.n ? ":" : "");
    }
    for (size_t i = 0; i < store.n; i++)
        fds[n++] = store.fds[i];
    strncat(names, svc_fdstore_names(&store), sizeof(names) - strlen(names) - 1);

    const char *args[] = { "--socket", d.sock, "--root", d.root,
                           "--arena-max", arena_max, NULL };
    const char *env[] = { ns, "WATCHDOG_USEC=2000000", NULL };
    struct svc_spawn sp = { .args = args, .env = env, .fds = fds,
                            .n_fds = n, .fdnames = n ? names : NULL };
    pid_t pid = svc_spawn_daemon(&sp);
    cr_assert_gt(pid, 0, "cannot start mmapiod: %s", strerror((int)-pid));
    d.pid = pid;
    r = hz_wait_ready(d.sock, pid, HZ_READY_TIMEOUT_MS);
    cr_assert_eq(r, 0, "mmapiod (LISTEN_FDNAMES=%s) did not come up: %s",
                 names, strerror(-r));
    int st = 0;
    long ready = svc_notify_wait_alive(s, KEYS("READY=1"), pid, 10000, &st);
    if (ready == -2) {
        d.pid = -1;
        dump(s, name);
        cr_assert_fail("mmapiod (LISTEN_FDNAMES=%s) exited before READY=1: "
                       "wait status 0x%x", names, (unsigned)st);
    }
    if (ready < 0) {
        dump(s, name);
        cr_assert_fail("no READY=1 from mmapiod (LISTEN_FDNAMES=%s)", names);
    }
}

/* SIGTERM; exit 0 after STOPPING=1; then the fd store takes in every
 * message (all were sent before STOPPING=1, on the same socket). */
static void stop(struct svc_notify *s, const char *name)
{
    cr_assert_eq(kill(d.pid, SIGTERM), 0);
    int st;
    cr_assert_eq(hz_wait_exit(d.pid, HZ_STOP_TIMEOUT_MS, &st), 0,
                 "mmapiod ignored SIGTERM");
    d.pid = -1;
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
              "mmapiod did not exit 0 (wait status 0x%x)", (unsigned)st);
    if (svc_notify_wait(s, 0, KEYS("STOPPING=1"), 5000) < 0) {
        dump(s, name);
        cr_assert_fail("no STOPPING=1");
    }
    svc_fdstore_apply(&store, s, 0);
    svc_notify_close(s);
}

static void fill(uint8_t *p, size_t n, uint8_t seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(seed + i * 11 + (i >> 8));
}

/* ---- another uid's client, in a child ------------------------------ */

enum { AS_OPEN, AS_CREATE };

/* In a child as uid: opens (or creates, with perm 0600) anonymous `name`
 * in `mode`; for AS_OPEN with `expect`, compares its first `len` bytes,
 * for AS_CREATE writes them. Returns -mmapio_err (0: done), 100 when the
 * bytes differ, 126 when the uid could not be taken. */
static int as_uid(uid_t uid, int op, const char *name, mmapio_mode mode,
                  const void *bytes, size_t len)
{
    pid_t pid = hz_fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        if (setgroups(0, NULL) < 0 || setgid((gid_t)uid) < 0 ||
            setuid(uid) < 0)
            _exit(126);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        mmapio_client *c;
        int r = mmapio_connect(d.sock, &c);
        if (r)
            _exit(-r);
        mmapio_options o;
        mmapio_options_init(&o);
        o.anonymous = true;
        o.mode = mode;
        if (op == AS_CREATE) {
            o.create = o.exclusive = true;
            o.size = 4096;
            o.perm = 0600;
        }
        mmapio_map *m;
        r = mmapio_open(c, name, &o, &m);
        if (r)
            _exit(-r);
        if (op == AS_CREATE)
            r = mmapio_update_region(m, 0, bytes, len);
        else if (bytes && (len > mmapio_len(m) ||
                           memcmp(mmapio_as_ptr(m), bytes, len)))
            _exit(100);
        mmapio_unmap(m);
        mmapio_disconnect(c);
        _exit(-r);
    }
    int st = hz_wait_child(pid, 10000);
    return svc_exit_code(st);
}

/* ---- the test ------------------------------------------------------- */

/* The whole story, with the mappings in memfds of their own or carved
 * from arenas (arena_max). */
static void survive(void)
{
    bool root = geteuid() == 0;
    bool arenas = strcmp(arena_max, "0") != 0;
    struct svc_notify s1, s2, s3;
    static uint8_t xin[12288], yin[100], zin[64], buf[12288];
    fill(xin, sizeof(xin), 1);
    fill(yin, sizeof(yin), 2);
    fill(zin, sizeof(zin), 3);

    /* ---- the first daemon -------------------------------------------- */
    start(&s1, "notify1", -1);
    mmapio_client *old;
    hz_assert_ok(mmapio_connect(d.sock, &old));

    mmapio_options o;
    mmapio_options_init(&o);
    o.anonymous = o.create = o.exclusive = true;
    o.size = sizeof(xin);
    o.perm = 0644;
    o.flush_policy = (mmapio_flush_policy){ MMAPIO_FLUSH_EVERY_MILLIS, 250 };
    mmapio_map *x_old, *z_old, *gone;
    hz_assert_ok(mmapio_open(old, "x", &o, &x_old));
    hz_assert_ok(mmapio_update_region(x_old, 0, xin, sizeof(xin)));

    /* z: its policy changed after it was created. */
    o.size = 4096;
    o.perm = 0;
    o.flush_policy = (mmapio_flush_policy){ MMAPIO_FLUSH_EVERY_WRITES, 3 };
    hz_assert_ok(mmapio_open(old, "z", &o, &z_old));
    hz_assert_ok(mmapio_update_region(z_old, 100, zin, sizeof(zin)));
    hz_assert_ok(mmapio_set_flush_policy(
        z_old, (mmapio_flush_policy){ MMAPIO_FLUSH_ALWAYS, 0 }));
    /* ... and its size: grown, then shrunk (its sealed memfd keeps the
     * larger size; the daemon's is the one that comes back). */
    hz_assert_ok(mmapio_resize(z_old, 16384));
    hz_assert_ok(mmapio_resize(z_old, 8192));

    /* gone: deleted before the restart. */
    o.flush_policy = (mmapio_flush_policy){ MMAPIO_FLUSH_NEVER, 0 };
    hz_assert_ok(mmapio_open(old, "gone", &o, &gone));
    hz_assert_ok(mmapio_unmap(gone));
    hz_assert_ok(mmapio_anon_delete(old, "gone"));

    /* reborn: deleted, then created again under the same name. */
    mmapio_map *reborn;
    hz_assert_ok(mmapio_open(old, "reborn", &o, &reborn));
    hz_assert_ok(mmapio_update_region(reborn, 0, "first life", 10));
    hz_assert_ok(mmapio_unmap(reborn));
    hz_assert_ok(mmapio_anon_delete(old, "reborn"));
    o.size = 8192;
    hz_assert_ok(mmapio_open(old, "reborn", &o, &reborn));
    hz_assert_ok(mmapio_update_region(reborn, 0, "second life", 11));
    hz_assert_ok(mmapio_unmap(reborn));

    /* y: another user's, 0600. */
    if (root)
        cr_assert_eq(as_uid(NOBODY, AS_CREATE, "y", MMAPIO_MODE_READ_WRITE,
                            yin, sizeof(yin)), 0,
                     "uid %u could not create y", (unsigned)NOBODY);
    hz_assert_ok(mmapio_ping(old));

    stop(&s1, "notify1");
    /* anon-meta, x, z, reborn (and y); with arenas, anon-meta and one
     * arena per class: x (0644), z and reborn (0600) (and y, nobody's). */
    size_t want = arenas ? (root ? 4 : 3) : (root ? 5 : 4);
    cr_assert_eq(store.n, want, "the fd store holds %zu fds (%s), not %zu",
                 store.n, svc_fdstore_names(&store), want);
    cr_assert_geq(svc_fdstore_get(&store, "anon-meta"), 0,
                  "no anon-meta in the store: %s", svc_fdstore_names(&store));

    /* ---- the second daemon: socket and store from "systemd" ---------- */
    unlink(d.sock);
    int lfd = svc_listen_seqpacket(d.sock);
    cr_assert_geq(lfd, 0, "cannot listen on %s: %s", d.sock, strerror(-lfd));
    start(&s2, "notify2", lfd);
    close(lfd);

    /* The old daemon's client learns that it is gone, and keeps its
     * memory. */
    hz_assert_ret(mmapio_ping(old), MMAPIO_E_DISCONNECTED);
    cr_assert_arr_eq(mmapio_as_ptr(x_old), xin, sizeof(xin),
                     "the old client's mapping lost its bytes");
    hz_assert_ok(mmapio_read_into(x_old, 0, buf, sizeof(xin)));
    cr_assert_arr_eq(buf, xin, sizeof(xin));

    mmapio_client *c;
    hz_assert_ok(mmapio_connect(d.sock, &c));
    mmapio_map *x, *z, *dummy;
    hz_assert_ok(mmapio_anon_open(c, "x", &x));
    cr_assert_eq(mmapio_len(x), sizeof(xin));
    hz_assert_ok(mmapio_read_into(x, 0, buf, sizeof(xin)));
    cr_assert_arr_eq(buf, xin, sizeof(xin), "x lost its bytes in the restart");
    mmapio_flush_policy p = mmapio_flush_policy_of(x);
    cr_expect(p.kind == MMAPIO_FLUSH_EVERY_MILLIS && p.value == 250,
              "x's policy after the restart: kind %d value %llu",
              (int)p.kind, (unsigned long long)p.value);
    hz_assert_ok(mmapio_anon_open(c, "z", &z));
    cr_expect_eq(mmapio_len(z), 8192, "z was resized to 8192 before the "
                 "restart, has %llu bytes", (unsigned long long)mmapio_len(z));
    hz_assert_ok(mmapio_read_into(z, 100, buf, sizeof(zin)));
    cr_assert_arr_eq(buf, zin, sizeof(zin));
    p = mmapio_flush_policy_of(z);
    cr_expect_eq(p.kind, MMAPIO_FLUSH_ALWAYS,
                 "z's policy changed to always before the restart, is %d",
                 (int)p.kind);
    hz_assert_ret(mmapio_anon_open(c, "gone", &dummy), MMAPIO_E_NOT_FOUND);
    hz_assert_ok(mmapio_anon_open(c, "reborn", &reborn));
    cr_expect_eq(mmapio_len(reborn), 8192);
    hz_assert_ok(mmapio_read_into(reborn, 0, buf, 11));
    cr_expect_eq(memcmp(buf, "second life", 11), 0,
                 "reborn came back as its first life");
    mmapio_unmap(reborn);

    /* The restored x is the memory the old client still maps, not a
     * copy: what it writes now, the new daemon's clients see. */
    memcpy((char *)mmapio_as_mut_ptr(x_old) + 64, "late write", 10);
    memcpy(xin + 64, "late write", 10);
    hz_assert_ok(mmapio_read_into(x, 64, buf, 10));
    cr_expect_eq(memcmp(buf, "late write", 10), 0,
                 "x after the restart is a copy of the old memory");

    /* Owner and mode came back too. */
    struct svc_out out;
    const char *ls[] = { "--json", "ls", NULL };
    cr_assert_eq(svc_ctl(NULL, d.sock, NULL, ls, &out), 0);
    cr_assert_eq(svc_exit_code(out.status), 0, "mmapioctl ls: %s", out.err);
    svc_assert_json(out.out,
        "m = {e['name']: e for e in d['mappings'] if e['kind'] == 'anonymous'}\n"
        "assert m['x']['owner'] == euid and m['x']['perm'] == '0644', m['x']\n"
        "assert m['x']['size'] == 12288, m['x']\n"
        "assert m['x']['policy'] == 'every-millis:250', m['x']\n"
        "assert m['z']['policy'] == 'always', m['z']\n"
        "assert 'gone' not in m, m\n");
    if (root)
        svc_assert_json(out.out,
            "m = {e['name']: e for e in d['mappings'] if e['kind'] == 'anonymous'}\n"
            "assert m['y']['owner'] == 65534, m['y']\n"
            "assert m['y']['perm'] == '0600', m['y']\n");
    svc_out_free(&out);
    if (root) {
        cr_expect_eq(as_uid(NOBODY, AS_OPEN, "y", MMAPIO_MODE_READ_WRITE,
                            yin, sizeof(yin)), 0,
                     "y's owner cannot open it after the restart");
        cr_expect_eq(as_uid(OTHER, AS_OPEN, "y", MMAPIO_MODE_READ_ONLY, NULL, 0),
                     -MMAPIO_E_PERMISSION,
                     "another uid may read y (0600) after the restart");
        cr_expect_eq(as_uid(NOBODY, AS_OPEN, "x", MMAPIO_MODE_READ_ONLY,
                            xin, 4096), 0,
                     "others cannot read x (0644) after the restart");
        cr_expect_eq(as_uid(NOBODY, AS_OPEN, "x", MMAPIO_MODE_READ_WRITE,
                            NULL, 0), -MMAPIO_E_PERMISSION,
                     "others may write x (0644) after the restart");
    }

    /* New bytes, then a second restart: the new daemon stored the
     * mappings again under its own names. */
    memcpy(xin + 4000, "second generation", 17);
    hz_assert_ok(mmapio_update_region(x, 4000, "second generation", 17));
    mmapio_unmap(x);
    mmapio_unmap(z);
    mmapio_disconnect(c);
    stop(&s2, "notify2");
    cr_assert_eq(store.n, want, "after the second daemon the fd store holds "
                 "%zu fds (%s), not %zu", store.n, svc_fdstore_names(&store),
                 want);

    /* ---- the third daemon: only the store, its own socket ------------ */
    start(&s3, "notify3", -1);
    hz_assert_ok(mmapio_connect(d.sock, &c));
    hz_assert_ok(mmapio_anon_open(c, "x", &x));
    hz_assert_ok(mmapio_read_into(x, 0, buf, sizeof(xin)));
    cr_assert_arr_eq(buf, xin, sizeof(xin),
                     "x lost its bytes in the second restart");
    p = mmapio_flush_policy_of(x);
    cr_expect(p.kind == MMAPIO_FLUSH_EVERY_MILLIS && p.value == 250);
    hz_assert_ok(mmapio_anon_open(c, "z", &z));
    cr_expect_eq(mmapio_flush_policy_of(z).kind, MMAPIO_FLUSH_ALWAYS);
    if (root)
        cr_expect_eq(as_uid(NOBODY, AS_OPEN, "y", MMAPIO_MODE_READ_WRITE,
                            yin, sizeof(yin)), 0,
                     "y did not survive the second restart");
    mmapio_unmap(x);
    mmapio_unmap(z);
    mmapio_disconnect(c);
    stop(&s3, "notify3");

    mmapio_unmap(x_old);
    mmapio_unmap(z_old);
    mmapio_disconnect(old);
}

Test(restart, anonymous_mappings_survive_through_the_fd_store)
{
    arena_max = "0";
    survive();
}

/* Each arena's memfd is stored once, its mappings' offsets in the meta
 * log; they come back at their offsets. */
Test(restart, arena_mappings_survive_through_the_fd_store)
{
    arena_max = "1048576";
    survive();
}

Test(restart, without_a_meta_log_stored_fds_are_not_served)
{
    /* An anon-ID fd with no record of what it is (no anon-meta) cannot be
     * named: the daemon must start anyway and not invent a mapping. */
    struct svc_notify s1, s2;
    start(&s1, "notify1", -1);
    mmapio_client *c;
    mmapio_map *m;
    hz_assert_ok(mmapio_connect(d.sock, &c));
    hz_assert_ok(mmapio_anon_create(c, "orphan", 4096, &m));
    mmapio_unmap(m);
    mmapio_disconnect(c);
    stop(&s1, "notify1");

    /* Drop anon-meta from the store. */
    struct svc_fdstore keep = { 0 };
    for (size_t i = 0; i < store.n; i++) {
        if (!strcmp(store.names[i], "anon-meta")) {
            close(store.fds[i]);
            free(store.names[i]);
        } else {
            keep.names[keep.n] = store.names[i];
            keep.fds[keep.n++] = store.fds[i];
        }
    }
    store = keep;
    cr_assert_eq(store.n, 1, "store: %s", svc_fdstore_names(&store));

    start(&s2, "notify2", -1);
    hz_assert_ok(mmapio_connect(d.sock, &c));
    hz_assert_ret(mmapio_anon_open(c, "orphan", &m), MMAPIO_E_NOT_FOUND);
    mmapio_disconnect(c);
    stop(&s2, "notify2");
    /* What it could not use, it took out of the store. */
    cr_expect_eq(store.n, 1, "store after: %s", svc_fdstore_names(&store));
    cr_expect_geq(svc_fdstore_get(&store, "anon-meta"), 0);
}

Test(restart, a_long_meta_log_is_compacted_and_still_restores)
{
    /* 600 records for one live mapping: the log is rewritten into a new
     * generation (stored before the old one is removed). */
    struct svc_notify s1, s2;
    start(&s1, "notify1", -1);
    mmapio_client *c;
    mmapio_map *m;
    hz_assert_ok(mmapio_connect(d.sock, &c));
    hz_assert_ok(mmapio_anon_create(c, "keep", 4096, &m));
    hz_assert_ok(mmapio_update_region(m, 0, "KEEP", 4));
    mmapio_unmap(m);
    for (int i = 0; i < 300; i++) {
        char name[16];
        snprintf(name, sizeof(name), "t%d", i);
        hz_assert_ok(mmapio_anon_create(c, name, 4096, &m));
        mmapio_unmap(m);
        hz_assert_ok(mmapio_anon_delete(c, name));
    }
    mmapio_disconnect(c);
    stop(&s1, "notify1");
    cr_assert_lt(svc_fdstore_get(&store, "anon-meta"), 0,
                 "the first log was not replaced: %s", svc_fdstore_names(&store));
    cr_assert_eq(store.n, 2, "store: %s", svc_fdstore_names(&store));

    start(&s2, "notify2", -1);
    char buf[4];
    hz_assert_ok(mmapio_connect(d.sock, &c));
    hz_assert_ok(mmapio_anon_open(c, "keep", &m));
    hz_assert_ok(mmapio_read_into(m, 0, buf, sizeof(buf)));
    cr_assert(!memcmp(buf, "KEEP", 4), "contents lost in the restart");
    mmapio_unmap(m);
    hz_assert_ret(mmapio_anon_open(c, "t7", &m), MMAPIO_E_NOT_FOUND);
    mmapio_disconnect(c);
    stop(&s2, "notify2");
}

/* ---- kill -9 under holders, who re-attach (issue 15) ------------------ */

/* With the mappings in memfds of their own or carved from arenas: then
 * the restored arena's mappings are re-attached by their offsets. */
static void reattach_after_kill_9(void)
{
    struct svc_notify s1, s2;
    static uint8_t xin[8192], fin[4096], buf[8192];
    fill(xin, sizeof(xin), 5);
    fill(fin, sizeof(fin), 6);
    mmapio_flush_policy every250 = { MMAPIO_FLUSH_EVERY_MILLIS, 250 };
    mmapio_flush_policy writes3 = { MMAPIO_FLUSH_EVERY_WRITES, 3 };

    start(&s1, "notify1", -1);
    mmapio_client *c;
    hz_assert_ok(mmapio_connect(d.sock, &c));
    mmapio_options o;
    mmapio_options_init(&o);
    o.anonymous = o.create = o.exclusive = true;
    o.size = sizeof(xin);
    o.perm = 0640;
    o.flush_policy = every250;
    mmapio_map *x, *f;
    hz_assert_ok(mmapio_open(c, "x", &o, &x));
    hz_assert_ok(mmapio_update_region(x, 0, xin, sizeof(xin)));
    hz_assert_ok(mmapio_create_rw(c, "f.dat", sizeof(fin), &f));
    hz_assert_ok(mmapio_set_flush_policy(f, writes3));
    hz_assert_ok(mmapio_update_region(f, 0, fin, sizeof(fin)));
    struct hz_events ev = { { 0 } };
    mmapio_watcher *w;
    hz_assert_ok(mmapio_watch(x, hz_count_event, &ev, &w));
    hz_assert_ok(mmapio_ping(c)); /* everything stored by now */

    cr_assert_eq(kill(d.pid, SIGKILL), 0);
    int st;
    cr_assert_eq(hz_wait_exit(d.pid, HZ_STOP_TIMEOUT_MS, &st), 0);
    d.pid = -1;
    svc_fdstore_apply(&store, &s1, 0);
    svc_notify_close(&s1);
    cr_assert_geq(svc_fdstore_get(&store, "anon-meta"), 0,
                  "no anon-meta in the store: %s", svc_fdstore_names(&store));
    hz_pump(c, &ev.n[MMAPIO_CHANGE_DISCONNECTED], 1, 10000);
    cr_assert_eq(ev.n[MMAPIO_CHANGE_DISCONNECTED], 1);
    hz_assert_ret(mmapio_client_dispatch(c, 0), MMAPIO_E_DISCONNECTED);
    memcpy(xin + 50, "outage", 6);
    hz_assert_ok(mmapio_update_region(x, 50, "outage", 6));

    start(&s2, "notify2", -1);
    hz_assert_ok(mmapio_reconnect(c));
    hz_assert_ok(mmapio_refresh(x));
    hz_assert_ok(mmapio_refresh(f));
    mmapio_flush_policy p = mmapio_flush_policy_of(x);
    cr_assert(p.kind == every250.kind && p.value == every250.value);
    p = mmapio_flush_policy_of(f);
    cr_assert(p.kind == writes3.kind && p.value == writes3.value);

    mmapio_client *c2;
    hz_assert_ok(mmapio_connect(d.sock, &c2));
    mmapio_map *x2;
    hz_assert_ok(mmapio_anon_open(c2, "x", &x2));
    hz_assert_ok(mmapio_read_into(x2, 0, buf, sizeof(xin)));
    cr_assert_arr_eq(buf, xin, sizeof(xin));
    mmapio_map_info *info;
    hz_assert_ok(mmapio_admin_stat(c2, "x", true, &info));
    cr_assert_eq(info->owner, geteuid());
    cr_assert_eq(info->perm, 0640);
    cr_assert_eq(info->holders, 2, "the re-attached holder is not counted");
    mmapio_map_info_free(info, 1);

    hz_pump(c, &ev.n[MMAPIO_CHANGE_RECONNECTED], 1, 10000);
    cr_assert_eq(ev.n[MMAPIO_CHANGE_RECONNECTED], 1);
    int before = ev.n[MMAPIO_CHANGE_MODIFIED];
    hz_assert_ok(mmapio_update_region(x2, 0, "new", 3));
    hz_pump(c, &ev.n[MMAPIO_CHANGE_MODIFIED], before + 1, 10000);
    cr_assert_gt(ev.n[MMAPIO_CHANGE_MODIFIED], before, "the watch is dead");

    mmapio_unwatch(w);
    mmapio_unmap(x2);
    mmapio_disconnect(c2);
    mmapio_unmap(x);
    mmapio_unmap(f);
    mmapio_disconnect(c);
    stop(&s2, "notify2");
}

Test(restart, holders_reattach_after_kill_9_through_the_fd_store)
{
    arena_max = "0";
    reattach_after_kill_9();
}

Test(restart, carved_holders_reattach_after_kill_9_through_the_fd_store)
{
    arena_max = "1048576";
    reattach_after_kill_9();
}
