/*
 * wintesthook (Windows): the tests' hold on a worker. Built into
 * mmapiod-hooks.exe only (-DMMAPIOD_TEST_HOOKS, tests/win), where a
 * worker about to act on the path named by the environment variable
 * `var` counts one up on the semaphore Local\mmapiod-test-entered-PATH
 * and waits (at most a minute) for the event
 * Local\mmapiod-test-release-PATH; in mmapiod.exe it does nothing.
 */
#ifndef MMAPIOD_WINTESTHOOK_H
#define MMAPIOD_WINTESTHOOK_H

/* Holds the calling worker while a test wants `path` held (above). */
void test_hold(const char *var, const char *path);

#endif
