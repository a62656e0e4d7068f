/* closer: client fds closed off the event loop, a queue and a thread per
 * uid (see closer.h). One lock guards every queue. */
#include "closer.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

struct queue {
    uid_t uid;
    bool used;   /* holds fds or a thread */
    bool served; /* a thread is on it */
    int *ring;   /* CLOSER_HARD slots */
    size_t head, count;
    pthread_cond_t wake;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static struct queue queues[CLOSER_UIDS];
static size_t n_threads;

/* A socket's close need not wait for its unsent data (SO_LINGER): with
 * lingering off, the kernel sends it in the background. Anything else
 * (a FUSE file's flush) is waited for here, off the loop. */
static void close_quickly(int fd)
{
    struct stat st;
    struct linger off = { 0, 0 };
    if (fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode))
        (void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &off, sizeof(off));
    close(fd);
}

static void (*close_fn)(int fd) = close_quickly;

static void init_conds(void)
{
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    for (size_t i = 0; i < CLOSER_UIDS; i++)
        pthread_cond_init(&queues[i].wake, &a);
    pthread_condattr_destroy(&a);
}

static struct queue *find_locked(uid_t uid)
{
    for (size_t i = 0; i < CLOSER_UIDS; i++)
        if (queues[i].used && queues[i].uid == uid)
            return &queues[i];
    return NULL;
}

static struct queue *make_locked(uid_t uid)
{
    for (size_t i = 0; i < CLOSER_UIDS; i++) {
        struct queue *q = &queues[i];
        if (q->used)
            continue;
        q->ring = malloc(CLOSER_HARD * sizeof(*q->ring));
        if (!q->ring)
            return NULL;
        q->uid = uid;
        q->used = true;
        q->served = false;
        q->head = q->count = 0;
        return q;
    }
    return NULL;
}

/* The thread leaves q; an empty queue without a thread is no more. */
static void leave_locked(struct queue *q)
{
    q->served = false;
    if (q->count == 0) {
        free(q->ring);
        q->ring = NULL;
        q->used = false;
    }
}

/* A queue with fds and no thread (the threads were all busy). */
static struct queue *orphan_locked(void)
{
    for (size_t i = 0; i < CLOSER_UIDS; i++)
        if (queues[i].used && !queues[i].served && queues[i].count > 0)
            return &queues[i];
    return NULL;
}

static struct timespec idle_deadline(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    t.tv_sec += CLOSER_IDLE_S;
    return t;
}

/* Serves its uid's queue; when it is empty, a queue left without a
 * thread; ends after CLOSER_IDLE_S without either. */
static void *run(void *arg)
{
    struct queue *q = arg;
    pthread_mutex_lock(&lock);
    for (;;) {
        while (q->count > 0) {
            int fd = q->ring[q->head];
            void (*fn)(int) = close_fn;
            pthread_mutex_unlock(&lock);
            fn(fd); /* may still block: never on the loop */
            pthread_mutex_lock(&lock);
            q->head = (q->head + 1) % CLOSER_HARD;
            q->count--;
        }
        struct queue *o = orphan_locked();
        if (o) {
            leave_locked(q);
            q = o;
            q->served = true;
            continue;
        }
        struct timespec until = idle_deadline();
        int r = 0;
        while (q->count == 0 && r != ETIMEDOUT && !orphan_locked())
            r = pthread_cond_timedwait(&q->wake, &lock, &until);
        if (q->count == 0 && !orphan_locked())
            break;
    }
    leave_locked(q);
    n_threads--;
    pthread_mutex_unlock(&lock);
    return NULL;
}

/* A thread for q, with every signal blocked (the loop takes
 * SIGTERM/SIGINT). Called with the lock held. */
static bool start_locked(struct queue *q)
{
    pthread_t t;
    pthread_attr_t attr;
    sigset_t all, old;

    if (n_threads >= CLOSER_THREADS)
        return false;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int r = pthread_attr_init(&attr);
    if (r == 0) {
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        r = pthread_create(&t, &attr, run, q);
        pthread_attr_destroy(&attr);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (r != 0)
        return false;
    q->served = true;
    n_threads++;
    return true;
}

/* A thread without work, if any. */
static struct queue *idle_locked(void)
{
    for (size_t i = 0; i < CLOSER_UIDS; i++)
        if (queues[i].used && queues[i].served && queues[i].count == 0)
            return &queues[i];
    return NULL;
}

/* Wakes an idle thread, if any, to take up a queue without one. */
static void kick_idle_locked(void)
{
    struct queue *q = idle_locked();
    if (q)
        pthread_cond_signal(&q->wake);
}

/* No room for fd: a socket closes here at once with lingering off; any
 * other fd may never close, so it is let go (left open). */
static void last_resort(uid_t uid, int fd)
{
    static struct log_limit sock_line, kept_line;
    struct stat st;
    struct linger off = { 0, 0 };
    if (fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode)) {
        (void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &off, sizeof(off));
        log_limited(&sock_line, LOG_LVL_WARN, "closer full for uid %u: a "
                    "socket closed on the loop", (unsigned)uid);
        close(fd);
        return;
    }
    log_limited(&kept_line, LOG_LVL_WARN, "closer full for uid %u: a "
                "client's fd left open", (unsigned)uid);
}

int closer_give(uid_t uid, int fd)
{
    if (fd < 0)
        return 0;
    pthread_once(&once, init_conds);
    pthread_mutex_lock(&lock);
    struct queue *q = find_locked(uid);
    if (!q)
        q = make_locked(uid);
    if (!q || q->count >= CLOSER_HARD) {
        pthread_mutex_unlock(&lock);
        last_resort(uid, fd);
        return -EAGAIN;
    }
    q->ring[(q->head + q->count) % CLOSER_HARD] = fd;
    q->count++;
    if (!q->served && !start_locked(q))
        kick_idle_locked();
    bool over = q->count > CLOSER_SOFT || !q->served;
    pthread_cond_signal(&q->wake);
    pthread_mutex_unlock(&lock);
    return over ? -EAGAIN : 0;
}

int closer_give_all(uid_t uid, int *fds, size_t n)
{
    int r = 0;
    for (size_t i = 0; i < n; i++) {
        if (closer_give(uid, fds[i]) < 0)
            r = -EAGAIN;
        fds[i] = -1;
    }
    return r;
}

size_t closer_pending_uid(uid_t uid)
{
    pthread_mutex_lock(&lock);
    struct queue *q = find_locked(uid);
    size_t n = q ? q->count : 0;
    pthread_mutex_unlock(&lock);
    return n;
}

bool closer_busy(uid_t uid)
{
    pthread_mutex_lock(&lock);
    struct queue *q = find_locked(uid);
    bool busy = q ? q->count >= CLOSER_SOFT || !q->served
                  : n_threads >= CLOSER_THREADS && !idle_locked();
    pthread_mutex_unlock(&lock);
    return busy;
}

size_t closer_pending(void)
{
    size_t n = 0;
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < CLOSER_UIDS; i++)
        n += queues[i].used ? queues[i].count : 0;
    pthread_mutex_unlock(&lock);
    return n;
}

size_t closer_threads(void)
{
    pthread_mutex_lock(&lock);
    size_t n = n_threads;
    pthread_mutex_unlock(&lock);
    return n;
}

void closer_set_close_fn(void (*fn)(int fd))
{
    pthread_mutex_lock(&lock);
    close_fn = fn ? fn : close_quickly;
    pthread_mutex_unlock(&lock);
}
