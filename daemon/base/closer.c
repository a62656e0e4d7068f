/* closer: client fds closed off the event loop (see closer.h). */
#include "closer.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static int ring[CLOSER_HARD];
static size_t head, count;
static bool started, broken;

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

static void *run(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&lock);
    for (;;) {
        while (count == 0)
            pthread_cond_wait(&wake, &lock);
        int fd = ring[head];
        pthread_mutex_unlock(&lock);
        close_quickly(fd); /* may still block: never on the loop */
        pthread_mutex_lock(&lock);
        head = (head + 1) % CLOSER_HARD;
        count--;
    }
    return NULL;
}

/* The thread, started on first use, with every signal blocked (the loop
 * takes SIGTERM/SIGINT). Called with the lock held. */
static bool start_locked(void)
{
    pthread_t t;
    pthread_attr_t attr;
    sigset_t all, old;

    if (started || broken)
        return started;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int r = pthread_attr_init(&attr);
    if (r == 0) {
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        r = pthread_create(&t, &attr, run, NULL);
        pthread_attr_destroy(&attr);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    started = r == 0;
    broken = r != 0;
    if (broken)
        log_warn("cannot start the closer thread; client fds close inline");
    return started;
}

int closer_give(int fd)
{
    if (fd < 0)
        return 0;
    pthread_mutex_lock(&lock);
    if (!start_locked() || count >= CLOSER_HARD) {
        pthread_mutex_unlock(&lock);
        log_warn("closer queue full: closing a client's fd on the loop");
        close(fd);
        return -EAGAIN;
    }
    ring[(head + count) % CLOSER_HARD] = fd;
    count++;
    bool over = count > CLOSER_SOFT;
    pthread_cond_signal(&wake);
    pthread_mutex_unlock(&lock);
    return over ? -EAGAIN : 0;
}

int closer_give_all(int *fds, size_t n)
{
    int r = 0;
    for (size_t i = 0; i < n; i++) {
        if (closer_give(fds[i]) < 0)
            r = -EAGAIN;
        fds[i] = -1;
    }
    return r;
}

size_t closer_pending(void)
{
    pthread_mutex_lock(&lock);
    size_t n = count;
    pthread_mutex_unlock(&lock);
    return n;
}
