/*
 * fakeiod: a small stand-in for the Windows mmapiod inside a test program,
 * speaking the wire of README "Windows" on a named pipe: message mode,
 * frames of an 8-byte header (n_handles, flags), handle values and a
 * packed message; sections duplicated into the client's process. It
 * answers Hello as mmapiod does (protocol, limits, the control area's
 * slots with the area's section, read-only); Open of anonymous mappings,
 * pagefile sections made by the daemon's own
 * daemon/platform/windows/membackend.c with its DACL, read-only grants by
 * FILE_MAP_READ (a name starting "carved" is a mapping 4096 bytes into
 * its section, as the daemon carves small ones from an arena); Watch
 * (and, 200 ms later, a MODIFIED event of the mapping opened last); Close
 * and notices without a reply; WriteRing with a refusal; anything else
 * with an empty success. Or, by its `bad` setting, it answers a Ping with
 * a broken frame or a hang-up.
 */
#ifndef FAKEIOD_H
#define FAKEIOD_H

#include <stdint.h>

enum fake_bad {
    FAKE_GOOD,
    FAKE_SHORT_HEADER, /* 3 bytes */
    FAKE_MANY_HANDLES, /* n_handles 5, with 5 values */
    FAKE_FLAGS,        /* flags 1 */
    FAKE_GARBAGE,      /* a header, then bytes that are no ServerMessage */
    FAKE_HEADER_ONLY,  /* a header and no message */
    FAKE_HUGE,         /* a message longer than the largest frame */
    FAKE_HANG_UP,      /* closes the pipe instead of answering */
    FAKE_RESTART,      /* FAKE_HANG_UP on the first connection (the daemon
                          went away), FAKE_GOOD on the next (it is back) */
    FAKE_NO_AREA,      /* Hello answered without the control area */
};

/* Starts a fake daemon on pipe `name` (a thread per connection): 0, or -1
 * when the pipe cannot be made. */
int fake_start(const char *name, enum fake_bad bad);

/* The value of the last read-only grant duplicated into this process. */
uintptr_t fake_last_ro_grant(void);

#endif
