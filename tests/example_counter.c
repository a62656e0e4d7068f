/*
 * example_counter: the README's example. Run it in two (or more) processes
 * at once; they share one counter through a named anonymous mapping held by
 * mmapiod, and no increment is lost.
 *
 *   ./example_counter & ./example_counter; wait
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include <mmapio.h>

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    mmapio_client *c;
    mmapio_map *m;

    /* NULL: $MMAPIO_SOCKET, else the daemon's default socket */
    int r = mmapio_connect(NULL, &c);
    if (r != MMAPIO_OK) {
        fprintf(stderr, "connect: %s\n", mmapio_last_error());
        return 1;
    }
    /* The first process creates the counter, the others open it: this
     * user's own counter only, never one another user made first. */
    r = mmapio_anon_open_or_create(c, "counter", sizeof(uint64_t), &m);
    if (r != MMAPIO_OK) {
        fprintf(stderr, "counter: %s\n", mmapio_last_error());
        mmapio_disconnect(c);
        return 1;
    }

    uint64_t *counter = mmapio_as_mut_ptr(m); /* shared memory, no syscalls */
    for (long i = 0; i < n; i++)
        __atomic_fetch_add(counter, 1, __ATOMIC_RELAXED);
    uint64_t now = __atomic_load_n(counter, __ATOMIC_SEQ_CST);
    printf("counter = %" PRIu64 "\n", now);

    mmapio_unmap(m);
    mmapio_disconnect(c);
    return 0;
}
