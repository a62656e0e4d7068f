/*
 * render: mmapioctl's output, through libsmartcols: aligned tables for
 * people (--raw: one row a line, columns split by single spaces, blanks
 * escaped; --noheadings), one JSON document per command for programs.
 *
 * Every field is named once, in a table here, with what it means: a JSON
 * key is the column header in lower case (lsblk's rule), the same name
 * in the text of `status` and `stat`, and `--help` of each command lists
 * them with their meanings. Unknown or never: JSON null, text "-".
 * Names and paths pass escape.h: no name can forge a row, reach a
 * terminal as an escape sequence or break the JSON.
 */
#ifndef MMAPIOCTL_RENDER_H
#define MMAPIOCTL_RENDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <mmapio.h>

struct out {
    FILE *f;
    bool json, raw, noheadings;
};

/* Dies (exit 1, message on stderr) without memory. */
void *render_check(void *p);

/* ls: every mapping, one a row (text: the main columns; JSON: all). */
void render_maps(const struct out *o, const mmapio_map_info *m, size_t n);
/* stat: one mapping in full (text: a field a line; JSON: as ls with one). */
void render_stat(const struct out *o, const mmapio_map_info *m);
void render_status(const struct out *o, const mmapio_status *s);
/* clients: a row each, and under it a row for each handle it holds. */
void render_clients(const struct out *o, const mmapio_client_info *c, size_t n);
/* flush and policy: what was done. */
void render_flushed(const struct out *o, const mmapio_flush_report *f);
void render_policy(const struct out *o, const char *target,
                   mmapio_flush_policy p);
/* watch: one line an event, stamped with the time it arrived (text, or
 * one JSON object a line). */
void render_event(const struct out *o, const char *target,
                  const mmapio_change_event *ev);

/* The fields of "maps", "status" or "clients", with their meanings. */
void render_fields_help(FILE *f, const char *which);

#endif
