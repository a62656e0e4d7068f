/* churn: a client killed mid-way, one cycle (see churn.h). */
#include "churn.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

void churn_init(struct churn *ch, const char *sock, const char *file,
                const char *anon)
{
    memset(ch, 0, sizeof(*ch));
    ch->sock = sock;
    ch->file = file;
    ch->anon = anon;
    for (int s = 0; s < CHURN_SLOTS; s++)
        ch->last[s] = UINT32_MAX;
}

static void record(char out[CHURN_RECORD + 1], uint32_t i)
{
    snprintf(out, CHURN_RECORD + 1, "cycle %010u", (unsigned)i);
}

static void on_event(const mmapio_change_event *ev, void *user)
{
    (void)ev;
    (void)user;
}

/* The child: exits with the number of the step that failed. */
static void child(struct churn *ch, struct hz_chan *up, uint32_t i,
                  int midway)
{
    mmapio_client *c;
    mmapio_map *a, *f;
    mmapio_watcher *w;
    char rec[CHURN_RECORD + 1];
    record(rec, i);
    uint64_t off = (uint64_t)(i % CHURN_SLOTS) * CHURN_SLOT_STRIDE;
    if (midway)
        off += (uint64_t)CHURN_SLOTS * CHURN_SLOT_STRIDE;

    if (mmapio_connect(ch->sock, &c) != MMAPIO_OK)
        _exit(10);
    if (mmapio_anon_open(c, ch->anon, &a) != MMAPIO_OK)
        _exit(11);
    if (mmapio_open_rw(c, ch->file, &f) != MMAPIO_OK)
        _exit(12);
    if (mmapio_watch(f, on_event, NULL, &w) != MMAPIO_OK)
        _exit(13);
    if (mmapio_update_region(a, 0, rec, CHURN_RECORD) != MMAPIO_OK)
        _exit(14);
    if (mmapio_update_region(f, off, rec, CHURN_RECORD) != MMAPIO_OK)
        _exit(15);
    if (mmapio_ping(c) != MMAPIO_OK)
        _exit(16);
    if (!midway && hz_chan_send(up, 'k') < 0)
        _exit(17);
    for (;;)
        pause();
}

static const char *step_name(int code)
{
    switch (code) {
    case 10: return "connect";
    case 11: return "anon_open";
    case 12: return "open_rw";
    case 13: return "watch";
    case 14: return "update_region (anon)";
    case 15: return "update_region (file)";
    case 16: return "ping";
    case 17: return "rendezvous";
    case 126: return "fork (parent gone)";
    default: return "?";
    }
}

int churn_cycle(struct churn *ch, uint32_t i, char *err, size_t err_size)
{
    int midway = i % CHURN_MIDWAY_EVERY == CHURN_MIDWAY_EVERY - 1;
    struct hz_chan up;
    if (hz_chan_open(&up) < 0) {
        snprintf(err, err_size, "cycle %u: pipe: %s", (unsigned)i,
                 strerror(errno));
        return -1;
    }
    pid_t pid = hz_fork();
    if (pid < 0) {
        snprintf(err, err_size, "cycle %u: fork: %s", (unsigned)i,
                 strerror(errno));
        hz_chan_close(&up);
        return -1;
    }
    if (pid == 0) {
        hz_chan_keep_write(&up);
        child(ch, &up, i, midway);
    }
    hz_chan_keep_read(&up);
    int got = 'k';
    if (midway) {
        /* 0 to ~3 ms: before, during or after its requests */
        struct timespec ts = { 0, (long)((i * 7919u) % 3000u) * 1000L };
        nanosleep(&ts, NULL);
    } else {
        got = hz_chan_recv(&up, 20000);
    }
    kill(pid, SIGKILL);
    int st = hz_wait_child(pid, 20000);
    hz_chan_close(&up);
    if (midway) {
        if (WIFEXITED(st)) {
            snprintf(err, err_size, "cycle %u (killed mid-way): the child "
                     "failed at %s", (unsigned)i,
                     step_name(WEXITSTATUS(st)));
            return -1;
        }
        ch->midway++;
        return 0;
    }
    if (got != 'k') {
        snprintf(err, err_size, "cycle %u: the child failed at %s (wait "
                 "status 0x%x)", (unsigned)i,
                 WIFEXITED(st) ? step_name(WEXITSTATUS(st)) : "a signal",
                 (unsigned)st);
        return -1;
    }
    if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGKILL) {
        snprintf(err, err_size, "cycle %u: the child ended with status "
                 "0x%x, not SIGKILL", (unsigned)i, (unsigned)st);
        return -1;
    }
    ch->last[i % CHURN_SLOTS] = i;
    ch->completed++;
    return 0;
}

int churn_verify(const struct churn *ch, const char *path, char *err,
                 size_t err_size)
{
    static char disk[CHURN_FILE_SIZE];
    long n = hz_read_file(path, disk, sizeof(disk));
    if (n < (long)CHURN_FILE_SIZE) {
        snprintf(err, err_size, "%s: %ld bytes, expected %u", path, n,
                 CHURN_FILE_SIZE);
        return -1;
    }
    for (int s = 0; s < CHURN_SLOTS; s++) {
        if (ch->last[s] == UINT32_MAX)
            continue;
        char want[CHURN_RECORD + 1];
        record(want, ch->last[s]);
        const char *at = disk + (size_t)s * CHURN_SLOT_STRIDE;
        if (memcmp(at, want, CHURN_RECORD) != 0) {
            snprintf(err, err_size, "slot %d of %s holds \"%.*s\", expected "
                     "\"%s\": a killed writer's bytes were lost", s, path,
                     CHURN_RECORD, at, want);
            return -1;
        }
    }
    return 0;
}
