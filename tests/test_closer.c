/*
 * test_closer: the closer's bookkeeping without a daemon. A close that
 * waits for a gate stands for a FUSE file whose server does not answer.
 *   per uid      one uid's stuck close holds up that uid alone: another's
 *                fds close; past CLOSER_SOFT the stuck uid is told so.
 *   thread cap   CLOSER_THREADS uids stuck: a new uid waits without a
 *                thread (told so), and is served once one is free.
 *   idle exit    a thread without work ends.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include "closer.h"

static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static bool gate_open;
static bool stuck[65536]; /* fds whose close waits for the gate */

static void gated_close(int fd)
{
    pthread_mutex_lock(&gate_lock);
    while (stuck[fd] && !gate_open)
        pthread_cond_wait(&gate_cond, &gate_lock);
    stuck[fd] = false;
    pthread_mutex_unlock(&gate_lock);
    close(fd);
}

static void open_gate(void)
{
    pthread_mutex_lock(&gate_lock);
    gate_open = true;
    pthread_cond_broadcast(&gate_cond);
    pthread_mutex_unlock(&gate_lock);
}

static int new_fd(bool stuck_one)
{
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    cr_assert(fd >= 0 && fd < 65536);
    pthread_mutex_lock(&gate_lock);
    stuck[fd] = stuck_one;
    pthread_mutex_unlock(&gate_lock);
    return fd;
}

/* Waits (up to 20 s, a bound, not a measure) for n() == want. */
static bool settles(size_t (*n)(void), size_t want)
{
    for (int i = 0; i < 20000; i++) {
        if (n() == want)
            return true;
        nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
    }
    return false;
}

static uid_t probe_uid;
static size_t pending_probe(void)
{
    return closer_pending_uid(probe_uid);
}

static void init(void)
{
    closer_set_close_fn(gated_close);
}

TestSuite(closer, .init = init, .timeout = 60);

Test(closer, per_uid)
{
    cr_assert_eq(closer_give(1000, new_fd(true)), 0);
    for (int i = 0; i < 10; i++)
        cr_assert_eq(closer_give(1001, new_fd(false)), 0);
    probe_uid = 1001;
    cr_assert(settles(pending_probe, 0), "uid 1001's fds close");
    cr_assert_eq(closer_pending_uid(1000), 1);
    cr_assert_not(closer_busy(1001));
    for (int i = 1; i < CLOSER_SOFT; i++)
        cr_assert_eq(closer_give(1000, new_fd(false)), 0);
    cr_assert(closer_busy(1000));
    int last = closer_give(1000, new_fd(false));
    cr_assert_eq(last, -EAGAIN, "past CLOSER_SOFT for uid 1000");
    cr_assert_eq(closer_pending_uid(1000), CLOSER_SOFT + 1);
    cr_assert_not(closer_busy(1001));
    cr_assert_eq(closer_give(1001, new_fd(false)), 0);
    open_gate();
    cr_assert(settles(closer_pending, 0));
}

Test(closer, thread_cap)
{
    for (uid_t u = 0; u < CLOSER_THREADS; u++)
        cr_assert_eq(closer_give(2000 + u, new_fd(true)), 0);
    cr_assert_eq(closer_threads(), CLOSER_THREADS);
    uid_t late = 2000 + CLOSER_THREADS;
    cr_assert(closer_busy(late), "no thread left for a new uid");
    cr_assert_eq(closer_give(late, new_fd(false)), -EAGAIN);
    cr_assert_eq(closer_pending_uid(late), 1);
    cr_assert_eq(closer_threads(), CLOSER_THREADS);
    open_gate();
    probe_uid = late;
    cr_assert(settles(pending_probe, 0), "a freed thread takes it up");
    cr_assert(settles(closer_pending, 0));
}

Test(closer, idle_exit)
{
    cr_assert_eq(closer_give(3000, new_fd(false)), 0);
    cr_assert_eq(closer_give(3001, new_fd(false)), 0);
    cr_assert(settles(closer_pending, 0));
    cr_assert(settles(closer_threads, 0), "idle threads end");
    cr_assert_not(closer_busy(3000));
    /* and start again on demand */
    cr_assert_eq(closer_give(3000, new_fd(false)), 0);
    cr_assert(settles(closer_pending, 0));
}
