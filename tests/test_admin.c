/*
 * test_admin: the admin calls of the public library (mmapio_admin_status,
 * _list, _clients, _flush, _flush_all, _set_flush_policy) against a real
 * daemon, mmapio_last_error, and flush policies as text.
 *
 * Mappings and clients are made by holder processes (forked children,
 * some as uid 65534) and asked about from other children, so every answer
 * crosses processes: an ordinary user sees only their own mappings and
 * connections, root sees all. Lists longer than one reply page (the
 * daemon pages at 512 entries) come whole, in order of id; a raw client
 * checks that they did span several pages.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "wire.h"

#define NOBODY 65534

static void setup(void)
{
    hz_setup();
    chmod(hz.dir, 0755); /* other uids' clients reach the socket */
}

TestSuite(admin, .init = setup, .fini = hz_teardown, .timeout = 120);

/* ---- children ------------------------------------------------------------ */

/* What a child reports: NULL (all well) or why not. */
typedef const char *(*child_fn)(mmapio_client *c, void *arg);

static char why[1024];

__attribute__((format(printf, 1, 2)))
static const char *failed(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    for (char *p = why; *p; p++)
        if (*p == '\n')
            *p = ' ';
    return why;
}

/* In a child: `expr` must return `want`, else fn returns the reason. */
#define EXPECT(expr, want)                                                  \
    do {                                                                    \
        int e_r_ = (expr), e_w_ = (want);                                   \
        if (e_r_ != e_w_)                                                   \
            return failed("line %d: %s returned %d (%s: %s), expected %d",  \
                          __LINE__, #expr, e_r_, mmapio_strerror(e_r_),     \
                          mmapio_last_error(), e_w_);                       \
    } while (0)
#define CHECK(cond, ...)                                                    \
    do {                                                                    \
        if (!(cond)) {                                                      \
            char c_why_[700];                                               \
            snprintf(c_why_, sizeof(c_why_), __VA_ARGS__);                  \
            return failed("line %d: %s is false: %s", __LINE__, #cond,      \
                          c_why_);                                          \
        }                                                                   \
    } while (0)

/* A forked child: it reports one line, then holds what it made until the
 * test lets it go. */
struct child {
    pid_t pid;
    int report;  /* read end of its report */
    int release; /* write end; closing it lets the child finish */
};

/* In the child: become uid (0: stay root), connect, run fn. */
static const char *child_body(uid_t uid, child_fn fn, void *arg)
{
    mmapio_client *c;
    if (uid != 0 &&
        (setgroups(0, NULL) < 0 || setgid(uid) < 0 || setuid(uid) < 0))
        return failed("cannot become uid %u: %s", (unsigned)uid,
                      strerror(errno));
    if (getuid() != uid || geteuid() != uid)
        return failed("still uid %u", (unsigned)geteuid());
    int r = mmapio_connect(hz.sock, &c);
    if (r != MMAPIO_OK)
        return failed("connect as %u: %s", (unsigned)uid, mmapio_strerror(r));
    return fn(c, arg);
}

/* Reads the child's report line (up to 20 s). */
static void read_report(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    int64_t end = hz_now_ms() + 20000;
    buf[0] = '\0';
    while (n < cap - 1 && !memchr(buf, '\n', n)) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        int left = (int)(end - hz_now_ms());
        if (left <= 0 || poll(&p, 1, left) <= 0)
            break;
        ssize_t k = read(fd, buf + n, cap - 1 - n);
        if (k <= 0)
            break;
        n += (size_t)k;
        buf[n] = '\0';
    }
    buf[n] = '\0';
    char *nl = strchr(buf, '\n');
    if (nl)
        *nl = '\0';
}

/* Starts fn in a child as uid and waits until it reported success. */
static void child_start(struct child *ch, uid_t uid, child_fn fn, void *arg)
{
    int rep[2], rel[2];
    cr_assert_eq(pipe2(rep, O_CLOEXEC), 0);
    cr_assert_eq(pipe2(rel, O_CLOEXEC), 0);
    pid_t pid = hz_fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        close(rep[0]);
        close(rel[1]);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        const char *msg = child_body(uid, fn, arg);
        char line[1100];
        int len = snprintf(line, sizeof(line), "%s\n", msg ? msg : "ok");
        (void)!write(rep[1], line, (size_t)len);
        char b;
        while (read(rel[0], &b, 1) > 0)
            ;
        _exit(msg ? 1 : 0);
    }
    close(rep[1]);
    close(rel[0]);
    ch->pid = pid;
    ch->report = rep[0];
    ch->release = rel[1];
    char buf[1100];
    read_report(ch->report, buf, sizeof(buf));
    cr_assert_str_eq(buf, "ok", "child as uid %u: %s", (unsigned)uid,
                     buf[0] ? buf : "no report");
}

static void child_finish(struct child *ch)
{
    close(ch->release);
    int st = hz_wait_child(ch->pid, 10000);
    close(ch->report);
    cr_expect(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
              "child %d: status 0x%x", (int)ch->pid, (unsigned)st);
}

/* A query: fn runs in a child of its own, as uid, and must succeed. */
static void ask_as(uid_t uid, child_fn fn, void *arg)
{
    struct child ch;
    child_start(&ch, uid, fn, arg);
    child_finish(&ch);
}

/* ---- lookups in results -------------------------------------------------- */

static const mmapio_map_info *find_map(const mmapio_map_info *v, size_t n,
                                       const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(v[i].name, name))
            return &v[i];
    return NULL;
}

static size_t count_pid(const mmapio_client_info *v, size_t n, pid_t pid)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += v[i].pid == (int32_t)pid;
    return k;
}

static const mmapio_client_info *find_pid(const mmapio_client_info *v,
                                          size_t n, pid_t pid)
{
    for (size_t i = 0; i < n; i++)
        if (v[i].pid == (int32_t)pid)
            return &v[i];
    return NULL;
}

static bool policy_is(mmapio_flush_policy p, mmapio_flush_kind k, uint64_t v)
{
    return p.kind == k && p.value == v;
}

/* ---- holders ------------------------------------------------------------- */

#define ANON "adm-anon"
#define FILE_NAME "adm.bin"
#define ANON_SIZE 8192
#define FILE_SIZE 16384

/* An anonymous mapping (rw) and a file held twice (rw, then ro from a
 * second connection), until released. */
static const char *hold_two(mmapio_client *c, void *arg)
{
    mmapio_client *c2;
    mmapio_map *a, *frw, *fro;
    (void)arg;
    EXPECT(mmapio_anon_create(c, ANON, ANON_SIZE, &a), MMAPIO_OK);
    EXPECT(mmapio_create_rw(c, FILE_NAME, FILE_SIZE, &frw), MMAPIO_OK);
    EXPECT(mmapio_update_region(frw, 0, "file bytes", 10), MMAPIO_OK);
    EXPECT(mmapio_connect(hz.sock, &c2), MMAPIO_OK);
    EXPECT(mmapio_open_ro(c2, FILE_NAME, &fro), MMAPIO_OK);
    return NULL; /* everything stays held until the process ends */
}

/* One anonymous mapping of `arg` (a name), 4096 bytes, held. */
static const char *hold_anon(mmapio_client *c, void *arg)
{
    mmapio_map *m;
    EXPECT(mmapio_anon_create(c, (const char *)arg, 4096, &m), MMAPIO_OK);
    return NULL;
}

/* ---- status, list and clients of another process's holdings -------------- */

struct seen {
    pid_t holder;
};

static const char *root_sees_the_holder(mmapio_client *c, void *arg)
{
    const struct seen *s = arg;
    mmapio_status *st;
    mmapio_map_info *maps;
    mmapio_client_info *cl;
    size_t n, nc;

    EXPECT(mmapio_admin_status(c, &st), MMAPIO_OK);
    CHECK(st->version && !strcmp(st->version, MMAPIO_VERSION), "%s",
          st->version ? st->version : "(null)");
    CHECK(st->all, "root is not told everything");
    CHECK(st->mappings == 2 && st->anonymous == 1 && st->files == 1,
          "%llu mappings, %llu anonymous, %llu files",
          (unsigned long long)st->mappings,
          (unsigned long long)st->anonymous, (unsigned long long)st->files);
    CHECK(st->bytes_mapped == ANON_SIZE + FILE_SIZE, "%llu bytes",
          (unsigned long long)st->bytes_mapped);
    CHECK(st->clients >= 3, "%u clients", st->clients); /* 2 + ourselves */
    CHECK(st->clients_total >= 3, "%llu",
          (unsigned long long)st->clients_total);
    CHECK(st->uptime_s < 3600, "uptime %llu", (unsigned long long)st->uptime_s);
    mmapio_status_free(st);

    EXPECT(mmapio_admin_list(c, &maps, &n), MMAPIO_OK);
    CHECK(n == 2 && maps, "%zu mappings", n);
    CHECK(maps[0].id < maps[1].id, "not in order of id");
    const mmapio_map_info *a = find_map(maps, n, ANON);
    const mmapio_map_info *f = find_map(maps, n, FILE_NAME);
    CHECK(a && f, "names: %s, %s", maps[0].name, maps[1].name);
    CHECK(a->anonymous && a->size == ANON_SIZE, "anon size %llu",
          (unsigned long long)a->size);
    CHECK(a->holders == 1 && a->rw_holders == 1, "anon holders %u/%u",
          a->holders, a->rw_holders);
    CHECK(a->perm == 0600 && a->owner == 0 && !a->removed, "anon perm %o",
          a->perm);
    CHECK(policy_is(a->policy, MMAPIO_FLUSH_NEVER, 0), "anon policy %d",
          (int)a->policy.kind);
    CHECK(!f->anonymous && f->size == FILE_SIZE, "file size %llu",
          (unsigned long long)f->size);
    CHECK(f->holders == 2 && f->rw_holders == 1, "file holders %u/%u",
          f->holders, f->rw_holders);
    CHECK(f->perm == 0644 && f->owner == 0, "file perm %o owner %u", f->perm,
          f->owner);
    CHECK(f->watchers == 0 && f->last_flush == 0,
          "watchers %u, last flush %lld", f->watchers,
          (long long)f->last_flush);
    uint64_t anon_id = a->id, file_id = f->id;
    mmapio_map_info_free(maps, n);

    EXPECT(mmapio_admin_clients(c, &cl, &nc), MMAPIO_OK);
    CHECK(count_pid(cl, nc, s->holder) == 2, "holder has %zu clients",
          count_pid(cl, nc, s->holder));
    size_t held = 0;
    for (size_t i = 0; i < nc; i++) {
        if (i > 0)
            CHECK(cl[i - 1].id < cl[i].id, "clients not in order of id");
        if (cl[i].pid != (int32_t)s->holder)
            continue;
        CHECK(cl[i].uid == 0 && cl[i].gid == 0, "uid %u", cl[i].uid);
        CHECK(!strcmp(cl[i].name, program_invocation_short_name), "name %s",
              cl[i].name);
        CHECK(cl[i].held_total == cl[i].n_held, "%u/%zu", cl[i].held_total,
              cl[i].n_held);
        for (size_t k = 0; k < cl[i].n_held; k++, held++) {
            const mmapio_held_info *h = &cl[i].held[k];
            bool is_anon = !strcmp(h->name, ANON);
            CHECK(is_anon || !strcmp(h->name, FILE_NAME), "held %s", h->name);
            CHECK(h->map_id == (is_anon ? anon_id : file_id), "map id %llu",
                  (unsigned long long)h->map_id);
            CHECK(!is_anon || h->mode == MMAPIO_MODE_READ_WRITE, "anon mode");
        }
    }
    CHECK(held == 3, "%zu holdings", held);
    const mmapio_client_info *me = find_pid(cl, nc, getpid());
    CHECK(me && me->n_held == 0 && !me->held && me->held_total == 0,
          "our own connection: %p", (const void *)me);
    mmapio_client_info_free(cl, nc);
    return NULL;
}

Test(admin, status_list_and_clients_of_another_process)
{
    struct child holder;
    child_start(&holder, 0, hold_two, NULL);
    struct seen s = { holder.pid };
    ask_as(0, root_sees_the_holder, &s);
    child_finish(&holder);
}

/* ---- who sees what ------------------------------------------------------- */

struct two_holders {
    pid_t root_holder, nobody_holder;
};

static const char *nobody_sees_its_own(mmapio_client *c, void *arg)
{
    const struct two_holders *h = arg;
    mmapio_status *st;
    mmapio_map_info *maps;
    mmapio_client_info *cl;
    mmapio_flush_report rep = { 77, 77 };
    size_t n, nc;

    EXPECT(mmapio_admin_status(c, &st), MMAPIO_OK);
    CHECK(!st->all, "65534 is told everything");
    CHECK(st->mappings == 1 && st->anonymous == 1 && st->files == 0,
          "%llu mappings", (unsigned long long)st->mappings);
    CHECK(st->bytes_mapped == 4096, "%llu bytes",
          (unsigned long long)st->bytes_mapped);
    CHECK(st->clients == 2, "%u clients (the holder and us)", st->clients);
    CHECK(st->flushes == 0 && st->errors == 0 && st->clients_total == 0 &&
          st->flush_failures == 0, "daemon-wide counters for 65534");
    mmapio_status_free(st);

    EXPECT(mmapio_admin_list(c, &maps, &n), MMAPIO_OK);
    CHECK(n == 1, "%zu mappings", n);
    CHECK(!strcmp(maps[0].name, "nobody-anon") && maps[0].owner == NOBODY &&
          maps[0].anonymous && maps[0].holders == 1, "%s owner %u",
          maps[0].name, maps[0].owner);
    uint64_t id = maps[0].id;
    mmapio_map_info_free(maps, n);

    EXPECT(mmapio_admin_clients(c, &cl, &nc), MMAPIO_OK);
    CHECK(nc == 2, "%zu clients", nc);
    for (size_t i = 0; i < nc; i++)
        CHECK(cl[i].uid == NOBODY, "a client of uid %u", cl[i].uid);
    CHECK(count_pid(cl, nc, h->root_holder) == 0, "root's holder is listed");
    const mmapio_client_info *hc = find_pid(cl, nc, h->nobody_holder);
    CHECK(hc && hc->n_held == 1 && hc->held_total == 1, "the holder");
    CHECK(!strcmp(hc->held[0].name, "nobody-anon") &&
          hc->held[0].map_id == id &&
          hc->held[0].mode == MMAPIO_MODE_READ_WRITE, "held %s",
          hc->held[0].name);
    CHECK(find_pid(cl, nc, getpid()), "our own connection");
    mmapio_client_info_free(cl, nc);

    /* Root's mappings exist but are not theirs: permission, by every
     * call, in the daemon's words (never "not found" for what exists). */
    EXPECT(mmapio_admin_flush(c, FILE_NAME, false, &rep), MMAPIO_E_PERMISSION);
    CHECK(rep.flushed == 77 && rep.failed == 77, "report written on failure");
    CHECK(strstr(mmapio_last_error(), FILE_NAME) &&
          strcmp(mmapio_last_error(), mmapio_strerror(MMAPIO_E_PERMISSION)),
          "not the daemon's words: '%s'", mmapio_last_error());
    EXPECT(mmapio_admin_flush(c, ANON, true, NULL), MMAPIO_E_PERMISSION);
    CHECK(strstr(mmapio_last_error(), ANON), "'%s'", mmapio_last_error());
    mmapio_flush_policy always = { MMAPIO_FLUSH_ALWAYS, 0 };
    EXPECT(mmapio_admin_set_flush_policy(c, ANON, true, always),
           MMAPIO_E_PERMISSION);
    EXPECT(mmapio_admin_set_flush_policy(c, FILE_NAME, false, always),
           MMAPIO_E_PERMISSION);
    /* Nothing by that name: not found, the same for everyone. */
    EXPECT(mmapio_admin_flush(c, "no-such-file", false, NULL),
           MMAPIO_E_NOT_FOUND);
    EXPECT(mmapio_admin_set_flush_policy(c, "no-such-anon", true, always),
           MMAPIO_E_NOT_FOUND);
    /* --all flushes only what is theirs: none of root's files. */
    EXPECT(mmapio_admin_flush_all(c, &rep), MMAPIO_OK);
    CHECK(rep.flushed == 0 && rep.failed == 0, "flushed %u", rep.flushed);
    /* Their own: yes. */
    mmapio_flush_policy nine = { MMAPIO_FLUSH_EVERY_WRITES, 9 };
    EXPECT(mmapio_admin_set_flush_policy(c, "nobody-anon", true, nine),
           MMAPIO_OK);
    return NULL;
}

static const char *root_sees_everyone(mmapio_client *c, void *arg)
{
    const struct two_holders *h = arg;
    mmapio_status *st;
    mmapio_map_info *maps;
    mmapio_client_info *cl;
    size_t n, nc;

    EXPECT(mmapio_admin_status(c, &st), MMAPIO_OK);
    CHECK(st->all && st->mappings == 3 && st->anonymous == 2 && st->files == 1,
          "%llu mappings", (unsigned long long)st->mappings);
    mmapio_status_free(st);

    EXPECT(mmapio_admin_list(c, &maps, &n), MMAPIO_OK);
    const mmapio_map_info *mine = find_map(maps, n, "nobody-anon");
    CHECK(n == 3 && find_map(maps, n, ANON) && find_map(maps, n, FILE_NAME) &&
          mine, "%zu mappings", n);
    CHECK(mine->owner == NOBODY, "owner %u", mine->owner);
    CHECK(policy_is(mine->policy, MMAPIO_FLUSH_EVERY_WRITES, 9),
          "65534's policy did not change: %d", (int)mine->policy.kind);
    CHECK(policy_is(find_map(maps, n, ANON)->policy, MMAPIO_FLUSH_NEVER, 0),
          "65534 changed root's policy");
    mmapio_map_info_free(maps, n);

    EXPECT(mmapio_admin_clients(c, &cl, &nc), MMAPIO_OK);
    const mmapio_client_info *nb = find_pid(cl, nc, h->nobody_holder);
    CHECK(nb && nb->uid == NOBODY && nb->gid == NOBODY, "65534's holder");
    CHECK(count_pid(cl, nc, h->root_holder) == 2, "root's holder");
    mmapio_client_info_free(cl, nc);
    return NULL;
}

Test(admin, an_ordinary_user_sees_and_changes_only_their_own)
{
    if (geteuid() != 0)
        cr_skip_test("needs root, to run clients as uid 65534");
    struct child root_holder, nobody_holder;
    child_start(&root_holder, 0, hold_two, NULL);
    child_start(&nobody_holder, NOBODY, hold_anon, "nobody-anon");

    struct two_holders h = { root_holder.pid, nobody_holder.pid };
    ask_as(NOBODY, nobody_sees_its_own, &h);
    ask_as(0, root_sees_everyone, &h);

    child_finish(&nobody_holder);
    child_finish(&root_holder);
}

/* ---- long lists ---------------------------------------------------------- */

#define MANY 700   /* mappings: more than one page (512 at most) */
#define HELD 40    /* of which the first holder keeps this many open */

static const char *make_many(mmapio_client *c, void *arg)
{
    (void)arg;
    for (int i = 0; i < MANY; i++) {
        char name[32];
        mmapio_map *m;
        snprintf(name, sizeof(name), "page-%04d", i);
        EXPECT(mmapio_anon_create(c, name, 4096, &m), MMAPIO_OK);
        if (i >= HELD) /* an anonymous mapping outlives its holders */
            EXPECT(mmapio_unmap(m), MMAPIO_OK);
    }
    return NULL;
}

static const char *list_many(mmapio_client *c, void *arg)
{
    mmapio_map_info *maps;
    size_t n;
    pid_t holder = *(const pid_t *)arg;

    EXPECT(mmapio_admin_list(c, &maps, &n), MMAPIO_OK);
    CHECK(n == MANY, "%zu mappings, not %d", n, MANY);
    uint64_t holders = 0;
    for (size_t i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof(name), "page-%04zu", i);
        /* Made one after the other: ids and names in the same order. */
        CHECK(!strcmp(maps[i].name, name), "entry %zu is %s", i, maps[i].name);
        CHECK(i == 0 || maps[i - 1].id < maps[i].id, "ids out of order at %zu",
              i);
        CHECK(maps[i].size == 4096 && maps[i].anonymous, "entry %zu", i);
        holders += maps[i].holders;
    }
    CHECK(holders == HELD, "%llu holders", (unsigned long long)holders);
    mmapio_map_info_free(maps, n);

    /* The holder's connection lists the first 32 of its 40 handles. */
    mmapio_client_info *cl;
    EXPECT(mmapio_admin_clients(c, &cl, &n), MMAPIO_OK);
    const mmapio_client_info *h = find_pid(cl, n, holder);
    CHECK(h && h->held_total == HELD && h->n_held == 32 && h->held,
          "held %u, listed %zu", h ? h->held_total : 0, h ? h->n_held : 0);
    for (size_t k = 0; k < h->n_held; k++)
        CHECK(!strncmp(h->held[k].name, "page-00", 7), "%s", h->held[k].name);
    mmapio_client_info_free(cl, n);
    return NULL;
}

static const char *list_none(mmapio_client *c, void *arg)
{
    mmapio_map_info *maps = (mmapio_map_info *)&maps;
    size_t n = 99;
    (void)arg;
    EXPECT(mmapio_admin_list(c, &maps, &n), MMAPIO_OK);
    CHECK(n == 0 && maps == NULL, "%zu mappings for 65534", n);
    return NULL;
}

/* The first page of an admin list, asked by a raw client: its `more`. */
static bool first_page_has_more(bool clients, size_t *n_first)
{
    Mmapio__AdminList ql = MMAPIO__ADMIN_LIST__INIT;
    Mmapio__AdminClients qc = MMAPIO__ADMIN_CLIENTS__INIT;
    Mmapio__Request req = MMAPIO__REQUEST__INIT;
    Mmapio__ServerMessage *msg;

    int fd = raw_connect(hz.sock);
    cr_assert_geq(fd, 0);
    cr_assert_eq(raw_hello(fd, WIRE_PROTOCOL), 0);
    req.id = 7;
    if (clients) {
        req.op_case = MMAPIO__REQUEST__OP_ADMIN_CLIENTS;
        req.admin_clients = &qc;
    } else {
        req.op_case = MMAPIO__REQUEST__OP_ADMIN_LIST;
        req.admin_list = &ql;
    }
    cr_assert_eq(raw_send(fd, &req, -1), 0);
    cr_assert_eq(raw_recv(fd, 5000, &msg, NULL), 0);
    const Mmapio__Reply *r = msg->reply;
    cr_assert_eq(r->error, 0);
    bool more = clients ? r->clients->more : r->list->more;
    *n_first = clients ? r->clients->n_clients : r->list->n_maps;
    mmapio__server_message__free_unpacked(msg, NULL);
    close(fd);
    return more;
}

Test(admin, a_long_list_of_mappings_comes_whole)
{
    struct child holder;
    size_t first;
    child_start(&holder, 0, make_many, NULL);
    cr_assert(first_page_has_more(false, &first),
              "%d mappings fit in one page: the test pages nothing", MANY);
    cr_assert_lt(first, (size_t)MANY);
    ask_as(0, list_many, &holder.pid);
    if (geteuid() == 0)
        ask_as(NOBODY, list_none, NULL); /* an empty list is NULL, 0 */
    child_finish(&holder);
}

#define CONNS 530 /* connections: more than one page of clients */

static const char *connect_many(mmapio_client *c, void *arg)
{
    struct rlimit rl;
    (void)c;
    (void)arg;
    /* Two fds a connection (socket and wake-up eventfd). */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    for (int i = 1; i < CONNS; i++) {
        mmapio_client *more;
        EXPECT(mmapio_connect(hz.sock, &more), MMAPIO_OK);
    }
    return NULL;
}

static const char *list_clients(mmapio_client *c, void *arg)
{
    mmapio_client_info *cl;
    size_t n;
    pid_t holder = *(const pid_t *)arg;

    EXPECT(mmapio_admin_clients(c, &cl, &n), MMAPIO_OK);
    CHECK(count_pid(cl, n, holder) == CONNS, "%zu of the holder's %d",
          count_pid(cl, n, holder), CONNS);
    CHECK(find_pid(cl, n, getpid()), "our own connection");
    for (size_t i = 1; i < n; i++)
        CHECK(cl[i - 1].id < cl[i].id, "ids out of order at %zu", i);
    mmapio_client_info_free(cl, n);
    return NULL;
}

Test(admin, a_long_list_of_clients_comes_whole)
{
    struct rlimit rl;
    cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < 2 * CONNS + 200)
        cr_skip_test("RLIMIT_NOFILE %llu is too low for %d connections",
                     (unsigned long long)rl.rlim_max, CONNS);
    struct child holder;
    size_t first;
    child_start(&holder, 0, connect_many, NULL);
    cr_assert(first_page_has_more(true, &first),
              "%d clients fit in one page: the test pages nothing", CONNS);
    ask_as(0, list_clients, &holder.pid);
    child_finish(&holder);
}

/* ---- flush and policy by name -------------------------------------------- */

static const char *act_by_name(mmapio_client *c, void *arg)
{
    mmapio_flush_report rep = { 77, 77 };
    mmapio_map_info *maps;
    size_t n;
    time_t before = time(NULL);
    (void)arg;

    EXPECT(mmapio_admin_flush(c, "flush.bin", false, &rep), MMAPIO_OK);
    CHECK(rep.flushed == 1 && rep.failed == 0, "flushed %u failed %u",
          rep.flushed, rep.failed);
    EXPECT(mmapio_admin_list(c, &maps, &n), MMAPIO_OK);
    const mmapio_map_info *f = find_map(maps, n, "flush.bin");
    CHECK(f && f->flushes >= 1 && f->last_flush >= before - 1 &&
          f->last_flush <= time(NULL) + 1, "flushes %llu, last %lld",
          f ? (unsigned long long)f->flushes : 0ULL,
          f ? (long long)f->last_flush : 0LL);
    mmapio_map_info_free(maps, n);

    /* An anonymous mapping exists but has nothing to write back. */
    EXPECT(mmapio_admin_flush(c, "pol-anon", true, &rep), MMAPIO_OK);
    CHECK(rep.flushed == 0 && rep.failed == 0, "anon: flushed %u", rep.flushed);
    EXPECT(mmapio_admin_flush(c, "flush.bin", false, NULL), MMAPIO_OK);
    EXPECT(mmapio_admin_flush_all(c, &rep), MMAPIO_OK);
    CHECK(rep.flushed >= 1 && rep.failed == 0, "--all: flushed %u",
          rep.flushed);

    /* Missing names: the daemon's words reach mmapio_last_error. */
    EXPECT(mmapio_admin_flush(c, "missing.bin", false, &rep),
           MMAPIO_E_NOT_FOUND);
    CHECK(strstr(mmapio_last_error(), "missing.bin"), "'%s'",
          mmapio_last_error());
    mmapio_flush_policy millis = { MMAPIO_FLUSH_EVERY_MILLIS, 250 };
    EXPECT(mmapio_admin_set_flush_policy(c, "missing", true, millis),
           MMAPIO_E_NOT_FOUND);
    CHECK(strstr(mmapio_last_error(), "missing"), "'%s'", mmapio_last_error());

    /* Policies for every holder. */
    EXPECT(mmapio_admin_set_flush_policy(c, "pol-anon", true, millis),
           MMAPIO_OK);
    mmapio_flush_policy always = { MMAPIO_FLUSH_ALWAYS, 0 };
    EXPECT(mmapio_admin_set_flush_policy(c, "flush.bin", false, always),
           MMAPIO_OK);

    /* Checked here, before the daemon sees them. */
    mmapio_flush_policy zero = { MMAPIO_FLUSH_EVERY_BYTES, 0 };
    EXPECT(mmapio_admin_set_flush_policy(c, "pol-anon", true, zero),
           MMAPIO_E_INVALID_ARGUMENT);
    CHECK(!strcmp(mmapio_last_error(),
                  mmapio_strerror(MMAPIO_E_INVALID_ARGUMENT)), "'%s'",
          mmapio_last_error());
    mmapio_flush_policy odd = { (mmapio_flush_kind)42, 1 };
    EXPECT(mmapio_admin_set_flush_policy(c, "pol-anon", true, odd),
           MMAPIO_E_INVALID_ARGUMENT);
    EXPECT(mmapio_admin_set_flush_policy(c, NULL, true, always),
           MMAPIO_E_INVALID_ARGUMENT);
    EXPECT(mmapio_admin_flush(c, NULL, false, &rep), MMAPIO_E_INVALID_ARGUMENT);
    EXPECT(mmapio_admin_list(c, &maps, &n), MMAPIO_OK);
    f = find_map(maps, n, "pol-anon");
    CHECK(f && policy_is(f->policy, MMAPIO_FLUSH_EVERY_MILLIS, 250),
          "pol-anon's policy");
    f = find_map(maps, n, "flush.bin");
    CHECK(f && policy_is(f->policy, MMAPIO_FLUSH_ALWAYS, 0), "flush.bin's");
    mmapio_map_info_free(maps, n);
    return NULL;
}

Test(admin, flush_and_policy_by_name_reach_every_holder)
{
    mmapio_client *c = hz_client();
    mmapio_map *file, *anon;
    hz_assert_ok(mmapio_create_rw(c, "flush.bin", 8192, &file));
    hz_assert_ok(mmapio_update_region(file, 100, "flushed", 7));
    hz_assert_ok(mmapio_anon_create(c, "pol-anon", 4096, &anon));

    ask_as(0, act_by_name, NULL);

    mmapio_flush_policy p = mmapio_flush_policy_of(anon);
    cr_expect(policy_is(p, MMAPIO_FLUSH_EVERY_MILLIS, 250),
              "the holder sees kind %d value %llu", (int)p.kind,
              (unsigned long long)p.value);
    p = mmapio_flush_policy_of(file);
    cr_expect(policy_is(p, MMAPIO_FLUSH_ALWAYS, 0), "the holder sees kind %d",
              (int)p.kind);
    char buf[7];
    int fd = open(hz_path(&hz, "flush.bin"), O_RDONLY | O_CLOEXEC);
    cr_assert_geq(fd, 0);
    cr_assert_eq(pread(fd, buf, 7, 100), 7);
    close(fd);
    cr_expect_eq(memcmp(buf, "flushed", 7), 0);
    mmapio_unmap(file);
    mmapio_unmap(anon);
    mmapio_disconnect(c);
}

/* ---- arguments, outputs, mmapio_last_error ------------------------------- */

Test(admin, arguments_are_checked_and_outputs_left_alone)
{
    mmapio_client *c = hz_client();
    mmapio_status *st = (mmapio_status *)&st;
    mmapio_map_info *maps = (mmapio_map_info *)&maps;
    mmapio_client_info *cl = (mmapio_client_info *)&cl;
    size_t n = 5;

    hz_assert_ret(mmapio_admin_status(NULL, &st), MMAPIO_E_INVALID_ARGUMENT);
    hz_assert_ret(mmapio_admin_status(c, NULL), MMAPIO_E_INVALID_ARGUMENT);
    hz_assert_ret(mmapio_admin_list(NULL, &maps, &n),
                  MMAPIO_E_INVALID_ARGUMENT);
    hz_assert_ret(mmapio_admin_list(c, NULL, &n), MMAPIO_E_INVALID_ARGUMENT);
    hz_assert_ret(mmapio_admin_list(c, &maps, NULL), MMAPIO_E_INVALID_ARGUMENT);
    hz_assert_ret(mmapio_admin_clients(NULL, &cl, &n),
                  MMAPIO_E_INVALID_ARGUMENT);
    hz_assert_ret(mmapio_admin_clients(c, &cl, NULL),
                  MMAPIO_E_INVALID_ARGUMENT);
    hz_assert_ret(mmapio_admin_flush_all(NULL, NULL),
                  MMAPIO_E_INVALID_ARGUMENT);
    cr_expect(st == (mmapio_status *)&st && maps == (mmapio_map_info *)&maps &&
              cl == (mmapio_client_info *)&cl && n == 5,
              "an output was written by a failed call");
    cr_expect_str_eq(mmapio_last_error(),
                     mmapio_strerror(MMAPIO_E_INVALID_ARGUMENT));

    /* Destructors take NULL. */
    mmapio_status_free(NULL);
    mmapio_map_info_free(NULL, 3);
    mmapio_client_info_free(NULL, 3);

    /* A list with nothing in it. */
    hz_assert_ok(mmapio_admin_list(c, &maps, &n));
    cr_expect(n == 0 && maps == NULL, "%zu mappings, %p", n, (void *)maps);
    mmapio_map_info_free(maps, n);
    mmapio_disconnect(c);
}

/* A new thread: returns a copy of its first mmapio_last_error, then
 * fails a call of its own; *verdict says what that failure left. */
static void *fresh_thread(void *arg)
{
    const char **verdict = arg;
    const char *first = mmapio_last_error();
    char *copy = strdup(first ? first : "(null)");
    mmapio_flush_policy p;
    (void)mmapio_policy_parse("bogus", &p);
    *verdict = strcmp(mmapio_last_error(), mmapio_strerror(
                          MMAPIO_E_INVALID_ARGUMENT)) ? "wrong" : "right";
    return copy;
}

/* True when s is well-formed UTF-8. */
static bool utf8_ok(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        size_t n = *p < 0x80 ? 0 : *p >= 0xF0 ? 3 : *p >= 0xE0 ? 2 :
                   *p >= 0xC0 ? 1 : 9;
        if (n == 9)
            return false;
        p++;
        for (size_t i = 0; i < n; i++, p++)
            if ((*p & 0xC0) != 0x80)
                return false;
    }
    return true;
}

Test(admin, last_error_carries_the_daemons_words)
{
    mmapio_client *c = hz_client();
    const char *text = mmapio_last_error();
    cr_assert_not_null(text);

    /* Refused by the daemon: its message, not the library's. */
    hz_assert_ret(mmapio_anon_delete(c, "no-such"), MMAPIO_E_NOT_FOUND);
    char daemon_words[512];
    snprintf(daemon_words, sizeof(daemon_words), "%s", mmapio_last_error());
    cr_expect(strstr(daemon_words, "no-such") != NULL, "'%s'", daemon_words);
    cr_expect_str_neq(daemon_words, mmapio_strerror(MMAPIO_E_NOT_FOUND));

    /* A success leaves the text of the last failure alone. */
    hz_assert_ok(mmapio_ping(c));
    cr_expect_str_eq(mmapio_last_error(), daemon_words);

    /* Thread-local: a new thread starts with "", and its failures stay
     * its own. */
    pthread_t t;
    const char *verdict = NULL;
    void *other;
    cr_assert_eq(pthread_create(&t, NULL, fresh_thread, &verdict), 0);
    cr_assert_eq(pthread_join(t, &other), 0);
    cr_expect_str_eq((char *)other, "", "a new thread sees '%s'",
                     (char *)other);
    free(other);
    cr_expect_str_eq(verdict, "right");
    cr_expect_str_eq(mmapio_last_error(), daemon_words);

    /* The library's own checks: mmapio_strerror's text. */
    hz_assert_ret(mmapio_ping(NULL), MMAPIO_E_INVALID_ARGUMENT);
    cr_expect_str_eq(mmapio_last_error(),
                     mmapio_strerror(MMAPIO_E_INVALID_ARGUMENT));
    mmapio_map *m;
    hz_assert_ret(mmapio_anon_create(c, "zero", 0, &m), MMAPIO_E_RESIZE_FAILED);
    cr_expect_str_eq(mmapio_last_error(),
                     mmapio_strerror(MMAPIO_E_RESIZE_FAILED));
    hz_assert_ok(mmapio_anon_create(c, "small", 4096, &m));
    char buf[8];
    hz_assert_ret(mmapio_read_into(m, 4090, buf, 8), MMAPIO_E_OUT_OF_BOUNDS);
    cr_expect_str_eq(mmapio_last_error(),
                     mmapio_strerror(MMAPIO_E_OUT_OF_BOUNDS));

    /* A long message (the daemon's cut at 511 bytes, ours at 511), cut to
     * fit, still ends on a whole character: a path of 3 x 100 "é" after two
     * bytes, so that byte 511 falls inside a character. */
    char path[700] = "xy";
    for (int d = 0; d < 3; d++) {
        for (int i = 0; i < 100; i++)
            strcat(path, "\xc3\xa9");
        strcat(path, "/");
    }
    strcat(path, "f.bin");
    hz_assert_ret(mmapio_open_ro(c, path, &m), MMAPIO_E_NOT_FOUND);
    size_t len = strlen(mmapio_last_error());
    cr_expect(len >= 400 && len < 512, "%zu bytes: '%s'", len,
              mmapio_last_error());
    cr_expect(utf8_ok(mmapio_last_error()), "'%s'", mmapio_last_error());

    /* The daemon gone: DISCONNECTED, in the library's words. */
    cr_assert_eq(WEXITSTATUS(hz_stop(&hz)), 0);
    mmapio_status *st;
    hz_assert_ret(mmapio_admin_status(c, &st), MMAPIO_E_DISCONNECTED);
    cr_expect_str_eq(mmapio_last_error(),
                     mmapio_strerror(MMAPIO_E_DISCONNECTED));
    mmapio_flush_policy p;
    hz_assert_ret(mmapio_policy_parse("bogus", &p), MMAPIO_E_INVALID_ARGUMENT);
    /* Unmapping on a dead connection succeeds, and is no failure. */
    hz_assert_ok(mmapio_unmap(m));
    cr_expect_str_eq(mmapio_last_error(),
                     mmapio_strerror(MMAPIO_E_INVALID_ARGUMENT));
    mmapio_disconnect(c);
}

/* ---- policies as text ---------------------------------------------------- */

Test(policy_text, round_trips)
{
    static const char *const texts[] = {
        "never", "manual", "always", "every-bytes:1", "every-bytes:4096",
        "every-writes:7", "every-millis:100",
        "every-writes:72057594037927935", /* 2^56 - 1, the largest */
    };
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        mmapio_flush_policy p;
        char buf[MMAPIO_POLICY_TEXT_MAX];
        cr_assert_eq(mmapio_policy_parse(texts[i], &p), MMAPIO_OK, "%s",
                     texts[i]);
        cr_assert_eq(mmapio_policy_format(p, buf, sizeof(buf)), MMAPIO_OK,
                     "%s", texts[i]);
        cr_expect_str_eq(buf, texts[i]);
    }
    mmapio_flush_policy p;
    cr_assert_eq(mmapio_policy_parse("every-millis:250", &p), MMAPIO_OK);
    cr_expect(policy_is(p, MMAPIO_FLUSH_EVERY_MILLIS, 250));
    cr_assert_eq(mmapio_policy_parse("every-bytes:007", &p), MMAPIO_OK);
    cr_expect(policy_is(p, MMAPIO_FLUSH_EVERY_BYTES, 7));
    cr_assert_eq(mmapio_policy_parse("manual", &p), MMAPIO_OK);
    cr_expect(policy_is(p, MMAPIO_FLUSH_MANUAL, 0));
}

Test(policy_text, bad_text_is_refused)
{
    static const char *const bad[] = {
        "", "bogus", "sometimes:3", "NEVER", " never", "never ", "never:",
        "never:1", "always:0", "every-bytes", "every-bytes:", "every-bytes:0",
        "every-bytes:-1", "every-bytes:+1", "every-bytes: 1", "every-bytes:1 ",
        "every-millis:abc", "every-millis:12x", "every-writes:1:2",
        "every-writes:72057594037927936",         /* 2^56 */
        "every-writes:99999999999999999999999999", /* beyond 64 bits */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        mmapio_flush_policy p = { MMAPIO_FLUSH_ALWAYS, 42 };
        cr_expect_eq(mmapio_policy_parse(bad[i], &p),
                     MMAPIO_E_INVALID_ARGUMENT, "'%s' was accepted", bad[i]);
        cr_expect(policy_is(p, MMAPIO_FLUSH_ALWAYS, 42),
                  "'%s' wrote the output", bad[i]);
        cr_expect_str_eq(mmapio_last_error(),
                         mmapio_strerror(MMAPIO_E_INVALID_ARGUMENT));
    }
    mmapio_flush_policy p;
    cr_expect_eq(mmapio_policy_parse(NULL, &p), MMAPIO_E_INVALID_ARGUMENT);
    cr_expect_eq(mmapio_policy_parse("never", NULL), MMAPIO_E_INVALID_ARGUMENT);
}

Test(policy_text, format_checks_policy_and_room)
{
    char buf[MMAPIO_POLICY_TEXT_MAX];
    mmapio_flush_policy every = { MMAPIO_FLUSH_EVERY_BYTES, 4096 };

    /* Exactly enough room, then one byte short: refused, buf untouched. */
    cr_assert_eq(mmapio_policy_format(every, buf, 17), MMAPIO_OK);
    cr_expect_str_eq(buf, "every-bytes:4096");
    memcpy(buf, "untouched", 10);
    cr_expect_eq(mmapio_policy_format(every, buf, 16),
                 MMAPIO_E_INVALID_ARGUMENT);
    cr_expect_str_eq(buf, "untouched");
    cr_expect_eq(mmapio_policy_format(every, buf, 0),
                 MMAPIO_E_INVALID_ARGUMENT);
    cr_expect_eq(mmapio_policy_format(every, NULL, 32),
                 MMAPIO_E_INVALID_ARGUMENT);

    /* The longest text fits in MMAPIO_POLICY_TEXT_MAX. */
    mmapio_flush_policy longest = { MMAPIO_FLUSH_EVERY_WRITES,
                                    (UINT64_C(1) << 56) - 1 };
    cr_expect_eq(mmapio_policy_format(longest, buf, sizeof(buf)), MMAPIO_OK);
    cr_expect_str_eq(buf, "every-writes:72057594037927935");

    /* A kind without a value: the value is left out. */
    mmapio_flush_policy always = { MMAPIO_FLUSH_ALWAYS, 5 };
    cr_expect_eq(mmapio_policy_format(always, buf, sizeof(buf)), MMAPIO_OK);
    cr_expect_str_eq(buf, "always");

    /* Policies the daemon would refuse have no text. */
    const mmapio_flush_policy invalid[] = {
        { (mmapio_flush_kind)17, 1 },
        { MMAPIO_FLUSH_EVERY_MILLIS, 0 },
        { MMAPIO_FLUSH_EVERY_BYTES, UINT64_C(1) << 56 },
    };
    for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
        memcpy(buf, "untouched", 10);
        cr_expect_eq(mmapio_policy_format(invalid[i], buf, sizeof(buf)),
                     MMAPIO_E_INVALID_ARGUMENT, "invalid policy %zu", i);
        cr_expect_str_eq(buf, "untouched");
    }
}
