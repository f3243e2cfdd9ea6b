/* The operator interface (blua/op.h): lifetime, workspaces, the shape checks of the public
 * calls, the power iteration, and the two operators without arithmetic of their own (reshape)
 * or with only their members' (chain). Dense, conv2d and avgpool2d live in op_dense.c,
 * op_conv.c and op_pool.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blua/lifted.h"
#include "op_impl.h"
#include "par.h"

/* ---- records and workspaces ---- */

blua_op *blua_op_alloc(const blua_op_vtable *vt, const char *kind, blua_shape in, blua_shape out, int nparams,
                       blua_err *err) {
  blua_op *op = calloc(1, sizeof *op);
  if (!op) {
    blua_fail(err, "out of memory: %s operator", kind);
    return NULL;
  }
  op->vt = vt;
  op->kind = kind;
  op->in = in;
  op->out = out;
  op->nparams = nparams;
  op->refcount = 1;
  if (nparams > 0) {
    op->pshape = calloc((size_t)nparams, sizeof *op->pshape);
    op->pbias = calloc((size_t)nparams, 1);
    op->raw = calloc((size_t)nparams, sizeof *op->raw);
    op->graw = calloc((size_t)nparams, sizeof *op->graw);
    if (!op->pshape || !op->pbias || !op->raw || !op->graw) {
      blua_op_release(op);
      blua_fail(err, "out of memory: %s operator", kind);
      return NULL;
    }
  }
  return op;
}

void blua_op_retain(blua_op *op) { op->refcount++; }

void blua_op_release(blua_op *op) {
  if (!op || --op->refcount > 0) return;
  if (op->vt && op->vt->destroy) op->vt->destroy(op);
  free(op->pshape);
  free(op->pbias);
  free(op->raw);
  free(op->graw);
  free(op->ws);
  free(op->wsd);
  free(op);
}

/* Fresh 64-byte aligned block of n elements of size `size` (contents not kept). */
static void *grow(void *old, size_t *cap, size_t n, size_t size, const char *kind, blua_err *err) {
  if (n <= *cap && old) return old;
  if (n > (size_t)BLUA_MAX_ELEMENTS) {
    blua_fail(err, "workspace too large: %s needs %zu elements", kind, n);
    return NULL;
  }
  size_t bytes = ((n ? n : 1) * size + 63) & ~(size_t)63;
  void *p = aligned_alloc(64, bytes);
  if (!p) {
    blua_fail(err, "out of memory: %s workspace of %zu bytes", kind, bytes);
    return NULL;
  }
  free(old);
  *cap = n;
  return p;
}

float *blua_op_ws(blua_op *op, size_t n, blua_err *err) {
  float *p = grow(op->ws, &op->ws_cap, n, sizeof(float), op->kind, err);
  if (p) op->ws = p;
  return p;
}

double *blua_op_wsd(blua_op *op, size_t n, blua_err *err) {
  double *p = grow(op->wsd, &op->wsd_cap, n, sizeof(double), op->kind, err);
  if (p) op->wsd = p;
  return p;
}

int blua_op_mul(int64_t a, int64_t b, int64_t *r) {
  if (a < 0 || b < 0 || __builtin_mul_overflow(a, b, r) || *r > BLUA_MAX_ELEMENTS) return BLUA_ERROR;
  return BLUA_OK;
}

int blua_op_colsum(blua_op *op, int64_t n, int64_t cols, const float *x, int64_t ldx, float *out, float alpha,
                   float beta, blua_err *err) {
  /* Row by row into a double per column: the same additions in the same order as a column
   * at a time, but reading memory in order. */
  double *acc = blua_op_wsd(op, (size_t)cols, err);
  if (!acc) return BLUA_ERROR;
  for (int64_t j = 0; j < cols; j++) acc[j] = 0.0;
  for (int64_t i = 0; i < n; i++) {
    const float *p = x + i * ldx;
    for (int64_t j = 0; j < cols; j++) acc[j] += p[j];
  }
  for (int64_t j = 0; j < cols; j++) out[j] = (float)((beta == 0.0f ? 0.0f : beta * out[j]) + alpha * acc[j]);
  return BLUA_OK;
}

/* ---- description ---- */

const char *blua_op_kind(const blua_op *op) { return op->kind; }
blua_shape blua_op_in_shape(const blua_op *op) { return op->in; }
blua_shape blua_op_out_shape(const blua_op *op) { return op->out; }
int blua_op_nparams(const blua_op *op) { return op->nparams; }

void blua_op_param_shape(const blua_op *op, int i, int64_t *rows, int64_t *cols) {
  int ok = i >= 0 && i < op->nparams;
  *rows = ok ? op->pshape[i][0] : 0;
  *cols = ok ? op->pshape[i][1] : 0;
}

int blua_op_param_is_bias(const blua_op *op, int i) { return i >= 0 && i < op->nparams && op->pbias[i]; }
int blua_op_nmembers(const blua_op *op) { return op->members ? op->nmembers : 1; }

const blua_op *blua_op_member(const blua_op *op, int i) {
  if (!op->members) return i == 0 ? op : NULL;
  return i >= 0 && i < op->nmembers ? op->members[i] : NULL;
}

static const char *shape_str(blua_shape s, char *buf, size_t len) {
  if (s.h == 1 && s.w == 1)
    snprintf(buf, len, "%lld", (long long)s.c);
  else
    snprintf(buf, len, "%lldx%lldx%lld", (long long)s.c, (long long)s.h, (long long)s.w);
  return buf;
}

const char *blua_op_describe(const blua_op *op, char *buf, size_t len) {
  char si[80], so[80];
  shape_str(op->in, si, sizeof si);
  shape_str(op->out, so, sizeof so);
  if (!strcmp(op->kind, "conv2d"))
    snprintf(buf, len, "conv2d %s -> %s (%lldx%lld, stride %lld, padding %lld)", si, so, (long long)op->kh,
             (long long)op->kw, (long long)op->stride, (long long)op->padding);
  else if (!strcmp(op->kind, "avgpool2d"))
    snprintf(buf, len, "avgpool2d %s -> %s (%lldx%lld, stride %lld)", si, so, (long long)op->kh, (long long)op->kw,
             (long long)op->stride);
  else if (op->members)
    snprintf(buf, len, "chain %s -> %s (%d operators)", si, so, op->nmembers);
  else
    snprintf(buf, len, "%s %s -> %s", op->kind, si, so);
  return buf;
}

/* ---- checks of the public calls ---- */

/* 1 when every row of t (the dimensions after the first) is one contiguous run. */
static int rows_contiguous(const blua_tensor *t) {
  int64_t expect = 1;
  for (int d = t->dim - 1; d >= 1; d--) {
    if (t->size[d] > 1 && t->stride[d] != expect) return 0;
    expect *= t->size[d];
  }
  return 1;
}

/* A batch with `cols` features per row (2-D, or N x C x H x W and the like: rows are the first
 * dimension) whose rows are contiguous: its row stride into *ld. */
static int check_batch(const blua_op *op, const char *what, const char *role, const blua_tensor *t, int64_t rows,
                       int64_t cols, int64_t *ld, blua_err *err) {
  char st[96], so[160];
  if (t->dim < 2 || blua_tensor_cols(t) != cols || (rows >= 0 && blua_tensor_rows(t) != rows)) {
    if (rows >= 0)
      return blua_fail(err, "size mismatch: %s %s expects %s of %lldx%lld, got %s", blua_op_describe(op, so, sizeof so),
                       what, role, (long long)rows, (long long)cols, blua_tensor_shape(t, st, sizeof st));
    return blua_fail(err, "size mismatch: %s %s expects %s with %lld columns, got %s",
                     blua_op_describe(op, so, sizeof so), what, role, (long long)cols,
                     blua_tensor_shape(t, st, sizeof st));
  }
  if (blua_tensor_rows(t) > INT32_MAX / 2)
    return blua_fail(err, "batch too large: %s %s got %s %s", blua_op_describe(op, so, sizeof so), what, role,
                     blua_tensor_shape(t, st, sizeof st));
  if (!rows_contiguous(t))
    return blua_fail(err, "layout: %s %s needs %s with contiguous rows, got a transposed or strided %s",
                     blua_op_describe(op, so, sizeof so), what, role, blua_tensor_shape(t, st, sizeof st));
  *ld = blua_tensor_rows(t) > 1 ? t->stride[0] : cols;
  if (*ld < cols)
    return blua_fail(err, "layout: %s %s needs %s with non-overlapping rows", blua_op_describe(op, so, sizeof so),
                     what, role);
  return BLUA_OK;
}

static int check_disjoint(const blua_op *op, const char *what, const blua_tensor *a, const blua_tensor *b,
                          blua_err *err) {
  char so[160];
  if (a->storage == b->storage)
    return blua_fail(err, "aliasing: %s %s needs its result in a tensor that shares no storage with its inputs",
                     blua_op_describe(op, so, sizeof so), what);
  return BLUA_OK;
}

/* Parameters (or gradients) against the operator's shapes into op->raw; NULL entries stay NULL
 * where allowed (any bias, and any entry when allow_null). */
static int check_params(blua_op *op, const char *what, const char *role, blua_tensor *const *params, int allow_null,
                        blua_err *err) {
  char st[96], so[160];
  for (int i = 0; i < op->nparams; i++) {
    blua_tensor *p = params ? params[i] : NULL;
    op->raw[i] = NULL;
    if (!p) {
      if (allow_null || op->pbias[i]) continue;
      return blua_fail(err, "missing parameter: %s %s needs %s %d (%lldx%lld)", blua_op_describe(op, so, sizeof so),
                       what, role, i + 1, (long long)op->pshape[i][0], (long long)op->pshape[i][1]);
    }
    int64_t r = op->pshape[i][0], c = op->pshape[i][1];
    /* A bias may be 1 x C or a C-element 1-D tensor. */
    int ok = op->pbias[i] ? blua_tensor_nelement(p) == c && (p->dim == 1 || blua_tensor_rows(p) == 1)
                          : p->dim == 2 && blua_tensor_rows(p) == r && blua_tensor_cols(p) == c;
    if (!ok)
      return blua_fail(err, "size mismatch: %s %s expects %s %d of %lldx%lld, got %s",
                       blua_op_describe(op, so, sizeof so), what, role, i + 1, (long long)r, (long long)c,
                       blua_tensor_shape(p, st, sizeof st));
    int contiguous = op->pbias[i] ? (p->dim == 1 ? p->stride[0] == 1 : p->stride[1] == 1) || c <= 1
                                  : blua_tensor_is_contiguous(p);
    if (!contiguous)
      return blua_fail(err, "layout: %s %s needs a contiguous %s %d, got a strided %s",
                       blua_op_describe(op, so, sizeof so), what, role, i + 1, blua_tensor_shape(p, st, sizeof st));
    op->raw[i] = blua_tensor_data(p);
  }
  return BLUA_OK;
}

int blua_op_forward(blua_op *op, blua_tensor *const *params, const blua_tensor *x, blua_tensor *y, blua_err *err) {
  int64_t ldx, ldy;
  if (check_batch(op, "forward", "input", x, -1, blua_shape_size(op->in), &ldx, err) ||
      check_batch(op, "forward", "output", y, blua_tensor_rows(x), blua_shape_size(op->out), &ldy, err) ||
      check_disjoint(op, "forward", x, y, err) || check_params(op, "forward", "parameter", params, 0, err))
    return BLUA_ERROR;
  for (int i = 0; i < op->nparams; i++)
    if (params[i] && check_disjoint(op, "forward", params[i], y, err)) return BLUA_ERROR;
  if (blua_tensor_rows(x) == 0) return BLUA_OK;
  return op->vt->forward(op, op->raw, blua_tensor_rows(x), blua_tensor_data(x), ldx, blua_tensor_data(y), ldy, err);
}

int blua_op_adjoint(blua_op *op, blua_tensor *const *params, const blua_tensor *r, blua_tensor *g, float alpha,
                    float beta, blua_err *err) {
  int64_t ldr, ldg;
  if (check_batch(op, "adjoint", "residual", r, -1, blua_shape_size(op->out), &ldr, err) ||
      check_batch(op, "adjoint", "output", g, blua_tensor_rows(r), blua_shape_size(op->in), &ldg, err) ||
      check_disjoint(op, "adjoint", r, g, err) || check_params(op, "adjoint", "parameter", params, 0, err))
    return BLUA_ERROR;
  for (int i = 0; i < op->nparams; i++)
    if (params[i] && check_disjoint(op, "adjoint", params[i], g, err)) return BLUA_ERROR;
  if (blua_tensor_rows(r) == 0) return BLUA_OK;
  return op->vt->adjoint(op, op->raw, blua_tensor_rows(r), blua_tensor_data(r), ldr, blua_tensor_data(g), ldg, alpha,
                         beta, err);
}

int blua_op_wgrad(blua_op *op, blua_tensor *const *params, const blua_tensor *x, const blua_tensor *r,
                  blua_tensor *const *grads, float alpha, float beta, blua_err *err) {
  int64_t ldx, ldr;
  if (check_batch(op, "wgrad", "input", x, -1, blua_shape_size(op->in), &ldx, err) ||
      check_batch(op, "wgrad", "residual", r, blua_tensor_rows(x), blua_shape_size(op->out), &ldr, err) ||
      check_params(op, "wgrad", "gradient", grads, 1, err))
    return BLUA_ERROR;
  if (op->nparams == 0) return BLUA_OK;
  /* The gradients' pointers move out of op->raw before the parameters' go in. */
  float **graw = op->graw;
  for (int i = 0; i < op->nparams; i++) {
    graw[i] = (float *)op->raw[i];
    if (graw[i] && (grads[i]->storage == x->storage || grads[i]->storage == r->storage ||
                    (params && params[i] && grads[i]->storage == params[i]->storage))) {
      char so[160];
      return blua_fail(err, "aliasing: %s wgrad needs gradient %d in a tensor that shares no storage with its inputs",
                       blua_op_describe(op, so, sizeof so), i + 1);
    }
  }
  if (check_params(op, "wgrad", "parameter", params, 0, err)) return BLUA_ERROR;
  if (blua_tensor_rows(x) == 0) {
    /* No samples: the gradient is zero. */
    for (int i = 0; i < op->nparams; i++)
      if (graw[i]) {
        int64_t cnt = op->pshape[i][0] * op->pshape[i][1];
        for (int64_t j = 0; j < cnt; j++) graw[i][j] = beta == 0.0f ? 0.0f : beta * graw[i][j];
      }
    return BLUA_OK;
  }
  return op->vt->wgrad(op, op->raw, blua_tensor_rows(x), blua_tensor_data(x), ldx, blua_tensor_data(r), ldr, graw,
                       alpha, beta, err);
}

/* ---- operator norm ---- */

static double norm_of(const float *x, int64_t n) {
  double acc = 0.0;
  for (int64_t i = 0; i < n; i++) acc += (double)x[i] * x[i];
  return sqrt(acc);
}

/* Entry j of a vector view (1-D, 1 x n or n x 1), stepping by its own stride. */
static float *start_at(blua_tensor *start, int64_t j) {
  int64_t ss = start->dim == 1 || start->size[0] != 1 ? start->stride[0] : start->stride[1];
  return blua_tensor_data(start) + j * ss;
}

int blua_op_norm(blua_op *op, blua_tensor *const *params, int iters, blua_tensor *start, double *norm,
                 blua_err *err) {
  char so[160], st[96];
  int64_t m = blua_shape_size(op->out), n = blua_shape_size(op->in);
  if (start && (blua_tensor_nelement(start) != m || start->dim > 2 ||
                (start->dim == 2 && start->size[0] != 1 && start->size[1] != 1)))
    return blua_fail(err, "size mismatch: %s norm expects a start vector of %lld entries, got %s",
                     blua_op_describe(op, so, sizeof so), (long long)m, blua_tensor_shape(start, st, sizeof st));
  if (check_params(op, "norm", "parameter", params, 0, err)) return BLUA_ERROR;
  if (!strcmp(op->kind, "dense")) {
    /* The MLP path's estimate, bit for bit (W is n_in x n_out, the start lives in n_out). */
    *norm = blua_spectral_norm(params[0], iters, start);
    return BLUA_OK;
  }
  for (int i = 0; i < op->nparams; i++)
    if (op->pbias[i]) op->raw[i] = NULL; /* the linear part only */
  float *v = malloc((size_t)(m + n) * sizeof *v);
  if (!v) return blua_fail(err, "out of memory: %s norm", op->kind);
  float *u = v + m;
  int warm = 0;
  for (int64_t j = 0; j < m; j++) {
    v[j] = start ? *start_at(start, j) : 0.0f;
    warm |= v[j] != 0.0f;
  }
  if (!warm)
    for (int64_t j = 0; j < m; j++) v[j] = 1.0f + 0.01f * (float)(j % 7);
  /* The kernels may reuse op->raw through a chain's members; keep our own copy of it. */
  const float **raw = NULL;
  if (op->nparams) {
    raw = malloc((size_t)op->nparams * sizeof *raw);
    if (!raw) {
      free(v);
      return blua_fail(err, "out of memory: %s norm", op->kind);
    }
    memcpy(raw, op->raw, (size_t)op->nparams * sizeof *raw);
  }
  double sigma = 0.0;
  int status = BLUA_OK;
  for (int it = 0; it < (iters > 0 ? iters : 1) && status == BLUA_OK; it++) {
    double nv = norm_of(v, m);
    if (nv == 0.0 || !isfinite(nv)) {
      sigma = isfinite(nv) ? 0.0 : NAN;
      break;
    }
    /* u = A* v / ‖v‖, σ = ‖u‖, v = A u: one step of power iteration on A A*. */
    status = op->vt->adjoint(op, raw, 1, v, m, u, n, (float)(1.0 / nv), 0.0f, err);
    if (status == BLUA_OK) {
      sigma = norm_of(u, n);
      status = op->vt->forward(op, raw, 1, u, n, v, m, err);
    }
  }
  if (status == BLUA_OK && start && isfinite(sigma)) {
    double nv = norm_of(v, m);
    for (int64_t j = 0; j < m; j++) *start_at(start, j) = nv > 0 ? (float)(v[j] / nv) : 0.0f;
  }
  free(raw);
  free(v);
  *norm = sigma;
  return status;
}

/* ---- reshape: the same floats read with another (C, H, W) ---- */

static int reshape_forward(blua_op *op, const float *const *params, int64_t n, const float *x, int64_t ldx, float *y,
                           int64_t ldy, blua_err *err) {
  (void)params, (void)err;
  int64_t len = blua_shape_size(op->in);
  for (int64_t i = 0; i < n; i++) memcpy(y + i * ldy, x + i * ldx, (size_t)len * sizeof *y);
  return BLUA_OK;
}

static int reshape_adjoint(blua_op *op, const float *const *params, int64_t n, const float *r, int64_t ldr, float *g,
                           int64_t ldg, float alpha, float beta, blua_err *err) {
  (void)params, (void)err;
  int64_t len = blua_shape_size(op->in);
  BLUA_PAR(n * len > BLUA_OP_PAR_MIN, "omp parallel for",
  for (int64_t i = 0; i < n; i++) {
    const float *pr = r + i * ldr;
    float *pg = g + i * ldg;
    for (int64_t j = 0; j < len; j++) pg[j] = beta == 0.0f ? alpha * pr[j] : alpha * pr[j] + beta * pg[j];
  });
  return BLUA_OK;
}

static const blua_op_vtable reshape_vt = {reshape_forward, reshape_adjoint, NULL, NULL};

static int check_shape(const char *kind, const char *role, blua_shape s, blua_err *err) {
  int64_t size;
  if (s.c < 1 || s.h < 1 || s.w < 1 || blua_op_mul(s.c, s.h, &size) || blua_op_mul(size, s.w, &size) ||
      size > INT32_MAX)
    return blua_fail(err, "bad shape: %s %s %lldx%lldx%lld (each size between 1 and 2^31 - 1 in total)", kind, role,
                     (long long)s.c, (long long)s.h, (long long)s.w);
  return BLUA_OK;
}

blua_op *blua_op_reshape(blua_shape in, blua_shape out, blua_err *err) {
  if (check_shape("reshape", "input", in, err) || check_shape("reshape", "output", out, err)) return NULL;
  if (blua_shape_size(in) != blua_shape_size(out)) {
    char si[80], so[80];
    blua_fail(err, "size mismatch: reshape %s -> %s changes the number of features (%lld -> %lld)",
              shape_str(in, si, sizeof si), shape_str(out, so, sizeof so), (long long)blua_shape_size(in),
              (long long)blua_shape_size(out));
    return NULL;
  }
  blua_op *op = blua_op_alloc(&reshape_vt, "reshape", in, out, 0, err);
  if (op) op->identity = 1;
  return op;
}

/* ---- chain: members applied in turn, no activation between them ---- */

/* Workspace of a chain for n samples: two intermediate blocks per inner boundary (the members'
 * inputs going forward, the adjoint going back); identity members share their neighbour's. */
static float *chain_buffers(blua_op *op, int64_t n, float **fwd, float **bwd, blua_err *err) {
  int64_t total = 0;
  for (int i = 0; i + 1 < op->nmembers; i++) {
    int64_t sz;
    if (blua_op_mul(n, blua_shape_size(op->members[i]->out), &sz) || __builtin_add_overflow(total, 2 * sz, &total) ||
        total > BLUA_MAX_ELEMENTS) {
      blua_fail(err, "workspace too large: chain of %d operators for %lld samples", op->nmembers, (long long)n);
      return NULL;
    }
  }
  float *ws = blua_op_ws(op, (size_t)total, err);
  if (!ws) return NULL;
  float *p = ws;
  for (int i = 0; i + 1 < op->nmembers; i++) {
    int64_t sz = n * blua_shape_size(op->members[i]->out);
    fwd[i] = p;
    bwd[i] = p + sz;
    p += 2 * sz;
  }
  return ws;
}

/* The forward through members [0, upto) into fwd; returns the pointer and row stride of the
 * output of member upto - 1 (x itself when upto is 0). Identity members pass their input on. */
static int chain_forward_to(blua_op *op, const float *const *params, int64_t n, const float *x, int64_t ldx,
                            int upto, float **fwd, const float **out, int64_t *ldout, blua_err *err) {
  const float *cur = x;
  int64_t ld = ldx;
  for (int i = 0; i < upto; i++) {
    blua_op *m = op->members[i];
    if (m->identity) continue;
    int64_t ldo = blua_shape_size(m->out);
    if (m->vt->forward(m, params + op->poffset[i], n, cur, ld, fwd[i], ldo, err)) return BLUA_ERROR;
    cur = fwd[i];
    ld = ldo;
  }
  *out = cur;
  *ldout = ld;
  return BLUA_OK;
}

static int chain_forward_rows(blua_op *op, const float *const *params, int64_t n, const float *x, int64_t ldx, float *y,
                         int64_t ldy, blua_err *err) {
  int k = op->nmembers;
  float *fwd[k], *bwd[k];
  if (!chain_buffers(op, n, fwd, bwd, err)) return BLUA_ERROR;
  /* The last non-identity member writes y; if every member is an identity, copy. */
  int last = k - 1;
  while (last >= 0 && op->members[last]->identity) last--;
  if (last < 0) return reshape_forward(op, NULL, n, x, ldx, y, ldy, err);
  const float *cur;
  int64_t ld;
  if (chain_forward_to(op, params, n, x, ldx, last, fwd, &cur, &ld, err)) return BLUA_ERROR;
  blua_op *m = op->members[last];
  return m->vt->forward(m, params + op->poffset[last], n, cur, ld, y, ldy, err);
}

static int chain_adjoint_rows(blua_op *op, const float *const *params, int64_t n, const float *r, int64_t ldr, float *g,
                         int64_t ldg, float alpha, float beta, blua_err *err) {
  int k = op->nmembers;
  float *fwd[k], *bwd[k];
  if (!chain_buffers(op, n, fwd, bwd, err)) return BLUA_ERROR;
  int first = 0;
  while (first < k && op->members[first]->identity) first++;
  if (first == k) return reshape_adjoint(op, NULL, n, r, ldr, g, ldg, alpha, beta, err);
  const float *cur = r;
  int64_t ld = ldr;
  for (int i = k - 1; i > first; i--) {
    blua_op *m = op->members[i];
    if (m->identity) continue;
    int64_t ldo = blua_shape_size(m->in);
    if (m->vt->adjoint(m, params + op->poffset[i], n, cur, ld, bwd[i - 1], ldo, 1.0f, 0.0f, err)) return BLUA_ERROR;
    cur = bwd[i - 1];
    ld = ldo;
  }
  blua_op *m = op->members[first];
  return m->vt->adjoint(m, params + op->poffset[first], n, cur, ld, g, ldg, alpha, beta, err);
}

static int chain_wgrad_rows(blua_op *op, const float *const *params, int64_t n, const float *x, int64_t ldx, const float *r,
                       int64_t ldr, float *const *grads, float alpha, float beta, blua_err *err) {
  int k = op->nmembers;
  float *fwd[k], *bwd[k];
  if (!chain_buffers(op, n, fwd, bwd, err)) return BLUA_ERROR;
  int first = -1, last = -1; /* the parameterised members with a gradient asked for */
  for (int i = 0; i < k; i++) {
    int want = 0;
    for (int j = 0; j < op->members[i]->nparams; j++) want |= grads[op->poffset[i] + j] != NULL;
    if (want) {
      if (first < 0) first = i;
      last = i;
    }
  }
  if (first < 0) return BLUA_OK;
  /* Inputs of every member up to the last one with a gradient; fwd[i] holds member i's output. */
  const float *in_ptr[k];
  int64_t in_ld[k];
  const float *cur = x;
  int64_t ld = ldx;
  for (int i = 0; i <= last; i++) {
    in_ptr[i] = cur;
    in_ld[i] = ld;
    if (i == last) break;
    blua_op *m = op->members[i];
    if (!m->identity) {
      int64_t ldo = blua_shape_size(m->out);
      if (m->vt->forward(m, params + op->poffset[i], n, cur, ld, fwd[i], ldo, err)) return BLUA_ERROR;
      cur = fwd[i];
      ld = ldo;
    }
  }
  /* Back from the end: each member's gradient from its input and the residual at its output. */
  cur = r;
  ld = ldr;
  for (int i = k - 1; i >= first; i--) {
    blua_op *m = op->members[i];
    if (i <= last && m->nparams > 0 &&
        m->vt->wgrad(m, params + op->poffset[i], n, in_ptr[i], in_ld[i], cur, ld, grads + op->poffset[i], alpha, beta,
                     err))
      return BLUA_ERROR;
    if (i == first || m->identity) continue;
    int64_t ldo = blua_shape_size(m->in);
    if (m->vt->adjoint(m, params + op->poffset[i], n, cur, ld, bwd[i - 1], ldo, 1.0f, 0.0f, err)) return BLUA_ERROR;
    cur = bwd[i - 1];
    ld = ldo;
  }
  return BLUA_OK;
}

/* Rows per pass through a chain: its intermediates (two blocks per inner boundary) stay within
 * about 16 MB however large the batch (an evaluation may pass 10000 samples at once); training
 * batches fit in one pass. */
#define CHAIN_CHUNK_FLOATS ((int64_t)1 << 22)

static int64_t chain_rows(const blua_op *op, int64_t n) {
  int64_t per = 0;
  for (int i = 0; i + 1 < op->nmembers; i++) per += 2 * blua_shape_size(op->members[i]->out);
  int64_t rows = per > 0 ? CHAIN_CHUNK_FLOATS / per : n;
  if (rows < 1) rows = 1;
  return rows < n ? rows : n;
}

static int chain_forward(blua_op *op, const float *const *params, int64_t n, const float *x, int64_t ldx, float *y,
                         int64_t ldy, blua_err *err) {
  int64_t rows = chain_rows(op, n);
  for (int64_t r0 = 0; r0 < n; r0 += rows) {
    int64_t m = n - r0 < rows ? n - r0 : rows;
    if (chain_forward_rows(op, params, m, x + r0 * ldx, ldx, y + r0 * ldy, ldy, err)) return BLUA_ERROR;
  }
  return BLUA_OK;
}

static int chain_adjoint(blua_op *op, const float *const *params, int64_t n, const float *r, int64_t ldr, float *g,
                         int64_t ldg, float alpha, float beta, blua_err *err) {
  int64_t rows = chain_rows(op, n);
  for (int64_t r0 = 0; r0 < n; r0 += rows) {
    int64_t m = n - r0 < rows ? n - r0 : rows;
    if (chain_adjoint_rows(op, params, m, r + r0 * ldr, ldr, g + r0 * ldg, ldg, alpha, beta, err)) return BLUA_ERROR;
  }
  return BLUA_OK;
}

static int chain_wgrad(blua_op *op, const float *const *params, int64_t n, const float *x, int64_t ldx, const float *r,
                       int64_t ldr, float *const *grads, float alpha, float beta, blua_err *err) {
  int64_t rows = chain_rows(op, n);
  for (int64_t r0 = 0; r0 < n; r0 += rows) {
    int64_t m = n - r0 < rows ? n - r0 : rows;
    /* Later passes add to what the first wrote. */
    if (chain_wgrad_rows(op, params, m, x + r0 * ldx, ldx, r + r0 * ldr, ldr, grads, alpha, r0 == 0 ? beta : 1.0f,
                         err))
      return BLUA_ERROR;
  }
  return BLUA_OK;
}

static void chain_destroy(blua_op *op) {
  for (int i = 0; i < op->nmembers; i++) blua_op_release(op->members[i]);
  free(op->members);
  free(op->poffset);
}

static const blua_op_vtable chain_vt = {chain_forward, chain_adjoint, chain_wgrad, chain_destroy};

blua_op *blua_op_chain(blua_op *const *members, int n, blua_err *err) {
  if (n < 1 || n > 64) {
    blua_fail(err, "bad chain: between 1 and 64 operators, got %d", n);
    return NULL;
  }
  int nparams = 0;
  for (int i = 0; i < n; i++) {
    if (!members[i]) {
      blua_fail(err, "bad chain: operator %d is missing", i + 1);
      return NULL;
    }
    if (i > 0) {
      blua_shape a = members[i - 1]->out, b = members[i]->in;
      if (a.c != b.c || a.h != b.h || a.w != b.w) {
        char sa[160], sb[160];
        blua_fail(err, "shape mismatch: chain operator %d (%s) does not take the output of operator %d (%s)", i + 1,
                  blua_op_describe(members[i], sb, sizeof sb), i, blua_op_describe(members[i - 1], sa, sizeof sa));
        return NULL;
      }
    }
    nparams += members[i]->nparams;
    if (nparams > BLUA_OP_MAX_PARAMS) {
      blua_fail(err, "bad chain: more than %d parameters", BLUA_OP_MAX_PARAMS);
      return NULL;
    }
  }
  blua_op *op = blua_op_alloc(&chain_vt, "chain", members[0]->in, members[n - 1]->out, nparams, err);
  if (!op) return NULL;
  op->members = calloc((size_t)n, sizeof *op->members);
  op->poffset = calloc((size_t)n, sizeof *op->poffset);
  if (!op->members || !op->poffset) {
    blua_op_release(op);
    blua_fail(err, "out of memory: chain of %d operators", n);
    return NULL;
  }
  op->nmembers = n;
  int off = 0;
  for (int i = 0; i < n; i++) {
    op->members[i] = members[i];
    blua_op_retain(members[i]);
    op->poffset[i] = off;
    for (int j = 0; j < members[i]->nparams; j++) {
      op->pshape[off + j][0] = members[i]->pshape[j][0];
      op->pshape[off + j][1] = members[i]->pshape[j][1];
      op->pbias[off + j] = members[i]->pbias[j];
    }
    off += members[i]->nparams;
  }
  op->identity = 1;
  for (int i = 0; i < n; i++) op->identity &= members[i]->identity;
  return op;
}

blua_op *blua_op_clone(const blua_op *op, blua_err *err) {
  if (op->members) {
    blua_op *members[64] = {0};
    int n = op->nmembers, made = 0;
    blua_op *chain = NULL;
    for (; made < n; made++)
      if (!(members[made] = blua_op_clone(op->members[made], err))) break;
    if (made == n) chain = blua_op_chain(members, n, err);
    for (int i = 0; i < made; i++) blua_op_release(members[i]); /* the chain holds its own */
    return chain;
  }
  blua_op *c = blua_op_alloc(op->vt, op->kind, op->in, op->out, op->nparams, err);
  if (!c) return NULL;
  for (int i = 0; i < op->nparams; i++) {
    c->pshape[i][0] = op->pshape[i][0];
    c->pshape[i][1] = op->pshape[i][1];
    c->pbias[i] = op->pbias[i];
  }
  c->identity = op->identity;
  c->kh = op->kh;
  c->kw = op->kw;
  c->stride = op->stride;
  c->padding = op->padding;
  return c;
}

/* Shared by the constructors of the other kinds. */
int blua_op_check_shape(const char *kind, const char *role, blua_shape s, blua_err *err) {
  return check_shape(kind, role, s, err);
}
