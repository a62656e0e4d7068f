/* host on Windows: account names for the daemon's uids that are RIDs of
 * the machine's account domain, localtime_s, the UTC offset computed
 * (strftime's %z is the zone's name there), and the C runtime's signal()
 * for ^C (a console control event). */
#include "host.h"

#include <windows.h>
#include <ntsecapi.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The daemon numbers every SID but the account domain's from here on
 * (README, "Windows", uids): those numbers are its own, known here by
 * nobody. */
#define FOREIGN_UIDS 0x80000000u

/* The machine's account domain, as the daemon asks it (LSA), into sid:
 * false when LSA does not tell. Asked once. */
static bool account_domain(BYTE sid[SECURITY_MAX_SID_SIZE])
{
    static BYTE dom[SECURITY_MAX_SID_SIZE];
    static int known = -1;
    if (known < 0) {
        LSA_OBJECT_ATTRIBUTES oa = {0};
        LSA_HANDLE pol;
        POLICY_ACCOUNT_DOMAIN_INFO *info = NULL;
        known = 0;
        if (LsaOpenPolicy(NULL, &oa, POLICY_VIEW_LOCAL_INFORMATION, &pol) == 0) {
            if (LsaQueryInformationPolicy(pol, PolicyAccountDomainInformation,
                                          (void **)&info) == 0 && info &&
                info->DomainSid && IsValidSid(info->DomainSid))
                known = CopySid(sizeof(dom), dom, info->DomainSid) ? 1 : 0;
            if (info)
                LsaFreeMemory(info);
            LsaClose(pol);
        }
    }
    if (known)
        memcpy(sid, dom, sizeof(dom));
    return known == 1;
}

/* uid below FOREIGN_UIDS is the RID of an account of the machine's
 * account domain: its name as the system tells it, in UTF-8. */
char *host_user_name(uint32_t uid)
{
    BYTE sid[SECURITY_MAX_SID_SIZE];
    if (uid >= FOREIGN_UIDS || !account_domain(sid))
        return NULL;
    UCHAR *count = GetSidSubAuthorityCount(sid);
    if (*count >= SID_MAX_SUB_AUTHORITIES)
        return NULL;
    ++*count;
    *GetSidSubAuthority(sid, *count - 1u) = uid;
    WCHAR name[256], domain[256];
    DWORD n = 256, dn = 256;
    SID_NAME_USE use;
    if (!LookupAccountSidW(NULL, sid, name, &n, domain, &dn, &use))
        return NULL;
    int len = WideCharToMultiByte(CP_UTF8, 0, name, -1, NULL, 0, NULL, NULL);
    char *out = len > 0 ? malloc((size_t)len) : NULL;
    if (out && !WideCharToMultiByte(CP_UTF8, 0, name, -1, out, len, NULL, NULL)) {
        free(out);
        out = NULL;
    }
    return out;
}

bool host_localtime(time_t t, struct tm *tm)
{
    return localtime_s(tm, &t) == 0;
}

/* The local time read as if it were UTC, less the instant itself. */
void host_zone(time_t t, const struct tm *tm, char *out, size_t size)
{
    struct tm copy = *tm;
    long off = (long)(_mkgmtime(&copy) - t) / 60;
    char sign = off < 0 ? '-' : '+';
    off = off < 0 ? -off : off;
    snprintf(out, size, "%c%02ld%02ld", sign, off / 60 % 100, off % 60);
}

void host_on_stop(void (*on_stop)(int))
{
    signal(SIGINT, on_stop);
    signal(SIGTERM, on_stop);
}
