/*
 * consumer: a program outside this repository, built by test_install.sh
 * against the installed library with `pkg-config --cflags --libs mmapio`.
 * Without $MMAPIO_SOCKET it only calls mmapio_strerror; with it, it
 * creates an anonymous mapping, writes and reads it back, and deletes it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mmapio.h>

int main(void)
{
    printf("%s %s\n", MMAPIO_VERSION, mmapio_strerror(MMAPIO_E_NOT_FOUND));
    if (!getenv("MMAPIO_SOCKET"))
        return 0;

    mmapio_client *c;
    mmapio_map *m;
    char back[6] = "";
    if (mmapio_connect(NULL, &c) != MMAPIO_OK) {
        fprintf(stderr, "connect: %s\n", mmapio_last_error());
        return 1;
    }
    if (mmapio_anon_create(c, "consumer", 4096, &m) != MMAPIO_OK ||
        mmapio_update_region(m, 0, "hello", 5) != MMAPIO_OK ||
        mmapio_read_into(m, 0, back, 5) != MMAPIO_OK ||
        strcmp(back, "hello") != 0) {
        fprintf(stderr, "mapping: %s\n", mmapio_last_error());
        return 1;
    }
    mmapio_unmap(m);
    if (mmapio_anon_delete(c, "consumer") != MMAPIO_OK) {
        fprintf(stderr, "delete: %s\n", mmapio_last_error());
        return 1;
    }
    mmapio_disconnect(c);
    printf("read back %s\n", back);
    return 0;
}
