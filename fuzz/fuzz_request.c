/*
 * fuzz_request: libFuzzer target over the daemon's handling of datagrams
 * from one client: decoding, validation and dispatch (ops_handle) on a real
 * connection of a real (in-process) daemon state, with a real data root.
 *
 * Input: a sequence of datagrams, each a 2-byte little-endian length and
 * that many bytes. The first input byte chooses whether a valid hello is
 * sent first (so deeper operations are reachable) and whether datagrams
 * claim to carry fds. Replies are drained and any fd in them closed; at the
 * end the connection is closed and anonymous mappings are deleted, so every
 * input starts from the same state.
 */
#include <event2/event.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conn.h"
#include "daemon.h"
#include "ops.h"
#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct daemon d;

/* The whole daemon, assembled as mmapiod does, on a temporary data root
 * and socket; the fuzzer's connections are socketpairs handed to it. */
static void setup(void)
{
    char tmpl[] = "/tmp/mmapio-fuzz-XXXXXX";
    char err[256];
    if (!mkdtemp(tmpl) || config_defaults(&d.cfg) < 0)
        abort();
    snprintf(d.cfg.root, sizeof(d.cfg.root), "%s", tmpl);
    snprintf(d.cfg.socket_path, sizeof(d.cfg.socket_path), "%s/sock", tmpl);
    d.cfg.max_map_size = 1 << 20; /* no input may fill the disk */
    d.cfg.max_mappings = 4096;
    d.cfg.flush_threads = 1;
    if (daemon_init(&d, err, sizeof(err)) < 0) {
        fprintf(stderr, "fuzz setup failed: %s\n", err);
        abort();
    }
}

static void drain(int fd)
{
    uint8_t buf[70000];
    int fds[WIRE_MAX_FDS];
    size_t n;
    while (wire_recv(fd, buf, sizeof(buf), fds, WIRE_MAX_FDS, &n) > 0)
        wire_close_fds(fds, n);
}

static void forget_anon(struct mapping *m, void *arg)
{
    if (m->kind == MAPPING_ANON)
        registry_remove(arg, m);
}

static void send_hello(struct conn *c)
{
    Mmapio__Hello h = MMAPIO__HELLO__INIT;
    Mmapio__Request q = MMAPIO__REQUEST__INIT;
    uint8_t buf[64];
    h.protocol = WIRE_PROTOCOL;
    q.id = 1;
    q.op_case = MMAPIO__REQUEST__OP_HELLO;
    q.hello = &h;
    size_t n = mmapio__request__pack(&q, buf);
    ops_handle(&c->s, buf, n, false);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    int sv[2];
    struct conn *c;

    if (!ready++)
        setup();
    if (size < 1 || socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
        return 0;
    uint8_t flags = data[0];
    data++, size--;
    if (conn_new(&d.server.conns, sv[0], &c) < 0) {
        close(sv[1]);
        return 0;
    }
    conn_ref(c);
    if (flags & 1)
        send_hello(c);
    drain(sv[1]);
    while (size >= 2 && !c->closed && !c->failed) {
        size_t len = (size_t)data[0] | (size_t)data[1] << 8;
        data += 2, size -= 2;
        if (len > size)
            len = size;
        ops_handle(&c->s, data, len, (flags & 2) && (len & 1));
        data += len, size -= len;
        drain(sv[1]);
        event_base_loop(d.base, EVLOOP_NONBLOCK);
    }
    conn_close(c);
    conn_unref(c);
    close(sv[1]);
    registry_foreach(&d.reg, forget_anon, &d.reg);
    event_base_loop(d.base, EVLOOP_NONBLOCK);
    return 0;
}
