/* Unit tests of the lifted batch steps (blua/lifted_batch.h): a network of dense operators
 * through blua_lifted_batch_ops gives the bits of blua_lifted_batch (the same kernels), a
 * convolution network gives the same bits with 1 and 2 threads, and bad input (missing or
 * shared operators, wrong shapes, bad step sizes, too many shares) is refused with a message,
 * never an abort. */
#include <math.h>
#include <string.h>

#include "blua/blua.h"
#include "blua/lifted_batch.h"
#include "blua/op.h"
#include "check.h"

static blua_err err;

enum { ROWS = 9, PARTS = 2, MAXP = 8 };

static blua_tensor *randn(int64_t r, int64_t c) {
  blua_tensor *t = blua_tensor_new2d(r, c, &err);
  blua_tensor_normal(t, 0.0, 0.5);
  return t;
}

static int same_bits(const blua_tensor *a, const blua_tensor *b) {
  for (int64_t i = 0; i < blua_tensor_rows(a); i++)
    for (int64_t j = 0; j < blua_tensor_cols(a); j++)
      if (memcmp(blua_tensor_at(a, i, j), blua_tensor_at(b, i, j), sizeof(float))) return 0;
  return 1;
}

/* A batch of a two-layer network: ops (PARTS x 2, share 0's first), parameters, gradients
 * (and spare ones), inputs, one-hot targets, X, Z, G. */
typedef struct {
  blua_op *ops[PARTS * 2];
  blua_tensor *params[MAXP], *grads[MAXP], *spare[MAXP], *x, *y, *X[1], *Z[2], *G[2];
  int np;
  blua_act acts[2];
} net;

static void net_make(net *n, blua_op *first, blua_op *second) {
  memset(n, 0, sizeof *n);
  n->ops[0] = first;
  n->ops[1] = second;
  for (int p = 1; p < PARTS; p++)
    for (int l = 0; l < 2; l++) n->ops[p * 2 + l] = blua_op_clone(n->ops[l], &err);
  for (int l = 0; l < 2; l++)
    for (int i = 0; i < blua_op_nparams(n->ops[l]); i++) {
      int64_t r, c;
      blua_op_param_shape(n->ops[l], i, &r, &c);
      n->params[n->np] = randn(r, c);
      n->grads[n->np] = blua_tensor_new2d(r, c, &err);
      n->spare[n->np] = blua_tensor_new2d(r, c, &err);
      n->np++;
    }
  int64_t in = blua_shape_size(blua_op_in_shape(first)), hid = blua_shape_size(blua_op_out_shape(first)),
          out = blua_shape_size(blua_op_out_shape(second));
  n->x = randn(ROWS, in);
  n->y = blua_tensor_new2d(ROWS, out, &err);
  for (int64_t i = 0; i < ROWS; i++) *blua_tensor_at(n->y, i, i % out) = 1.0f;
  n->X[0] = blua_tensor_new2d(ROWS, hid, &err);
  n->Z[0] = blua_tensor_new2d(ROWS, hid, &err);
  n->G[0] = blua_tensor_new2d(ROWS, hid, &err);
  n->Z[1] = blua_tensor_new2d(ROWS, out, &err);
  n->G[1] = blua_tensor_new2d(ROWS, out, &err);
  CHECK(blua_act_init(&n->acts[0], "relu", NAN, NAN, &err) == BLUA_OK);
  CHECK(blua_act_init(&n->acts[1], "softmax", NAN, NAN, &err) == BLUA_OK);
}

static void net_free(net *n) {
  for (int i = 0; i < PARTS * 2; i++) blua_op_release(n->ops[i]);
  for (int i = 0; i < n->np; i++) {
    blua_tensor_release(n->params[i]);
    blua_tensor_release(n->grads[i]);
    blua_tensor_release(n->spare[i]);
  }
  blua_tensor *t[] = {n->x, n->y, n->X[0], n->Z[0], n->G[0], n->Z[1], n->G[1]};
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) blua_tensor_release(t[i]);
}

static const int steps[] = {1, 1};
static const double mu[] = {0.5, 0.25};

static blua_lifted_batch_opts opts(void) {
  return (blua_lifted_batch_opts){BLUA_PENALTY_BREGMAN, 0.0, 1.0, 1.0 / ROWS, 1, 2, steps, mu, 1, NULL, NULL};
}

static int run(net *n, int parts, const blua_lifted_batch_opts *o, double *loss, double *energy) {
  const blua_act *acts[2] = {&n->acts[0], &n->acts[1]};
  return blua_lifted_batch_ops(2, n->ops, n->params, acts, n->x, n->y, n->X, n->Z, n->G, parts, o, n->grads, n->spare,
                               loss, energy, &err);
}

static void expect_error(int status, const char *needle) {
  CHECK(status == BLUA_ERROR);
  CHECK(strstr(err.msg, needle) != NULL);
  if (status != BLUA_ERROR || !strstr(err.msg, needle)) fprintf(stderr, "  expected '%s': %s\n", needle, err.msg);
}

/* conv2d 1x6x6 -> 2x6x6, then a chain avgpool -> reshape -> dense 18 -> 3: every step of the
 * operator path (forward, the X-step through the chain's adjoint, wgrad). */
static void conv_net(net *n) {
  blua_conv2d_spec cs = {1, 6, 6, 2, 3, 3, 1, 1};
  blua_op *members[3] = {blua_op_avgpool2d((blua_shape){2, 6, 6}, 2, 2, 0, &err),
                         blua_op_reshape((blua_shape){2, 3, 3}, (blua_shape){18, 1, 1}, &err),
                         blua_op_dense(18, 3, &err)};
  blua_op *chain = blua_op_chain(members, 3, &err);
  for (int i = 0; i < 3; i++) blua_op_release(members[i]);
  CHECK(chain != NULL);
  net_make(n, blua_op_conv2d(&cs, &err), chain);
}

/* Dense operators run the dense kernels: the bits of blua_lifted_batch. */
static void test_dense_same_bits(void) {
  net n;
  net_make(&n, blua_op_dense(5, 4, &err), blua_op_dense(4, 3, &err));
  blua_lifted_batch_opts o = opts();
  double loss[PARTS], energy[PARTS];
  CHECK(run(&n, PARTS, &o, loss, energy) == BLUA_OK);
  blua_tensor *g0[4];
  for (int i = 0; i < 4; i++) g0[i] = blua_tensor_clone(n.grads[i], &err);
  blua_tensor *x1 = blua_tensor_clone(n.X[0], &err);
  blua_lifted_layer layers[2] = {{&n.acts[0], n.params[0], n.params[1]}, {&n.acts[1], n.params[2], n.params[3]}};
  double loss2[PARTS], energy2[PARTS];
  CHECK(blua_lifted_batch(2, layers, n.x, n.y, n.X, n.Z, n.G, PARTS, &o, n.grads, n.spare, loss2, energy2, &err) ==
        BLUA_OK);
  for (int i = 0; i < 4; i++) CHECK(same_bits(g0[i], n.grads[i]));
  CHECK(same_bits(x1, n.X[0]));
  for (int p = 0; p < PARTS; p++) CHECK(loss[p] == loss2[p] && energy[p] == energy2[p]);
  for (int i = 0; i < 4; i++) blua_tensor_release(g0[i]);
  blua_tensor_release(x1);
  net_free(&n);
}

/* With unsummed, share 2's gradients stay in spare: added afterwards they give the bits of the
 * summed call, and the flag is set only for two shares. */
static void test_unsummed(void) {
  net n;
  net_make(&n, blua_op_dense(5, 4, &err), blua_op_dense(4, 3, &err));
  blua_lifted_layer layers[2] = {{&n.acts[0], n.params[0], n.params[1]}, {&n.acts[1], n.params[2], n.params[3]}};
  blua_lifted_batch_opts o = opts();
  double loss[PARTS], energy[PARTS];
  CHECK(blua_lifted_batch(2, layers, n.x, n.y, n.X, n.Z, n.G, PARTS, &o, n.grads, n.spare, loss, energy, &err) ==
        BLUA_OK);
  blua_tensor *summed[4];
  for (int i = 0; i < 4; i++) summed[i] = blua_tensor_clone(n.grads[i], &err);
  int unsummed = -1;
  o.unsummed = &unsummed;
  CHECK(blua_lifted_batch(2, layers, n.x, n.y, n.X, n.Z, n.G, PARTS, &o, n.grads, n.spare, loss, energy, &err) ==
        BLUA_OK);
  CHECK(unsummed == 1);
  CHECK(blua_tensors_accumulate(4, n.grads, (const blua_tensor *const *)n.spare, &err) == BLUA_OK);
  for (int i = 0; i < 4; i++) CHECK(same_bits(summed[i], n.grads[i]));
  unsummed = -1; /* one share: nothing is left over */
  CHECK(blua_lifted_batch(2, layers, n.x, n.y, n.X, n.Z, n.G, 1, &o, n.grads, NULL, loss, energy, &err) == BLUA_OK);
  CHECK(unsummed == 0);
  for (int i = 0; i < 4; i++) blua_tensor_release(summed[i]);
  net_free(&n);
}

/* A convolution, shares side by side on two threads or one after another: the same bits. */
static void test_conv_threads(void) {
  net n;
  conv_net(&n);
  blua_lifted_batch_opts o = opts();
  blua_tensor *g[2][MAXP];
  double loss[2][PARTS], energy[2][PARTS];
  for (int t = 0; t < 2; t++) {
    blua_set_num_threads(t + 1);
    CHECK(run(&n, PARTS, &o, loss[t], energy[t]) == BLUA_OK);
    for (int i = 0; i < n.np; i++) g[t][i] = blua_tensor_clone(n.grads[i], &err);
  }
  for (int i = 0; i < n.np; i++) {
    CHECK(same_bits(g[0][i], g[1][i]));
    blua_tensor_release(g[0][i]);
    blua_tensor_release(g[1][i]);
  }
  for (int p = 0; p < PARTS; p++) CHECK(loss[0][p] == loss[1][p] && energy[0][p] == energy[1][p]);
  net_free(&n);
}

static void test_errors(void) {
  net n;
  conv_net(&n);
  blua_lifted_batch_opts o = opts();
  double loss[PARTS], energy[PARTS];
  expect_error(run(&n, 0, &o, loss, energy), "bad shares");
  expect_error(run(&n, BLUA_LIFTED_MAX_OP_SHARES + 1, &o, loss, energy), "bad shares");
  /* the same operator for two shares */
  blua_op *own = n.ops[2];
  n.ops[2] = n.ops[0];
  expect_error(run(&n, PARTS, &o, loss, energy), "aliasing");
  n.ops[2] = NULL;
  expect_error(run(&n, PARTS, &o, loss, energy), "missing operator: share 2, layer 1");
  n.ops[2] = own;
  /* a share's operator of other shapes */
  blua_conv2d_spec other = {1, 6, 6, 2, 3, 3, 1, 0};
  blua_op *wrong = blua_op_conv2d(&other, &err);
  n.ops[2] = wrong;
  expect_error(run(&n, PARTS, &o, loss, energy), "in share 1 and");
  n.ops[2] = own;
  blua_op_release(wrong);
  /* step sizes and steps */
  double bad_mu[] = {NAN, 0.5};
  o.mu = bad_mu;
  expect_error(run(&n, PARTS, &o, loss, energy), "mu must be positive and finite");
  bad_mu[0] = INFINITY;
  expect_error(run(&n, PARTS, &o, loss, energy), "mu must be positive and finite");
  o = opts();
  int bad_steps[] = {2, 1};
  o.steps = bad_steps;
  expect_error(run(&n, PARTS, &o, loss, energy), "not a hidden layer");
  o = opts();
  /* inputs, targets and scratch of the wrong shapes */
  blua_tensor *x = n.x, *y = n.y, *z = n.Z[0];
  n.x = randn(ROWS, 35);
  expect_error(run(&n, PARTS, &o, loss, energy), "takes 36 features, got 35");
  blua_tensor_release(n.x);
  n.x = x;
  n.y = blua_tensor_new2d(ROWS, 4, &err);
  expect_error(run(&n, PARTS, &o, loss, energy), "targets 9x4 for 3 outputs");
  blua_tensor_release(n.y);
  n.y = y;
  n.Z[0] = blua_tensor_new2d(ROWS - 1, 72, &err);
  expect_error(run(&n, PARTS, &o, loss, energy), "scratch 8x72 of layer 1");
  blua_tensor_release(n.Z[0]);
  n.Z[0] = z;
  /* energies asked for with nowhere to put them */
  expect_error(run(&n, PARTS, &o, loss, NULL), "no room for the energies");
  /* and after all that, a good call runs */
  CHECK(run(&n, PARTS, &o, loss, energy) == BLUA_OK);
  net_free(&n);
}

int main(void) {
  blua_manual_seed(7);
  test_dense_same_bits();
  test_unsummed();
  test_conv_threads();
  test_errors();
  return check_summary();
}
