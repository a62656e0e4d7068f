/*
 * dataroot (Windows): the daemon's data root opened, and the default one
 * made and checked (README, "Windows"); also who the daemon's account is,
 * and whether a file's owner is to be trusted (the log's folder asks
 * too). Implemented by base/windows/dataroot.c.
 */
#ifndef MMAPIOD_DATAROOT_H
#define MMAPIOD_DATAROOT_H

#include <stdbool.h>
#include <stddef.h>
#include <windows.h>

/* The daemon's account: its TOKEN_USER. */
union dataroot_user {
    TOKEN_USER tu;
    BYTE room[256];
};

/* This process's account in *u: false when it cannot be asked. */
bool dataroot_own_user(union dataroot_user *u);

/* A security descriptor from SDDL `fmt`, whose one %ls is this
 * process's account's SID (LocalFree it), or NULL. */
PSECURITY_DESCRIPTOR dataroot_sd(const WCHAR *fmt);

/* Whether h's owner is this process's account, SYSTEM or Administrators,
 * the only owners the daemon trusts for a folder of its own: any other
 * could change its DACL back and plant a link in it. */
bool dataroot_owned_by_us(HANDLE h);

enum dataroot_kind {
    DATAROOT_GIVEN,   /* --root DIR: opened as it is, never made */
    DATAROOT_PRIVATE, /* a console's default (%LOCALAPPDATA%\mmapio) */
    DATAROOT_SHARED,  /* a service's default (%ProgramData%\mmapio) */
};

/* A service's default root's DACL (not inherited from above): the
 * daemon's account, SYSTEM and Administrators full control, inherited by
 * what is made inside; authenticated users list and traverse the root
 * itself (Linux's 0755 of root's /var/lib/mmapio). %ls: the account. */
#define DATAROOT_SHARED_SDDL \
    L"D:P(A;OICI;FA;;;%ls)(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;;0x1200a9;;;AU)"

/*
 * Opens the data root `path` (UTF-8) as a directory handle for the
 * daemon (traverse, list, read attributes and control). A default root
 * (PRIVATE, SHARED) is made when missing — PRIVATE with the security its
 * parent gives (a profile's folder is its user's), SHARED with
 * DATAROOT_SHARED_SDDL — and refused when it is a link, junction or other
 * reparse point (by name, by handle, or as the handle's final path not
 * being the name), not a folder, or owned by anyone but the daemon's
 * account, SYSTEM or Administrators (a user who made it first). The
 * handle, or INVALID_HANDLE_VALUE with why in why[].
 */
HANDLE dataroot_open(const char *path, enum dataroot_kind kind, char *why, size_t why_size);

#endif
