/* svc: helpers of the service tests (see svc.h). */
#include "svc.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

void svc_sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static void close_from(int first)
{
    if (syscall(SYS_close_range, (unsigned)first, ~0u, 0) == 0)
        return;
    long max = sysconf(_SC_OPEN_MAX);
    for (long fd = first; fd < (max > 0 ? max : 1024); fd++)
        close((int)fd);
}

/* In a child about to exec: the signal state a shell would give it. */
static void default_signals(void)
{
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
}

/* ---- running programs ------------------------------------------------- */

struct buf {
    char *p;
    size_t len, cap;
};

static int buf_read(struct buf *b, int fd)
{
    if (b->cap - b->len < 4097) {
        size_t cap = b->cap ? b->cap * 2 : 8192;
        char *p = realloc(b->p, cap);
        if (!p)
            return -ENOMEM;
        b->p = p;
        b->cap = cap;
    }
    ssize_t n = read(fd, b->p + b->len, b->cap - b->len - 1);
    if (n < 0)
        return errno == EINTR || errno == EAGAIN ? 1 : -errno;
    b->len += (size_t)n;
    b->p[b->len] = '\0';
    return n > 0;
}

static char *buf_take(struct buf *b)
{
    if (!b->p)
        return strdup("");
    return b->p;
}

bool svc_have(const char *prog)
{
    const char *path = getenv("PATH");
    char buf[PATH_MAX];
    if (!path)
        path = "/usr/local/bin:/usr/bin:/bin";
    while (*path) {
        const char *end = strchr(path, ':');
        size_t l = end ? (size_t)(end - path) : strlen(path);
        if (l > 0 && l + strlen(prog) + 2 < sizeof(buf)) {
            snprintf(buf, sizeof(buf), "%.*s/%s", (int)l, path, prog);
            if (access(buf, X_OK) == 0)
                return true;
        }
        path += l;
        if (*path == ':')
            path++;
    }
    return false;
}

int svc_exit_code(int status)
{
    return status >= 0 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

const struct svc_as svc_nobody = { .uid = 65534, .gid = 65534 };

static void drop_to(const struct svc_as *as)
{
    if (setgroups(as->n_groups, as->groups) < 0 || setgid(as->gid) < 0 ||
        setuid(as->uid) < 0)
        _exit(126);
    /* A change of credentials clears the parent-death signal. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
}

int svc_run(const char *const *argv, const char *in, const struct svc_as *as,
            int timeout_ms, struct svc_out *o)
{
    int pin[2], pout[2], perr[2];

    memset(o, 0, sizeof(*o));
    o->status = -1;
    if (pipe2(pin, O_CLOEXEC) < 0)
        return -errno;
    if (pipe2(pout, O_CLOEXEC) < 0 || pipe2(perr, O_CLOEXEC) < 0)
        return -errno; /* a test's fds: gone with its process */

    pid_t pid = hz_fork();
    if (pid < 0)
        return -errno;
    if (pid == 0) {
        dup2(pin[0], STDIN_FILENO);
        dup2(pout[1], STDOUT_FILENO);
        dup2(perr[1], STDERR_FILENO);
        close_from(3);
        default_signals();
        if (as)
            drop_to(as);
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(pin[0]);
    close(pout[1]);
    close(perr[1]);
    fcntl(pin[1], F_SETFL, O_NONBLOCK);

    size_t in_len = in ? strlen(in) : 0, in_off = 0;
    int fin = pin[1];
    if (in_len == 0) {
        close(fin);
        fin = -1;
    }
    struct buf out = { 0 }, err = { 0 };
    int fout = pout[0], ferr = perr[0];
    int64_t end = hz_now_ms() + timeout_ms;
    while (fout >= 0 || ferr >= 0) {
        struct pollfd p[3] = {
            { .fd = fout, .events = POLLIN },
            { .fd = ferr, .events = POLLIN },
            { .fd = fin, .events = POLLOUT },
        };
        int64_t left = end - hz_now_ms();
        if (left <= 0)
            break;
        int r = poll(p, 3, (int)left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            break;
        if (p[0].revents && buf_read(&out, fout) <= 0) {
            close(fout);
            fout = -1;
        }
        if (p[1].revents && buf_read(&err, ferr) <= 0) {
            close(ferr);
            ferr = -1;
        }
        if (p[2].revents) {
            ssize_t n = (p[2].revents & POLLOUT)
                            ? write(fin, in + in_off, in_len - in_off)
                            : -1;
            if (n > 0)
                in_off += (size_t)n;
            if ((n < 0 && errno != EAGAIN && errno != EINTR) ||
                in_off == in_len) {
                close(fin);
                fin = -1;
            }
        }
    }
    if (fout >= 0)
        close(fout);
    if (ferr >= 0)
        close(ferr);
    if (fin >= 0)
        close(fin);
    int64_t left = end - hz_now_ms();
    o->status = hz_wait_child(pid, left > 0 ? (int)left : 1);
    o->out = buf_take(&out);
    o->err = buf_take(&err);
    return 0;
}

void svc_out_free(struct svc_out *o)
{
    free(o->out);
    free(o->err);
    o->out = o->err = NULL;
}

int svc_ctl(const char *bin, const char *sock, const struct svc_as *as,
            const char *const *args, struct svc_out *o)
{
    const char *argv[40];
    size_t n = 0;

    if (!bin)
        bin = getenv("MMAPIOCTL");
    if (!bin || !*bin)
        return -ENOENT;
    argv[n++] = bin;
    if (sock) {
        argv[n++] = "--socket";
        argv[n++] = sock;
    }
    for (; args && *args && n < 39; args++)
        argv[n++] = *args;
    argv[n] = NULL;
    return svc_run(argv, NULL, as, 10000, o);
}

int svc_json(const char *doc, const char *checks, char **why)
{
    static const char head[] = "import json, sys\n"
                               "d = json.loads(sys.stdin.buffer.read()"
                               ".decode('utf-8'))\n" /* strict: valid UTF-8 */
                               "euid = %u\n";
    size_t len = strlen(head) + 16 + strlen(checks) + 2;
    char *prog = malloc(len);
    struct svc_out o;

    *why = NULL;
    if (!prog)
        return -ENOMEM;
    int hl = snprintf(prog, len, head, (unsigned)geteuid());
    snprintf(prog + hl, len - (size_t)hl, "%s\n", checks);
    const char *argv[] = { "python3", "-c", prog, NULL };
    int r = svc_run(argv, doc, NULL, 10000, &o);
    free(prog);
    if (r < 0) {
        *why = strdup("cannot run python3");
        return r;
    }
    int code = svc_exit_code(o.status);
    if (code != 0) {
        size_t n = strlen(o.err) + 64;
        *why = malloc(n);
        if (*why)
            snprintf(*why, n, "python3 exit %d: %s", code, o.err);
    }
    svc_out_free(&o);
    return code == 0 ? 0 : -1;
}

/* ---- systemd's side of NOTIFY_SOCKET --------------------------------- */

static void msg_free(struct svc_msg *m)
{
    for (size_t i = 0; i < m->n_fds; i++)
        close(m->fds[i]);
    free(m->text);
}

static int notify_recv_one(struct svc_notify *s)
{
    char text[8192];
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int) * SVC_MAX_MSG_FDS) +
                 CMSG_SPACE(sizeof(struct ucred))];
    } ctl;
    struct iovec iov = { text, sizeof(text) - 1 };
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1,
        .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf),
    };
    ssize_t n = recvmsg(s->fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0)
        return errno == EAGAIN || errno == EINTR ? 0 : -errno;
    text[n] = '\0';

    struct svc_msg m = { .at_ms = hz_now_ms() };
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        int fds[SVC_MAX_MSG_FDS];
        memcpy(fds, CMSG_DATA(c), k * sizeof(int));
        for (size_t i = 0; i < k; i++) {
            if (m.n_fds < SVC_MAX_MSG_FDS)
                m.fds[m.n_fds++] = fds[i];
            else
                close(fds[i]);
        }
    }
    m.text = strdup(text);

    pthread_mutex_lock(&s->mu);
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        struct svc_msg *v = realloc(s->v, cap * sizeof(*v));
        if (!v) {
            pthread_mutex_unlock(&s->mu);
            msg_free(&m);
            return -ENOMEM;
        }
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = m;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return 1;
}

static void *notify_thread(void *arg)
{
    struct svc_notify *s = arg;
    for (;;) {
        struct pollfd p[2] = {
            { .fd = s->fd, .events = POLLIN },
            { .fd = s->stop[0], .events = POLLIN },
        };
        if (poll(p, 2, -1) < 0 && errno != EINTR)
            break;
        if (p[0].revents & POLLIN)
            while (notify_recv_one(s) > 0)
                ;
        if (p[1].revents)
            break;
    }
    return NULL;
}

int svc_notify_open(struct svc_notify *s, const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    pthread_condattr_t ca;

    memset(s, 0, sizeof(*s));
    s->fd = -1;
    s->stop[0] = s->stop[1] = -1;
    if (strlen(path) >= sizeof(sa.sun_path) || strlen(path) >= sizeof(s->path))
        return -ENAMETOOLONG;
    strcpy(s->path, path);
    strcpy(sa.sun_path, path);
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    s->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s->fd < 0)
        return -errno;
    int big = 4 << 20;
    setsockopt(s->fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
    if (bind(s->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        pipe2(s->stop, O_CLOEXEC) < 0)
        return -errno;
    int r = pthread_create(&s->thread, NULL, notify_thread, s);
    if (r)
        return -r;
    s->running = true;
    return 0;
}

void svc_notify_close(struct svc_notify *s)
{
    if (s->running) {
        (void)!write(s->stop[1], "x", 1);
        pthread_join(s->thread, NULL);
        s->running = false;
    }
    for (int i = 0; i < 2; i++)
        if (s->stop[i] >= 0)
            close(s->stop[i]);
    if (s->fd >= 0) {
        close(s->fd);
        unlink(s->path);
    }
    s->fd = -1;
    for (size_t i = 0; i < s->n; i++)
        msg_free(&s->v[i]);
    free(s->v);
    s->v = NULL;
    s->n = s->cap = 0;
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
}

bool svc_msg_has(const char *text, const char *key)
{
    size_t kl = strlen(key);
    bool prefix = kl > 0 && key[kl - 1] == '=';
    for (const char *l = text; l && *l;) {
        const char *nl = strchr(l, '\n');
        size_t ll = nl ? (size_t)(nl - l) : strlen(l);
        if (prefix ? (ll >= kl && !strncmp(l, key, kl))
                   : (ll == kl && !strncmp(l, key, kl)))
            return true;
        l = nl ? nl + 1 : NULL;
    }
    return false;
}

const char *svc_msg_value(const char *text, const char *key, char *buf,
                          size_t size)
{
    size_t kl = strlen(key);
    for (const char *l = text; l && *l;) {
        const char *nl = strchr(l, '\n');
        size_t ll = nl ? (size_t)(nl - l) : strlen(l);
        if (ll >= kl && !strncmp(l, key, kl)) {
            snprintf(buf, size, "%.*s", (int)(ll - kl), l + kl);
            return buf;
        }
        l = nl ? nl + 1 : NULL;
    }
    return NULL;
}

static bool has_all(const char *text, const char *const *keys)
{
    for (; *keys; keys++)
        if (!svc_msg_has(text, *keys))
            return false;
    return true;
}

long svc_notify_wait(struct svc_notify *s, size_t from,
                     const char *const *keys, int timeout_ms)
{
    struct timespec dl;
    clock_gettime(CLOCK_MONOTONIC, &dl);
    dl.tv_sec += timeout_ms / 1000;
    dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    long found = -1;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        for (size_t i = from; i < s->n; i++)
            if (has_all(s->v[i].text, keys)) {
                found = (long)i;
                break;
            }
        if (found >= 0)
            break;
        from = s->n;
        if (pthread_cond_timedwait(&s->cv, &s->mu, &dl) == ETIMEDOUT) {
            for (size_t i = from; i < s->n && found < 0; i++)
                if (has_all(s->v[i].text, keys))
                    found = (long)i;
            break;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return found;
}

long svc_notify_wait_alive(struct svc_notify *s, const char *const *keys,
                           pid_t pid, int timeout_ms, int *status)
{
    int64_t end = hz_now_ms() + timeout_ms;
    for (;;) {
        long i = svc_notify_wait(s, 0, keys, 50);
        if (i >= 0)
            return i;
        if (waitpid(pid, status, WNOHANG) == pid)
            return svc_notify_wait(s, 0, keys, 0) >= 0 ? 0 : -2;
        if (hz_now_ms() > end)
            return -1;
    }
}

bool svc_notify_get(struct svc_notify *s, size_t i, struct svc_msg *out)
{
    bool ok = false;
    pthread_mutex_lock(&s->mu);
    if (i < s->n) {
        *out = s->v[i];
        out->text = strdup(s->v[i].text);
        ok = out->text != NULL;
    }
    pthread_mutex_unlock(&s->mu);
    return ok;
}

size_t svc_notify_count(struct svc_notify *s)
{
    pthread_mutex_lock(&s->mu);
    size_t n = s->n;
    pthread_mutex_unlock(&s->mu);
    return n;
}

/* ---- systemd's fd store ----------------------------------------------- */

static void store_remove(struct svc_fdstore *st, const char *name)
{
    size_t k = 0;
    for (size_t i = 0; i < st->n; i++) {
        if (!strcmp(st->names[i], name)) {
            close(st->fds[i]);
            free(st->names[i]);
            continue;
        }
        st->names[k] = st->names[i];
        st->fds[k++] = st->fds[i];
    }
    st->n = k;
}

static bool same_file(int a, int b)
{
    struct stat x, y;
    return fstat(a, &x) == 0 && fstat(b, &y) == 0 && x.st_dev == y.st_dev &&
           x.st_ino == y.st_ino;
}

static void store_add(struct svc_fdstore *st, const char *name, int fd)
{
    /* systemd keeps one entry per open file: a second FDSTORE of the
     * same file is dropped. */
    for (size_t i = 0; i < st->n; i++)
        if (same_file(st->fds[i], fd))
            return;
    if (st->n == SVC_STORE_MAX)
        return;
    int dup = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    if (dup < 0)
        return;
    st->names[st->n] = strdup(name);
    st->fds[st->n++] = dup;
}

size_t svc_fdstore_apply(struct svc_fdstore *st, struct svc_notify *s,
                         size_t from)
{
    struct svc_msg m;
    char name[256];
    size_t i = from;
    for (; svc_notify_get(s, i, &m); i++) {
        const char *nm = svc_msg_value(m.text, "FDNAME=", name, sizeof(name));
        if (svc_msg_has(m.text, "FDSTOREREMOVE=1") && nm)
            store_remove(st, nm);
        if (svc_msg_has(m.text, "FDSTORE=1"))
            for (size_t k = 0; k < m.n_fds; k++)
                store_add(st, nm ? nm : "stored", m.fds[k]);
        free(m.text);
    }
    return i;
}

int svc_fdstore_get(const struct svc_fdstore *st, const char *name)
{
    for (size_t i = 0; i < st->n; i++)
        if (!strcmp(st->names[i], name))
            return st->fds[i];
    return -1;
}

void svc_fdstore_clear(struct svc_fdstore *st)
{
    for (size_t i = 0; i < st->n; i++) {
        close(st->fds[i]);
        free(st->names[i]);
    }
    st->n = 0;
}

const char *svc_fdstore_names(const struct svc_fdstore *st)
{
    static char buf[SVC_STORE_MAX * 32];
    size_t off = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < st->n && off < sizeof(buf); i++)
        off += (size_t)snprintf(buf + off, sizeof(buf) - off, "%s%s",
                                i ? ":" : "", st->names[i]);
    return buf;
}

/* ---- starting mmapiod ------------------------------------------------- */

pid_t svc_spawn_daemon(const struct svc_spawn *sp)
{
    const char *bin = hz_build_file("MMAPIOD", "../../daemon/mmapiod");
    char *argv[32];
    size_t n = 0;

    if (!bin)
        return -ENOENT;
    if (sp->n_fds > 64)
        return -EINVAL;
    /* $MMAPIOD_WRAPPER (e.g. valgrind): words run before the daemon. It
     * runs the daemon in the same process: LISTEN_PID still holds. */
    static char wrap[512];
    const char *w = getenv("MMAPIOD_WRAPPER");
    if (w && *w) {
        snprintf(wrap, sizeof(wrap), "%s", w);
        for (char *tok = strtok(wrap, " "); tok && n < 16; tok = strtok(NULL, " "))
            argv[n++] = tok;
    }
    argv[n++] = (char *)bin;
    for (const char *const *a = sp->args; a && *a && n < 31; a++)
        argv[n++] = (char *)*a;
    argv[n] = NULL;

    pid_t pid = hz_fork();
    if (pid < 0)
        return -errno;
    if (pid != 0)
        return pid;

    /* The child: fds to 3.., the environment of a systemd service. */
    int tmp[64];
    for (size_t i = 0; i < sp->n_fds; i++) {
        tmp[i] = fcntl(sp->fds[i], F_DUPFD_CLOEXEC, 200);
        if (tmp[i] < 0)
            _exit(125);
    }
    for (size_t i = 0; i < sp->n_fds; i++)
        if (dup2(tmp[i], 3 + (int)i) < 0) /* dup2 clears close-on-exec */
            _exit(125);
    close_from(3 + (int)sp->n_fds);

    static const char *const sd_vars[] = {
        "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS",
        "LISTEN_PID", "LISTEN_FDNAMES",
    };
    for (size_t i = 0; i < sizeof(sd_vars) / sizeof(sd_vars[0]); i++)
        unsetenv(sd_vars[i]);
    for (const char *const *e = sp->env; e && *e; e++) {
        const char *eq = strchr(*e, '=');
        if (!eq)
            continue;
        char key[128];
        snprintf(key, sizeof(key), "%.*s", (int)(eq - *e), *e);
        setenv(key, eq + 1, 1);
    }
    if (sp->n_fds > 0) {
        char v[32];
        snprintf(v, sizeof(v), "%zu", sp->n_fds);
        setenv("LISTEN_FDS", v, 1);
        snprintf(v, sizeof(v), "%d", (int)getpid());
        setenv("LISTEN_PID", v, 1);
        if (sp->fdnames)
            setenv("LISTEN_FDNAMES", sp->fdnames, 1);
    }
    default_signals();
    execvp(argv[0], argv);
    _exit(127);
}

int svc_listen_seqpacket(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        chmod(path, 0666) < 0 || listen(fd, 128) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

long svc_pread_all(int fd, void *buf, size_t size)
{
    size_t got = 0;
    while (got < size) {
        ssize_t n = pread(fd, (char *)buf + got, size - got, (off_t)got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            break;
        got += (size_t)n;
    }
    return (long)got;
}

bool svc_read_until(int fd, char *buf, size_t size, size_t *len,
                    const char *needle, int timeout_ms)
{
    int64_t end = hz_now_ms() + timeout_ms;
    buf[*len] = '\0';
    while (!strstr(buf, needle)) {
        int64_t left = end - hz_now_ms();
        if (left <= 0 || *len + 1 >= size)
            return false;
        struct pollfd p = { .fd = fd, .events = POLLIN };
        int r = poll(&p, 1, (int)left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return false;
        ssize_t n = read(fd, buf + *len, size - 1 - *len);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n <= 0)
            return false;
        *len += (size_t)n;
        buf[*len] = '\0';
    }
    return true;
}
