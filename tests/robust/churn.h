/*
 * churn: one cycle of a client that connects, opens, writes and is
 * SIGKILLed, shared by test_churn (a CI-sized count) and the soak program
 * (scripts/soak, 10,000 and more).
 *
 * The daemon must already hold `file` (a file of at least CHURN_FILE_SIZE
 * bytes under its data root, policy NEVER) and the anonymous mapping
 * `anon` (at least CHURN_ANON_SIZE bytes). In most cycles the child opens
 * both read-write, watches the file, writes a record of its cycle number
 * into the file slot of that cycle with update_region, says so on a pipe
 * and waits to be killed: the parent SIGKILLs it then and notes the slot
 * as written. Every CHURN_MIDWAY_EVERY-th cycle the parent does not wait:
 * it kills the child after a short, varying delay, wherever it is in its
 * connect, hello, opens or writes; those cycles write to slots that are
 * never checked.
 */
#ifndef MMAPIO_TESTS_CHURN_H
#define MMAPIO_TESTS_CHURN_H

#include <stddef.h>
#include <stdint.h>

#define CHURN_SLOTS 16
#define CHURN_SLOT_STRIDE 4096u
/* Checked slots, then as many unchecked ones for the mid-way kills. */
#define CHURN_FILE_SIZE (2u * CHURN_SLOTS * CHURN_SLOT_STRIDE)
#define CHURN_ANON_SIZE 4096u
#define CHURN_MIDWAY_EVERY 4
#define CHURN_RECORD 16 /* "cycle 0000000042" */

struct churn {
    const char *sock;
    const char *file;  /* relative to the data root */
    const char *anon;
    uint32_t last[CHURN_SLOTS]; /* cycle whose record the slot must hold;
                                   UINT32_MAX: none yet */
    unsigned completed;         /* cycles that reached the rendezvous */
    unsigned midway;            /* cycles killed mid-way */
};

void churn_init(struct churn *ch, const char *sock, const char *file,
                const char *anon);

/* One cycle, number i. 0, or -1 with a reason in err. */
int churn_cycle(struct churn *ch, uint32_t i, char *err, size_t err_size);

/* The file (its path on disk) holds every record noted. 0 or -1 + err. */
int churn_verify(const struct churn *ch, const char *path, char *err,
                 size_t err_size);

#endif
