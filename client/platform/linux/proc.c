/* proc on Linux: fds, fstat, secure_getenv, the effective uid. */
#include "proc.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/membarrier.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

void proc_close(int h)
{
    if (h >= 0)
        close(h);
}

int proc_replace(int fresh, int at)
{
    return dup3(fresh, at, O_CLOEXEC) < 0 ? -errno : 0;
}

int proc_identify(int h, struct proc_object *obj)
{
    struct stat st;
    if (fstat(h, &st) < 0)
        return -errno;
    obj->dev = (uint64_t)st.st_dev;
    obj->ino = (uint64_t)st.st_ino;
    return 0;
}

void proc_make_blocking(int h)
{
    int fl = fcntl(h, F_GETFL);
    if (fl >= 0)
        (void)fcntl(h, F_SETFL, fl & ~O_NONBLOCK);
}

const char *proc_getenv(const char *name)
{
    return secure_getenv(name);
}

const char *proc_name(void)
{
    return program_invocation_short_name;
}

uint32_t proc_uid(void)
{
    return (uint32_t)geteuid();
}

bool proc_fence_register(void)
{
    static atomic_int state; /* 0: not asked, 1: registered, -1: refused */
    int st = atomic_load(&state);
    if (st == 0) {
        st = syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED,
                     0) == 0 ? 1 : -1;
        atomic_store(&state, st);
    }
    return st == 1;
}
