/*
 * The protocol under mingw: a Request with an Open packed and unpacked by
 * protobuf-c built from source (scripts/build-windows), the same bytes a
 * Linux client sends; truncated and garbage input refused, not crashed on.
 */
#include "mmapio.pb-c.h"
#include "wintest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    Mmapio__FlushPolicy policy = MMAPIO__FLUSH_POLICY__INIT;
    policy.kind = MMAPIO__FLUSH_KIND__FLUSH_EVERY_BYTES;
    policy.value = 1u << 20;
    Mmapio__Open open = MMAPIO__OPEN__INIT;
    open.path = "data/counter";
    open.mode = MMAPIO__MODE__MODE_READ_WRITE;
    open.create = 1;
    open.size = 1ull << 33; /* past 32 bits */
    open.policy = &policy;
    Mmapio__Request req = MMAPIO__REQUEST__INIT;
    req.id = 42;
    req.op_case = MMAPIO__REQUEST__OP_OPEN;
    req.open = &open;

    size_t len = mmapio__request__get_packed_size(&req);
    unsigned char *buf = malloc(len);
    CHECK(buf && mmapio__request__pack(&req, buf) == len);

    Mmapio__Request *back = mmapio__request__unpack(NULL, len, buf);
    CHECK(back != NULL);
    if (back) {
        CHECK(back->id == 42 && back->op_case == MMAPIO__REQUEST__OP_OPEN);
        CHECK(back->open && strcmp(back->open->path, "data/counter") == 0);
        CHECK(back->open && back->open->size == 1ull << 33 && back->open->create);
        CHECK(back->open && back->open->policy &&
              back->open->policy->kind == MMAPIO__FLUSH_KIND__FLUSH_EVERY_BYTES &&
              back->open->policy->value == 1u << 20);
        mmapio__request__free_unpacked(back, NULL);
    }
    /* Every truncation of a valid message: refused or a shorter message,
     * never a crash (the daemon validates the fields after). */
    for (size_t cut = 0; buf && cut < len; cut++) {
        Mmapio__Request *r = mmapio__request__unpack(NULL, cut, buf);
        if (r)
            mmapio__request__free_unpacked(r, NULL);
    }
    static const unsigned char junk[] = {0x22, 0xff, 0xff, 0xff, 0xff, 0x0f};
    CHECK(mmapio__request__unpack(NULL, sizeof(junk), junk) == NULL);
    free(buf);
    return wt_report(argv[0]);
}
