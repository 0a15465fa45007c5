/* loss.c: softmax cross-entropy over logits [N, K] with integer labels.
 * log-softmax is computed as x - max - log(sum exp(x - max)) so large
 * logits neither overflow nor lose the loss to exp underflow. */
#include "tessera/ops.h"

#include "ops_util.h"

#include <math.h>

ts_status ts_softmax_xent(const ts_tensor *logits, const int32_t *labels, ts_tensor *probs,
                          float *loss, ts_tensor *dlogits, ts_err *err) {
    if (!ts_tensor_ok(logits) || !labels || !loss)
        return ts_errorf(err, TS_ERR_INVALID, "softmax_xent: logits, labels or loss is NULL");
    if (logits->s.ndim != 2 || logits->s.shape[0] < 1 || logits->s.shape[1] < 1)
        return ts_errorf(err, TS_ERR_SHAPE, "softmax_xent: logits %s must be [N, K], non-empty",
                         SHP(&logits->s));
    if (probs && (!ts_tensor_ok(probs) || !ts_shape_eq(&probs->s, &logits->s)))
        return ts_errorf(err, TS_ERR_SHAPE, "softmax_xent: probs %s must match logits %s",
                         SHP(&probs->s), SHP(&logits->s));
    if (dlogits && (!ts_tensor_ok(dlogits) || !ts_shape_eq(&dlogits->s, &logits->s)))
        return ts_errorf(err, TS_ERR_SHAPE, "softmax_xent: dlogits %s must match logits %s",
                         SHP(&dlogits->s), SHP(&logits->s));
    int64_t n = logits->s.shape[0], k = logits->s.shape[1];
    for (int64_t i = 0; i < n; i++)
        if (labels[i] < 0 || labels[i] >= k)
            return ts_errorf(err, TS_ERR_INVALID,
                             "softmax_xent: label %d of row %lld is outside [0, %lld)",
                             (int)labels[i], (long long)i, (long long)k);
    double total = 0.0;
    for (int64_t i = 0; i < n; i++) {
        const float *x = logits->data + i * k;
        float mx = x[0];
        for (int64_t j = 1; j < k; j++)
            mx = fmaxf(mx, x[j]);
        double sum = 0.0;
        for (int64_t j = 0; j < k; j++)
            sum += exp((double)x[j] - mx);
        double lse = log(sum);
        total -= (double)x[labels[i]] - mx - lse;
        for (int64_t j = 0; j < k; j++) {
            double p = exp((double)x[j] - mx - lse);
            if (probs) probs->data[i * k + j] = (float)p;
            if (dlogits)
                dlogits->data[i * k + j] = (float)((p - (j == labels[i] ? 1.0 : 0.0)) / (double)n);
        }
    }
    *loss = (float)(total / (double)n);
    return TS_OK;
}
