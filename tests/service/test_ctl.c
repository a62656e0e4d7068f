/*
 * test_ctl: the mmapioctl program against a real daemon while a client of
 * the test holds an anonymous mapping (read-write) and a file mapping (one
 * read-write and one read-only holder): human tables, --json parsed by
 * python3, policy and flush acting on the holders, exit codes, --help,
 * watch streaming events, and who may see and change what (an ordinary
 * user only their own; root and the admin group everything).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <grp.h>
#include <unistd.h>

#include "svc.h"

#define ANON "ctl-anon"
#define FILE_NAME "ctl.bin"
#define ANON_SIZE 8192
#define FILE_SIZE 16384

static void setup(void)
{
    hz_setup();
    chmod(hz.dir, 0755); /* other uids' clients reach the socket */
}

TestSuite(ctl, .init = setup, .fini = hz_teardown, .timeout = 60);

/* What the test's client holds. */
static mmapio_client *c, *c2;
static mmapio_map *anon, *frw, *fro;

static void hold(void)
{
    c = hz_client();
    c2 = hz_client();
    hz_assert_ok(mmapio_anon_create(c, ANON, ANON_SIZE, &anon));
    hz_assert_ok(mmapio_update_region(anon, 0, "anonymous bytes", 15));
    hz_assert_ok(mmapio_create_rw(c, FILE_NAME, FILE_SIZE, &frw));
    hz_assert_ok(mmapio_update_region(frw, 0, "file bytes", 10));
    hz_assert_ok(mmapio_open_ro(c2, FILE_NAME, &fro));
}

static void release(void)
{
    mmapio_unmap(anon);
    mmapio_unmap(frw);
    mmapio_unmap(fro);
    mmapio_disconnect(c);
    mmapio_disconnect(c2);
}

/* Runs mmapioctl on hz's socket; returns its exit code (-1: no exit). */
static int ctl(struct svc_out *o, const struct svc_as *as,
               const char *const *args)
{
    int r = svc_ctl(NULL, hz.sock, as, args, o);
    cr_assert_eq(r, 0, "cannot run mmapioctl ($MMAPIOCTL): %s", strerror(-r));
    return svc_exit_code(o->status);
}

#define ARGS(...) ((const char *const[]){ __VA_ARGS__, NULL })

/* Runs mmapioctl, asserting exit code `want`; its output stays in *o. */
#define ctl_expect(o, as, want, ...)                                      \
    do {                                                                  \
        int ce_code_ = ctl((o), (as), ARGS(__VA_ARGS__));                 \
        cr_assert_eq(ce_code_, (want),                                    \
                     "mmapioctl %s: exit %d, expected %d\nstdout: %s\n"   \
                     "stderr: %s", #__VA_ARGS__, ce_code_, (want),        \
                     (o)->out, (o)->err);                                 \
    } while (0)

static bool has_line_with(const char *text, const char *a, const char *b)
{
    for (const char *l = text; l && *l;) {
        const char *nl = strchr(l, '\n');
        size_t ll = nl ? (size_t)(nl - l) : strlen(l);
        char line[1024];
        snprintf(line, sizeof(line), "%.*s", (int)ll, l);
        if (strstr(line, a) && (!b || strstr(line, b)))
            return true;
        l = nl ? nl + 1 : NULL;
    }
    return false;
}

/* ---- human output ---------------------------------------------------- */

Test(ctl, human_tables)
{
    struct svc_out o;
    hold();

    ctl_expect(&o, NULL, 0, "status");
    cr_expect(has_line_with(o.out, "version", MMAPIO_VERSION), "%s", o.out);
    cr_expect(has_line_with(o.out, "uptime_s", " s"), "%s", o.out);
    cr_expect(has_line_with(o.out, "clients", NULL), "%s", o.out);
    cr_expect(has_line_with(o.out, "mappings", "2"), "%s", o.out);
    cr_expect(has_line_with(o.out, "anonymous", "1"), "%s", o.out);
    cr_expect(has_line_with(o.out, "files", "1"), "%s", o.out);
    cr_expect(has_line_with(o.out, "bytes_mapped", "24576"), "%s", o.out);
    if (geteuid() == 0) { /* daemon-wide counters are for admins */
        cr_expect(has_line_with(o.out, "flushes", NULL), "%s", o.out);
        cr_expect(has_line_with(o.out, "errors", NULL), "%s", o.out);
    } else {
        cr_expect(has_line_with(o.out, "scope", NULL), "%s", o.out);
    }
    svc_out_free(&o);

    ctl_expect(&o, NULL, 0, "ls");
    const char *hdr[] = { "NAME", "KIND", "SIZE", "PERM", "OWNER",
                          "OWNER_NAME", "POLICY", "HOLDERS", "PENDING_BYTES",
                          "LAST_FLUSH", "CREATED", "CREATOR_PID", "STATE" };
    for (size_t i = 0; i < sizeof(hdr) / sizeof(hdr[0]); i++)
        cr_expect(has_line_with(o.out, "ID", hdr[i]),
                  "ls: no %s column:\n%s", hdr[i], o.out);
    cr_expect(has_line_with(o.out, "anon:" ANON, "8192"), "%s", o.out);
    cr_expect(has_line_with(o.out, "anon:" ANON, " live"), "%s", o.out);
    cr_expect(has_line_with(o.out, "anon:" ANON, "0600"), "%s", o.out);
    cr_expect(has_line_with(o.out, "anon:" ANON, "never"), "%s", o.out);
    cr_expect(has_line_with(o.out, FILE_NAME, "16384"), "%s", o.out);
    cr_expect(has_line_with(o.out, FILE_NAME, " 2 "), "%s", o.out);
    cr_expect(has_line_with(o.out, FILE_NAME, "file"), "%s", o.out);
    /* Aligned: every row's NAME column starts where the header's does. */
    const char *h = strstr(o.out, "NAME");
    cr_assert_not_null(h);
    size_t col = (size_t)(h - o.out);
    for (const char *l = strchr(o.out, '\n') + 1; *l; l = strchr(l, '\n') + 1) {
        cr_expect(l[col - 1] == ' ' && l[col] != ' ',
                  "ls rows are not aligned with the header:\n%s", o.out);
        if (!strchr(l, '\n'))
            break;
    }
    svc_out_free(&o);

    ctl_expect(&o, NULL, 0, "clients");
    const char *chdr[] = { "PID", "UID", "NAME", "WATCHES", "HELD_TOTAL",
                           "MODE", "MAP_ID" };
    for (size_t i = 0; i < sizeof(chdr) / sizeof(chdr[0]); i++)
        cr_expect(has_line_with(o.out, "ID", chdr[i]),
                  "clients: no %s column:\n%s", chdr[i], o.out);
    char pid[32];
    snprintf(pid, sizeof(pid), " %d ", (int)getpid());
    /* A row a client, a row under it for each handle it holds. */
    cr_expect(has_line_with(o.out, pid, program_invocation_short_name),
              "%s", o.out);
    cr_expect(has_line_with(o.out, ANON, " rw "), "%s", o.out);
    cr_expect(has_line_with(o.out, FILE_NAME, " rw "), "%s", o.out);
    cr_expect(has_line_with(o.out, FILE_NAME, " ro "), "%s", o.out);
    svc_out_free(&o);
    release();
}

/* ---- JSON --------------------------------------------------------------- */

Test(ctl, json_outputs)
{
    struct svc_out o;
    char checks[2048];
    hold();

    ctl_expect(&o, NULL, 0, "--json", "status");
    svc_assert_json(o.out,
        "d = d['status'][0]\n"
        "assert d['version'] == '" MMAPIO_VERSION "', d\n"
        "assert d['mappings'] == 2 and d['anonymous'] == 1, d\n"
        "assert d['files'] == 1, d\n"
        "assert d['bytes_mapped'] == 8192 + 16384, d\n"
        "assert d['clients'] >= 3, d  # c, c2 and mmapioctl itself\n"
        "assert d['all'] is (euid == 0), d\n"
        "assert isinstance(d['uptime_s'], int), d\n"
        "for k in ('flushes', 'flush_failures', 'errors', 'clients_total'):\n"
        "    assert isinstance(d[k], int) if euid == 0 else d[k] is None, (k, d)\n"
        "if euid == 0:\n"
        "    assert d['clients_total'] >= 3, d\n");
    svc_out_free(&o);

    ctl_expect(&o, NULL, 0, "--json", "ls");
    svc_assert_json(o.out,
        "d = d['mappings']\n"
        "assert isinstance(d, list) and len(d) == 2, d\n"
        "m = {e['name']: e for e in d}\n"
        "a, f = m['" ANON "'], m['" FILE_NAME "']\n"
        "assert a['kind'] == 'anonymous' and a['size'] == 8192, a\n"
        "assert a['holders'] == 1 and a['rw_holders'] == 1, a\n"
        "assert a['policy'] == 'never' and a['perm'] == '0600', a\n"
        "assert a['owner'] == euid and a['removed'] is False, a\n"
        "assert a['state'] == 'live' and a['pending_bytes'] is None, a\n"
        "assert a['last_flush'] is None, a  # never: null, not 0\n"
        "assert a['creator_pid'] == f['creator_pid'] > 0, (a, f)\n"
        "assert a['created'] > 1600000000, a\n"
        "assert f['kind'] == 'file' and f['size'] == 16384, f\n"
        "assert f['holders'] == 2 and f['rw_holders'] == 1, f\n"
        "assert f['policy'] == 'never' and f['perm'] == '0644', f\n"
        "for e in d:\n"
        "    for k in ('id', 'flushes', 'watchers', 'created'):\n"
        "        assert isinstance(e[k], int), (k, e)\n"
        "assert a['id'] != f['id']\n");
    svc_out_free(&o);

    ctl_expect(&o, NULL, 0, "--json", "clients");
    snprintf(checks, sizeof(checks),
        "d = d['clients']\n"
        "mine = [e for e in d if e['pid'] == %d]\n"
        "assert len(mine) == 2, d\n"
        "held = sorted((h['name'], h['mode']) for e in mine\n"
        "              for h in e.get('children', []))\n"
        "assert held == [('" ANON "', 'rw'), ('" FILE_NAME "', 'ro'), "
        "('" FILE_NAME "', 'rw')], held\n"
        "for e in mine:\n"
        "    assert e['uid'] == euid and e['name'] == '%s', e\n"
        "    assert e['held_total'] == len(e.get('children', [])), e\n"
        "assert any(e['name'] == 'mmapioctl' for e in d), d\n",
        (int)getpid(), program_invocation_short_name);
    svc_assert_json(o.out, checks);
    svc_out_free(&o);

    /* --json with a name that needs escaping. */
    mmapio_map *q;
    hz_assert_ok(mmapio_anon_create(c, "we\"ird\\name", 4096, &q));
    ctl_expect(&o, NULL, 0, "--json", "ls");
    svc_assert_json(o.out, "assert 'we\"ird\\\\name' in "
                           "[e['name'] for e in d['mappings']], d\n");
    svc_out_free(&o);
    mmapio_unmap(q);
    release();
}

/* ---- acting: policy and flush --------------------------------------- */

Test(ctl, policy_reaches_the_holders)
{
    struct svc_out o;
    hold();

    ctl_expect(&o, NULL, 0, "policy", "anon:" ANON, "every-millis:100");
    svc_out_free(&o);
    mmapio_flush_policy p = mmapio_flush_policy_of(anon);
    cr_expect(p.kind == MMAPIO_FLUSH_EVERY_MILLIS && p.value == 100,
              "the holder sees kind %d value %llu", (int)p.kind,
              (unsigned long long)p.value);

    ctl_expect(&o, NULL, 0, "--json", "policy", FILE_NAME, "every-writes:7");
    svc_assert_json(o.out, "assert d == {'policy': [{'path': '" FILE_NAME
                           "', 'policy': 'every-writes:7'}]}, d\n");
    svc_out_free(&o);
    p = mmapio_flush_policy_of(frw);
    cr_expect(p.kind == MMAPIO_FLUSH_EVERY_WRITES && p.value == 7,
              "the rw holder sees kind %d value %llu", (int)p.kind,
              (unsigned long long)p.value);
    p = mmapio_flush_policy_of(fro);
    cr_expect(p.kind == MMAPIO_FLUSH_EVERY_WRITES && p.value == 7,
              "the ro holder sees kind %d value %llu", (int)p.kind,
              (unsigned long long)p.value);

    ctl_expect(&o, NULL, 0, "--json", "ls");
    svc_assert_json(o.out,
        "m = {e['name']: e for e in d['mappings']}\n"
        "assert m['" ANON "']['policy'] == 'every-millis:100', m\n"
        "assert m['" FILE_NAME "']['policy'] == 'every-writes:7', m\n");
    svc_out_free(&o);

    ctl_expect(&o, NULL, 0, "policy", "anon:" ANON, "never");
    svc_out_free(&o);
    cr_expect_eq(mmapio_flush_policy_of(anon).kind, MMAPIO_FLUSH_NEVER);
    release();
}

Test(ctl, flush)
{
    struct svc_out o;
    hold();

    /* Pending bytes as the kernel counts them (0 when it cannot tell:
     * before Linux 6.5). */
    ctl_expect(&o, NULL, 0, "--json", "ls");
    bool kernel_tells = strstr(o.out, "\"pending_bytes\": 4096") != NULL;
    svc_out_free(&o);

    ctl_expect(&o, NULL, 0, "--json", "flush", "--all");
    svc_assert_json(o.out,
        "d = d['flush'][0]\n"
        "assert d['flushed'] >= 1 and d['failed'] == 0, d\n");
    svc_out_free(&o);
    if (kernel_tells) {
        ctl_expect(&o, NULL, 0, "--json", "ls");
        svc_assert_json(o.out,
            "f = [e for e in d['mappings'] if e['name'] == '" FILE_NAME "'][0]\n"
            "assert f['pending_bytes'] == 0, f\n");
        svc_out_free(&o);
    }
    /* The holder's write reached the file. */
    char buf[10];
    cr_assert_eq(hz_read_file(hz_path(&hz, FILE_NAME), buf, 10), 10);
    cr_expect_eq(memcmp(buf, "file bytes", 10), 0);

    hz_assert_ok(mmapio_update_region(frw, 100, "more", 4));
    ctl_expect(&o, NULL, 0, "flush", FILE_NAME);
    cr_expect(strstr(o.out, "flushed 1 mapping") != NULL, "%s", o.out);
    svc_out_free(&o);

    ctl_expect(&o, NULL, 0, "--json", "ls");
    svc_assert_json(o.out,
        "f = [e for e in d['mappings'] if e['name'] == '" FILE_NAME "'][0]\n"
        "assert f['flushes'] >= 2 and f['last_flush'] > 0, f\n");
    svc_out_free(&o);

    if (geteuid() == 0) {
        ctl_expect(&o, NULL, 0, "--json", "status");
        svc_assert_json(o.out, "assert d['status'][0]['flushes'] >= 2, d\n");
        svc_out_free(&o);
    }

    /* An anonymous mapping has nothing to write back, but exists. */
    ctl_expect(&o, NULL, 0, "flush", "anon:" ANON);
    svc_out_free(&o);
    release();
}

Test(ctl, removed_file_is_marked)
{
    struct svc_out o;
    hold();
    hz_assert_ok(mmapio_delete(c, FILE_NAME));
    ctl_expect(&o, NULL, 0, "--json", "ls");
    svc_assert_json(o.out,
        "f = [e for e in d['mappings'] if e['name'] == '" FILE_NAME "']\n"
        "assert len(f) == 1 and f[0]['removed'] is True, d\n"
        "assert f[0]['state'] == 'removed', d\n");
    svc_out_free(&o);
    ctl_expect(&o, NULL, 0, "ls");
    cr_expect(has_line_with(o.out, FILE_NAME, " removed"), "%s", o.out);
    svc_out_free(&o);
    release();
}

/* ---- exit codes, usage, help ---------------------------------------- */

Test(ctl, exit_codes)
{
    struct svc_out o;
    hold();

    ctl_expect(&o, NULL, 4, "flush", "does-not-exist");
    cr_expect_neq(o.err[0], '\0', "no message on stderr");
    svc_out_free(&o);
    ctl_expect(&o, NULL, 4, "flush", "anon:does-not-exist");
    svc_out_free(&o);
    ctl_expect(&o, NULL, 4, "policy", "anon:does-not-exist", "always");
    svc_out_free(&o);
    ctl_expect(&o, NULL, 4, "watch", "anon:does-not-exist");
    svc_out_free(&o);

    static const char *const bad_policies[] = {
        "bogus", "every-millis:", "every-millis:abc", "every-bytes:-1",
        "sometimes:3", "",
    };
    for (size_t i = 0; i < sizeof(bad_policies) / sizeof(bad_policies[0]); i++) {
        int code = ctl(&o, NULL, ARGS("policy", "anon:" ANON, bad_policies[i]));
        cr_expect_eq(code, 2, "policy '%s': exit %d, expected 2 (%s)",
                     bad_policies[i], code, o.err);
        cr_expect_neq(o.err[0], '\0', "policy '%s': no message",
                      bad_policies[i]);
        svc_out_free(&o);
    }
    cr_expect_eq(mmapio_flush_policy_of(anon).kind, MMAPIO_FLUSH_NEVER);

    ctl_expect(&o, NULL, 2, "frobnicate");
    cr_expect_neq(o.err[0], '\0');
    svc_out_free(&o);
    ctl_expect(&o, NULL, 2, "--no-such-option", "status");
    svc_out_free(&o);
    ctl_expect(&o, NULL, 2, "policy", "anon:" ANON);
    svc_out_free(&o);
    ctl_expect(&o, NULL, 2, "flush");
    svc_out_free(&o);
    int code = ctl(&o, NULL, ARGS(NULL));
    cr_expect_eq(code, 2, "no command: exit %d", code);
    svc_out_free(&o);
    release();
}

Test(ctl, help)
{
    struct svc_out o;
    ctl_expect(&o, NULL, 0, "--help");
    cr_expect(strstr(o.out, "Usage") != NULL, "--help: %s", o.out);
    static const char *const cmds[] = { "status", "ls", "clients", "flush",
                                        "policy", "watch", "create", "rm",
                                        "stat" };
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
        cr_expect(strstr(o.out, cmds[i]) != NULL, "--help lacks %s", cmds[i]);
    cr_expect(strstr(o.out, "--json") != NULL);
    svc_out_free(&o);

    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        int code = ctl(&o, NULL, ARGS(cmds[i], "--help"));
        cr_expect_eq(code, 0, "%s --help: exit %d (%s)", cmds[i], code, o.err);
        cr_expect(strstr(o.out, cmds[i]) != NULL, "%s --help printed: %s",
                  cmds[i], o.out);
        svc_out_free(&o);
    }
    ctl_expect(&o, NULL, 0, "--version");
    cr_expect(strstr(o.out, MMAPIO_VERSION) != NULL, "%s", o.out);
    svc_out_free(&o);
}

Test(ctl, unreachable)
{
    struct svc_out o;
    char sock[256];
    snprintf(sock, sizeof(sock), "%s/nobody-listens.sock", hz.dir);
    const char *const cmds[][3] = { { "status" }, { "ls" }, { "--json", "clients" },
                                    { "flush", "--all" } };
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        const char *args[] = { cmds[i][0], cmds[i][1], NULL };
        cr_assert_eq(svc_ctl(NULL, sock, NULL, args, &o), 0);
        cr_expect_eq(svc_exit_code(o.status), 3,
                     "%s with no daemon: exit %d (%s)", cmds[i][0],
                     svc_exit_code(o.status), o.err);
        cr_expect_neq(o.err[0], '\0');
        svc_out_free(&o);
    }
    /* $MMAPIO_SOCKET is the default socket. */
    const char *args[] = { "status", NULL };
    setenv("MMAPIO_SOCKET", sock, 1);
    cr_assert_eq(svc_ctl(NULL, NULL, NULL, args, &o), 0);
    cr_expect_eq(svc_exit_code(o.status), 3);
    svc_out_free(&o);
    setenv("MMAPIO_SOCKET", hz.sock, 1);
    cr_assert_eq(svc_ctl(NULL, NULL, NULL, args, &o), 0);
    cr_expect_eq(svc_exit_code(o.status), 0, "%s", o.err);
    svc_out_free(&o);
}

/* ---- long lists come a page at a time --------------------------------- */

Test(ctl, long_lists)
{
    enum { N = 300, HELD = 40 };
    struct svc_out o;
    char name[256];
    mmapio_client *lc = hz_client();
    static mmapio_map *held[HELD];

    /* Long names: the list is far over one reply page. */
    for (int i = 0; i < N; i++) {
        mmapio_map *m;
        snprintf(name, sizeof(name), "%03d-%0200d", i, i);
        hz_assert_ok(mmapio_anon_create(lc, name, 4096, &m));
        if (i < HELD)
            held[i] = m;
        else
            mmapio_unmap(m);
    }
    ctl_expect(&o, NULL, 0, "--json", "ls");
    svc_assert_json(o.out,
        "d = d['mappings']\n"
        "assert len(d) == 300, len(d)\n"
        "names = sorted(e['name'] for e in d)\n"
        "assert names == ['%03d-%0200d' % (i, i) for i in range(300)], names[:3]\n"
        "assert len({e['id'] for e in d}) == 300\n"
        "assert sum(e['holders'] for e in d) == 40, d\n");
    svc_out_free(&o);
    ctl_expect(&o, NULL, 0, "ls");
    size_t lines = 0;
    for (const char *p = o.out; (p = strchr(p, '\n')); p++)
        lines++;
    cr_expect_eq(lines, N + 1, "ls printed %zu lines for %d mappings",
                 lines, N);
    svc_out_free(&o);

    /* A client holding more than is listed says how many more. */
    ctl_expect(&o, NULL, 0, "--json", "clients");
    svc_assert_json(o.out,
        "h = [e for e in d['clients'] if e['held_total'] == 40]\n"
        "assert len(h) == 1, d\n"
        "assert 0 < len(h[0]['children']) <= 40, h\n");
    svc_out_free(&o);
    ctl_expect(&o, NULL, 0, "--json", "status");
    svc_assert_json(o.out,
        "d = d['status'][0]\n"
        "assert d['mappings'] == 300 and d['anonymous'] == 300, d\n"
        "assert d['bytes_mapped'] == 300 * 4096, d\n");
    svc_out_free(&o);

    for (int i = 0; i < HELD; i++)
        mmapio_unmap(held[i]);
    mmapio_disconnect(lc);
}

/* ---- watch ----------------------------------------------------------- */

struct bg {
    pid_t pid;
    int out, err;
};

static struct bg start_bg(const char *const *args)
{
    const char *bin = getenv("MMAPIOCTL");
    cr_assert(bin && *bin, "$MMAPIOCTL is not set");
    const char *argv[16];
    size_t n = 0;
    argv[n++] = bin;
    argv[n++] = "--socket";
    argv[n++] = hz.sock;
    for (; *args && n < 15; args++)
        argv[n++] = *args;
    argv[n] = NULL;
    int po[2], pe[2];
    cr_assert_eq(pipe2(po, O_CLOEXEC), 0);
    cr_assert_eq(pipe2(pe, O_CLOEXEC), 0);
    pid_t pid = hz_fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        dup2(po[1], STDOUT_FILENO);
        dup2(pe[1], STDERR_FILENO);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGPIPE, SIG_DFL);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    close(po[1]);
    close(pe[1]);
    return (struct bg){ pid, po[0], pe[0] };
}

static void stop_bg(struct bg *b, int sig)
{
    cr_assert_eq(kill(b->pid, sig), 0);
    int st = hz_wait_child(b->pid, 5000);
    close(b->out);
    close(b->err);
    cr_expect(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
              "mmapioctl watch did not exit 0 on signal %d (status 0x%x)",
              sig, (unsigned)st);
}

/* mmapioctl watch on the held anonymous mapping, once it says it watches. */
static struct bg start_watch(void)
{
    struct bg b = start_bg(ARGS("watch", "anon:" ANON));
    char err[1024] = "";
    size_t elen = 0;
    cr_assert(svc_read_until(b.err, err, sizeof(err), &elen, "watching", 5000),
              "mmapioctl watch did not start watching: %s", err);
    return b;
}

Test(ctl, watch_streams_events)
{
    hold();
    struct bg b = start_watch();
    char out[4096] = "";
    size_t olen = 0;

    hz_assert_ok(mmapio_update_region(anon, 100, "hello", 5));
    cr_assert(svc_read_until(b.out, out, sizeof(out), &olen,
                             "modified offset=100 len=5\n", 5000),
              "no event line from mmapioctl watch; got: '%s'", out);
    hz_assert_ok(mmapio_update_region(anon, 4000, "again", 5));
    cr_assert(svc_read_until(b.out, out, sizeof(out), &olen,
                             "modified offset=4000 len=5\n", 5000),
              "no second event line; got: '%s'", out);

    /* While it watches, ls counts it as a watcher, not a holder. */
    struct svc_out o;
    ctl_expect(&o, NULL, 0, "--json", "ls");
    svc_assert_json(o.out,
        "a = [e for e in d['mappings'] if e['name'] == '" ANON "'][0]\n"
        "assert a['watchers'] == 1 and a['holders'] == 1, a\n"
        "assert a['rw_holders'] == 1, a\n");
    svc_out_free(&o);

    stop_bg(&b, SIGINT);
    release();
}

Test(ctl, watch_ends_when_the_daemon_goes)
{
    hold();
    struct bg b = start_watch();
    release();
    int st = hz_stop(&hz);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "mmapiod: 0x%x",
              (unsigned)st);
    st = hz_wait_child(b.pid, 5000);
    close(b.out);
    close(b.err);
    cr_expect(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 3,
              "mmapioctl watch: status 0x%x when the daemon stopped, "
              "expected exit 3", (unsigned)st);
}

/* "watchers":N of the ls --json entry named name, or -1. */
static int watchers_of(const char *name)
{
    struct svc_out o;
    char key[128];
    int n = -1;
    if (ctl(&o, NULL, ARGS("--json", "ls")) == 0) {
        snprintf(key, sizeof(key), "\"name\": \"%s\"", name);
        const char *e = strstr(o.out, key);
        const char *w = e ? strstr(e, "\"watchers\": ") : NULL;
        if (w)
            n = atoi(w + strlen("\"watchers\": "));
    }
    svc_out_free(&o);
    return n;
}

Test(ctl, watch_json_file)
{
    hold();
    struct bg b = start_bg(ARGS("--json", "watch", FILE_NAME));
    int64_t end = hz_now_ms() + 5000;
    while (watchers_of(FILE_NAME) < 1) {
        cr_assert_lt(hz_now_ms(), end, "mmapioctl --json watch never "
                     "subscribed");
        svc_sleep_ms(10);
    }
    hz_assert_ok(mmapio_update_region(frw, 10, "abc", 3));
    char out[4096] = "";
    size_t olen = 0;
    cr_assert(svc_read_until(b.out, out, sizeof(out), &olen, "\"modified\"",
                             5000),
              "no JSON event from mmapioctl --json watch; got '%s'", out);
    cr_assert(svc_read_until(b.out, out, sizeof(out), &olen, "}\n", 5000));
    /* One object a line; take the line with the modification. */
    char *line = strstr(out, "\"modified\"");
    while (line > out && line[-1] != '\n')
        line--;
    *strchr(line, '\n') = '\0';
    svc_assert_json(line,
        "t = d.pop('time')\n"
        "import re\n"
        "assert re.fullmatch(r'\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}[+-]\\d{4}', t), t\n"
        "assert d == {'path': '" FILE_NAME "', 'kind': 'modified',\n"
        "             'offset': 10, 'len': 3}, d\n");
    stop_bg(&b, SIGTERM);
    release();
}

/* ---- who sees what ---------------------------------------------------- */

/* mmapioctl copied where uid 65534 may run it (the build tree may not be
 * reachable for it). */
static const char *ctl_copy(void)
{
    static char path[300];
    const char *bin = getenv("MMAPIOCTL");
    cr_assert(bin && *bin);
    snprintf(path, sizeof(path), "%s/mmapioctl", hz.dir);
    if (access(path, X_OK) == 0)
        return path;
    int in = open(bin, O_RDONLY | O_CLOEXEC);
    cr_assert_geq(in, 0, "%s: %s", bin, strerror(errno));
    int out = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0755);
    cr_assert_geq(out, 0, "%s: %s", path, strerror(errno));
    char buf[65536];
    ssize_t n;
    while ((n = read(in, buf, sizeof(buf))) > 0)
        cr_assert_eq(write(out, buf, (size_t)n), n);
    close(in);
    cr_assert_eq(close(out), 0);
    chmod(path, 0755);
    return path;
}

static int ctl_as(struct svc_out *o, const struct svc_as *as,
                  const char *const *args)
{
    int r = svc_ctl(ctl_copy(), hz.sock, as, args, o);
    cr_assert_eq(r, 0, "cannot run mmapioctl: %s", strerror(-r));
    int code = svc_exit_code(o->status);
    cr_assert_neq(code, 126, "could not become uid %u", (unsigned)as->uid);
    return code;
}

/* A child holding anonymous `name` as uid 65534 until *ch closes. */
static pid_t nobody_holds(const char *name, struct hz_chan *ready,
                          struct hz_chan *done)
{
    cr_assert_eq(hz_chan_open(ready), 0);
    cr_assert_eq(hz_chan_open(done), 0);
    pid_t pid = hz_fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        hz_chan_keep_write(ready);
        hz_chan_keep_read(done);
        if (setgroups(0, NULL) < 0 || setgid(65534) < 0 || setuid(65534) < 0)
            _exit(126);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        mmapio_client *nc;
        mmapio_map *m;
        int r = mmapio_connect(hz.sock, &nc);
        if (!r)
            r = mmapio_anon_create(nc, name, 4096, &m);
        hz_chan_send(ready, r ? 'E' : 'R');
        if (r)
            _exit(1);
        hz_chan_recv(done, 30000);
        mmapio_unmap(m);
        mmapio_disconnect(nc);
        _exit(0);
    }
    hz_chan_keep_read(ready);
    hz_chan_keep_write(done);
    int b = hz_chan_recv(ready, 10000);
    cr_assert_eq(b, 'R', "uid 65534 could not create anonymous %s (%d)",
                 name, b);
    return pid;
}

Test(ctl, an_ordinary_user_sees_and_changes_only_their_own)
{
    if (geteuid() != 0)
        cr_skip_test("needs root, to run clients as uid 65534");
    struct svc_out o;
    char checks[1024];
    hold();
    mmapio_flush_policy every5 = { MMAPIO_FLUSH_EVERY_WRITES, 5 };
    hz_assert_ok(mmapio_set_flush_policy(anon, every5));

    struct hz_chan ready, done;
    pid_t holder = nobody_holds("nobody-anon", &ready, &done);

    /* ls, clients, status: only what 65534 owns. */
    int code = ctl_as(&o, &svc_nobody, ARGS("--json", "ls"));
    cr_assert_eq(code, 0, "ls as 65534: exit %d (%s)", code, o.err);
    svc_assert_json(o.out,
        "d = d['mappings']\n"
        "assert [e['name'] for e in d] == ['nobody-anon'], d\n"
        "assert d[0]['owner'] == 65534 and d[0]['kind'] == 'anonymous', d\n");
    svc_out_free(&o);

    code = ctl_as(&o, &svc_nobody, ARGS("ls"));
    cr_assert_eq(code, 0);
    cr_expect(strstr(o.out, "nobody-anon") && !strstr(o.out, ANON) &&
              !strstr(o.out, FILE_NAME), "ls as 65534:\n%s", o.out);
    svc_out_free(&o);

    code = ctl_as(&o, &svc_nobody, ARGS("--json", "clients"));
    cr_assert_eq(code, 0, "clients as 65534: exit %d (%s)", code, o.err);
    snprintf(checks, sizeof(checks),
        "d = d['clients']\n"
        "assert all(e['uid'] == 65534 for e in d), d\n"
        "h = [e for e in d if e['pid'] == %d]\n"
        "assert len(h) == 1, d\n"
        "assert [x['name'] for x in h[0]['children']] == ['nobody-anon'], h\n"
        "assert not any(e['pid'] == %d for e in d), d\n",
        (int)holder, (int)getpid());
    svc_assert_json(o.out, checks);
    svc_out_free(&o);

    code = ctl_as(&o, &svc_nobody, ARGS("--json", "status"));
    cr_assert_eq(code, 0);
    svc_assert_json(o.out,
        "d = d['status'][0]\n"
        "assert d['all'] is False, d\n"
        "assert d['mappings'] == 1 and d['anonymous'] == 1, d\n"
        "assert d['files'] == 0 and d['bytes_mapped'] == 4096, d\n"
        "assert d['clients'] == 2, d  # the holder and mmapioctl\n"
        "assert d['flushes'] is None and d['errors'] is None, d\n");
    svc_out_free(&o);

    /* Root's mappings cannot be changed, flushed, watched, seen in full or
     * removed by 65534: the same answer from every command (permission,
     * exit 5; never "not found" for what exists). */
    const char *const *const refused[] = {
        ARGS("policy", "anon:" ANON, "always"),
        ARGS("policy", FILE_NAME, "always"),
        ARGS("flush", FILE_NAME),
        ARGS("flush", "anon:" ANON),
        ARGS("watch", "anon:" ANON),
        ARGS("stat", "anon:" ANON),
        ARGS("rm", "anon:" ANON),
    };
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        code = ctl_as(&o, &svc_nobody, refused[i]);
        cr_expect(code == 5,
                  "mmapioctl %s %s as 65534: exit %d, expected 5 (%s)",
                  refused[i][0], refused[i][1], code, o.err);
        cr_expect_neq(o.err[0], '\0');
        svc_out_free(&o);
    }
    /* Reading is not changing: root's 0644 file is 65534's to see in
     * full (the kernel lets it read the file), not to flush. */
    code = ctl_as(&o, &svc_nobody, ARGS("--json", "stat", FILE_NAME));
    cr_expect_eq(code, 0, "stat of a readable file as 65534: %d (%s)", code,
                 o.err);
    if (code == 0)
        svc_assert_json(o.out, "assert d['mappings'][0]['holders'] == 2, d\n");
    svc_out_free(&o);
    mmapio_flush_policy p = mmapio_flush_policy_of(anon);
    cr_expect(p.kind == every5.kind && p.value == every5.value,
              "65534 changed root's policy: kind %d", (int)p.kind);
    cr_expect_eq(mmapio_flush_policy_of(frw).kind, MMAPIO_FLUSH_NEVER);
    /* flush --all flushes only what is theirs: none of root's files. */
    code = ctl_as(&o, &svc_nobody, ARGS("--json", "flush", "--all"));
    cr_expect_eq(code, 0, "flush --all as 65534: %d (%s)", code, o.err);
    svc_assert_json(o.out, "assert d['flush'][0]['flushed'] == 0, d\n");
    svc_out_free(&o);

    /* Their own: yes. */
    code = ctl_as(&o, &svc_nobody,
                  ARGS("policy", "anon:nobody-anon", "every-writes:9"));
    cr_expect_eq(code, 0, "65534 cannot set its own policy: %d (%s)", code,
                 o.err);
    svc_out_free(&o);

    /* Root sees everything, 65534's mapping and client included. */
    ctl_expect(&o, NULL, 0, "--json", "ls");
    svc_assert_json(o.out,
        "m = {e['name']: e for e in d['mappings']}\n"
        "assert set(m) == {'" ANON "', '" FILE_NAME "', 'nobody-anon'}, m\n"
        "assert m['nobody-anon']['owner'] == 65534, m\n"
        "assert m['nobody-anon']['policy'] == 'every-writes:9', m\n");
    svc_out_free(&o);
    ctl_expect(&o, NULL, 0, "--json", "clients");
    snprintf(checks, sizeof(checks),
             "assert any(e['pid'] == %d and e['uid'] == 65534\n"
             "           for e in d['clients']), d\n",
             (int)holder);
    svc_assert_json(o.out, checks);
    svc_out_free(&o);

    hz_chan_close(&done);
    cr_expect_eq(hz_wait_child(holder, 5000), 0);
    hz_chan_close(&ready);
    release();
}

/* ---- the admin group ------------------------------------------------- */

#define ADMIN_GID 4242

static void admin_setup(void)
{
    signal(SIGPIPE, SIG_IGN);
    int r = hz_init(&hz);
    cr_assert_eq(r, 0, "mkdtemp: %s", strerror(-r));
    chmod(hz.dir, 0755);
    char conf[300], text[64];
    snprintf(conf, sizeof(conf), "%s/mmapiod.conf", hz.dir);
    snprintf(text, sizeof(text), "admin_group = %d\n", ADMIN_GID);
    cr_assert_eq(hz_write_file(conf, text, strlen(text)), 0);
    const char *args[] = { "--config", conf, "--socket", hz.sock,
                           "--root", hz.root, NULL };
    pid_t pid = hz_spawn(args, -1, -1);
    cr_assert_gt(pid, 0);
    r = hz_wait_ready(hz.sock, pid, HZ_READY_TIMEOUT_MS);
    cr_assert_eq(r, 0, "mmapiod --config did not come up: %s", strerror(-r));
    hz.pid = pid;
}

TestSuite(ctl_admin, .init = admin_setup, .fini = hz_teardown, .timeout = 60);

Test(ctl_admin, the_admin_group_sees_and_changes_everything)
{
    if (geteuid() != 0)
        cr_skip_test("needs root, to run clients as uid 65534");
    struct svc_out o;
    hold();
    static const gid_t admin_groups[] = { ADMIN_GID };
    const struct svc_as admin = { 65534, 65534, admin_groups, 1 };

    int code = ctl_as(&o, &admin, ARGS("--json", "ls"));
    cr_assert_eq(code, 0, "ls as an admin: %d (%s)", code, o.err);
    svc_assert_json(o.out,
        "assert {e['name'] for e in d['mappings']} == "
        "{'" ANON "', '" FILE_NAME "'}, d\n");
    svc_out_free(&o);
    code = ctl_as(&o, &admin, ARGS("--json", "status"));
    cr_assert_eq(code, 0);
    svc_assert_json(o.out, "d = d['status'][0]\n"
                           "assert d['all'] is True and d['mappings'] == 2, d\n"
                           "assert d['config_file'].endswith('/mmapiod.conf'), d\n");
    svc_out_free(&o);
    /* stat and watch: an admin sees root's 0600 mapping in full. */
    code = ctl_as(&o, &admin, ARGS("stat", "anon:" ANON, "--json"));
    cr_expect_eq(code, 0, "stat as an admin: %d (%s)", code, o.err);
    if (code == 0)
        svc_assert_json(o.out, "assert d['mappings'][0]['owner'] == 0, d\n");
    svc_out_free(&o);
    code = ctl_as(&o, &svc_nobody, ARGS("stat", "anon:" ANON));
    cr_expect_eq(code, 5, "stat without the group: %d (%s)", code, o.err);
    svc_out_free(&o);
    code = ctl_as(&o, &admin, ARGS("policy", "anon:" ANON, "always"));
    cr_expect_eq(code, 0, "an admin cannot set the policy: %d (%s)", code,
                 o.err);
    svc_out_free(&o);
    cr_expect_eq(mmapio_flush_policy_of(anon).kind, MMAPIO_FLUSH_ALWAYS);

    /* Without the group, the same uid sees nothing of root's. */
    code = ctl_as(&o, &svc_nobody, ARGS("--json", "ls"));
    cr_assert_eq(code, 0);
    svc_assert_json(o.out, "assert d == {'mappings': []}, d\n");
    svc_out_free(&o);
    release();
}

/* ---- create, stat, rm ------------------------------------------------- */

Test(ctl, create_stat_rm_round_trip)
{
    struct svc_out o;

    /* anon: a size with a unit, a mode and a policy. */
    ctl_expect(&o, NULL, 0, "create", "anon:made", "64K", "--mode", "640",
               "--policy", "every-millis:250");
    cr_expect(has_line_with(o.out, "name", "anon:made"), "%s", o.out);
    svc_out_free(&o);
    ctl_expect(&o, NULL, 0, "stat", "anon:made", "--json");
    svc_assert_json(o.out,
        "m = d['mappings']\n"
        "assert len(m) == 1, d\n"
        "m = m[0]\n"
        "assert m['name'] == 'made' and m['kind'] == 'anonymous', m\n"
        "assert m['size'] == 64 * 1024 and m['perm'] == '0640', m\n"
        "assert m['policy'] == 'every-millis:250', m\n"
        "assert m['owner'] == euid and m['holders'] == 0, m\n"
        "assert m['state'] == 'live' and m['creator_pid'] > 0, m\n");
    svc_out_free(&o);
    /* It is there for a program too. */
    mmapio_client *pc = hz_client();
    mmapio_map *m;
    hz_assert_ok(mmapio_anon_open(pc, "made", &m));
    cr_expect_eq(mmapio_len(m), 64 * 1024);
    mmapio_unmap(m);

    /* Again: exists, exit 6, and the first one is untouched. */
    ctl_expect(&o, NULL, 6, "create", "anon:made", "1K");
    cr_expect_neq(o.err[0], '\0');
    svc_out_free(&o);

    /* A file under the root, text stat: a field a line. */
    ctl_expect(&o, NULL, 0, "create", "made.bin", "2M");
    svc_out_free(&o);
    struct stat st;
    cr_assert_eq(stat(hz_path(&hz, "made.bin"), &st), 0);
    cr_expect_eq(st.st_size, 2 * 1024 * 1024);
    cr_expect_eq(st.st_mode & 0777, 0644);
    ctl_expect(&o, NULL, 0, "stat", "made.bin");
    cr_expect(has_line_with(o.out, "size", "2097152"), "%s", o.out);
    cr_expect(has_line_with(o.out, "kind", "file"), "%s", o.out);
    cr_expect(has_line_with(o.out, "holders", "0"), "%s", o.out);
    svc_out_free(&o);
    ctl_expect(&o, NULL, 6, "create", "made.bin", "1");
    svc_out_free(&o);

    /* rm, as mmapio_delete and mmapio_anon_delete. */
    ctl_expect(&o, NULL, 0, "rm", "anon:made");
    cr_expect_eq(o.out[0], '\0', "rm printed: %s", o.out);
    svc_out_free(&o);
    ctl_expect(&o, NULL, 0, "rm", "made.bin");
    svc_out_free(&o);
    cr_expect_neq(stat(hz_path(&hz, "made.bin"), &st), 0);
    cr_expect_eq(mmapio_anon_open(pc, "made", &m), MMAPIO_E_NOT_FOUND);
    mmapio_disconnect(pc);

    /* Gone: not found, exit 4, from each. */
    const char *const *const gone[] = {
        ARGS("stat", "anon:made"), ARGS("stat", "made.bin"),
        ARGS("rm", "anon:made"), ARGS("rm", "made.bin"),
        ARGS("watch", "made.bin"), ARGS("flush", "made.bin"),
        ARGS("policy", "anon:made", "always"),
    };
    for (size_t i = 0; i < sizeof(gone) / sizeof(gone[0]); i++) {
        int code = ctl(&o, NULL, gone[i]);
        cr_expect_eq(code, 4, "%s %s of nothing: exit %d (%s)", gone[i][0],
                     gone[i][1], code, o.err);
        cr_expect_neq(o.err[0], '\0');
        svc_out_free(&o);
    }
}

Test(ctl, create_sizes)
{
    struct svc_out o;
    static const struct { const char *text; uint64_t bytes; } good[] = {
        { "1", 1 }, { "4096", 4096 }, { "3K", 3072 }, { "1M", 1 << 20 },
        { "1G", 1ull << 30 },
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        char name[32], want[96];
        snprintf(name, sizeof(name), "anon:size-%zu", i);
        ctl_expect(&o, NULL, 0, "--json", "create", name, good[i].text);
        snprintf(want, sizeof(want), "assert d['mappings'][0]['size'] == %llu, d\n",
                 (unsigned long long)good[i].bytes);
        svc_assert_json(o.out, want);
        svc_out_free(&o);
        ctl_expect(&o, NULL, 0, "rm", name);
        svc_out_free(&o);
    }
    static const char *const bad[] = { "0", "", "-1", "1k", "1KB", "K", "1.5M",
                                       "99999999999T", "0x10", " 1" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int code = ctl(&o, NULL, ARGS("create", "anon:bad", bad[i]));
        cr_expect_eq(code, 2, "size '%s': exit %d (%s)", bad[i], code, o.err);
        cr_expect_neq(o.err[0], '\0');
        svc_out_free(&o);
    }
    ctl_expect(&o, NULL, 2, "create", "anon:bad", "1K", "--mode", "9");
    svc_out_free(&o);
    ctl_expect(&o, NULL, 2, "create", "anon:bad", "1K", "--policy", "often");
    svc_out_free(&o);
    ctl_expect(&o, NULL, 4, "stat", "anon:bad");
    svc_out_free(&o);
}

/* ---- options anywhere, nothing extra ---------------------------------- */

Test(ctl, options_follow_the_command)
{
    struct svc_out o;
    hold();
    /* --json after the command is JSON, not silently text. */
    static const char *const cmds[] = { "status", "ls", "clients" };
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        ctl_expect(&o, NULL, 0, cmds[i], "--json");
        svc_assert_json(o.out, "assert isinstance(d, dict) and len(d) == 1, d\n");
        svc_out_free(&o);
    }
    ctl_expect(&o, NULL, 0, "stat", "anon:" ANON, "--json");
    svc_assert_json(o.out, "assert d['mappings'][0]['name'] == '" ANON "', d\n");
    svc_out_free(&o);
    ctl_expect(&o, NULL, 0, "stat", "-J", "anon:" ANON);
    svc_assert_json(o.out, "assert d['mappings'][0]['size'] == 8192, d\n");
    svc_out_free(&o);
    /* --socket after the command. */
    const char *args[] = { "status", "--socket", hz.sock, "--json", NULL };
    cr_assert_eq(svc_ctl(NULL, NULL, NULL, args, &o), 0);
    cr_expect_eq(svc_exit_code(o.status), 0, "%s", o.err);
    svc_assert_json(o.out, "assert d['status'][0]['mappings'] == 2, d\n");
    svc_out_free(&o);
    /* flush --all after, and as before. */
    ctl_expect(&o, NULL, 0, "flush", "--all", "--json");
    svc_assert_json(o.out, "assert d['flush'][0]['failed'] == 0, d\n");
    svc_out_free(&o);

    /* --raw --noheadings: a row a line, fields split by single spaces. */
    ctl_expect(&o, NULL, 0, "ls", "--raw", "--noheadings");
    size_t lines = 0;
    for (const char *l = o.out; *l; lines++) {
        const char *nl = strchr(l, '\n');
        cr_assert_not_null(nl);
        size_t fields = 1;
        for (const char *p = l; p < nl; p++)
            fields += *p == ' ';
        cr_expect_eq(fields, 15, "raw row of %zu fields: %.*s", fields,
                     (int)(nl - l), l);
        l = nl + 1;
    }
    cr_expect_eq(lines, 2, "ls --raw --noheadings:\n%s", o.out);
    svc_out_free(&o);

    /* Extra arguments and foreign options: bad usage, with a message. */
    const char *const *const extra[] = {
        ARGS("status", "now"), ARGS("ls", "anon:" ANON), ARGS("clients", "x"),
        ARGS("stat", "anon:" ANON, FILE_NAME), ARGS("rm"),
        ARGS("rm", "anon:a", "anon:b"), ARGS("watch", "anon:" ANON, "x"),
        ARGS("flush", FILE_NAME, "--all"), ARGS("flush", "a", "b"),
        ARGS("policy", "anon:" ANON, "never", "x"),
        ARGS("create", "anon:x"), ARGS("create", "anon:x", "1K", "2K"),
        ARGS("ls", "--mode", "600"), ARGS("stat", "anon:" ANON, "--all"),
        ARGS("ls", "--socket"), ARGS("status", "--frobnicate"),
    };
    for (size_t i = 0; i < sizeof(extra) / sizeof(extra[0]); i++) {
        int code = ctl(&o, NULL, extra[i]);
        cr_expect_eq(code, 2, "mmapioctl %s %s...: exit %d, expected 2 (%s)",
                     extra[i][0], extra[i][1] ? extra[i][1] : "", code, o.err);
        cr_expect_neq(o.err[0], '\0', "%s: no message", extra[i][0]);
        svc_out_free(&o);
    }
    cr_expect_eq(mmapio_flush_policy_of(anon).kind, MMAPIO_FLUSH_NEVER);
    release();
}

Test(ctl, command_help_explains_the_fields)
{
    struct svc_out o;
    static const char *const keys[] = {
        "holders", "owner", "owner_name", "perm", "size", "policy",
        "pending_bytes", "last_flush", "created", "creator_pid", "state",
    };
    static const char *const cmds[] = { "ls", "stat" };
    for (size_t k = 0; k < 2; k++) {
        ctl_expect(&o, NULL, 0, cmds[k], "--help");
        for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
            char key[64];
            snprintf(key, sizeof(key), "  %s ", keys[i]);
            cr_expect(strstr(o.out, key) != NULL, "%s --help lacks %s:\n%s",
                      cmds[k], keys[i], o.out);
        }
        cr_expect(strstr(o.out, "JSON") != NULL);
        svc_out_free(&o);
    }
    ctl_expect(&o, NULL, 0, "--help", "status");
    cr_expect(strstr(o.out, "  uptime_s ") && strstr(o.out, "  rss_bytes ") &&
              strstr(o.out, "  config_file "), "%s", o.out);
    svc_out_free(&o);
}

/* ---- status: where and how it runs ------------------------------------ */

Test(ctl, status_in_full)
{
    struct svc_out o;
    char checks[2048];
    hold();
    ctl_expect(&o, NULL, 0, "--json", "status");
    snprintf(checks, sizeof(checks),
        "d = d['status'][0]\n"
        "assert d['pid'] == %d, d\n"
        "assert d['socket'] == '%s' and d['root'] == '%s', d\n"
        "assert d['config_file'] is None, d\n"
        "assert d['rss_bytes'] > 0 and d['started'] > 1600000000, d\n"
        "assert d['removed_held'] == 0, d\n"
        "for k in ('max_frame', 'max_clients', 'max_mappings_per_uid',\n"
        "          'max_bytes_per_uid', 'max_map_size', 'hello_timeout_ms'):\n"
        "    assert isinstance(d[k], int), (k, d)\n",
        (int)hz.pid, hz.sock, hz.root);
    svc_assert_json(o.out, checks);
    char *json = strdup(o.out);
    svc_out_free(&o);

    /* The text says the same fields by the same names, in the same order:
     * a header FIELD VALUE MEANING, then a field a line. */
    ctl_expect(&o, NULL, 0, "status");
    cr_expect(strncmp(o.out, "FIELD", 5) == 0, "%s", o.out);
    size_t len = (size_t)snprintf(checks, sizeof(checks), "names = [");
    for (const char *l = strchr(o.out, '\n'); l && l[1]; l = strchr(l + 1, '\n')) {
        size_t w = strcspn(l + 1, " \n");
        len += (size_t)snprintf(checks + len, sizeof(checks) - len, "'%.*s', ",
                                (int)w, l + 1);
        cr_assert_lt(len, sizeof(checks) - 200);
    }
    snprintf(checks + len, sizeof(checks) - len,
             "]\nkeys = list(d['status'][0])\n"
             "assert names == keys, (names, keys)\n");
    svc_assert_json(json, checks);
    cr_expect(has_line_with(o.out, "uptime_s", " s"), "%s", o.out);
    cr_expect(has_line_with(o.out, "config_file", "-"), "%s", o.out);
    svc_out_free(&o);
    free(json);
    release();
}

/* ---- watch holds nothing; deleted but held ---------------------------- */

Test(ctl, watch_does_not_hold_and_ends_after_removed)
{
    hold();
    struct bg b = start_watch();
    char out[4096] = "";
    size_t olen = 0;

    /* The writer is the only holder: it may shrink, as if nobody watched
     * (a watch through a handle made this BUSY). */
    hz_assert_ok(mmapio_update_region(anon, 10, "abc", 3));
    cr_assert(svc_read_until(b.out, out, sizeof(out), &olen,
                             "modified offset=10 len=3\n", 5000),
              "no event line; got: '%s'", out);
    int r = mmapio_resize(anon, 4096);
    cr_expect_eq(r, MMAPIO_OK, "shrink while watched: %d (%s)", r,
                 mmapio_last_error());
    cr_expect_eq(mmapio_len(anon), 4096);

    /* Deleted: REMOVED, and the watch ends by itself, exit 0. */
    hz_assert_ok(mmapio_anon_delete(c, ANON));
    cr_assert(svc_read_until(b.out, out, sizeof(out), &olen, "removed\n", 5000),
              "no removed line; got: '%s'", out);
    int st = hz_wait_child(b.pid, 5000);
    close(b.out);
    close(b.err);
    cr_expect(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
              "mmapioctl watch did not end after REMOVED (status 0x%x)",
              (unsigned)st);
    /* Every line starts with its time. */
    for (const char *l = out; *l;) {
        cr_expect(l[4] == '-' && l[7] == '-' && l[10] == 'T' && l[13] == ':' &&
                  l[19] == '.', "an event line without its time: %s", l);
        const char *nl = strchr(l, '\n');
        if (!nl)
            break;
        l = nl + 1;
    }
    release();
}

Test(ctl, deleted_but_held_is_listed)
{
    struct svc_out o;
    hold();
    hz_assert_ok(mmapio_anon_delete(c, ANON));

    /* ls, status and clients agree: removed, still held. */
    ctl_expect(&o, NULL, 0, "--json", "ls");
    svc_assert_json(o.out,
        "a = [e for e in d['mappings'] if e['name'] == '" ANON "']\n"
        "assert len(a) == 1, d\n"
        "a = a[0]\n"
        "assert a['state'] == 'removed' and a['removed'] is True, a\n"
        "assert a['holders'] == 1 and a['size'] == 8192, a\n");
    svc_out_free(&o);
    ctl_expect(&o, NULL, 0, "ls");
    cr_expect(has_line_with(o.out, "anon:" ANON, " removed"), "%s", o.out);
    svc_out_free(&o);
    ctl_expect(&o, NULL, 0, "--json", "status");
    svc_assert_json(o.out,
        "d = d['status'][0]\n"
        "assert d['mappings'] == 2 and d['anonymous'] == 1, d\n"
        "assert d['removed_held'] == 1, d\n"
        "assert d['bytes_mapped'] == 8192 + 16384, d\n");
    svc_out_free(&o);

    /* The name is free again: a new one is another mapping, both listed. */
    mmapio_map *again;
    hz_assert_ok(mmapio_anon_create(c, ANON, 4096, &again));
    ctl_expect(&o, NULL, 0, "--json", "ls");
    svc_assert_json(o.out,
        "a = sorted((e['state'], e['size']) for e in d['mappings']\n"
        "           if e['name'] == '" ANON "')\n"
        "assert a == [('live', 4096), ('removed', 8192)], a\n"
        "assert len({e['id'] for e in d['mappings']}) == 3, d\n");
    svc_out_free(&o);
    mmapio_unmap(again);

    /* Its last holder gone, it is gone. */
    mmapio_unmap(anon);
    anon = NULL;
    ctl_expect(&o, NULL, 0, "--json", "ls");
    svc_assert_json(o.out,
        "assert not [e for e in d['mappings'] if e['state'] == 'removed'], d\n");
    svc_out_free(&o);
    ctl_expect(&o, NULL, 0, "--json", "status");
    svc_assert_json(o.out, "assert d['status'][0]['removed_held'] == 0, d\n");
    svc_out_free(&o);
    release();
}
