/* copier: copies on worker threads, results on the loop (see copier.h). */
#include "copier.h"

#include <errno.h>
#include <event2/event.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#include "wakeup.h"

/* A chunk small enough that a copy is interrupted often by nothing. */
#define CHUNK (8u << 20)

struct copier {
    pthread_mutex_t lock;
    struct copy_job *finished; /* handed back, under lock */
    unsigned running;
    uid_t uids[COPIER_THREADS]; /* the running jobs' uids */
    struct wakeup wake;       /* finished jobs wait on the loop */
    struct event *ev;
};

struct worker_arg {
    struct copier *cp;
    struct copy_job *job;
};

static int copy_slow(int src, int dst, off_t *off, size_t n)
{
    char buf[65536];
    ssize_t r = pread(src, buf, n < sizeof(buf) ? n : sizeof(buf), *off);
    if (r <= 0)
        return r < 0 ? -errno : -EIO;
    ssize_t w = pwrite(dst, buf, (size_t)r, *off);
    if (w < 0)
        return -errno;
    *off += w;
    return 0;
}

static int copy_all(int src, int dst, uint64_t len)
{
    off_t off = 0;
    bool slow = false;
    while ((uint64_t)off < len) {
        uint64_t left = len - (uint64_t)off;
        size_t n = left < CHUNK ? (size_t)left : CHUNK;
        if (!slow) {
            off_t in = off, out = off;
            ssize_t r = copy_file_range(src, &in, dst, &out, n, 0);
            if (r > 0) {
                off = in;
                continue;
            }
            if (r == 0)
                return -EIO; /* src shrank under us */
            if (errno == EINTR)
                continue;
            if (errno != EXDEV && errno != EINVAL && errno != ENOSYS &&
                errno != EOPNOTSUPP)
                return -errno;
            slow = true;
        }
        int r = copy_slow(src, dst, &off, n);
        if (r < 0 && r != -EINTR)
            return r;
    }
    return 0;
}

static void *worker(void *p)
{
    struct worker_arg *a = p;
    struct copier *cp = a->cp;
    struct copy_job *job = a->job;
    free(a);
    job->result = copy_all(job->src, job->dst, job->len);
    pthread_mutex_lock(&cp->lock);
    job->next = cp->finished;
    cp->finished = job;
    wakeup_signal(&cp->wake);
    pthread_mutex_unlock(&cp->lock);
    return NULL;
}

static void run_finished(struct copier *cp)
{
    wakeup_drain(&cp->wake);
    pthread_mutex_lock(&cp->lock);
    struct copy_job *list = cp->finished;
    cp->finished = NULL;
    pthread_mutex_unlock(&cp->lock);
    while (list) {
        struct copy_job *j = list;
        list = j->next;
        pthread_mutex_lock(&cp->lock);
        for (unsigned i = 0; i < cp->running; i++)
            if (cp->uids[i] == j->uid) {
                cp->uids[i] = cp->uids[cp->running - 1];
                break;
            }
        cp->running--;
        pthread_mutex_unlock(&cp->lock);
        j->done(j);
    }
}

static void on_done(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    run_finished(arg);
}

struct copier *copier_new(struct event_base *base)
{
    struct copier *cp = calloc(1, sizeof(*cp));
    if (!cp)
        return NULL;
    pthread_mutex_init(&cp->lock, NULL);
    if (wakeup_open(&cp->wake) == 0)
        cp->ev = event_new(base, cp->wake.fd, EV_READ | EV_PERSIST, on_done, cp);
    if (!cp->ev || event_add(cp->ev, NULL) < 0) {
        copier_free(cp);
        return NULL;
    }
    return cp;
}

int copier_submit(struct copier *cp, struct copy_job *job)
{
    pthread_t t;
    pthread_attr_t attr;
    struct worker_arg *a = malloc(sizeof(*a));
    if (!a)
        return -ENOMEM;
    a->cp = cp;
    a->job = job;
    pthread_mutex_lock(&cp->lock);
    unsigned mine = 0;
    for (unsigned i = 0; i < cp->running; i++)
        mine += cp->uids[i] == job->uid;
    if (cp->running >= COPIER_THREADS || mine >= COPIER_PER_UID) {
        pthread_mutex_unlock(&cp->lock);
        free(a);
        return -EBUSY;
    }
    cp->uids[cp->running++] = job->uid;
    pthread_mutex_unlock(&cp->lock);
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int r = pthread_create(&t, &attr, worker, a);
    pthread_attr_destroy(&attr);
    if (r) {
        pthread_mutex_lock(&cp->lock);
        cp->running--;
        pthread_mutex_unlock(&cp->lock);
        free(a);
        return -r;
    }
    return 0;
}

void copier_free(struct copier *cp)
{
    if (!cp)
        return;
    for (;;) {
        pthread_mutex_lock(&cp->lock);
        unsigned n = cp->running;
        pthread_mutex_unlock(&cp->lock);
        if (n == 0)
            break;
        run_finished(cp);
        usleep(1000);
    }
    if (cp->ev)
        event_free(cp->ev);
    wakeup_close(&cp->wake);
    pthread_mutex_destroy(&cp->lock);
    free(cp);
}
