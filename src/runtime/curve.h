/* curve.h: CURVE encryption and worker authentication (private to
 * runtime/; the key files are described in curve.c and docs/protocol.md). */
#ifndef TS_RUNTIME_CURVE_H
#define TS_RUNTIME_CURVE_H

#include <zmq.h>

#include "tessera/runtime.h"

/* The master's authentication handler: a ZAP socket polled by the master's
 * own loop, and the worker keys it lets in. */
typedef struct {
    void *zap;
    uint8_t (*keys)[32];
    int n_keys;
    uint64_t refused;
} ts_curve_server;

/* Reads DIR/master.secret and DIR/authorized_workers, binds the ZAP handler
 * in ctx and makes router a CURVE server. Call before binding router. */
ts_status ts_curve_server_open(ts_curve_server *cs, void *ctx, void *router, const char *dir,
                               ts_err *err);
void ts_curve_server_close(ts_curve_server *cs);
/* Answers one pending ZAP request: 1 handled, 0 none pending, -1 broken. */
int ts_curve_server_handle(ts_curve_server *cs);

/* Reads DIR/master.pub, DIR/worker.pub, DIR/worker.secret and makes sock a
 * CURVE client. Call before connecting. */
ts_status ts_curve_client_setup(void *sock, const char *dir, ts_err *err);

#endif
