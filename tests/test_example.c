/*
 * test_example: the README's example program (example_counter.c, the
 * same text) runs in two processes at once against a real daemon, and the
 * shared counter ends at exactly the sum of their increments.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

TestSuite(example, .init = hz_setup, .fini = hz_teardown, .timeout = 60);

static pid_t run_example(const char *n)
{
    const char *bin = hz_build_file("EXAMPLE_COUNTER", "example_counter");
    cr_assert_not_null(bin, "no example_counter ($EXAMPLE_COUNTER unset)");
    pid_t pid = hz_fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        execl(bin, bin, n, (char *)NULL);
        _exit(127);
    }
    return pid;
}

Test(example, two_processes_share_a_counter)
{
    /* MMAPIO_SOCKET was set by hz_setup: the example uses it. */
    pid_t a = run_example("300000");
    pid_t b = run_example("300000");
    int sa = hz_wait_child(a, 50000), sb = hz_wait_child(b, 50000);
    cr_assert(WIFEXITED(sa) && WEXITSTATUS(sa) == 0, "first: 0x%x",
              (unsigned)sa);
    cr_assert(WIFEXITED(sb) && WEXITSTATUS(sb) == 0, "second: 0x%x",
              (unsigned)sb);

    mmapio_client *c = hz_client();
    mmapio_map *m;
    cr_assert_eq(mmapio_anon_open(c, "counter", &m), MMAPIO_OK,
                 "the counter does not outlive its processes");
    uint64_t v;
    hz_assert_ok(mmapio_read_into(m, 0, &v, sizeof(v)));
    cr_assert_eq(v, 600000, "counter is %llu", (unsigned long long)v);

    /* a third run continues from there */
    pid_t d = run_example("1");
    int sd = hz_wait_child(d, 50000);
    cr_assert(WIFEXITED(sd) && WEXITSTATUS(sd) == 0);
    hz_assert_ok(mmapio_read_into(m, 0, &v, sizeof(v)));
    cr_assert_eq(v, 600001);
    mmapio_unmap(m);
    mmapio_disconnect(c);
}

Test(example, fails_cleanly_without_daemon)
{
    char bogus[300];
    snprintf(bogus, sizeof(bogus), "%s/none.sock", hz.dir);
    setenv("MMAPIO_SOCKET", bogus, 1);
    pid_t p = run_example("1");
    int st = hz_wait_child(p, 20000);
    cr_assert(WIFEXITED(st), "example crashed without a daemon");
    cr_assert_eq(WEXITSTATUS(st), 1);
}
