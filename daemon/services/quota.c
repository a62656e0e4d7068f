/* quota: per-uid mapping and byte counts (see quota.h). */
#include "quota.h"

#include <stdlib.h>

#include "log.h"
#include "mmapio.h"
#include "registry.h"

struct use {
    struct hnode node;
    uid_t uid;
    uint64_t mappings, bytes;
};

static struct use *find(struct quota *q, uid_t uid, int create)
{
    uint64_t h = hmap_hash_u64(uid);
    for (struct hnode *n = hmap_find(&q->uses, h); n; n = hmap_next_same(n)) {
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
    if (hmap_insert(&q->uses, &u->node, h) < 0) {
        free(u);
        return NULL;
    }
    return u;
}

/* The daemon-wide count: past max_total - reserved only for admins. */
static int charge_total(struct quota *q, uid_t uid, bool admin)
{
    if (!q->max_total)
        return MMAPIO_OK;
    uint64_t limit = admin ? q->max_total : q->max_total - q->reserved;
    if (q->total >= limit) {
        log_warn("uid %u refused: %s (%u, %u kept for admins)", (unsigned)uid,
                 admin ? "max_mappings reached" : "over max_mappings less reserved_mappings",
                 q->max_total, q->reserved);
        return MMAPIO_E_QUOTA;
    }
    return MMAPIO_OK;
}

static int charge(struct quota *q, uid_t uid, uint32_t mappings, uint64_t bytes)
{
    struct use *u = find(q, uid, 1);
    if (!u)
        return MMAPIO_E_QUOTA;
    if (u->mappings + mappings > q->max_mappings) {
        log_warn("uid %u refused: over max_mappings_per_uid (%u)",
                 (unsigned)uid, q->max_mappings);
        return MMAPIO_E_QUOTA;
    }
    if (bytes > q->max_bytes - u->bytes ||
        u->bytes > q->max_bytes) {
        log_warn("uid %u refused: over max_bytes_per_uid (%llu)", (unsigned)uid,
                 (unsigned long long)q->max_bytes);
        return MMAPIO_E_QUOTA;
    }
    u->mappings += mappings;
    u->bytes += bytes;
    return MMAPIO_OK;
}

static void release(struct quota *q, uid_t uid, uint32_t mappings, uint64_t bytes)
{
    struct use *u = find(q, uid, 0);
    if (!u)
        return;
    u->mappings -= mappings <= u->mappings ? mappings : u->mappings;
    u->bytes -= bytes <= u->bytes ? bytes : u->bytes;
    if (u->mappings == 0 && u->bytes == 0) {
        hmap_remove(&q->uses, &u->node);
        free(u);
    }
}

static void uncharge(struct quota *q, struct mapping *m)
{
    if (m->charged) {
        release(q, m->owner, 1, m->charged_bytes);
        q->total -= q->total > 0;
    }
    m->charged = false;
    m->charged_bytes = 0;
}

void quota_set_total(struct quota *q, uint32_t max_total, uint32_t reserved)
{
    q->max_total = max_total;
    q->reserved = reserved < max_total ? reserved : 0;
}

int quota_charge_mapping_by(struct quota *q, struct mapping *m, bool admin)
{
    int r = charge_total(q, m->owner, admin);
    if (r == MMAPIO_OK)
        r = charge(q, m->owner, 1, m->size);
    q->total += r == MMAPIO_OK;
    m->charged = r == MMAPIO_OK;
    m->charged_bytes = m->charged ? m->size : 0;
    return r;
}

int quota_charge_mapping(struct quota *q, struct mapping *m)
{
    return quota_charge_mapping_by(q, m, m->owner == 0);
}

/* Moves the owner's charge from m->charged_bytes to `size`. */
static int recharge(struct quota *q, struct mapping *m, uint64_t size)
{
    if (!m->charged || size == m->charged_bytes)
        return MMAPIO_OK;
    if (size > m->charged_bytes) {
        if (charge(q, m->owner, 0, size - m->charged_bytes))
            return MMAPIO_E_QUOTA;
    } else {
        release(q, m->owner, 0, m->charged_bytes - size);
    }
    m->charged_bytes = size;
    return MMAPIO_OK;
}

int quota_set_size(struct quota *q, struct mapping *m, uint64_t size,
                   const char **why)
{
    uint64_t was_charged = m->charged_bytes;
    if (size <= INT64_MAX && recharge(q, m, size)) {
        *why = "over the owner's max_bytes_per_uid";
        return MMAPIO_E_QUOTA;
    }
    int r = mapping_set_size(m, size, why);
    if (r)
        recharge(q, m, was_charged);
    return r;
}

/* A file stops counting when it leaves the registry; an anonymous mapping
 * when its last holder lets go of it. */
static void on_change(struct mapping_hook *hook, struct mapping *m,
                      enum mapping_change what, const void *origin)
{
    struct quota *q = container_of(hook, struct quota, hook);
    if (what == MAPPING_FREED ||
        (what == MAPPING_RETIRED && m->kind == MAPPING_FILE))
        uncharge(q, m);
}

int quota_init(struct quota *q, struct registry *r, uint32_t max_mappings,
               uint64_t max_bytes)
{
    hmap_init(&q->uses);
    q->max_mappings = max_mappings;
    q->max_bytes = max_bytes;
    q->hook.fn = on_change;
    return registry_add_hook(r, &q->hook);
}

void quota_fini(struct quota *q)
{
    for (size_t i = 0; i < q->uses.n_buckets; i++) {
        struct hnode *n = q->uses.buckets[i];
        while (n) {
            struct hnode *next = n->next;
            free(container_of(n, struct use, node));
            n = next;
        }
    }
    hmap_free(&q->uses);
}
