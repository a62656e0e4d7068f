/* fence on Linux: membarrier(2)'s global expedited command. */
#include "fence.h"

#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

bool fence_available(void)
{
    static int state; /* 0: not asked, 1: yes, -1: no (the loop's thread) */
    if (state == 0) {
        long cmds = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0);
        state = cmds > 0 && (cmds & MEMBARRIER_CMD_GLOBAL_EXPEDITED) ? 1 : -1;
    }
    return state == 1;
}

bool fence_all(void)
{
    return syscall(SYS_membarrier, MEMBARRIER_CMD_GLOBAL_EXPEDITED, 0) == 0;
}
