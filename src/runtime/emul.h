/* emul.h: device and link emulation for workers (private to runtime/).
 *
 * The link model is a pair of serial pipes (one per direction): a frame of B
 * bytes occupies its pipe for B*8/bandwidth seconds after the pipe is free,
 * and arrives latency seconds after leaving it. A straggler whose model
 * slows the link ("+link") stretches the transfer time of its task's frames
 * by the task's slowdown factor. Times are wall-clock seconds
 * (ts_now). Heartbeats are exempt: they are tiny and must not be delayed
 * behind bulk data, or an emulated slow link would look like a dead worker. */
#ifndef TS_RUNTIME_EMUL_H
#define TS_RUNTIME_EMUL_H

#include "tessera/runtime.h"

typedef struct {
    double mbps;      /* <= 0: infinite bandwidth */
    double latency_s; /* one-way */
    double in_free, out_free;
} ts_link;

/* Slowdown factor (>= 1 for the timing models) of one task. */
double ts_emul_slowdown(const ts_straggler *s, ts_rng *rng);
double ts_emul_xfer_s(const ts_link *l, size_t bytes);
/* A frame of `bytes` reached the worker's socket at `now`; returns when the
 * emulated device has it. `slow` (>= 1) stretches the transfer time. */
double ts_emul_inbound(ts_link *l, double now, size_t bytes, double slow);
/* A frame is ready to leave at `ready`; returns when the master would have it
 * (the worker holds the frame until then). */
double ts_emul_outbound(ts_link *l, double ready, size_t bytes, double slow);

#endif
