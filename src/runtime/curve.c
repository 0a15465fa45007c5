/* curve.c: optional CURVE encryption and authentication (libzmq built with
 * libsodium). A key directory holds Z85 text files:
 *   master.pub, master.secret    the master's keypair
 *   worker.pub, worker.secret    a worker's keypair (one directory per worker)
 *   authorized_workers           on the master: one worker public key per line
 * The master answers ZeroMQ's authentication (ZAP) requests itself, from its
 * own poll loop: a worker whose public key is not listed is refused during
 * the handshake, before it can send a single frame. */
#include "runtime/curve.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define Z85_KEY_CHARS 40
#define MAX_AUTHORIZED 4096

int ts_curve_available(void) {
    return zmq_has("curve");
}

static ts_status need_curve(ts_err *err) {
    if (!zmq_has("curve"))
        return ts_errorf(err, TS_ERR_UNSUPPORTED,
                         "this libzmq has no CURVE support (built without libsodium)");
    return TS_OK;
}

/* Reads one Z85 key (40 characters, surrounding whitespace allowed). */
static ts_status read_key(const char *dir, const char *file, char out[41], ts_err *err) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    FILE *f = fopen(path, "r");
    if (!f) return ts_errorf(err, TS_ERR_IO, "cannot read CURVE key %s: %s", path, strerror(errno));
    char buf[128];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *s = buf;
    while (*s == ' ' || *s == '\n' || *s == '\r' || *s == '\t')
        s++;
    size_t len = strcspn(s, " \r\n\t");
    uint8_t bin[32];
    if (len != Z85_KEY_CHARS || s[len + strspn(s + len, " \r\n\t")] != '\0')
        return ts_errorf(err, TS_ERR_FORMAT, "%s is not a 40-character Z85 CURVE key", path);
    s[len] = '\0';
    if (!zmq_z85_decode(bin, s)) return ts_errorf(err, TS_ERR_FORMAT, "%s is not valid Z85", path);
    memcpy(out, s, 41);
    return TS_OK;
}

static ts_status write_file(const char *path, const char *text, int mode, ts_err *err) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    if (fd < 0) return ts_errorf(err, TS_ERR_IO, "cannot write %s: %s", path, strerror(errno));
    size_t len = strlen(text);
    ssize_t w = write(fd, text, len);
    int e = errno;
    close(fd);
    if (w != (ssize_t)len)
        return ts_errorf(err, TS_ERR_IO, "cannot write %s: %s", path, strerror(e));
    return TS_OK;
}

ts_status ts_curve_keygen(const char *dir, const char *role, char public_z85[41], ts_err *err) {
    TS_TRY(need_curve(err));
    if (!dir || !role || (strcmp(role, "master") && strcmp(role, "worker")))
        return ts_errorf(err, TS_ERR_INVALID, "CURVE keys are for role 'master' or 'worker'");
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return ts_errorf(err, TS_ERR_IO, "cannot create %s: %s", dir, strerror(errno));
    char pub[41], sec[41], path[1024], line[64];
    if (zmq_curve_keypair(pub, sec) != 0)
        return ts_errorf(err, TS_ERR_IO, "zmq_curve_keypair: %s", zmq_strerror(errno));
    snprintf(path, sizeof path, "%s/%s.secret", dir, role);
    snprintf(line, sizeof line, "%s\n", sec);
    TS_TRY(write_file(path, line, 0600, err));
    snprintf(path, sizeof path, "%s/%s.pub", dir, role);
    snprintf(line, sizeof line, "%s\n", pub);
    TS_TRY(write_file(path, line, 0644, err));
    if (public_z85) memcpy(public_z85, pub, 41);
    return TS_OK;
}

ts_status ts_curve_authorize(const char *dir, const char *worker_public_z85, ts_err *err) {
    uint8_t bin[32];
    if (!worker_public_z85 || strlen(worker_public_z85) != Z85_KEY_CHARS ||
        !zmq_z85_decode(bin, worker_public_z85))
        return ts_errorf(err, TS_ERR_INVALID, "not a 40-character Z85 public key");
    char path[1024];
    snprintf(path, sizeof path, "%s/authorized_workers", dir);
    FILE *f = fopen(path, "a");
    if (!f) return ts_errorf(err, TS_ERR_IO, "cannot append to %s: %s", path, strerror(errno));
    fprintf(f, "%s\n", worker_public_z85);
    return fclose(f) == 0 ? TS_OK : ts_errorf(err, TS_ERR_IO, "cannot write %s", path);
}

/* ---- the master's side ------------------------------------------------------ */

static ts_status load_authorized(ts_curve_server *cs, const char *dir, ts_err *err) {
    char path[1024];
    snprintf(path, sizeof path, "%s/authorized_workers", dir);
    FILE *f = fopen(path, "r");
    if (!f)
        return ts_errorf(err, TS_ERR_IO, "cannot read %s (worker public keys, one a line): %s",
                         path, strerror(errno));
    char line[256];
    int lineno = 0;
    ts_status s = TS_OK;
    while (s == TS_OK && fgets(line, sizeof line, f)) {
        lineno++;
        char *p = line;
        while (*p == ' ' || *p == '\t')
            p++;
        size_t len = strcspn(p, " \t\r\n");
        if (len == 0 || *p == '#') continue;
        p[len] = '\0';
        if (cs->n_keys >= MAX_AUTHORIZED)
            s = ts_errorf(err, TS_ERR_NOMEM, "%s lists more than %d keys", path, MAX_AUTHORIZED);
        else if (len != Z85_KEY_CHARS || !zmq_z85_decode(cs->keys[cs->n_keys], p))
            s = ts_errorf(err, TS_ERR_FORMAT, "%s line %d is not a 40-character Z85 key", path,
                          lineno);
        else
            cs->n_keys++;
    }
    fclose(f);
    return s;
}

ts_status ts_curve_server_open(ts_curve_server *cs, void *ctx, void *router, const char *dir,
                               ts_err *err) {
    memset(cs, 0, sizeof *cs);
    TS_TRY(need_curve(err));
    char sec[41];
    TS_TRY(read_key(dir, "master.secret", sec, err));
    cs->keys = malloc(sizeof *cs->keys * MAX_AUTHORIZED);
    if (!cs->keys) return ts_errorf(err, TS_ERR_NOMEM, "out of memory for CURVE keys");
    TS_TRY(load_authorized(cs, dir, err));
    /* The handler must be bound before the first handshake can happen. */
    cs->zap = zmq_socket(ctx, ZMQ_REP);
    if (!cs->zap) return ts_errorf(err, TS_ERR_IO, "zmq_socket(ZAP): %s", zmq_strerror(errno));
    int zero = 0;
    zmq_setsockopt(cs->zap, ZMQ_LINGER, &zero, sizeof zero);
    if (zmq_bind(cs->zap, "inproc://zeromq.zap.01") != 0)
        return ts_errorf(err, TS_ERR_IO,
                         "cannot bind the authentication handler (another CURVE master in this "
                         "ZeroMQ context?): %s",
                         zmq_strerror(errno));
    int one = 1;
    if (zmq_setsockopt(router, ZMQ_CURVE_SERVER, &one, sizeof one) != 0 ||
        zmq_setsockopt(router, ZMQ_CURVE_SECRETKEY, sec, Z85_KEY_CHARS) != 0 ||
        zmq_setsockopt(router, ZMQ_ZAP_DOMAIN, "tessera", 7) != 0)
        return ts_errorf(err, TS_ERR_IO, "cannot enable CURVE on the master socket: %s",
                         zmq_strerror(errno));
    return TS_OK;
}

void ts_curve_server_close(ts_curve_server *cs) {
    if (cs->zap) zmq_close(cs->zap);
    free(cs->keys);
    memset(cs, 0, sizeof *cs);
}

static int authorized(const ts_curve_server *cs, const void *key, size_t len) {
    if (len != 32) return 0;
    for (int i = 0; i < cs->n_keys; i++)
        if (!memcmp(cs->keys[i], key, 32)) return 1;
    return 0;
}

static void send_part(void *sock, const void *p, size_t n, int more) {
    zmq_send(sock, p, n, more ? ZMQ_SNDMORE : 0);
}

/* ZAP 1.0 (RFC 27): request = version, request id, domain, address,
 * identity, mechanism, credentials...; reply = version, request id, status
 * code, status text, user id, metadata. */
int ts_curve_server_handle(ts_curve_server *cs) {
    zmq_msg_t part[8];
    int n = 0, more = 1;
    while (more) {
        zmq_msg_t scratch, *m = n < 8 ? &part[n] : &scratch;
        zmq_msg_init(m);
        if (zmq_msg_recv(m, cs->zap, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(m);
            for (int i = 0; i < n; i++)
                zmq_msg_close(&part[i]);
            return n > 0 ? -1 : 0; /* nothing pending */
        }
        more = zmq_msg_more(m);
        if (m == &scratch)
            zmq_msg_close(m);
        else
            n++;
    }
    int ok = n >= 7 && zmq_msg_size(&part[5]) == 5 && !memcmp(zmq_msg_data(&part[5]), "CURVE", 5) &&
             authorized(cs, zmq_msg_data(&part[6]), zmq_msg_size(&part[6]));
    if (!ok) {
        cs->refused++;
        char addr[64] = "?";
        if (n >= 4) {
            size_t len = zmq_msg_size(&part[3]);
            snprintf(addr, sizeof addr, "%.*s", (int)(len < 60 ? len : 60),
                     (const char *)zmq_msg_data(&part[3]));
        }
        ts_log(TS_LOG_WARN, "refused a worker from %s: its CURVE public key is not listed", addr);
    }
    send_part(cs->zap, "1.0", 3, 1);
    if (n >= 2)
        send_part(cs->zap, zmq_msg_data(&part[1]), zmq_msg_size(&part[1]), 1);
    else
        send_part(cs->zap, "", 0, 1);
    send_part(cs->zap, ok ? "200" : "400", 3, 1);
    send_part(cs->zap, ok ? "OK" : "key not authorized", ok ? 2 : 18, 1);
    send_part(cs->zap, "", 0, 1);
    send_part(cs->zap, "", 0, 0);
    for (int i = 0; i < n; i++)
        zmq_msg_close(&part[i]);
    return 1;
}

/* ---- the worker's side -------------------------------------------------- */

ts_status ts_curve_client_setup(void *sock, const char *dir, ts_err *err) {
    TS_TRY(need_curve(err));
    char server[41], pub[41], sec[41];
    TS_TRY(read_key(dir, "master.pub", server, err));
    TS_TRY(read_key(dir, "worker.pub", pub, err));
    TS_TRY(read_key(dir, "worker.secret", sec, err));
    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, server, Z85_KEY_CHARS) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, pub, Z85_KEY_CHARS) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, sec, Z85_KEY_CHARS) != 0)
        return ts_errorf(err, TS_ERR_IO, "cannot enable CURVE on the worker socket: %s",
                         zmq_strerror(errno));
    return TS_OK;
}
