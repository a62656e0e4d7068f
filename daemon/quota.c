/* quota: per-uid mapping and byte counts (see quota.h). */
#include "quota.h"

#include <stdlib.h>

#include "hmap.h"
#include "log.h"
#include "mmapio.h"
#include "server.h"

struct use {
    struct hnode node;
    uid_t uid;
    uint64_t mappings, bytes;
};

static struct use *find(struct daemon *d, uid_t uid, int create)
{
    uint64_t h = hmap_hash_u64(uid);
    for (struct hnode *n = hmap_find(&d->quotas, h); n; n = hmap_next_same(n)) {
        struct use *u = container_of(n, struct use, node);
        if (u->uid == uid)
            return u;
    }
    if (!create)
        return NULL;
    struct use *u = calloc(1, sizeof(*u));
    if (!u)
        return NULL;
    u->uid = uid;
    if (hmap_insert(&d->quotas, &u->node, h) < 0) {
        free(u);
        return NULL;
    }
    return u;
}

int quota_charge(struct daemon *d, uid_t uid, uint32_t mappings, uint64_t bytes)
{
    struct use *u = find(d, uid, 1);
    if (!u)
        return MMAPIO_E_QUOTA;
    if (u->mappings + mappings > d->cfg.max_mappings_per_uid) {
        log_warn("uid %u refused: over max_mappings_per_uid (%u)",
                 (unsigned)uid, d->cfg.max_mappings_per_uid);
        return MMAPIO_E_QUOTA;
    }
    if (bytes > d->cfg.max_bytes_per_uid - u->bytes ||
        u->bytes > d->cfg.max_bytes_per_uid) {
        log_warn("uid %u refused: over max_bytes_per_uid (%llu)", (unsigned)uid,
                 (unsigned long long)d->cfg.max_bytes_per_uid);
        return MMAPIO_E_QUOTA;
    }
    u->mappings += mappings;
    u->bytes += bytes;
    return MMAPIO_OK;
}

void quota_release(struct daemon *d, uid_t uid, uint32_t mappings, uint64_t bytes)
{
    struct use *u = find(d, uid, 0);
    if (!u)
        return;
    u->mappings -= mappings <= u->mappings ? mappings : u->mappings;
    u->bytes -= bytes <= u->bytes ? bytes : u->bytes;
    if (u->mappings == 0 && u->bytes == 0) {
        hmap_remove(&d->quotas, &u->node);
        free(u);
    }
}

void quota_fini(struct daemon *d)
{
    for (size_t i = 0; i < d->quotas.n_buckets; i++) {
        struct hnode *n = d->quotas.buckets[i];
        while (n) {
            struct hnode *next = n->next;
            free(container_of(n, struct use, node));
            n = next;
        }
    }
    hmap_free(&d->quotas);
}
