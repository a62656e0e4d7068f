/* gen_seeds: writes the seed corpus of fuzz_request (one request of each
 * kind, framed as fuzz_request reads them) into the directory argv[1]. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mmapio.pb-c.h"

static void put(const char *dir, const char *name, uint8_t flags,
                Mmapio__Request *q)
{
    uint8_t buf[4096];
    char path[512];
    size_t n = mmapio__request__pack(q, buf + 3);
    buf[0] = flags;
    buf[1] = (uint8_t)(n & 0xff);
    buf[2] = (uint8_t)(n >> 8);
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(buf, 1, n + 3, f) != n + 3)
        exit(1);
    fclose(f);
}

int main(int argc, char **argv)
{
    Mmapio__Request q = MMAPIO__REQUEST__INIT;
    Mmapio__Open o = MMAPIO__OPEN__INIT;
    Mmapio__FlushPolicy p = MMAPIO__FLUSH_POLICY__INIT;
    Mmapio__Hello h = MMAPIO__HELLO__INIT;
    Mmapio__Stat st = MMAPIO__STAT__INIT;
    Mmapio__Resize rs = MMAPIO__RESIZE__INIT;
    Mmapio__Watch w = MMAPIO__WATCH__INIT;
    Mmapio__Notice nt = MMAPIO__NOTICE__INIT;
    Mmapio__Delete del = MMAPIO__DELETE__INIT;
    Mmapio__AdminList al = MMAPIO__ADMIN_LIST__INIT;
    Mmapio__AdminStat as = MMAPIO__ADMIN_STAT__INIT;
    Mmapio__AdminWatch aw = MMAPIO__ADMIN_WATCH__INIT;

    if (argc != 2)
        return 2;
    q.id = 7;
    h.protocol = 1;
    q.op_case = MMAPIO__REQUEST__OP_HELLO, q.hello = &h;
    put(argv[1], "hello", 0, &q);
    o.path = "a";
    o.anonymous = 1;
    o.create = 1;
    o.size = 4096;
    o.mode = MMAPIO__MODE__MODE_READ_WRITE;
    p.kind = MMAPIO__FLUSH_KIND__FLUSH_EVERY_MILLIS;
    p.value = 10;
    o.policy = &p;
    q.op_case = MMAPIO__REQUEST__OP_OPEN, q.open = &o;
    put(argv[1], "open-anon", 1, &q);
    o.anonymous = 0;
    o.path = "dir/../f";
    put(argv[1], "open-escape", 1, &q);
    o.path = "f.dat";
    o.truncate = 1;
    put(argv[1], "open-file", 1, &q);
    /* As uid 65534 (flag 4): the user-space path walk. */
    put(argv[1], "open-file-nobody", 1 | 4, &q);
    o.path = "sub/dir/g.dat";
    o.truncate = 0;
    put(argv[1], "open-walk-nobody", 1 | 4, &q);
    o.path = "f.dat";
    o.truncate = 1;
    st.handle = 1;
    q.op_case = MMAPIO__REQUEST__OP_STAT, q.stat = &st;
    put(argv[1], "stat", 1, &q);
    rs.handle = 1;
    rs.size = 8192;
    q.op_case = MMAPIO__REQUEST__OP_RESIZE, q.resize = &rs;
    put(argv[1], "resize", 1, &q);
    w.handle = 1;
    q.op_case = MMAPIO__REQUEST__OP_WATCH, q.watch = &w;
    put(argv[1], "watch", 1, &q);
    nt.handle = 1;
    nt.kind = MMAPIO__NOTICE_KIND__NOTICE_WRITE;
    nt.len = 10;
    q.op_case = MMAPIO__REQUEST__OP_NOTICE, q.notice = &nt;
    put(argv[1], "notice", 1, &q);
    del.path = "a";
    del.anonymous = 1;
    q.op_case = MMAPIO__REQUEST__OP_DELETE_MAP, q.delete_map = &del;
    put(argv[1], "delete", 1, &q);
    q.op_case = MMAPIO__REQUEST__OP_ADMIN_LIST, q.admin_list = &al;
    put(argv[1], "admin-list", 1, &q);
    as.path = "a";
    as.anonymous = 1;
    q.op_case = MMAPIO__REQUEST__OP_ADMIN_STAT, q.admin_stat = &as;
    put(argv[1], "admin-stat", 1, &q);
    aw.path = "f";
    q.op_case = MMAPIO__REQUEST__OP_ADMIN_WATCH, q.admin_watch = &aw;
    put(argv[1], "admin-watch", 1, &q);
    /* Wait and Wake: refused on Linux (the library uses the futex). */
    Mmapio__Wait wt = MMAPIO__WAIT__INIT;
    wt.handle = 1;
    wt.timeout_ms = 10;
    q.op_case = MMAPIO__REQUEST__OP_WAIT, q.wait = &wt;
    put(argv[1], "wait", 1, &q);
    Mmapio__Wake wk = MMAPIO__WAKE__INIT;
    wk.handle = 1;
    wk.count = 1;
    q.op_case = MMAPIO__REQUEST__OP_WAKE, q.wake = &wk;
    put(argv[1], "wake", 1, &q);
    return 0;
}
