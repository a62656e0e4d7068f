/* reqmsg: request checks and replies both daemons share (see reqmsg.h). */
#include "reqmsg.h"

#include "policy.h"
#include "wire.h"

bool reqmsg_open_valid(const Mmapio__Open *o)
{
    return (unsigned)o->mode <= MMAPIO__MODE__MODE_COPY_ON_WRITE && o->perm <= 0777 &&
           (!o->policy || policy_valid(policy_from_wire(o->policy)));
}

bool reqmsg_policy(const Mmapio__FlushPolicy *w, mmapio_flush_policy *out)
{
    *out = policy_from_wire(w);
    return w && policy_valid(*out);
}

/* b's Reply of `id`, its result yet to be set. */
static Mmapio__Reply *reply_of(struct reqmsg *b, uint64_t id,
                               Mmapio__Reply__ResultCase what)
{
    mmapio__reply__init(&b->reply);
    b->reply.id = id;
    b->reply.result_case = what;
    return &b->reply;
}

Mmapio__Reply *reqmsg_hello(struct reqmsg *b, uint64_t id, uint32_t max_frame,
                            uint32_t max_inflight, uint32_t max_events,
                            uint32_t ctl_slots)
{
    Mmapio__HelloReply *hr = &b->u.hello;
    mmapio__hello_reply__init(hr);
    hr->protocol = WIRE_PROTOCOL;
    hr->server_version = (char *)MMAPIO_VERSION;
    hr->max_frame = max_frame;
    hr->max_inflight = max_inflight;
    hr->max_events = max_events;
    hr->ctl_slots = ctl_slots;
    reply_of(b, id, MMAPIO__REPLY__RESULT_HELLO)->hello = hr;
    return &b->reply;
}

Mmapio__Reply *reqmsg_open(struct reqmsg *b, uint64_t id, uint64_t handle,
                           uint64_t map_id, uint64_t size, uint32_t ctl_slot,
                           mmapio_flush_policy policy)
{
    Mmapio__OpenReply *o = &b->u.open;
    mmapio__open_reply__init(o);
    o->handle = handle;
    o->map_id = map_id;
    o->size = size;
    o->ctl_slot = ctl_slot;
    policy_to_wire(policy, &b->policy);
    o->policy = &b->policy;
    reply_of(b, id, MMAPIO__REPLY__RESULT_OPEN)->open = o;
    return &b->reply;
}

Mmapio__Reply *reqmsg_stat(struct reqmsg *b, uint64_t id, uint64_t size,
                           uint32_t holders, mmapio_flush_policy policy)
{
    Mmapio__StatReply *s = &b->u.stat;
    mmapio__stat_reply__init(s);
    s->size = size;
    s->holders = holders;
    policy_to_wire(policy, &b->policy);
    s->policy = &b->policy;
    reply_of(b, id, MMAPIO__REPLY__RESULT_STAT)->stat = s;
    return &b->reply;
}

Mmapio__Reply *reqmsg_watch(struct reqmsg *b, uint64_t id, uint64_t watch_id,
                            uint64_t map_id)
{
    Mmapio__WatchReply *w = &b->u.watch;
    mmapio__watch_reply__init(w);
    w->watch_id = watch_id;
    w->map_id = map_id;
    reply_of(b, id, MMAPIO__REPLY__RESULT_WATCH)->watch = w;
    return &b->reply;
}

Mmapio__Reply *reqmsg_flushed(struct reqmsg *b, uint64_t id, uint32_t flushed,
                              uint32_t failed)
{
    Mmapio__AdminFlushReply *f = &b->u.flushed;
    mmapio__admin_flush_reply__init(f);
    f->flushed = flushed;
    f->failed = failed;
    reply_of(b, id, MMAPIO__REPLY__RESULT_FLUSHED)->flushed = f;
    return &b->reply;
}

Mmapio__Reply *reqmsg_map(struct reqmsg *b, uint64_t id, Mmapio__MapInfo *info)
{
    reply_of(b, id, MMAPIO__REPLY__RESULT_MAP)->map = info;
    return &b->reply;
}
