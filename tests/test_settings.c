/*
 * test_settings: one table of settings (config_keys in daemon/base/config.c)
 * and the documents that must agree with it (issue 14).
 *
 *   man_page       every key in mmapiod(8) as "key, --option ARG" with its
 *                  values and default, and no key or option it lacks
 *   help           the same in mmapiod --help
 *   options        every key's option reaches the table's parser
 *   sections       each man page has FILES, ENVIRONMENT and EXAMPLES
 *   default_config root's mmapiod reads SYSCONFDIR/mmapio/mmapiod.conf
 *                  when given no --config (in a mount namespace of its own,
 *                  so the machine's file is never touched)
 */
#include <criterion/criterion.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <libgen.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "harness.h"

static char *slurp(const char *path)
{
    static char buf[256 * 1024];
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

/* roff source as read: font escapes gone, "\-" as "-". */
static char *unroff(const char *src)
{
    char *out = malloc(strlen(src) + 1), *o = out;
    cr_assert_not_null(out);
    for (const char *s = src; *s;) {
        if (s[0] == '\\' && s[1] == 'f' && s[2]) {
            s += 3;
        } else if (s[0] == '\\' && (s[1] == '-' || s[1] == 'e')) {
            *o++ = s[1] == '-' ? '-' : '\\';
            s += 2;
        } else if (s[0] == '\\' && s[1] == '&') {
            s += 2;
        } else {
            *o++ = *s++;
        }
    }
    *o = '\0';
    return out;
}

/* Runs argv, its stdout and stderr into *out / *err; the exit status. */
static int run(const char *const *argv, char **out, char **err)
{
    char o_path[] = "/tmp/mmapio-settings-out-XXXXXX";
    char e_path[] = "/tmp/mmapio-settings-err-XXXXXX";
    int o = mkstemp(o_path), e = mkstemp(e_path);
    cr_assert(o >= 0 && e >= 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        dup2(o, 1);
        dup2(e, 2);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    int st = hz_wait_child(pid, 20000);
    close(o);
    close(e);
    *out = slurp(o_path);
    *err = slurp(e_path);
    unlink(o_path);
    unlink(e_path);
    return st;
}

static void entry_line(const struct config_key *k, char *buf, size_t size)
{
    char opt[64];
    config_option_name(k, opt, sizeof(opt));
    const char *arg = config_arg_name(k);
    snprintf(buf, size, "%s, %s%s%s", k->key, opt, *arg ? " " : "", arg);
}

/* "Values: R. Default: D." of k. */
static void facts(const struct config_key *k, char *buf, size_t size)
{
    char def[256], range[64];
    config_default_text(k, def, sizeof(def));
    config_range_text(k, range, sizeof(range));
    snprintf(buf, size, "Values: %s. Default: %s.", range, def);
}

/* Runs of white space as one space. */
static void squeeze(char *s)
{
    char *o = s;
    for (char *p = s; *p; p++) {
        if (isspace((unsigned char)*p)) {
            if (o > s && o[-1] != ' ')
                *o++ = ' ';
        } else {
            *o++ = *p;
        }
    }
    *o = '\0';
}

static bool known_option(const char *opt)
{
    /* mmapiod's own, and systemctl's in EXAMPLES */
    static const char *const fixed[] = { "--config", "--help", "--version",
                                         "--now" };
    for (size_t i = 0; i < 4; i++)
        if (!strcmp(opt, fixed[i]))
            return true;
    for (size_t i = 0; i < config_n_keys; i++) {
        char o[64];
        config_option_name(&config_keys[i], o, sizeof(o));
        if (!strcmp(opt, o))
            return true;
    }
    return false;
}

static bool known_key(const char *key)
{
    for (size_t i = 0; i < config_n_keys; i++)
        if (!strcmp(key, config_keys[i].key))
            return true;
    return false;
}

/* Every "--word" and every max_ / reserved_ word in text is the table's. */
static void only_known(const char *text, const char *where)
{
    for (const char *p = text; (p = strstr(p, "--")); p += 2) {
        if (p > text && (isalnum((unsigned char)p[-1]) || p[-1] == '-'))
            continue;
        char opt[64];
        size_t n = 2 + strspn(p + 2, "abcdefghijklmnopqrstuvwxyz-");
        if (n == 2 || n >= sizeof(opt))
            continue;
        snprintf(opt, sizeof(opt), "%.*s", (int)n, p);
        while (opt[strlen(opt) - 1] == '-')
            opt[strlen(opt) - 1] = '\0';
        cr_expect(known_option(opt), "%s names %s, which mmapiod lacks", where, opt);
    }
    static const char *const prefixes[] = { "max_", "reserved_" };
    for (size_t i = 0; i < 2; i++) {
        for (const char *p = text; (p = strstr(p, prefixes[i])); p++) {
            if (p > text && (isalnum((unsigned char)p[-1]) || p[-1] == '_'))
                continue;
            char key[64];
            size_t n = strspn(p, "abcdefghijklmnopqrstuvwxyz_");
            snprintf(key, sizeof(key), "%.*s", (int)n, p);
            cr_expect(known_key(key), "%s names %s, which is no setting", where, key);
        }
    }
}

TestSuite(settings, .timeout = 60);

Test(settings, man_page)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/doc/mmapiod.8", env_or("MMAPIO_BUILD_ROOT"));
    char *src = slurp(path);
    char *man = unroff(src);
    for (size_t i = 0; i < config_n_keys; i++) {
        const struct config_key *k = &config_keys[i];
        char line[128], want[512], needle[140];
        entry_line(k, line, sizeof(line));
        snprintf(needle, sizeof(needle), ".TP\n%s\n", line);
        const char *at = strstr(man, needle);
        cr_expect_not_null(at, "mmapiod.8 has no entry \"%s\"", line);
        if (!at)
            continue;
        at += strlen(needle);
        const char *end = at;
        while ((end = strchr(end, '\n')) && end[1] != '.')
            end++;
        char *para = strndup(at, end ? (size_t)(end - at) : strlen(at));
        squeeze(para);
        facts(k, want, sizeof(want));
        cr_expect(strstr(para, want) != NULL,
                  "mmapiod.8, %s: \"%s\" is not in: %s", k->key, want, para);
        free(para);
    }
    only_known(man, "mmapiod.8");
    cr_expect(strstr(man, CONFIG_DEFAULT_FILE) != NULL,
              "mmapiod.8 does not name %s", CONFIG_DEFAULT_FILE);
    free(man);
    free(src);
}

Test(settings, help)
{
    const char *bin = hz_build_file("MMAPIOD", "../daemon/mmapiod");
    const char *argv[] = { bin, "--help", NULL };
    char *out, *err;
    int st = run(argv, &out, &err);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "--help: 0x%x %s", st, err);
    squeeze(out);
    for (size_t i = 0; i < config_n_keys; i++) {
        const struct config_key *k = &config_keys[i];
        char line[128], want[512];
        entry_line(k, line, sizeof(line));
        facts(k, want, sizeof(want));
        const char *at = strstr(out, line);
        cr_expect_not_null(at, "--help lacks \"%s\"", line);
        cr_expect(at && strstr(at, want), "--help, %s: lacks \"%s\"", k->key, want);
    }
    only_known(out, "--help");
    cr_expect(strstr(out, CONFIG_DEFAULT_FILE) != NULL,
              "--help does not name %s", CONFIG_DEFAULT_FILE);
    free(out);
    free(err);
}

/* --OPTION with a bad value: refused by the table's parser, which names
 * the option and the values it takes. */
Test(settings, options)
{
    const char *bin = hz_build_file("MMAPIOD", "../daemon/mmapiod");
    for (size_t i = 0; i < config_n_keys; i++) {
        const struct config_key *k = &config_keys[i];
        if (k->kind == CONFIG_BOOL)
            continue; /* a switch takes no value */
        char opt[64], arg[96], range[64];
        config_option_name(k, opt, sizeof(opt));
        config_range_text(k, range, sizeof(range));
        snprintf(arg, sizeof(arg), "%s=%s", opt,
                 k->kind == CONFIG_GROUP ? "no-such-group-anywhere" : "");
        const char *argv[] = { bin, arg, NULL };
        char *out, *err;
        int st = run(argv, &out, &err);
        cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 2, "%s: status 0x%x", arg, st);
        cr_expect(strstr(err, opt) && strstr(err, "bad value") && strstr(err, range),
                  "%s: %s", arg, err);
        free(out);
        free(err);
    }
}

static void has_sections(const char *path)
{
    char *src = slurp(path);
    static const char *const need[] = { "\n.SH NAME", "\n.SH SYNOPSIS",
                                        "\n.SH FILES", "\n.SH ENVIRONMENT",
                                        "\n.SH EXAMPLES", "\n.SH SEE ALSO" };
    for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++)
        cr_expect(strstr(src, need[i]) != NULL, "%s lacks %s", path, need[i] + 1);
    free(src);
}

Test(settings, sections)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/doc/mmapiod.8", env_or("MMAPIO_BUILD_ROOT"));
    has_sections(path);
    snprintf(path, sizeof(path), "%s/doc/mmapioctl.1", env_or("MMAPIO_SOURCE_ROOT"));
    has_sections(path);
    snprintf(path, sizeof(path), "%s/doc/mmapio.3", env_or("MMAPIO_SOURCE_ROOT"));
    has_sections(path);
}

/* ---- the default config file ---------------------------------------- */

static char tmp[128];

/* mmapiod with `extra` options on tmp's socket and root, as uid (0:
 * ourselves); its exit status when it stops by itself within a moment,
 * else (it is serving) -1 after a SIGTERM. Its stderr into *err. */
static int daemon_run(uid_t uid, const char *extra, char **err)
{
    char sock[256], root[256], log[256];
    snprintf(sock, sizeof(sock), "%s/run-%u/mmapiod.sock", tmp, (unsigned)uid);
    snprintf(root, sizeof(root), "%s/root-%u", tmp, (unsigned)uid);
    snprintf(log, sizeof(log), "%s/log", tmp);
    mkdir(root, 0700);
    cr_assert_eq(chown(root, uid, uid), 0);
    char run_dir[256];
    snprintf(run_dir, sizeof(run_dir), "%s/run-%u", tmp, (unsigned)uid);
    mkdir(run_dir, 0700);
    cr_assert_eq(chown(run_dir, uid, uid), 0);
    int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    cr_assert_geq(fd, 0);
    const char *bin = hz_build_file("MMAPIOD", "../daemon/mmapiod");
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        dup2(fd, 2);
        if (uid && (setgroups(0, NULL) < 0 || setgid(uid) < 0 || setuid(uid) < 0))
            _exit(126);
        if (extra)
            execl(bin, bin, "--socket", sock, "--root", root, extra, (char *)NULL);
        else
            execl(bin, bin, "--socket", sock, "--root", root, (char *)NULL);
        _exit(127);
    }
    close(fd);
    int st = -1;
    int64_t end = hz_now_ms() + HZ_READY_TIMEOUT_MS;
    for (;;) { /* until it exits, or serves */
        if (waitpid(pid, &st, WNOHANG) == pid)
            break;
        int c = raw_connect(sock);
        if (c >= 0) {
            close(c);
            kill(pid, SIGTERM);
            hz_wait_exit(pid, HZ_STOP_TIMEOUT_MS, NULL);
            st = -1;
            break;
        }
        cr_assert_lt(hz_now_ms(), end, "mmapiod neither served nor exited");
        usleep(5000);
    }
    *err = slurp(log);
    return st;
}

Test(settings, default_config)
{
    if (geteuid() != 0)
        cr_skip_test("needs root: a mount namespace over %s", CONFIG_DEFAULT_FILE);
    char file[] = CONFIG_DEFAULT_FILE, file2[] = CONFIG_DEFAULT_FILE;
    const char *dir = dirname(file);          /* SYSCONFDIR/mmapio */
    const char *parent = dirname(dirname(file2)); /* SYSCONFDIR */
    struct stat st;
    if (unshare(CLONE_NEWNS) < 0)
        cr_skip_test("no mount namespace: %s", strerror(errno));
    cr_assert_eq(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), 0);
    /* A fresh SYSCONFDIR/mmapio, seen by this test only. */
    if (stat(dir, &st) == 0)
        cr_assert_eq(mount("tmpfs", dir, "tmpfs", 0, "mode=0755"), 0);
    else if (stat(parent, &st) == 0 && strcmp(parent, "/etc") != 0)
        cr_assert_eq(mount("tmpfs", parent, "tmpfs", 0, "mode=0755"), 0);
    else
        cr_skip_test("cannot make %s without touching %s", dir, parent);
    mkdir(dir, 0755);

    snprintf(tmp, sizeof(tmp), "/tmp/mmapio-settings-XXXXXX");
    cr_assert_not_null(mkdtemp(tmp));
    cr_assert_eq(chmod(tmp, 0755), 0);
    char *err;

    /* A bad file: root's mmapiod with no --config reads it and says so. */
    const char bad[] = "# test\nmax_frame = 1\n";
    cr_assert_eq(hz_write_file(CONFIG_DEFAULT_FILE, bad, strlen(bad)), 0);
    int s = daemon_run(0, NULL, &err);
    cr_expect(s >= 0 && WIFEXITED(s) && WEXITSTATUS(s) == 1,
              "started despite a bad %s: %s", CONFIG_DEFAULT_FILE, err);
    cr_expect(strstr(err, CONFIG_DEFAULT_FILE ":2:") != NULL, "%s", err);
    free(err);

    /* --config names another file: the default is not read. */
    char other[256], opt[300];
    snprintf(other, sizeof(other), "%s/other.conf", tmp);
    cr_assert_eq(hz_write_file(other, "verbose = no\n", 13), 0);
    snprintf(opt, sizeof(opt), "--config=%s", other);
    s = daemon_run(0, opt, &err);
    cr_expect_eq(s, -1, "with --config: 0x%x %s", s, err);
    cr_expect(strstr(err, other) != NULL, "no word of %s: %s", other, err);
    free(err);

    /* Another user's mmapiod reads no file it was not given. */
    s = daemon_run(65534, NULL, &err);
    cr_expect_eq(s, -1, "nobody's daemon: 0x%x %s", s, err);
    cr_expect(strstr(err, "settings from") == NULL, "%s", err);
    free(err);

    /* A good file is read and logged. */
    const char good[] = "hello_timeout_ms = 4000\n";
    cr_assert_eq(hz_write_file(CONFIG_DEFAULT_FILE, good, strlen(good)), 0);
    s = daemon_run(0, NULL, &err);
    cr_expect_eq(s, -1, "with a good file: 0x%x %s", s, err);
    cr_expect(strstr(err, "settings from " CONFIG_DEFAULT_FILE) != NULL, "%s", err);
    free(err);

    /* None at all: defaults, no complaint. */
    unlink(CONFIG_DEFAULT_FILE);
    s = daemon_run(0, NULL, &err);
    cr_expect_eq(s, -1, "with no file: 0x%x %s", s, err);
    cr_expect(strstr(err, "settings from") == NULL, "%s", err);
    free(err);
    hz_rm_rf(tmp);
}
