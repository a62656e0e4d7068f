/* A client in raw frames (wtraw.h). */
#include "wtraw.h"

#include <stdlib.h>
#include <string.h>

#include "wire.h"
#include "wintest.h"

bool wt_raw_send(HANDLE h, Mmapio__Request *q)
{
    size_t n = mmapio__request__get_packed_size(q);
    uint8_t *buf = calloc(1, 8 + n);
    DWORD put = 0;
    bool ok = buf && (mmapio__request__pack(q, buf + 8), true) &&
              WriteFile(h, buf, (DWORD)(8 + n), &put, NULL) && put == 8 + n;
    free(buf);
    return ok;
}

bool wt_raw_op(HANDLE h, uint64_t id, Mmapio__Request__OpCase op, void *msg)
{
    Mmapio__Request q = MMAPIO__REQUEST__INIT;
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field(q.base.descriptor, (unsigned)op);
    if (!f)
        return false;
    q.id = id;
    q.op_case = op;
    memcpy((char *)&q + f->offset, &msg, sizeof(msg));
    return wt_raw_send(h, &q);
}

Mmapio__ServerMessage *wt_raw_recv(HANDLE h, HANDLE *handles, unsigned *n_handles)
{
    static uint8_t buf[1 << 17];
    DWORD got = 0;
    if (!ReadFile(h, buf, sizeof(buf), &got, NULL) || got < 8)
        return NULL;
    uint32_t n;
    memcpy(&n, buf, 4);
    if (n > 4 || got < 8 + 8 * n)
        return NULL;
    for (uint32_t i = 0; i < n; i++) {
        uint64_t v;
        memcpy(&v, buf + 8 + 8 * i, 8);
        handles[i] = (HANDLE)(uintptr_t)v;
    }
    *n_handles = n;
    return mmapio__server_message__unpack(NULL, got - 8 - 8 * n, buf + 8 + 8 * n);
}

bool wt_raw_reply(HANDLE h, uint64_t *id, int *err, uint64_t *handle)
{
    HANDLE hs[4];
    unsigned n = 0;
    Mmapio__ServerMessage *m = wt_raw_recv(h, hs, &n);
    for (unsigned i = 0; i < n; i++)
        CloseHandle(hs[i]);
    bool ok = m && m->body_case == MMAPIO__SERVER_MESSAGE__BODY_REPLY;
    if (ok) {
        *id = m->reply->id;
        *err = m->reply->error;
        if (handle)
            *handle = m->reply->result_case == MMAPIO__REPLY__RESULT_OPEN
                          ? m->reply->open->handle : 0;
    }
    if (m)
        mmapio__server_message__free_unpacked(m, NULL);
    return ok;
}

HANDLE wt_raw_connect(const char *name, const char *client_name)
{
    HANDLE h = wt_pipe_open(name);
    if (!h)
        return NULL;
    Mmapio__Hello he = MMAPIO__HELLO__INIT;
    he.protocol = WIRE_PROTOCOL;
    he.client_name = (char *)client_name;
    Mmapio__Request q = MMAPIO__REQUEST__INIT;
    q.op_case = MMAPIO__REQUEST__OP_HELLO;
    q.hello = &he;
    q.id = 1;
    uint64_t id = 0;
    int err = -1;
    if (wt_raw_send(h, &q) && wt_raw_reply(h, &id, &err, NULL) && id == 1 && err == 0)
        return h;
    CloseHandle(h);
    return NULL;
}
