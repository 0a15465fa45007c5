/* fuzz_frames.h: the fuzz targets' common cut of an input into the ZeroMQ
 * frames of one message. Byte 0 modulo TS_PROTO_MAX_PARTS is the frame count
 * - 1, byte 1 says whether frame 0 is a ROUTER identity (then skipped by the
 * decoder), then each frame but the last is a 2-byte little-endian length and
 * its bytes; the last frame takes the rest (fuzz/proto_seeds.c writes one
 * valid message of each type so). */
#ifndef TS_FUZZ_FRAMES_H
#define TS_FUZZ_FRAMES_H

#include <stdint.h>
#include <string.h>
#include <zmq.h>

#include "runtime/proto.h"

/* Fills in (to be closed with ts_proto_in_close) and returns the index of
 * the header frame; -1 when the input is too short to say. */
static inline int fuzz_frames(const uint8_t *data, size_t size, ts_proto_in *in) {
    memset(in, 0, sizeof *in);
    if (size < 2) return -1;
    int parts = 1 + data[0] % TS_PROTO_MAX_PARTS, first = data[1] & 1;
    size_t at = 2;
    for (int i = 0; i < parts; i++) {
        size_t len = size - at;
        if (i + 1 < parts) {
            if (size - at < 2) break;
            len = (size_t)data[at] | (size_t)data[at + 1] << 8;
            at += 2;
            if (len > size - at) len = size - at;
        }
        if (zmq_msg_init_size(&in->part[in->n], len) != 0) break;
        if (len) memcpy(zmq_msg_data(&in->part[in->n]), data + at, len);
        in->total_bytes += len;
        in->n++;
        at += len;
    }
    return first;
}

#endif
