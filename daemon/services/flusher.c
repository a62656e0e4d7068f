/* flusher: fdatasync on worker threads, per-uid round robin in two lanes,
 * completions back on the loop through a wakeup (see flusher.h). */
#include "flusher.h"

#include <errno.h>
#include <event2/event.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include "log.h"
#include "wakeup.h"

/* One uid's jobs in one lane, on the lane's ring while it has any. */
struct uid_queue {
    uid_t uid;
    struct flush_job *head, **tail;
    struct uid_queue *next;     /* the ring (circular) */
};

/* A lane: the ring of uids with jobs; `turn` is served next. */
struct lane {
    struct uid_queue *turn;
};

struct flusher {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct lane lanes[FLUSH_LANES];
    struct uid_queue *spare;                /* freed queues, reused */
    struct flush_job *done;                 /* finished, for the loop */
    bool stop;
    struct wakeup wake;
    struct event *ev;
    unsigned n_threads;
    pthread_t *threads;
};

struct worker_arg {
    struct flusher *f;
    bool timed_only;
};

static struct uid_queue *lane_find(struct lane *l, uid_t uid)
{
    struct uid_queue *q = l->turn;
    if (!q)
        return NULL;
    do {
        if (q->uid == uid)
            return q;
        q = q->next;
    } while (q != l->turn);
    return NULL;
}

/* Puts q on the ring, just before the one whose turn it is (last). */
static void lane_insert(struct lane *l, struct uid_queue *q)
{
    if (!l->turn) {
        q->next = q;
        l->turn = q;
        return;
    }
    struct uid_queue *prev = l->turn;
    while (prev->next != l->turn)
        prev = prev->next;
    prev->next = q;
    q->next = l->turn;
}

/* Takes the head job of the uid whose turn it is; the turn passes on. */
static struct flush_job *lane_take(struct flusher *f, struct lane *l)
{
    struct uid_queue *q = l->turn;
    if (!q)
        return NULL;
    struct flush_job *job = q->head;
    q->head = job->next;
    if (q->head) {
        l->turn = q->next;
        return job;
    }
    /* q is empty: off the ring, to the spares. */
    if (q->next == q) {
        l->turn = NULL;
    } else {
        struct uid_queue *prev = q;
        while (prev->next != q)
            prev = prev->next;
        prev->next = q->next;
        l->turn = q->next;
    }
    q->next = f->spare;
    f->spare = q;
    return job;
}

static struct flush_job *take(struct flusher *f, bool timed_only)
{
    struct flush_job *job = lane_take(f, &f->lanes[FLUSH_LANE_TIMED]);
    if (!job && !timed_only)
        job = lane_take(f, &f->lanes[FLUSH_LANE_REQUESTED]);
    return job;
}

static bool has_work(const struct flusher *f, bool timed_only)
{
    return f->lanes[FLUSH_LANE_TIMED].turn ||
           (!timed_only && f->lanes[FLUSH_LANE_REQUESTED].turn);
}

static void *worker(void *arg)
{
    struct worker_arg *wa = arg;
    struct flusher *f = wa->f;
    bool timed_only = wa->timed_only;
    free(wa);

    /* The loop answers clients; a worker waiting on the disk must not
     * take the CPU from it (per-thread nice: Linux). */
    (void)!setpriority(PRIO_PROCESS, (id_t)gettid(), 10);

    pthread_mutex_lock(&f->lock);
    for (;;) {
        while (!has_work(f, timed_only) && !f->stop)
            pthread_cond_wait(&f->cond, &f->lock);
        struct flush_job *job = take(f, timed_only);
        if (!job)
            break; /* stopping and nothing left */
        job->started = true;
        pthread_mutex_unlock(&f->lock);

        int r = 0;
        if (job->whole_fs && job->fd < 0)
            sync();
        else if (job->whole_fs)
            r = syncfs(job->fd);
        else
            do {
                r = fdatasync(job->fd);
            } while (r < 0 && errno == EINTR);
        job->result = r < 0 ? -errno : 0;

        pthread_mutex_lock(&f->lock);
        /* A list already waiting has woken the loop, which takes it all. */
        bool wake = !f->done;
        job->next = f->done;
        f->done = job;
        if (wake)
            wakeup_signal(&f->wake);
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

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    struct flusher *f = arg;
    wakeup_drain(&f->wake);
    run_done(f);
}

static int start_worker(struct flusher *f, bool timed_only)
{
    struct worker_arg *wa = malloc(sizeof(*wa));
    if (!wa)
        return -ENOMEM;
    wa->f = f;
    wa->timed_only = timed_only;
    if (pthread_create(&f->threads[f->n_threads], NULL, worker, wa)) {
        free(wa);
        return -EAGAIN;
    }
    f->n_threads++;
    return 0;
}

int flusher_new(struct event_base *base, unsigned threads,
                struct flusher **out)
{
    struct flusher *f = calloc(1, sizeof(*f));
    if (!f)
        return -ENOMEM;
    pthread_mutex_init(&f->lock, NULL);
    pthread_cond_init(&f->cond, NULL);
    int r = wakeup_open(&f->wake);
    f->threads = calloc(threads + 1, sizeof(pthread_t));
    if (r < 0 || !f->threads)
        goto fail;
    f->ev = event_new(base, f->wake.fd, EV_READ | EV_PERSIST, on_wake, f);
    if (!f->ev || event_add(f->ev, NULL) < 0)
        goto fail;
    if (start_worker(f, true) < 0)
        goto fail;
    while (f->n_threads < threads + 1)
        if (start_worker(f, false) < 0)
            goto fail;
    *out = f;
    return 0;
fail:
    flusher_free(f);
    return -ENOMEM;
}

int flusher_submit(struct flusher *f, struct flush_job *job)
{
    struct lane *l = &f->lanes[job->lane];
    job->next = NULL;
    job->result = 0;
    job->started = false;
    pthread_mutex_lock(&f->lock);
    struct uid_queue *q = lane_find(l, job->uid);
    if (!q) {
        q = f->spare;
        if (q)
            f->spare = q->next;
        else if (!(q = malloc(sizeof(*q)))) {
            pthread_mutex_unlock(&f->lock);
            return -ENOMEM;
        }
        q->uid = job->uid;
        q->head = NULL;
        q->tail = &q->head;
        lane_insert(l, q);
    }
    *q->tail = job;
    q->tail = &job->next;
    /* Every worker may have to look: the timed one takes only its lane. */
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->lock);
    return 0;
}

bool flusher_not_started(struct flusher *f, const struct flush_job *job)
{
    pthread_mutex_lock(&f->lock);
    bool queued = !job->started;
    pthread_mutex_unlock(&f->lock);
    return queued;
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
    run_done(f); /* workers drained the queues before they stopped */
    while (f->spare) {
        struct uid_queue *q = f->spare;
        f->spare = q->next;
        free(q);
    }
    if (f->ev)
        event_free(f->ev);
    wakeup_close(&f->wake);
    free(f->threads);
    pthread_mutex_destroy(&f->lock);
    pthread_cond_destroy(&f->cond);
    free(f);
}
