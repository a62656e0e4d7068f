/*
 * errmap: the one translation from errno values to mmapio_err, and the
 * English text of every mmapio_err. Used at the wire edge of the daemon and
 * at the API edge of the library.
 */
#ifndef MMAPIO_ERRMAP_H
#define MMAPIO_ERRMAP_H

#include "mmapio.h"

/* e is a positive or negative errno value; 0 maps to MMAPIO_OK. */
int errmap_from_errno(int e);

/* Text for any value, including unknown ones; never NULL. */
const char *errmap_text(int err);

/* true if err is one of the mmapio_err values */
int errmap_valid(int err);

#endif
