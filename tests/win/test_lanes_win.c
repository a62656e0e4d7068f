/*
 * The Windows daemon's per-uid lanes (daemon/requests/windows/winlanes.c),
 * which order its flushes: one uid's flood does not delay another uid's
 * item, each uid's items keep their order, and uids take turns. (Under
 * wine every process is one user, so the daemon's flushes cannot show
 * two uids; the lane that orders them is tested here.)
 */
#include <stdio.h>

#include "winlanes.h"
#include "wintest.h"

struct job {
    struct wlane_item item; /* first */
    int seq;
};

static struct job *take(struct wlane *l)
{
    return (struct job *)wlane_take(l);
}

int main(int argc, char **argv)
{
    struct wlane l = {0};
    static struct job flood[1000], other = {.item.uid = 2, .seq = -1};
    CHECK(take(&l) == NULL);
    for (int i = 0; i < 1000; i++) {
        flood[i] = (struct job){.item.uid = 1, .seq = i};
        CHECK(wlane_put(&l, &flood[i].item));
    }
    CHECK(take(&l) == &flood[0]); /* uid 1 had the turn */
    CHECK(wlane_put(&l, &other.item));
    /* Behind 999 of uid 1's, uid 2's is served within one turn. */
    CHECK(take(&l) == &flood[1]);
    CHECK(take(&l) == &other);
    /* Then uid 1's, in order. */
    int n = 0;
    for (struct job *j; (j = take(&l)); n++)
        CHECK(j->item.uid == 1 && j->seq == n + 2);
    CHECK(n == 998 && take(&l) == NULL);

    /* Three uids: turns go round (1, 2, 3, 1, 2, 3 ...), each in order. */
    static struct job three[30];
    for (int i = 0; i < 30; i++) {
        three[i] = (struct job){.item.uid = 10 + (uint32_t)(i / 10), .seq = i % 10};
        CHECK(wlane_put(&l, &three[i].item));
    }
    for (int round = 0; round < 10; round++)
        for (uint32_t u = 10; u < 13; u++) {
            struct job *j = take(&l);
            CHECK(j && j->item.uid == u && j->seq == round);
        }
    CHECK(take(&l) == NULL);
    return wt_report(argv[0]);
}
