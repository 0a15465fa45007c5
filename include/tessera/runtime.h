/*
 * runtime.h: the distributed runtime. A master and its workers exchange typed,
 * length-checked frames over ZeroMQ; workers run compute tasks on deployed
 * blobs. The runtime knows tensors and task kinds (conv, gemm, echo), never
 * networks: the coded layers above it decide what a task means and which
 * results are valid.
 *
 * Shape of it (zguide "Paranoid Pirate" + "Majordomo", see docs/protocol.md):
 * - The master binds ONE ROUTER socket and runs a single zmq_poll loop. The
 *   loop is driven by the caller's thread: it runs inside every master call
 *   that waits (wait_workers, deploy_wait, collect, poll). A caller that stays
 *   away from the master longer than a heartbeat interval should call
 *   ts_master_poll now and then, or its workers will see it as silent.
 * - Workers connect DEALER sockets, say HELLO (capabilities + emulation), get
 *   READY with a worker id, and heartbeat. Any frame counts as a heartbeat. A
 *   worker silent for `liveness` intervals is dead: its in-flight shards are
 *   lost and collect() stops counting on them. A worker that comes back gets
 *   a NEW id (its deployed blobs are gone with its old process), so callers
 *   notice the change through ts_master_epoch and re-deploy.
 * - Jobs: the caller submits n tasks, each aimed at one worker id, and
 *   collects until k results were accepted by its callback. Results carry
 *   (job, layer, shard, seq) ids; late, duplicate or unknown ones are dropped.
 * - Transport URL picks the deployment: inproc:// (worker threads in the
 *   master's process, sharing the master's ZeroMQ context), ipc://, tcp://.
 * - Emulation (device GFLOP/s, link Mbit/s and latency, seeded stragglers,
 *   fail-stop, crash) lives in the worker so that many slow devices can be
 *   measured on a small machine.
 *
 * Threading: a ts_master is used from one thread at a time. Threads that
 * share one (pipelined inference: a coded model per lane, each with its own
 * ts_master_backend) hold ts_master_lock around every call; the master
 * backends do so themselves. ts_worker_run blocks its calling thread;
 * ts_worker_spawn runs it on a new thread.
 */
#ifndef TESSERA_RUNTIME_H
#define TESSERA_RUNTIME_H

#include "tessera/coded.h"
#include "tessera/core.h"
#include "tessera/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- task kinds and blob keys ------------------------------------------ */

typedef enum {
    TS_TASK_ECHO = 1,   /* outputs = inputs (after an optional sleep): tests */
    TS_TASK_CONV2D = 2, /* per pair: y = conv2d(inputs[pair.input], blob[pair.key]) */
    TS_TASK_GEMM = 3,   /* per pair: y = op(blob[pair.key]) x op(inputs[pair.input]) */
} ts_task_kind;

/* Bitmask of task kinds a worker can run (bit = 1 << kind). */
#define TS_TASK_CAPS_ALL ((1u << TS_TASK_ECHO) | (1u << TS_TASK_CONV2D) | (1u << TS_TASK_GEMM))
/* HELLO caps bit above the task kinds: the worker takes ALIAS (a blob it
 * holds stored under one more key), so a share that several pipeline lanes
 * deploy is sent and stored once. */
#define TS_WORKER_CAP_ALIAS (1u << 16)
/* HELLO caps bit: the worker takes CANCEL (job done: it drops that job's
 * results it has not sent and gives back the emulated device time they had
 * not used yet), so a straggler's backlog and memory stay bounded. */
#define TS_WORKER_CAP_CANCEL (1u << 17)

/* Names a deployed blob on a worker, e.g. (model id, layer, share index). */
typedef struct {
    uint32_t model, layer, index;
} ts_blob_key;

/* One unit of work inside a conv or gemm task: which input tensor meets which
 * deployed blob. For conv the blob holds the filter [M, C/g, KH, KW] and,
 * optionally, a bias [M] as its second tensor. For gemm the blob holds a 2-D
 * matrix A and the input is a 2-D matrix X. */
typedef struct {
    uint32_t input;
    ts_blob_key key;
} ts_task_pair;

#define TS_RT_MAX_TENSORS 64 /* per message: inputs, outputs or blob tensors */
#define TS_RT_MAX_PAIRS 64

typedef struct {
    ts_task_kind kind;
    uint32_t worker;                /* target worker id (from ts_master_workers) */
    uint32_t shard;                 /* caller's shard index, echoed in the result */
    const ts_tensor *const *inputs; /* copied at submit: may be reused at once */
    int n_inputs;
    const ts_task_pair *pairs; /* conv and gemm */
    int n_pairs;
    ts_conv2d_params conv;  /* conv only */
    int trans_a, trans_b;   /* gemm only */
    uint32_t echo_sleep_ms; /* echo only: a deterministic straggler for tests */
} ts_task;

/* ---- master ------------------------------------------------------------ */

typedef struct ts_master ts_master;
typedef struct ts_job ts_job;

typedef struct {
    const char *url;        /* endpoint to bind: inproc://x, ipc:///tmp/x, tcp://127.0.0.1:0 */
    void *zmq_ctx;          /* NULL: the master creates and owns one */
    int heartbeat_ms;       /* default 1000 */
    int liveness;           /* missed heartbeats before a worker is dead; default 3 */
    size_t max_frame_bytes; /* cap on any received frame; default 1 GiB */
    int max_workers;        /* live worker slots; default 256 */
    /* Non-NULL: CURVE-encrypt and authenticate (DIR/master.secret, and
     * DIR/authorized_workers listing the worker public keys let in). Not
     * for inproc://, which has no security mechanism. */
    const char *curve_dir;
} ts_master_opts;

ts_master_opts ts_master_opts_default(void);

/* Binds the ROUTER socket. For tcp://host:0 the kernel picks a port; the
 * actual endpoint is ts_master_endpoint(). Free with ts_master_free. */
ts_master *ts_master_new(const ts_master_opts *opts, ts_err *err);
/* Sends DISCONNECT (shutdown) to every live worker, closes the socket and the
 * owned context. Accepts NULL. */
void ts_master_free(ts_master *m);
/* The master's use lock (see Threading above). Not recursive. */
void ts_master_lock(ts_master *m);
void ts_master_unlock(ts_master *m);
/* The ZeroMQ context (pass it to in-process workers for inproc://). */
void *ts_master_zmq_ctx(ts_master *m);
/* The bound endpoint, with the real port for tcp://...:0. */
const char *ts_master_endpoint(const ts_master *m);

/* Runs the poll loop for up to timeout_s seconds (0: handle what is pending). */
ts_status ts_master_poll(ts_master *m, double timeout_s, ts_err *err);
/* Waits until at least n workers are live; TS_ERR_TIMEOUT after timeout_s. */
ts_status ts_master_wait_workers(ts_master *m, int n, double timeout_s, ts_err *err);
/* Live worker ids, ascending (ids are never reused). Returns the number of
 * live workers; writes at most cap ids. */
int ts_master_workers(const ts_master *m, uint32_t *ids, int cap);
/* Changes whenever a worker joins or dies: re-plan when it moved. */
uint64_t ts_master_epoch(const ts_master *m);
int ts_master_worker_alive(const ts_master *m, uint32_t id);

/* What a worker told the master in HELLO. */
typedef struct {
    uint32_t id;
    uint32_t caps;                   /* TS_TASK_CAPS bitmask */
    double gflops, mbps, latency_ms; /* 0 = not emulated */
    char straggler[64];              /* straggler model as given, "" = none */
    char name[64];
} ts_worker_info;
ts_status ts_master_worker_info(const ts_master *m, uint32_t id, ts_worker_info *info, ts_err *err);

/* Stores a named set of tensors on a worker (copied at the call). Replaces a
 * blob with the same key. The worker acknowledges; ts_master_deploy_wait
 * waits for all outstanding acknowledgements. */
ts_status ts_master_deploy(ts_master *m, uint32_t worker, ts_blob_key key,
                           const ts_tensor *const *tensors, int n, ts_err *err);
/* TS_ERR_UNAVAILABLE when a worker died or refused a blob (message says
 * which), TS_ERR_TIMEOUT after timeout_s. */
ts_status ts_master_deploy_wait(ts_master *m, double timeout_s, ts_err *err);

/* Sends n tasks (each to its worker) as one job; the inputs are copied into
 * frames here. A malformed task fails the call; a task aimed at a dead,
 * unknown or incapable worker is logged and its shard counted as lost at
 * once (collect then decides whether k can still be reached). The job lives
 * until ts_master_job_free. layer is carried in the ids. */
ts_job *ts_master_submit(ts_master *m, uint32_t layer, const ts_task *tasks, int n, ts_err *err);
/* Adds more tasks to a job (re-plan after losses); shard numbers must be new
 * or belong to shards already lost. */
ts_status ts_master_job_add(ts_master *m, ts_job *job, const ts_task *tasks, int n, ts_err *err);
uint32_t ts_job_id(const ts_job *job);

/* One result as seen by the collect callback. outputs are views into the
 * received frames, valid only during the callback. */
typedef struct {
    uint32_t job, layer, shard, worker;
    int n_outputs;
    const ts_tensor *outputs;
    double compute_s;  /* real kernel time on the worker */
    double emulated_s; /* device time the worker emulated (0: not emulated) */
} ts_result;

/* Returns 1 to accept the result (it counts towards k), 0 to reject it (e.g.
 * the caller detected it as corrupt). */
typedef int (*ts_result_fn)(void *user, const ts_result *r);

/* Runs the poll loop until k results of this job (counted over all collect
 * calls) have been accepted: TS_OK. Fails early with TS_ERR_UNAVAILABLE when
 * the shards still in flight to live workers cannot bring the count to k,
 * and with TS_ERR_TIMEOUT at the deadline (seconds from now). A worker-side
 * task error counts as a lost shard and its message is logged. */
ts_status ts_master_collect(ts_master *m, ts_job *job, int k, double timeout_s, ts_result_fn fn,
                            void *user, ts_err *err);
/* Accepted results so far, and shards still in flight to live workers. */
int ts_job_accepted(const ts_job *job);
int ts_job_in_flight(const ts_job *job);
/* Forgets the job; its later results are dropped by id. Workers that still
 * hold shards of it and take CANCEL are told to drop them. Accepts NULL. */
void ts_master_job_free(ts_master *m, ts_job *job);

/* Counters for tests and benchmarks. */
typedef struct {
    uint64_t frames_in, frames_out;
    uint64_t dropped_invalid; /* failed validation (peer disconnected) */
    uint64_t dropped_stale;   /* late, duplicate or unknown ids */
    uint64_t dropped_unknown; /* from unregistered peers */
    uint64_t workers_joined, workers_lost;
    uint64_t task_errors;
    uint64_t auth_refused; /* CURVE handshakes refused (key not listed) */
    /* Bytes of blob data sent in DEPLOYs; deploys sent as ALIAS instead (the
     * worker already held the same content under another key: pipeline
     * lanes), and the bytes those did not send. */
    uint64_t deploy_bytes_sent, deploys_aliased, deploy_bytes_saved;
    /* CANCELs sent: one per worker that still had shards of a freed job. */
    uint64_t cancels_sent;
} ts_master_stats;
void ts_master_get_stats(const ts_master *m, ts_master_stats *st);

/* ---- worker ------------------------------------------------------------ */

typedef enum {
    TS_STRAGGLER_NONE = 0,
    TS_STRAGGLER_FIXED,    /* every task slowed by factor a */
    TS_STRAGGLER_SHIFTEXP, /* factor 1 + Exp(mean a) */
    TS_STRAGGLER_PARETO,   /* factor Pareto(x_m = 1, shape a) */
    TS_STRAGGLER_FAILSTOP, /* silent (alive, answers nothing) after a seconds */
    TS_STRAGGLER_CRASH,    /* ts_worker_run returns after a seconds, no goodbye */
} ts_straggler_kind;

typedef struct {
    ts_straggler_kind kind;
    double a;
    /* 1: a timing model's factor also stretches the task's link transfers
     * (input and result), as for a device on a congested or flaky link; 0:
     * it slows only the device's compute. Latency is not stretched. */
    int link;
} ts_straggler;

/* Parses "none", "fixed:5", "shiftexp:0.5", "pareto:2.5", "failstop:3",
 * "crash:3"; a timing model (fixed, shiftexp, pareto) may end in "+link"
 * ("fixed:5+link") to slow the worker's link transfers too. */
ts_status ts_straggler_parse(const char *s, ts_straggler *out, ts_err *err);
/* Inverse of parse: "fixed:5", "fixed:5+link". */
const char *ts_straggler_str(const ts_straggler *s, char *buf, size_t len);

typedef struct {
    const char *url;   /* master endpoint to connect to */
    void *zmq_ctx;     /* NULL: own context; inproc:// needs the master's */
    const char *name;  /* shown in logs and worker info; may be NULL */
    int heartbeat_ms;  /* default 1000 (the master's READY overrides it) */
    int liveness;      /* default 3 */
    double gflops;     /* > 0: emulate a device of this speed */
    double mbps;       /* > 0: emulate a link of this bandwidth (each direction) */
    double latency_ms; /* emulated one-way latency per frame */
    ts_straggler straggler;
    uint64_t seed;          /* straggler draws */
    size_t max_frame_bytes; /* default 1 GiB */
    size_t max_blob_bytes;  /* total deployed bytes; default 4 GiB */
    int exit_on_shutdown;   /* 1: return when the master says it shuts down */
    /* Non-NULL: read atomically; 1 = send DISCONNECT and return, 2 = return
     * without a word (the master finds out by missed heartbeats). */
    const int *stop;
    /* Non-NULL: CURVE (DIR/master.pub, DIR/worker.pub, DIR/worker.secret). */
    const char *curve_dir;
    /* Non-NULL: what the worker did, written when ts_worker_run returns. */
    struct ts_worker_stats *stats;
    /* 1: do not offer CANCEL in HELLO (as a worker before it: every reply is
     * sent, and the master drops a finished job's late ones by id). */
    int no_cancel;
} ts_worker_opts;

typedef struct ts_worker_stats {
    uint64_t tasks, task_errors; /* results and errors queued (CANCEL may drop some) */
    uint64_t blobs;              /* deploys stored */
    uint64_t aliases;            /* ALIASes stored (a held blob under one more key) */
    uint64_t blob_bytes_peak;    /* most bytes of distinct blobs held at once */
    uint64_t registrations;      /* READYs received (1 + re-registrations) */
    uint64_t cancelled;          /* task replies dropped by CANCEL before they were sent */
} ts_worker_stats;

ts_worker_opts ts_worker_opts_default(void);

typedef enum {
    TS_WORKER_EXIT_STOPPED = 0, /* *stop was set */
    TS_WORKER_EXIT_SHUTDOWN,    /* master shut down and exit_on_shutdown */
    TS_WORKER_EXIT_CRASH,       /* emulated crash: the caller should die now */
} ts_worker_exit;

/* Connects and serves until stopped. On return *why (nullable) says why. */
ts_status ts_worker_run(const ts_worker_opts *opts, ts_worker_exit *why, ts_err *err);

/* A worker on its own thread (opts and the strings it points to are copied). */
typedef struct ts_worker_thread ts_worker_thread;
ts_worker_thread *ts_worker_spawn(const ts_worker_opts *opts, ts_err *err);
/* Asks the worker to stop and joins it. graceful = 1 sends DISCONNECT first;
 * 0 vanishes without a word (like a crash). Accepts NULL. */
void ts_worker_stop(ts_worker_thread *w, int graceful);
/* Makes the worker mute but connected (an emulated fail-stop, now): it reads
 * and discards everything until ts_worker_stop. Returns at once. */
void ts_worker_silence(ts_worker_thread *w);

/* ---- CURVE keys (curve.c) ------------------------------------------------
 * Key files are Z85 text (40 characters): DIR/<role>.pub and
 * DIR/<role>.secret (mode 0600); the master's DIR/authorized_workers lists
 * one worker public key per line ('#' starts a comment). */

/* 1 when this libzmq supports CURVE (built with libsodium). */
int ts_curve_available(void);
/* Writes a fresh keypair for role "master" or "worker" into dir (created
 * if missing); public_z85 (nullable, 41 bytes) receives the public key. */
ts_status ts_curve_keygen(const char *dir, const char *role, char public_z85[41], ts_err *err);
/* Appends a worker public key to dir/authorized_workers. */
ts_status ts_curve_authorize(const char *dir, const char *worker_public_z85, ts_err *err);

/* ---- the coded-layer backend over a master (coded_backend.c) -------------
 * Implements coded.h's ts_coded_backend on a ts_master:
 * - worker slots 0..n-1 are the live worker ids in ascending order, as seen
 *   by the last num_workers() call (the coded model calls it when it
 *   re-plans, after noticing the epoch moved); the map stays fixed between
 *   re-plans, so a worker that dies mid-layer only loses its slot's shard;
 * - deploy stores share d of layer l on a slot's worker under the blob key
 *   (model id, l, d);
 * - run sends one task per used slot (shard = slot): its n_in inputs and
 *   the n_in * n_shares (input, share) pairs, a conv with job->conv or a
 *   gemm share x input^T; it collects until job->need results are
 *   accepted, copying each into job->outputs and marking job->responded;
 *   a result of the wrong count or shapes is rejected (logged);
 * - epoch is ts_master_epoch.
 * Every wait runs the master's poll loop, so heartbeats keep flowing. */

typedef struct ts_master_backend ts_master_backend;

/* model_id names this model's blobs on the workers (several models may
 * share the workers with different ids). The master is borrowed. */
ts_master_backend *ts_master_backend_new(ts_master *m, uint32_t model_id, ts_err *err);
void ts_master_backend_free(ts_master_backend *b); /* accepts NULL */
/* The interface to hand to ts_coded_model_new (ctx = b). */
ts_coded_backend ts_master_coded_backend(ts_master_backend *b);
/* How long deploy_wait may take (default 60 s). */
void ts_master_backend_set_deploy_timeout(ts_master_backend *b, double seconds);
/* Worker id behind a slot of the current map, 0 when out of range. */
uint32_t ts_master_backend_slot_worker(const ts_master_backend *b, int slot);

/* Per-run counters (since creation): for benchmarks and tests. */
typedef struct {
    uint64_t runs, runs_failed;
    uint64_t tasks_sent, results_accepted, results_rejected;
    double last_run_s;          /* wall time of the last run */
    double last_max_emulated_s; /* slowest accepted worker's emulated device time */
} ts_master_backend_stats;
void ts_master_backend_get_stats(const ts_master_backend *b, ts_master_backend_stats *st);

/* ---- a whole cluster in this process (coded_backend.c) ------------------
 * A master on its own inproc:// endpoint plus n worker threads: the
 * embedded default, and a test bed (workers can be failed and restarted). */

typedef struct ts_local_cluster ts_local_cluster;

typedef struct {
    int n_workers;
    /* NULL, or [n_workers] options whose emulation fields (gflops, mbps,
     * latency_ms, straggler, seed, max_blob_bytes, name) apply per worker;
     * url, zmq_ctx, heartbeat and stop are the cluster's. */
    const ts_worker_opts *per_worker;
    int heartbeat_ms, liveness; /* 0: the master defaults (1000 ms, 3) */
    uint32_t model_id;          /* blob namespace of the backend; 0 -> 1 */
} ts_local_cluster_opts;

ts_local_cluster *ts_local_cluster_new(int n_workers, const ts_worker_opts *per_worker,
                                       ts_err *err);
ts_local_cluster *ts_local_cluster_new_opts(const ts_local_cluster_opts *o, ts_err *err);
void ts_local_cluster_free(ts_local_cluster *c); /* accepts NULL */
ts_master *ts_local_cluster_master(ts_local_cluster *c);
ts_master_backend *ts_local_cluster_master_backend(ts_local_cluster *c);
ts_coded_backend ts_local_cluster_backend(ts_local_cluster *c);
int ts_local_cluster_size(const ts_local_cluster *c); /* worker threads, live or not */

typedef enum {
    TS_FAULT_LEAVE = 1,   /* stops with DISCONNECT: the master knows at once */
    TS_FAULT_VANISH = 2,  /* stops without a word: found by missed heartbeats */
    TS_FAULT_SILENCE = 3, /* stays connected but mute: a fail-stop */
} ts_worker_fault;

/* Test hooks: fail worker thread i, or (re)start it (it joins with a new
 * id; the epoch moves). Restarting a running worker stops it first. */
ts_status ts_local_cluster_fail(ts_local_cluster *c, int i, ts_worker_fault how, ts_err *err);
ts_status ts_local_cluster_restart(ts_local_cluster *c, int i, ts_err *err);
/* Worker id of thread i once it has joined (0 if not live). */
uint32_t ts_local_cluster_worker_id(ts_local_cluster *c, int i);

#ifdef __cplusplus
}
#endif
#endif
