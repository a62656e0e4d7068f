/*
 * test_units: the systemd units as shipped. systemd-analyze verify accepts
 * systemd/mmapiod.socket and the generated mmapiod.service (its ExecStart
 * pointed at this build's mmapiod, since verify checks that the binary
 * exists), and both say what the service needs: Type=notify, an fd store,
 * the hardening of a daemon with only a local socket, a sequential-packet
 * socket. The sysusers.d and tmpfiles.d snippets apply (under a temporary
 * root) and make what the service and mmapiod.conf rely on.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "svc.h"

static char dir[128];

static void setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/mmapio-units-XXXXXX");
    cr_assert_not_null(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
}

static void teardown(void)
{
    if (dir[0])
        hz_rm_rf(dir);
}

TestSuite(units, .init = setup, .fini = teardown, .timeout = 60);

static char *slurp(const char *path)
{
    static char buf[64 * 1024];
    long n = hz_read_file(path, buf, sizeof(buf) - 1);
    cr_assert_geq(n, 0, "cannot read %s: %s", path, strerror((int)-n));
    buf[n] = '\0';
    return strdup(buf);
}

static const char *env_or(const char *name)
{
    const char *v = getenv(name);
    cr_assert(v && *v, "$%s is not set (meson sets it)", name);
    return v;
}

/* true when `text` has a line "key=value": the whole value equal to
 * `value`, or starting with `value` when it ends in '*', or any value
 * when `value` is NULL. */
static bool has_setting(const char *text, const char *key, const char *value)
{
    size_t kl = strlen(key);
    size_t vl = value ? strlen(value) : 0;
    bool prefix = vl > 0 && value[vl - 1] == '*';
    for (const char *l = text; l && *l;) {
        const char *nl = strchr(l, '\n');
        size_t ll = nl ? (size_t)(nl - l) : strlen(l);
        if (ll > kl && !strncmp(l, key, kl) && l[kl] == '=') {
            const char *v = l + kl + 1;
            size_t len = ll - kl - 1;
            if (!value || (prefix ? len >= vl - 1 && !strncmp(v, value, vl - 1)
                                  : len == vl && !strncmp(v, value, vl)))
                return true;
        }
        l = nl ? nl + 1 : NULL;
    }
    return false;
}

/* The service with ExecStart's program replaced by `bin`. */
static char *point_exec_at(const char *unit, const char *bin)
{
    const char *at = strstr(unit, "\nExecStart=");
    cr_assert_not_null(at, "the service has no ExecStart=");
    at += strlen("\nExecStart=");
    while (*at == '-' || *at == '@' || *at == ':' || *at == '+' || *at == '!')
        at++;
    const char *end = at + strcspn(at, " \n");
    size_t len = strlen(unit) + strlen(bin) + 1;
    char *out = malloc(len);
    cr_assert_not_null(out);
    snprintf(out, len, "%.*s%s%s", (int)(at - unit), unit, bin, end);
    return out;
}

static void write_text(const char *path, const char *text)
{
    int r = hz_write_file(path, text, strlen(text));
    cr_assert_eq(r, 0, "cannot write %s: %s", path, strerror(-r));
}

Test(units, service_settings)
{
    char *svc = slurp(env_or("MMAPIOD_SERVICE"));
    static const char *const need[][2] = {
        { "Type", "notify" },
        { "FileDescriptorStoreMax", NULL },
        { "NoNewPrivileges", "yes" },
        { "RestrictAddressFamilies", "AF_UNIX" }, /* and nothing else */
        { "PrivateNetwork", "yes" },
        { "SystemCallFilter", NULL },
        { "ProtectSystem", "strict" },
        { "StateDirectory", NULL },
        { "RuntimeDirectory", NULL },
        { "WatchdogSec", NULL },
        { "ExecStart", "/*" },
        { "PrivateMounts", "yes" },
        { "ProtectProc", "invisible" },
        { "ProcSubset", "pid" },
    };
    for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++)
        cr_expect(has_setting(svc, need[i][0], need[i][1]),
                  "mmapiod.service lacks %s=%s", need[i][0],
                  need[i][1] ? need[i][1] : "...");
    /* FileDescriptorStoreMax must be > 0 for the store to keep anything. */
    const char *fsm = strstr(svc, "\nFileDescriptorStoreMax=");
    cr_assert_not_null(fsm);
    cr_expect_gt(atol(fsm + strlen("\nFileDescriptorStoreMax=")), 0,
                 "FileDescriptorStoreMax is 0: the fd store is off");
    cr_expect_null(strstr(svc, "@SBINDIR@"), "ExecStart was not configured");
    free(svc);
}

Test(units, socket_settings)
{
    char *path = NULL;
    cr_assert(asprintf(&path, "%s/systemd/mmapiod.socket",
                       env_or("MMAPIO_SOURCE_ROOT")) > 0);
    char *sock = slurp(path);
    cr_expect(has_setting(sock, "ListenSequentialPacket", "/*"),
              "mmapiod.socket is not ListenSequentialPacket=/PATH:\n%s", sock);
    cr_expect(has_setting(sock, "SocketMode", "0666"),
              "mmapiod.socket: anyone may connect, SocketMode=0666");
    free(sock);
    free(path);
}

Test(units, verify)
{
    if (!svc_have("systemd-analyze"))
        cr_skip_test("systemd-analyze is not installed");
    const char *mmapiod = hz_build_file("MMAPIOD", "../../daemon/mmapiod");
    cr_assert_not_null(mmapiod, "no mmapiod in the build tree ($MMAPIOD)");

    char *svc_in = slurp(env_or("MMAPIOD_SERVICE"));
    char *svc = point_exec_at(svc_in, mmapiod);
    char *path = NULL;
    cr_assert(asprintf(&path, "%s/systemd/mmapiod.socket",
                       env_or("MMAPIO_SOURCE_ROOT")) > 0);
    char *sock = slurp(path);

    char svc_path[256], sock_path[256];
    snprintf(svc_path, sizeof(svc_path), "%s/mmapiod.service", dir);
    snprintf(sock_path, sizeof(sock_path), "%s/mmapiod.socket", dir);
    write_text(svc_path, svc);
    write_text(sock_path, sock);

    const char *argv[] = { "systemd-analyze", "verify", "--man=no",
                           sock_path, svc_path, NULL };
    struct svc_out o;
    cr_assert_eq(svc_run(argv, NULL, NULL, 30000, &o), 0);
    cr_expect_eq(svc_exit_code(o.status), 0,
                 "systemd-analyze verify failed (status 0x%x):\n%s%s",
                 (unsigned)o.status, o.out, o.err);
    /* Unknown or misspelt settings are only warnings to verify: none. */
    cr_expect(!strstr(o.err, "Unknown") && !strstr(o.err, "ignoring") &&
              !strstr(o.err, "not executable"),
              "systemd-analyze verify warned:\n%s", o.err);
    svc_out_free(&o);

    /* And verify does catch a service whose program is missing, so the
     * check above means something. */
    free(svc);
    svc = point_exec_at(svc_in, "/nonexistent/mmapiod");
    write_text(svc_path, svc);
    cr_assert_eq(svc_run(argv, NULL, NULL, 30000, &o), 0);
    cr_expect_neq(svc_exit_code(o.status), 0,
                  "verify accepted a missing ExecStart program:\n%s", o.err);
    svc_out_free(&o);

    free(svc);
    free(svc_in);
    free(sock);
    free(path);
}

/* The sysusers.d snippet creates the admin group mmapiod.conf names. */
Test(units, sysusers_creates_the_admin_group)
{
    if (!svc_have("systemd-sysusers"))
        cr_skip_test("systemd-sysusers is not installed");
    const char *src = env_or("MMAPIO_SOURCE_ROOT");
    char *path = NULL, *conf_path = NULL, etc[300], group[300];
    cr_assert(asprintf(&path, "%s/systemd/sysusers.conf", src) > 0);
    cr_assert(asprintf(&conf_path, "%s/systemd/mmapiod.conf", src) > 0);
    snprintf(etc, sizeof(etc), "%s/etc", dir);
    cr_assert_eq(mkdir(etc, 0755), 0);

    const char *argv[] = { "systemd-sysusers", "--root", dir, path, NULL };
    struct svc_out o;
    cr_assert_eq(svc_run(argv, NULL, NULL, 30000, &o), 0);
    cr_assert_eq(svc_exit_code(o.status), 0, "systemd-sysusers: %s", o.err);
    svc_out_free(&o);

    char *conf = slurp(conf_path);
    const char *ag = strstr(conf, "\nadmin_group");
    cr_assert_not_null(ag, "mmapiod.conf names no admin_group");
    ag = strchr(ag, '=');
    cr_assert_not_null(ag);
    ag += 1 + strspn(ag + 1, " \t");
    char want[128];
    snprintf(want, sizeof(want), "\n%.*s:", (int)strcspn(ag, " \t\n"), ag);

    snprintf(group, sizeof(group), "%s/etc/group", dir);
    char *groups = slurp(group);
    char *lines = NULL;
    cr_assert(asprintf(&lines, "\n%s", groups) > 0);
    cr_expect(strstr(lines, want) != NULL,
              "sysusers.conf does not create the admin group%s of "
              "mmapiod.conf; etc/group:\n%s", want, groups);
    free(lines);
    free(groups);
    free(conf);
    free(path);
    free(conf_path);
}

/* The tmpfiles.d snippet makes the data root and the socket's directory
 * that ExecStart and the socket unit use. */
Test(units, tmpfiles_creates_the_service_directories)
{
    if (!svc_have("systemd-tmpfiles"))
        cr_skip_test("systemd-tmpfiles is not installed");
    if (geteuid() != 0)
        cr_skip_test("needs root: the entries chown to root");
    char *path = NULL;
    cr_assert(asprintf(&path, "%s/systemd/tmpfiles.conf",
                       env_or("MMAPIO_SOURCE_ROOT")) > 0);
    const char *argv[] = { "systemd-tmpfiles", "--root", dir, "--create",
                           path, NULL };
    struct svc_out o;
    cr_assert_eq(svc_run(argv, NULL, NULL, 30000, &o), 0);
    cr_assert_eq(svc_exit_code(o.status), 0, "systemd-tmpfiles: %s", o.err);
    cr_expect_eq(o.err[0], '\0', "systemd-tmpfiles warned: %s", o.err);
    svc_out_free(&o);

    /* The directories ExecStart names (--root DIR, --socket DIR/...). */
    char *svc = slurp(env_or("MMAPIOD_SERVICE"));
    const char *want[2] = { "--root ", "--socket " };
    for (size_t i = 0; i < 2; i++) {
        const char *a = strstr(svc, want[i]);
        cr_assert_not_null(a, "ExecStart has no %s", want[i]);
        a += strlen(want[i]);
        char p[512], full[1024];
        snprintf(p, sizeof(p), "%.*s", (int)strcspn(a, " \n"), a);
        if (i == 1)
            *strrchr(p, '/') = '\0';
        snprintf(full, sizeof(full), "%s%s", dir, p);
        struct stat st;
        cr_expect(stat(full, &st) == 0 && S_ISDIR(st.st_mode),
                  "tmpfiles.conf does not create %s", p);
        cr_expect_eq(st.st_mode & 07777, 0755, "%s: mode %o", p,
                     (unsigned)(st.st_mode & 07777));
    }
    free(svc);
    free(path);
}

/* What systemd listens on is where the daemon would listen itself. */
Test(units, socket_path_matches_execstart)
{
    char *svc = slurp(env_or("MMAPIOD_SERVICE"));
    char *path = NULL;
    cr_assert(asprintf(&path, "%s/systemd/mmapiod.socket",
                       env_or("MMAPIO_SOURCE_ROOT")) > 0);
    char *sock = slurp(path);
    const char *l = strstr(sock, "ListenSequentialPacket=");
    cr_assert_not_null(l);
    l += strlen("ListenSequentialPacket=");
    const char *a = strstr(svc, "--socket ");
    cr_assert_not_null(a);
    a += strlen("--socket ");
    size_t ll = strcspn(l, " \n"), al = strcspn(a, " \n");
    cr_expect(ll == al && !strncmp(l, a, ll),
              "mmapiod.socket listens on %.*s, ExecStart says --socket %.*s",
              (int)ll, l, (int)al, a);
    free(sock);
    free(svc);
    free(path);
}

/* systemd-analyze security rates the service at most 1.3 (of 10). */
Test(units, security_exposure)
{
    if (!svc_have("systemd-analyze"))
        cr_skip_test("systemd-analyze is not installed");
    const char *mmapiod = hz_build_file("MMAPIOD", "../../daemon/mmapiod");
    cr_assert_not_null(mmapiod, "no mmapiod in the build tree ($MMAPIOD)");
    char *svc_in = slurp(env_or("MMAPIOD_SERVICE"));
    char *svc = point_exec_at(svc_in, mmapiod);
    char svc_path[256];
    snprintf(svc_path, sizeof(svc_path), "%s/mmapiod.service", dir);
    write_text(svc_path, svc);

    const char *argv[] = { "systemd-analyze", "security", "--offline=yes",
                           "--no-pager", svc_path, NULL };
    struct svc_out o;
    cr_assert_eq(svc_run(argv, NULL, NULL, 30000, &o), 0);
    const char *at = strstr(o.out, "Overall exposure level for mmapiod.service: ");
    if (!at && strstr(o.err, "offline"))
        cr_skip_test("this systemd-analyze has no --offline: %s", o.err);
    cr_assert_not_null(at, "no exposure level in:\n%s%s", o.out, o.err);
    double level = atof(at + strlen("Overall exposure level for mmapiod.service: "));
    cr_expect_leq(level, 1.3, "exposure %.1f > 1.3:\n%s", level, o.out);
    cr_expect_gt(level, 0.0, "no level read:\n%s", o.out);
    svc_out_free(&o);
    free(svc);
    free(svc_in);
}
