/* flusher: fdatasync on worker threads, completions back on the loop
 * through an eventfd (see flusher.h). */
#include "flusher.h"

#include <errno.h>
#include <event2/event.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

#include "log.h"

struct flusher {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct flush_job *queue, **queue_tail;  /* waiting for a worker */
    struct flush_job *done;                 /* finished, for the loop */
    bool stop;
    int efd;
    struct event *ev;
    unsigned n_threads;
    pthread_t *threads;
};

static void *worker(void *arg)
{
    struct flusher *f = arg;

    /* The loop answers clients; a worker waiting on the disk must not
     * take the CPU from it (per-thread nice: Linux). */
    (void)!setpriority(PRIO_PROCESS, (id_t)gettid(), 10);

    pthread_mutex_lock(&f->lock);
    for (;;) {
        while (!f->queue && !f->stop)
            pthread_cond_wait(&f->cond, &f->lock);
        struct flush_job *job = f->queue;
        if (!job)
            break; /* stopping and nothing left */
        f->queue = job->next;
        if (!f->queue)
            f->queue_tail = &f->queue;
        pthread_mutex_unlock(&f->lock);

        int r;
        do {
            r = fdatasync(job->fd);
        } while (r < 0 && errno == EINTR);
        job->result = r < 0 ? -errno : 0;

        pthread_mutex_lock(&f->lock);
        job->next = f->done;
        f->done = job;
        uint64_t one = 1;
        (void)!write(f->efd, &one, sizeof(one));
    }
    pthread_mutex_unlock(&f->lock);
    return NULL;
}

static void run_done(struct flusher *f)
{
    pthread_mutex_lock(&f->lock);
    struct flush_job *list = f->done;
    f->done = NULL;
    pthread_mutex_unlock(&f->lock);

    while (list) {
        struct flush_job *job = list;
        list = job->next;
        job->done(job);
    }
}

static void on_efd(evutil_socket_t fd, short what, void *arg)
{
    uint64_t n;
    (void)!read(fd, &n, sizeof(n));
    run_done(arg);
}

int flusher_new(struct event_base *base, unsigned threads,
                struct flusher **out)
{
    struct flusher *f = calloc(1, sizeof(*f));
    if (!f)
        return -ENOMEM;
    pthread_mutex_init(&f->lock, NULL);
    pthread_cond_init(&f->cond, NULL);
    f->queue_tail = &f->queue;
    f->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    f->threads = calloc(threads, sizeof(pthread_t));
    if (f->efd < 0 || !f->threads)
        goto fail;
    f->ev = event_new(base, f->efd, EV_READ | EV_PERSIST, on_efd, f);
    if (!f->ev || event_add(f->ev, NULL) < 0)
        goto fail;
    for (; f->n_threads < threads; f->n_threads++)
        if (pthread_create(&f->threads[f->n_threads], NULL, worker, f))
            goto fail;
    *out = f;
    return 0;
fail:
    flusher_free(f);
    return -ENOMEM;
}

void flusher_submit(struct flusher *f, struct flush_job *job)
{
    job->next = NULL;
    job->result = 0;
    pthread_mutex_lock(&f->lock);
    *f->queue_tail = job;
    f->queue_tail = &job->next;
    pthread_cond_signal(&f->cond);
    pthread_mutex_unlock(&f->lock);
}

void flusher_free(struct flusher *f)
{
    if (!f)
        return;
    pthread_mutex_lock(&f->lock);
    f->stop = true;
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->lock);
    for (unsigned i = 0; i < f->n_threads; i++)
        pthread_join(f->threads[i], NULL);
    run_done(f); /* workers drained the queue before they stopped */
    if (f->ev)
        event_free(f->ev);
    if (f->efd >= 0)
        close(f->efd);
    free(f->threads);
    pthread_mutex_destroy(&f->lock);
    pthread_cond_destroy(&f->cond);
    free(f);
}
