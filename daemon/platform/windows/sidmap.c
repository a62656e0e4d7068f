/*
 * sidmap (sidmap.h): numbered SIDs in an open-addressing hash table
 * (linear probing, at most half full) of indices into the array of their
 * copies; a SID's id is SIDMAP_FOREIGN + its index. Nothing is removed:
 * an id stays the SID's for the table's life.
 */
#include "sidmap.h"

#include <ntsecapi.h>
#include <sddl.h>
#include <stdlib.h>
#include <string.h>

struct sidmap {
    BYTE domain[SECURITY_MAX_SID_SIZE];
    bool has_domain;
    uint32_t cap, n;   /* numbered SIDs: at most, so far */
    PSID *sids;        /* [n], malloc'd copies; room for sids_room */
    uint32_t sids_room;
    uint32_t *slots;   /* [n_slots]: index + 1, 0 empty */
    uint32_t n_slots;  /* a power of two, >= 2 * n */
};

struct sidmap *sidmap_new(PSID domain, uint32_t cap)
{
    if (cap >= UINT32_MAX - SIDMAP_FOREIGN || (domain && !IsValidSid(domain)))
        return NULL;
    struct sidmap *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->cap = cap;
    m->has_domain = domain && CopySid(sizeof(m->domain), m->domain, domain);
    if (domain && !m->has_domain) {
        free(m);
        return NULL;
    }
    return m;
}

void sidmap_free(struct sidmap *m)
{
    if (!m)
        return;
    for (uint32_t i = 0; i < m->n; i++)
        free(m->sids[i]);
    free(m->sids);
    free(m->slots);
    free(m);
}

/* Whether sid is an account of m's domain: the domain's authority and
 * sub-authorities, and one more (the RID). */
static bool in_domain(const struct sidmap *m, PSID sid)
{
    PSID d = (PSID)m->domain;
    if (!m->has_domain)
        return false;
    UCHAR nd = *GetSidSubAuthorityCount(d);
    if (*GetSidSubAuthorityCount(sid) != nd + 1u ||
        memcmp(GetSidIdentifierAuthority(sid), GetSidIdentifierAuthority(d),
               sizeof(SID_IDENTIFIER_AUTHORITY)))
        return false;
    for (UCHAR i = 0; i < nd; i++)
        if (*GetSidSubAuthority(sid, i) != *GetSidSubAuthority(d, i))
            return false;
    return true;
}

static uint32_t hash_sid(PSID sid, DWORD len)
{
    const BYTE *p = sid;
    uint32_t h = 2166136261u; /* FNV-1a */
    for (DWORD i = 0; i < len; i++)
        h = (h ^ p[i]) * 16777619u;
    return h;
}

/* The slot holding sid, or the empty one where it would go. */
static uint32_t *slot_of(const struct sidmap *m, PSID sid, DWORD len)
{
    uint32_t mask = m->n_slots - 1u;
    for (uint32_t i = hash_sid(sid, len) & mask;; i = (i + 1u) & mask) {
        uint32_t *s = &m->slots[i];
        if (!*s || EqualSid(m->sids[*s - 1u], sid))
            return s;
    }
}

/* Room for one more SID (the array, and slots kept at most half full). */
static bool make_room(struct sidmap *m)
{
    if (m->n == m->sids_room) {
        uint32_t room = m->sids_room ? m->sids_room * 2u : 16u;
        room = room < m->cap ? room : m->cap;
        PSID *sids = realloc(m->sids, (size_t)room * sizeof(*sids));
        if (!sids)
            return false;
        m->sids = sids;
        m->sids_room = room;
    }
    if (2u * ((uint64_t)m->n + 1u) <= m->n_slots)
        return true;
    uint32_t n_slots = m->n_slots ? m->n_slots * 2u : 32u;
    uint32_t *old = m->slots, old_n = m->n_slots;
    if (!(m->slots = calloc(n_slots, sizeof(*m->slots)))) {
        m->slots = old;
        return false;
    }
    m->n_slots = n_slots;
    for (uint32_t i = 0; i < old_n; i++)
        if (old[i]) {
            PSID s = m->sids[old[i] - 1u];
            *slot_of(m, s, GetLengthSid(s)) = old[i];
        }
    free(old);
    return true;
}

uint32_t sidmap_id(struct sidmap *m, PSID sid)
{
    if (!m || !sid || !IsValidSid(sid))
        return SIDMAP_NONE;
    if (in_domain(m, sid)) {
        DWORD rid = *GetSidSubAuthority(sid, *GetSidSubAuthorityCount(sid) - 1u);
        if (rid < SIDMAP_FOREIGN)
            return rid;
    }
    DWORD len = GetLengthSid(sid);
    uint32_t *s = m->n_slots ? slot_of(m, sid, len) : NULL;
    if (s && *s)
        return SIDMAP_FOREIGN + (*s - 1u);
    if (m->n >= m->cap || !make_room(m))
        return SIDMAP_NONE;
    PSID copy = malloc(len);
    if (!copy || !CopySid(len, copy, sid)) {
        free(copy);
        return SIDMAP_NONE;
    }
    m->sids[m->n++] = copy;
    *slot_of(m, copy, len) = m->n;
    return SIDMAP_FOREIGN + (m->n - 1u);
}

/* ---- the daemon's table ------------------------------------------------- */

static SRWLOCK daemon_lock = SRWLOCK_INIT;
static struct sidmap *daemon_map;

/* The machine's account domain (LSA's PolicyAccountDomainInformation: the
 * local SAM's domain, or the domain itself on a domain controller) as a
 * table, or one with no domain when LSA does not tell. Under daemon_lock. */
static struct sidmap *daemon_table(void)
{
    if (daemon_map)
        return daemon_map;
    LSA_OBJECT_ATTRIBUTES oa = {0};
    LSA_HANDLE pol;
    POLICY_ACCOUNT_DOMAIN_INFO *info = NULL;
    if (LsaOpenPolicy(NULL, &oa, POLICY_VIEW_LOCAL_INFORMATION, &pol) == 0) {
        if (LsaQueryInformationPolicy(pol, PolicyAccountDomainInformation,
                                      (void **)&info) != 0)
            info = NULL;
        LsaClose(pol);
    }
    daemon_map = sidmap_new(info && info->DomainSid && IsValidSid(info->DomainSid)
                                ? info->DomainSid : NULL, SIDMAP_CAP);
    if (info)
        LsaFreeMemory(info);
    return daemon_map;
}

uint32_t sid_id(PSID sid)
{
    AcquireSRWLockExclusive(&daemon_lock);
    uint32_t id = sidmap_id(daemon_table(), sid);
    ReleaseSRWLockExclusive(&daemon_lock);
    return id;
}

bool sid_domain(char *out, size_t size)
{
    char *text = NULL;
    AcquireSRWLockExclusive(&daemon_lock);
    struct sidmap *m = daemon_table();
    bool known = m && m->has_domain && ConvertSidToStringSidA((PSID)m->domain, &text) &&
                 strlen(text) < size;
    ReleaseSRWLockExclusive(&daemon_lock);
    if (size)
        strcpy(out, known ? text : "");
    LocalFree(text);
    return known;
}
