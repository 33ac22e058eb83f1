/* Native CPU kernels for one-hidden-layer MLPs, f(x) = sum_a v_a act(w_a . x + c_a) + b.
 *
 * Built at first use by symnplm.engine.native with -DD=<inputs> -DH=<hidden units>
 * -DACT=<activation> -DLOSS=<loss>, so that every loop over inputs, hidden units and
 * parameters has a constant trip count and unrolls; the loops over events are
 * vectorised (#pragma omp simd; an inlined float32 exp, and log1p/tanh from glibc's libmvec).
 *
 * Three entry points per (D, H, ACT, LOSS), each over a range of units [u0, u1):
 *   mlp1_loss      loss and max f over data events            (Newton's trial steps)
 *   mlp1_grad      loss, max f and gradient                   (fixed-epoch Adam)
 *   mlp1_newton    loss, max f, gradient and Hessian           (damped Newton)
 * Per-event terms are summed in float32 over short runs of events and those partial
 * sums in float64, so the totals carry float32 rounding of the terms only.
 *
 * Loss families (c1, c2 are per-event coefficients, see symnplm.engine.kernels):
 *   LOSS 0, extended:      l = c1 e^f - c1 - c2 f      (reference coefficient c1, data weight c2)
 *   LOSS 1, cross-entropy: l = c1 softplus(-2f) + c2 softplus(2f)   (weights of A and B)
 * Parameters theta (U, P) in the order [W1 (H, D) row-major, b1 (H), W2 (H), b2].
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#if !defined(D) || !defined(H) || !defined(ACT) || !defined(LOSS)
#error "compile with -DD=<inputs> -DH=<hidden> -DACT=<0..3> -DLOSS=<0|1>"
#endif

#if defined(__GLIBC__) && defined(__x86_64__)
/* Vector variants of log1pf and tanhf from libmvec; glibc declares them itself only under -ffinite-math-only,
 * which would break the infinities this code relies on (divergence guard, max f). */
__attribute__((simd("notinbranch"))) float log1pf(float);
__attribute__((simd("notinbranch"))) float tanhf(float);
#endif

#define P (H * D + 2 * H + 1)
#define IB (H * D)         /* first hidden bias c_a */
#define IV (H * D + H)     /* first output weight v_a */
#define IO (H * D + 2 * H) /* output bias b */
#define LANES 16           /* events per vector step */
#define RUN 4096           /* events per float32 partial sum (Adam, trial losses) */
#define BLOCK 256          /* events per Jacobian buffer (Newton) */

/* constant-trip loops over inputs and hidden units unroll, so that the event loop
 * around them vectorises */
#define UNROLL _Pragma("GCC unroll 64")

#define SIGMOID 0 /* values of ACT */
#define TANH 1
#define RELU 2
#define SOFTPLUS 3

typedef struct {
    const float *x;  /* features as rows: x[k * x_su + j * x_sj + i] */
    int64_t x_su, x_sj;
    const float *c1; /* c1[k * c1_su + i] (times scale[k] when scale is given) */
    int64_t c1_su;
    const float *c2; /* c2[k * c2_su + i] */
    int64_t c2_su;
    const float *scale;  /* per-unit factor of c1, or NULL */
    const int64_t *rows; /* unit u reads row k = rows[u] of x, c1, c2, scale; NULL: k = u */
    const float *theta;  /* (U, P), by unit u, as are the outputs */
    int64_t n;           /* events */
} inputs_t;

typedef struct {
    float w[H][D], c[H], v[H], b;
} net_t;

static inline void load_net(net_t *net, const float *th) {
    UNROLL
    for (int a = 0; a < H; ++a) {
        UNROLL
        for (int j = 0; j < D; ++j) net->w[a][j] = th[a * D + j];
        net->c[a] = th[IB + a];
        net->v[a] = th[IV + a];
    }
    net->b = th[IO];
}


/* exp for float32, inlined so that the event loops vectorise without calls (and the
 * register spills around them): Cody-Waite reduction and the degree-6 polynomial of
 * Cephes' expf, about 1 ulp. exp_sat clamps its argument to [-87, 88.376] (2^127 is
 * the largest power the scale can take), so it saturates at ~1e-38 and ~2.4e38;
 * exp32 gives +inf above 88.376 (the divergence guard and max f need it). NaN stays
 * NaN in both: it fails both clamping comparisons and passes through. */
static inline float exp_sat(float x) {
    x = -87.0f > x ? -87.0f : x;
    x = 88.3762626647949f < x ? 88.3762626647949f : x;
    const float n = __builtin_rintf(x * 1.44269504088896341f);
    const float r = (x - n * 0.693359375f) + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    const float y = p * r * r + r + 1.0f;
    union { int32_t i; float f; } scale = {.i = ((int32_t)n + 127) << 23};
    return y * scale.f;
}

static inline float exp32(float x) { return x > 88.3762626647949f ? INFINITY : exp_sat(x); }

static inline float softplus(float t) { return (t > 0.0f ? t : 0.0f) + log1pf(exp_sat(-fabsf(t))); }

/* activation value; with slope/curv also its first and second derivative */
static inline float activation(float z, float *slope, float *curv) {
    float a, s, k;
#if ACT == SIGMOID
    a = 1.0f / (1.0f + exp_sat(-z));
    s = a * (1.0f - a);
    k = s * (1.0f - 2.0f * a);
#elif ACT == TANH
    a = tanhf(z);
    s = 1.0f - a * a;
    k = -2.0f * a * s;
#elif ACT == RELU
    a = z > 0.0f ? z : 0.0f;
    s = z > 0.0f ? 1.0f : 0.0f;
    k = 0.0f;
#else
    a = softplus(z);
    s = 1.0f / (1.0f + exp_sat(-z));
    k = s * (1.0f - s);
#endif
    *slope = s;
    *curv = k;
    return a;
}

/* per-event loss term; r = dl/df, q = d2l/df2 */
static inline float loss_terms(float f, float c1, float c2, float *r, float *q) {
#if LOSS == 0
    const float e = c1 != 0.0f ? c1 * exp32(f) : 0.0f; /* zero weight: exactly nothing, even if e^f = inf */
    *r = e - c2;
    *q = e;
    return e - c1 - c2 * f;
#else
    const float z = 2.0f * f;
    const float e = exp_sat(-fabsf(z)), inv = 1.0f / (1.0f + e);
    const float sp = z >= 0.0f ? inv : e * inv; /* sigma(z)  */
    const float sm = z >= 0.0f ? e * inv : inv; /* sigma(-z) */
    const float spm = (z < 0.0f ? -z : 0.0f) + log1pf(e); /* softplus(-z); softplus(z) = that + z */
    *r = 2.0f * (c2 * sp - c1 * sm);
    *q = 4.0f * (c1 + c2) * sp * sm;
    return c1 * spm + c2 * (spm + z);
#endif
}

/* the unit's inputs, and a zero-padded copy of the last partial vector of events */
typedef struct {
    const float *x[D], *c1, *c2;
    float scale;
} rows_t;

static inline void unit_rows(rows_t *rows, const inputs_t *in, int64_t u) {
    const int64_t k = in->rows ? in->rows[u] : u;
    UNROLL
    for (int j = 0; j < D; ++j) rows->x[j] = in->x + k * in->x_su + j * in->x_sj;
    rows->c1 = in->c1 + k * in->c1_su;
    rows->c2 = in->c2 + k * in->c2_su;
    rows->scale = in->scale ? in->scale[k] : 1.0f;
}

typedef struct {
    float x[D][LANES], c1[LANES], c2[LANES];
    rows_t rows;
} tail_t;

/* rows positioned at event i0 (zero weights past the end add exactly nothing) */
static inline const rows_t *at(const rows_t *rows, int64_t i0, int64_t n, tail_t *tail) {
    if (i0 + LANES <= n) {
        UNROLL
        for (int j = 0; j < D; ++j) tail->rows.x[j] = rows->x[j] + i0;
        tail->rows.c1 = rows->c1 + i0;
        tail->rows.c2 = rows->c2 + i0;
        tail->rows.scale = rows->scale;
        return &tail->rows;
    }
    for (int l = 0; l < LANES; ++l) {
        const int ok = i0 + l < n;
        UNROLL
        for (int j = 0; j < D; ++j) tail->x[j][l] = ok ? rows->x[j][i0 + l] : 0.0f;
        tail->c1[l] = ok ? rows->c1[i0 + l] : 0.0f;
        tail->c2[l] = ok ? rows->c2[i0 + l] : 0.0f;
    }
    UNROLL
    for (int j = 0; j < D; ++j) tail->rows.x[j] = tail->x[j];
    tail->rows.c1 = tail->c1;
    tail->rows.c2 = tail->c2;
    tail->rows.scale = rows->scale;
    return &tail->rows;
}

static inline float data_max(float m, float f, float c2) {
#if LOSS == 0
    return c2 > 0.0f && f > m ? f : m;
#else
    (void)f;
    (void)c2;
    return m;
#endif
}

/* f at lane l of the rows r, and per hidden unit its activation, slope and curvature.
 * A macro, not a function: as a function the event loops around it no longer vectorise. */
#define FORWARD(net, r, l, f, act, slope, curv)                                   \
    do {                                                                          \
        (f) = (net).b;                                                            \
        UNROLL                                                                    \
        for (int a_ = 0; a_ < H; ++a_) {                                          \
            float z_ = (net).c[a_];                                               \
            UNROLL                                                                \
            for (int j_ = 0; j_ < D; ++j_) z_ += (net).w[a_][j_] * (r)->x[j_][l]; \
            (act)[a_] = activation(z_, &(slope)[a_], &(curv)[a_]);                \
            (f) += (net).v[a_] * (act)[a_];                                       \
        }                                                                         \
    } while (0)

/* per-lane partial sums and maxima into the unit's total and max */
static inline void fold_lanes(const float part[LANES], const float mx[LANES], double *total,
                              float *m) {
    for (int l = 0; l < LANES; ++l) {
        *total += part[l];
        *m = mx[l] > *m ? mx[l] : *m;
    }
}

void mlp1_loss(const inputs_t *in, int64_t u0, int64_t u1, double *loss, float *fmax) {
    for (int64_t u = u0; u < u1; ++u) {
        net_t net;
        rows_t rows;
        tail_t tail;
        load_net(&net, in->theta + u * P);
        unit_rows(&rows, in, u);
        double total = 0.0;
        float m = -INFINITY;
        for (int64_t s = 0; s < in->n; s += RUN) {
            const int64_t e = s + RUN < in->n ? s + RUN : in->n;
            float part[LANES] = {0.0f}, mx[LANES]; /* per lane: no horizontal sums per step */
            for (int l = 0; l < LANES; ++l) mx[l] = m;
            for (int64_t i0 = s; i0 < e; i0 += LANES) {
                const rows_t *r = at(&rows, i0, in->n, &tail);
#pragma omp simd
                for (int l = 0; l < LANES; ++l) {
                    float f, act[H], slope[H], curv[H], dr, dq;
                    FORWARD(net, r, l, f, act, slope, curv);
                    part[l] += loss_terms(f, r->scale * r->c1[l], r->c2[l], &dr, &dq);
                    mx[l] = data_max(mx[l], f, r->c2[l]);
                }
            }
            fold_lanes(part, mx, &total, &m);
        }
        loss[u] = total;
        fmax[u] = m;
    }
}

void mlp1_grad(const inputs_t *in, int64_t u0, int64_t u1, double *loss, float *fmax,
               double *grad) {
    for (int64_t u = u0; u < u1; ++u) {
        net_t net;
        rows_t rows;
        tail_t tail;
        load_net(&net, in->theta + u * P);
        unit_rows(&rows, in, u);
        double total = 0.0, g[P] = {0.0};
        float m = -INFINITY;
        for (int64_t s = 0; s < in->n; s += RUN) {
            const int64_t e = s + RUN < in->n ? s + RUN : in->n;
            float part[LANES] = {0.0f}, mx[LANES], gp[P][LANES] = {{0.0f}}; /* per lane */
            for (int l = 0; l < LANES; ++l) mx[l] = m;
            for (int64_t i0 = s; i0 < e; i0 += LANES) {
                const rows_t *r = at(&rows, i0, in->n, &tail);
#pragma omp simd
                for (int l = 0; l < LANES; ++l) {
                    float f, act[H], slope[H], curv[H], dr, dq;
                    FORWARD(net, r, l, f, act, slope, curv);
                    part[l] += loss_terms(f, r->scale * r->c1[l], r->c2[l], &dr, &dq);
                    mx[l] = data_max(mx[l], f, r->c2[l]);
                    UNROLL
                    for (int a = 0; a < H; ++a) {
                        const float t = dr * net.v[a] * slope[a];
                        UNROLL
                        for (int j = 0; j < D; ++j) gp[a * D + j][l] += t * r->x[j][l];
                        gp[IB + a][l] += t;
                        gp[IV + a][l] += dr * act[a];
                    }
                    gp[IO][l] += dr;
                }
            }
            fold_lanes(part, mx, &total, &m);
            UNROLL
            for (int k = 0; k < P; ++k)
                for (int l = 0; l < LANES; ++l) g[k] += gp[k][l];
        }
        loss[u] = total;
        fmax[u] = m;
        UNROLL
        for (int k = 0; k < P; ++k) grad[u * P + k] = g[k];
    }
}

static inline float dot(const float *a, const float *b, int n) {
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int i = 0; i < n; ++i) s += a[i] * b[i];
    return s;
}

/* Gradient and Hessian of the loss: J_k = df/dtheta_k per event,
 * H = sum q J J^T (Gauss-Newton) [+ sum r d2f/dtheta2 with exact]; d2f couples only
 * parameters of one hidden unit a: v_a act''_a u u^T on (w_a, c_a) and act'_a u
 * between (w_a, c_a) and v_a, with u = (x, 1). Events go through in blocks: a
 * vectorised pass fills the per-event buffers, then every entry is a dot product. */
void mlp1_newton(const inputs_t *in, int64_t u0, int64_t u1, int exact, double *loss,
                 float *fmax, double *grad, double *hess) {
    /* per-event buffers of one block of events: J, q, r, x, and the exact-Hessian factors */
    typedef struct {
        float jac[P][BLOCK], qj[BLOCK], rr[BLOCK], xs[D][BLOCK], rc[H][BLOCK], rs[H][BLOCK];
    } buffers_t;
    buffers_t *buf = malloc(sizeof(buffers_t));
    if (!buf) return; /* caller sees the NaN it pre-filled */
    float(*jac)[BLOCK] = buf->jac, *qj = buf->qj, *rr = buf->rr;
    float(*xs)[BLOCK] = buf->xs, (*rc)[BLOCK] = buf->rc, (*rs)[BLOCK] = buf->rs;
    for (int64_t u = u0; u < u1; ++u) {
        net_t net;
        rows_t rows;
        tail_t tail;
        load_net(&net, in->theta + u * P);
        unit_rows(&rows, in, u);
        double total = 0.0, g[P] = {0.0}, h[P][P] = {{0.0}};
        float m = -INFINITY;
        for (int64_t s = 0; s < in->n; s += BLOCK) {
            const int64_t e = s + BLOCK < in->n ? s + BLOCK : in->n;
            const int nb = (int)(((e - s) + LANES - 1) / LANES) * LANES;
            float part = 0.0f;
            for (int b0 = 0; b0 < nb; b0 += LANES) {
                const rows_t *r = at(&rows, s + b0, in->n, &tail);
#pragma omp simd reduction(+ : part) reduction(max : m)
                for (int l = 0; l < LANES; ++l) {
                    const int i = b0 + l;
                    float f, act[H], slope[H], curv[H], dr, dq;
                    FORWARD(net, r, l, f, act, slope, curv);
                    part += loss_terms(f, r->scale * r->c1[l], r->c2[l], &dr, &dq);
                    m = data_max(m, f, r->c2[l]);
                    UNROLL
                    for (int j = 0; j < D; ++j) xs[j][i] = r->x[j][l];
                    UNROLL
                    for (int a = 0; a < H; ++a) {
                        const float t = net.v[a] * slope[a];
                        UNROLL
                        for (int j = 0; j < D; ++j) jac[a * D + j][i] = t * r->x[j][l];
                        jac[IB + a][i] = t;
                        jac[IV + a][i] = act[a];
                        rc[a][i] = dr * net.v[a] * curv[a];
                        rs[a][i] = dr * slope[a];
                    }
                    jac[IO][i] = 1.0f;
                    qj[i] = dq;
                    rr[i] = dr;
                }
            }
            total += part;
            for (int k = 0; k < P; ++k) {
                g[k] += dot(rr, jac[k], nb);
                float row[BLOCK];
#pragma omp simd
                for (int i = 0; i < nb; ++i) row[i] = qj[i] * jac[k][i];
                for (int k2 = k; k2 < P; ++k2) h[k][k2] += dot(row, jac[k2], nb);
            }
            if (exact) {
                for (int a = 0; a < H; ++a) {
                    /* block (w_a1..w_aD, c_a); u = (x_1..x_D, 1) */
                    int idx[D + 1];
                    const float *uu[D + 1];
                    for (int j = 0; j < D; ++j) {
                        idx[j] = a * D + j;
                        uu[j] = xs[j];
                    }
                    idx[D] = IB + a;
                    uu[D] = jac[IO]; /* the constant 1 */
                    for (int p = 0; p <= D; ++p) {
                        float row[BLOCK];
#pragma omp simd
                        for (int i = 0; i < nb; ++i) row[i] = rc[a][i] * uu[p][i];
                        for (int p2 = p; p2 <= D; ++p2) h[idx[p]][idx[p2]] += dot(row, uu[p2], nb);
                        h[idx[p]][IV + a] += dot(rs[a], uu[p], nb);
                    }
                }
            }
        }
        loss[u] = total;
        fmax[u] = m;
        for (int k = 0; k < P; ++k) {
            grad[u * P + k] = g[k];
            for (int k2 = k; k2 < P; ++k2)
                hess[(u * P + k) * P + k2] = hess[(u * P + k2) * P + k] = h[k][k2];
        }
    }
    free(buf);
}
