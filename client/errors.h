/*
 * errors: the text of every mmapio_err, and of this thread's last failure.
 *
 * The library records the text of an error where it arises: the daemon's
 * message when an error reply carried one, else mmapio_strerror's text.
 * Errors passed up from a lower call are not recorded again, so the
 * daemon's words survive the way up. The record is thread-local and lives
 * until the next failure on the same thread; mmapio_last_error reads it.
 * Recording makes no system call and never fails.
 */
#ifndef MMAPIO_CLIENT_ERRORS_H
#define MMAPIO_CLIENT_ERRORS_H

#include "mmapio.h"

#define ERROR_TEXT_MAX 512 /* bytes kept of a message, NUL included */

/* Records err as this thread's last failure, with `message` as its text
 * when it is neither NULL nor empty, else mmapio_strerror(err). Returns
 * err, so that a failure is recorded and returned on one line. */
int error_set(int err, const char *message);

/* A copy of the record, to put back when a failure met inside a call does
 * not make the call fail (mmapio_unmap of a client already gone). */
struct error_saved {
    char text[ERROR_TEXT_MAX];
};
void error_save(struct error_saved *s);
void error_restore(const struct error_saved *s);

#endif
