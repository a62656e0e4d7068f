/* peer: a second holder process driven step by step (see peer.h). */
#include "peer.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

struct peer_shm {
    struct peer_cmd cmd;
    struct peer_res res;
};

static int peer_run(struct peer_shm *shm, mmapio_client *c,
                    mmapio_map **maps)
{
    struct peer_cmd *cmd = &shm->cmd;
    struct peer_res *res = &shm->res;
    mmapio_map *m = NULL;
    static uint8_t buf[1 << 20];

    memset(res, 0, sizeof(*res));
    if (cmd->op != PEER_OPEN && cmd->op != PEER_DELETE) {
        if (cmd->idx < 0 || cmd->idx >= PEER_MAPS || !maps[cmd->idx])
            return MMAPIO_E_INVALID_ARGUMENT;
        m = maps[cmd->idx];
    }
    switch (cmd->op) {
    case PEER_OPEN: {
        int i = 0;
        while (i < PEER_MAPS && maps[i])
            i++;
        if (i == PEER_MAPS)
            return MMAPIO_E_QUOTA;
        mmapio_options o;
        mmapio_options_init(&o);
        o.anonymous = cmd->anonymous;
        o.mode = cmd->mode;
        int r = mmapio_open(c, cmd->path, &o, &maps[i]);
        if (r == MMAPIO_OK) {
            res->idx = i;
            m = maps[i];
        }
        if (m)
            break;
        return r;
    }
    case PEER_WRITE:
    case PEER_WRITE_MANY: {
        if (cmd->len > sizeof(buf))
            return MMAPIO_E_INVALID_ARGUMENT;
        memset(buf, cmd->byte, cmd->len);
        if (cmd->op == PEER_WRITE)
            return mmapio_update_region(m, cmd->off, buf, cmd->len);
        uint64_t size = mmapio_len(m);
        if (size < cmd->len || cmd->len == 0)
            return MMAPIO_E_INVALID_ARGUMENT;
        uint64_t slots = size / cmd->len;
        for (uint64_t i = 0; i < cmd->count; i++) {
            int r = mmapio_update_region(m, (i % slots) * cmd->len, buf,
                                         cmd->len);
            if (r != MMAPIO_OK)
                return r;
        }
        return MMAPIO_OK;
    }
    case PEER_PTR_WRITE: {
        uint8_t *p = mmapio_as_mut_ptr(m);
        if (!p)
            return MMAPIO_E_INVALID_MODE;
        if (cmd->off > mmapio_len(m) || cmd->len > mmapio_len(m) - cmd->off)
            return MMAPIO_E_OUT_OF_BOUNDS;
        memset(p + cmd->off, cmd->byte, cmd->len);
        return MMAPIO_OK;
    }
    case PEER_SET_POLICY:
        return mmapio_set_flush_policy(m, cmd->pol);
    case PEER_FLUSH:
        return mmapio_flush(m);
    case PEER_RESIZE:
        return mmapio_resize(m, cmd->len);
    case PEER_REFRESH:
        return mmapio_refresh(m);
    case PEER_UNMAP:
        maps[cmd->idx] = NULL;
        return mmapio_unmap(m);
    case PEER_DELETE:
        return cmd->anonymous ? mmapio_anon_delete(c, cmd->path)
                              : mmapio_delete(c, cmd->path);
    case PEER_QUERY:
        return MMAPIO_OK;
    default:
        return MMAPIO_E_INVALID_ARGUMENT;
    }
    return MMAPIO_OK;
}

static void peer_main(struct peer *p)
{
    mmapio_client *c;
    mmapio_map *maps[PEER_MAPS] = { 0 };

    hz_chan_keep_read(&p->down);
    hz_chan_keep_write(&p->up);
    if (mmapio_connect(hz.sock, &c) != MMAPIO_OK)
        _exit(10);
    hz_chan_send(&p->up, 'r');
    for (;;) {
        if (hz_chan_recv(&p->down, -1) != 'c')
            _exit(11); /* the test is gone */
        struct peer_shm *shm = p->shm;
        if (shm->cmd.op == PEER_EXIT)
            break;
        int rc = peer_run(shm, c, maps);
        mmapio_map *m = NULL;
        int idx = shm->cmd.op != PEER_OPEN ? shm->cmd.idx
                  : rc == MMAPIO_OK         ? shm->res.idx
                                            : -1;
        if (idx >= 0 && idx < PEER_MAPS)
            m = maps[idx];
        if (m) {
            shm->res.pending = mmapio_pending_bytes(m);
            shm->res.len = mmapio_len(m);
            shm->res.pol = mmapio_flush_policy_of(m);
        }
        shm->res.rc = rc;
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        hz_chan_send(&p->up, 'd');
    }
    for (int i = 0; i < PEER_MAPS; i++)
        mmapio_unmap(maps[i]);
    mmapio_disconnect(c);
    _exit(0);
}

int peer_start(struct peer *p)
{
    memset(p, 0, sizeof(*p));
    p->pid = -1;
    p->shm = mmap(NULL, sizeof(struct peer_shm), PROT_READ | PROT_WRITE,
                  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p->shm == MAP_FAILED)
        return -errno;
    int r = hz_chan_open(&p->down);
    if (r == 0)
        r = hz_chan_open(&p->up);
    if (r < 0)
        return r;
    pid_t pid = hz_fork();
    if (pid < 0)
        return -errno;
    if (pid == 0)
        peer_main(p);
    p->pid = pid;
    hz_chan_keep_write(&p->down);
    hz_chan_keep_read(&p->up);
    r = hz_chan_recv(&p->up, PEER_TIMEOUT_MS);
    return r == 'r' ? 0 : (r < 0 ? r : -EPROTO);
}

int peer_send(struct peer *p, const struct peer_cmd *cmd)
{
    p->shm->cmd = *cmd;
    memset(&p->shm->res, 0, sizeof(p->shm->res));
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    return hz_chan_send(&p->down, 'c');
}

int peer_wait(struct peer *p, int timeout_ms, struct peer_res *res)
{
    int r = hz_chan_recv(&p->up, timeout_ms);
    if (r != 'd')
        return r < 0 ? r : -EPROTO;
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (res)
        *res = p->shm->res;
    return 0;
}

int peer_call(struct peer *p, const struct peer_cmd *cmd,
              struct peer_res *res)
{
    int r = peer_send(p, cmd);
    return r < 0 ? r : peer_wait(p, PEER_TIMEOUT_MS, res);
}

int peer_stop(struct peer *p)
{
    if (p->pid <= 0)
        return -1;
    struct peer_cmd cmd = { .op = PEER_EXIT };
    p->shm->cmd = cmd;
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    hz_chan_send(&p->down, 'c');
    int st = hz_wait_child(p->pid, PEER_TIMEOUT_MS);
    p->pid = -1;
    hz_chan_close(&p->down);
    hz_chan_close(&p->up);
    munmap(p->shm, sizeof(struct peer_shm));
    return st;
}

void peer_kill(struct peer *p)
{
    if (p->pid > 0) {
        kill(p->pid, SIGKILL);
        waitpid(p->pid, NULL, 0);
    }
    p->pid = -1;
    hz_chan_close(&p->down);
    hz_chan_close(&p->up);
    munmap(p->shm, sizeof(struct peer_shm));
}

/* A transport failure as a value no library call returns. */
static int call_rc(struct peer *p, const struct peer_cmd *cmd,
                   struct peer_res *res)
{
    int r = peer_call(p, cmd, res);
    return r < 0 ? -RAW_ERRNO_BASE + r : res->rc;
}

int peer_open(struct peer *p, const char *path, bool anonymous,
              mmapio_mode mode, int *idx)
{
    struct peer_cmd cmd = { .op = PEER_OPEN, .anonymous = anonymous,
                            .mode = mode };
    struct peer_res res = { 0 };
    strncpy(cmd.path, path, sizeof(cmd.path) - 1);
    int r = call_rc(p, &cmd, &res);
    if (r == MMAPIO_OK)
        *idx = res.idx;
    return r;
}

int peer_write(struct peer *p, int idx, uint64_t off, uint64_t len, int byte,
               uint64_t *pending)
{
    struct peer_cmd cmd = { .op = PEER_WRITE, .idx = idx, .off = off,
                            .len = len, .byte = byte };
    struct peer_res res = { 0 };
    int r = call_rc(p, &cmd, &res);
    if (pending)
        *pending = res.pending;
    return r;
}

int peer_ptr_write(struct peer *p, int idx, uint64_t off, uint64_t len,
                   int byte)
{
    struct peer_cmd cmd = { .op = PEER_PTR_WRITE, .idx = idx, .off = off,
                            .len = len, .byte = byte };
    struct peer_res res = { 0 };
    return call_rc(p, &cmd, &res);
}

int peer_policy(struct peer *p, int idx, mmapio_flush_policy *pol)
{
    struct peer_cmd cmd = { .op = PEER_QUERY, .idx = idx };
    struct peer_res res = { 0 };
    int r = call_rc(p, &cmd, &res);
    if (r == MMAPIO_OK)
        *pol = res.pol;
    return r;
}
