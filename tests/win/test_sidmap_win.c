/*
 * The Windows daemon's uids (daemon/platform/windows/sidmap.c): one per
 * distinct SID, a local account keeping its RID. Under wine every
 * process runs as one user, so two accounts with one RID cannot meet at
 * the daemon; the table that tells them apart is tested here with SIDs
 * made up for it.
 */
#include "sidmap.h"
#include "wintest.h"

#include <sddl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <windows.h>

/* S-1-5-21-a-b-c-rid (c == 0: S-1-5-21-a-b), freed by FreeSid. */
static PSID nt_sid(DWORD a, DWORD b, DWORD c, DWORD rid)
{
    SID_IDENTIFIER_AUTHORITY nt = {SECURITY_NT_AUTHORITY};
    PSID sid = NULL;
    BOOL ok = c ? AllocateAndInitializeSid(&nt, 5, 21, a, b, c, rid, 0, 0, 0, &sid)
                : AllocateAndInitializeSid(&nt, 4, 21, a, b, rid, 0, 0, 0, 0, &sid);
    CHECK(ok);
    return sid;
}

/* A SID from its text, freed by LocalFree. */
static PSID text_sid(const wchar_t *text)
{
    PSID sid = NULL;
    CHECK(ConvertStringSidToSidW(text, &sid));
    return sid;
}

/* The id of the SID written `text` in m. */
static uint32_t id_of(struct sidmap *m, const wchar_t *text)
{
    PSID sid = text_sid(text);
    uint32_t id = sidmap_id(m, sid);
    LocalFree(sid);
    return id;
}

static void test_rids_and_numbers(void)
{
    PSID domain = text_sid(L"S-1-5-21-1-2-3");
    struct sidmap *m = sidmap_new(domain, 8);
    CHECK(m != NULL);
    LocalFree(domain);

    /* The machine's account keeps its RID; two other domains' accounts
     * with the same RID get numbers of their own, in order. */
    PSID local = nt_sid(1, 2, 3, 1000), d1 = nt_sid(7, 8, 9, 1000), d2 = nt_sid(4, 5, 6, 1000);
    uint32_t lu = sidmap_id(m, local), u1 = sidmap_id(m, d1), u2 = sidmap_id(m, d2);
    CHECK(lu == 1000);
    CHECK(u1 == SIDMAP_FOREIGN);
    CHECK(u2 == SIDMAP_FOREIGN + 1);
    CHECK(lu != u1 && lu != u2 && u1 != u2);
    /* The same SID again, from another copy, is the same id. */
    CHECK(id_of(m, L"S-1-5-21-7-8-9-1000") == u1);
    CHECK(id_of(m, L"S-1-5-21-4-5-6-1000") == u2);
    CHECK(id_of(m, L"S-1-5-21-1-2-3-1000") == 1000);
    CHECK(sidmap_id(m, d1) == u1);
    /* A two-domain-part SID with the same trailing numbers is another SID. */
    PSID shorter = nt_sid(2, 3, 0, 1000);
    CHECK(sidmap_id(m, shorter) == SIDMAP_FOREIGN + 2);

    /* Only the account domain keeps RIDs: BUILTIN\Administrators, the
     * domain itself, a longer SID under it and a RID past 2^31 do not. */
    uint32_t admins = id_of(m, L"S-1-5-32-544");
    CHECK(admins == SIDMAP_FOREIGN + 3);
    CHECK(id_of(m, L"S-1-5-21-1-2-3") == SIDMAP_FOREIGN + 4);
    CHECK(id_of(m, L"S-1-5-21-1-2-3-1000-7") == SIDMAP_FOREIGN + 5);
    CHECK(id_of(m, L"S-1-5-21-1-2-3-2147483648") == SIDMAP_FOREIGN + 6);
    CHECK(id_of(m, L"S-1-5-21-1-2-3-2147483647") == 2147483647u);
    CHECK(id_of(m, L"S-1-5-21-1-2-3-544") == 544 && admins != 544);

    /* The bound: 8 numbered, the 9th new SID has none, the known ones
     * and the local accounts keep theirs. */
    CHECK(id_of(m, L"S-1-5-18") == SIDMAP_FOREIGN + 7);
    CHECK(id_of(m, L"S-1-5-19") == SIDMAP_NONE);
    CHECK(id_of(m, L"S-1-5-21-10-11-12-1000") == SIDMAP_NONE);
    CHECK(id_of(m, L"S-1-5-18") == SIDMAP_FOREIGN + 7);
    CHECK(sidmap_id(m, d2) == u2);
    CHECK(id_of(m, L"S-1-5-21-1-2-3-1001") == 1001);

    /* Not a SID. */
    CHECK(sidmap_id(m, NULL) == SIDMAP_NONE);
    BYTE junk[16] = {9, 200};
    CHECK(sidmap_id(m, junk) == SIDMAP_NONE);

    FreeSid(local);
    FreeSid(d1);
    FreeSid(d2);
    FreeSid(shorter);
    sidmap_free(m);
}

/* With no account domain known, every SID is numbered: no RID is
 * trusted to be the machine's. */
static void test_no_domain(void)
{
    struct sidmap *m = sidmap_new(NULL, 4);
    CHECK(m != NULL);
    CHECK(id_of(m, L"S-1-5-21-1-2-3-1000") == SIDMAP_FOREIGN);
    CHECK(id_of(m, L"S-1-5-21-7-8-9-1000") == SIDMAP_FOREIGN + 1);
    CHECK(id_of(m, L"S-1-5-21-1-2-3-1000") == SIDMAP_FOREIGN);
    sidmap_free(m);
    CHECK(sidmap_new(NULL, SIDMAP_NONE) == NULL); /* ids would reach SIDMAP_NONE */
}

/* Many SIDs (the hash table grows many times): each its own id, found
 * again after all were numbered. */
static void test_many(void)
{
    enum { N = 20000 };
    struct sidmap *m = sidmap_new(NULL, N);
    CHECK(m != NULL);
    int wrong = 0;
    for (int pass = 0; pass < 2; pass++)
        for (DWORD i = 0; i < N; i++) {
            PSID s = nt_sid(100 + i % 7, i, 5, 1000);
            wrong += sidmap_id(m, s) != SIDMAP_FOREIGN + i;
            FreeSid(s);
        }
    CHECK(wrong == 0);
    PSID s = nt_sid(1, 1, 1, 1);
    CHECK(sidmap_id(m, s) == SIDMAP_NONE); /* N + 1st */
    FreeSid(s);
    sidmap_free(m);
}

/* The daemon's table: the account domain from LSA (wine has one:
 * S-1-5-21-0-0-0, this user's), this process's user keeping its RID, and
 * another domain's account with the same RID numbered apart. */
static void test_daemon_table(void)
{
    char domain[SECURITY_MAX_SID_SIZE * 4];
    bool known = sid_domain(domain, sizeof(domain));
    printf("account domain: %s\n", known ? domain : "(not known)");
    PSID me = wt_my_sid(); /* from this process's token */
    CHECK(me != NULL);
    if (!me)
        return;
    DWORD rid = wt_my_rid();
    uint32_t mine = sid_id(me);
    CHECK(mine != SIDMAP_NONE);
    CHECK(sid_id(me) == mine);
    PSID twin = nt_sid(77, 88, 99, rid);
    uint32_t theirs = sid_id(twin);
    CHECK(theirs != SIDMAP_NONE && theirs != mine && theirs >= SIDMAP_FOREIGN);
    FreeSid(twin);
    char *text = NULL;
    CHECK(ConvertSidToStringSidA(me, &text));
    /* In the account domain (wine's user is): the RID. */
    if (known && text && strncmp(text, domain, strlen(domain)) == 0 &&
        text[strlen(domain)] == '-' && !strchr(text + strlen(domain) + 1, '-'))
        CHECK(mine == rid);
    else
        CHECK(mine >= SIDMAP_FOREIGN);
    LocalFree(text);
}

int main(int argc, char **argv)
{
    (void)argc;
    test_rids_and_numbers();
    test_no_domain();
    test_many();
    test_daemon_table();
    return wt_report(argv[0]);
}
