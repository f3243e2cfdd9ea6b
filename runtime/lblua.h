/* Internal header of the Lua binding: helpers shared by the runtime/l*.c files. */
#ifndef LBLUA_H
#define LBLUA_H

#include <lua.h>
#include <lauxlib.h>

#include "blua/blua.h"
#include "blua/lifted_batch.h"
#include "blua/prox.h"

#define LBLUA_TENSOR_MT "blua.Tensor"

/* The tensor at idx, or a Lua error "bad argument #idx to 'fname' (blua.Tensor expected...)".
 * lblua_checktensor also refuses a tensor whose entries overlap (an expanded view, see
 * blua_tensor_overlapping): it is the fetch for tensors a function may write, and the default.
 * lblua_readtensor takes any tensor: only for arguments the function never writes, whose core
 * reads are right for steps of 0. lblua_checkwritable raises the refusal for t, naming fname. */
blua_tensor *lblua_checktensor(lua_State *L, int idx);
blua_tensor *lblua_readtensor(lua_State *L, int idx);
void lblua_checkwritable(lua_State *L, const blua_tensor *t, const char *fname);
/* A tensor an in-place method reads while it writes dst: any tensor, except an expanded view
 * on dst's storage (its entries would change under the loop, in no fixed order). */
blua_tensor *lblua_readsource(lua_State *L, int idx, const blua_tensor *dst, const char *fname);
/* The tensor at idx, or NULL when the value there is not a live tensor. */
blua_tensor *lblua_totensor(lua_State *L, int idx);
/* Entry i (1-based) of the table at idx, which must be a live tensor ("bad argument #idx to
 * 'fname' (what[i] must be a live tensor)" otherwise) and not an expanded view (lists are the
 * training and optimiser state, written in place); the table keeps it alive. */
blua_tensor *lblua_listtensor(lua_State *L, int idx, int i, const char *what, const char *fname);
/* Pushes t as a new blua.Tensor userdata; the userdata takes over the caller's reference, also
 * when making it fails (t is released, no leak). Making it may run Lua code (a GC step runs
 * finalizers): if a tensor argument on the stack was open before and is closed after, it
 * raises an error, so tensors fetched from the stack before the push stay valid after it.
 * Anything else that can run Lua code (callbacks, metamethods, lua_newuserdatauv, tables,
 * strings) must be followed by fetching the tensors again. lblua_pushresult does the same
 * for a core result; a NULL t raises the error in err as lblua_error does, naming fname. */
void lblua_pushtensor(lua_State *L, blua_tensor *t);
blua_tensor *lblua_pushresult(lua_State *L, blua_tensor *t, const char *fname, const blua_err *err);
/* Checked integers from Lua (exact-valued floats accepted; NaN, fractions, out-of-range values
 * raise "bad <what> in 'fname': ..."). lblua_checkindex: 1-based index in 1..size, returned
 * 0-based. lblua_checkdim: 1-based dimension of t, returned 0-based. lblua_checksize: a size
 * in 0..BLUA_MAX_ELEMENTS. */
lua_Integer lblua_checkint(lua_State *L, int arg, const char *what, const char *fname);
int64_t lblua_checkindex(lua_State *L, int arg, int64_t size, const char *fname);
int lblua_checkdim(lua_State *L, int arg, const blua_tensor *t, const char *fname);
int64_t lblua_checksize(lua_State *L, int arg, const char *fname);
/* Raises a Lua error from a core message. Core messages read "problem: details"; the error
 * becomes "problem in 'fname': details". Never returns. */
int lblua_error(lua_State *L, const char *fname, const blua_err *err);
/* Columns of the terminal on stdout, else $COLUMNS, else 80 (progress bars, tensor printing). */
int lblua_terminal_width(void);
/* Checks a status returned by the core and raises on failure. */
#define lblua_check(L, status, fname, err) \
  do { if ((status) != BLUA_OK) lblua_error((L), (fname), (err)); } while (0)

/* 0-based positions from the 1-based indices at arg (a list of integers or a tensor of
 * integral values), in a new userdata pushed on the stack; *count gets their number. Reading
 * them may run a finalizer: fetch the call's tensors again afterwards. */
int64_t *lblua_readindices(lua_State *L, int arg, int64_t *count, const char *fname);

/* A group of tensor methods kept in its own file (runtime/ltensor_*.c): each takes at most
 * `most` arguments after self, listed in `usage` for the error ("t:name: (usage) expected, got
 * 1 more argument"). lblua_tensor_extend adds the group to the tensor method table on top of
 * the stack, each method wrapped in its argument-count check. */
typedef struct {
  const char *name;
  lua_CFunction f;
  int most;
  const char *usage;
} lblua_method;
void lblua_tensor_extend(lua_State *L, const lblua_method *methods);
/* The same for functions of the blua table on top of the stack ("blua.name: ..."); `most`
 * counts every argument. */
void lblua_module_extend(lua_State *L, const lblua_method *funcs);

/* The method and function groups of the tensor files, each list ended by {NULL}. */
extern const lblua_method lblua_index_methods[], lblua_index_funcs[];   /* ltensor_index.c */
extern const lblua_method lblua_shape_methods[], lblua_shape_funcs[];   /* ltensor_shape.c */
extern const lblua_method lblua_math_methods[], lblua_math_funcs[];     /* ltensor_math.c */
extern const lblua_method lblua_apply_methods[];                        /* ltensor_apply.c */

/* The C descriptor inside a built-in activation's `kernel` userdata (blua.Act), or a Lua error. */
blua_act *lblua_checkact(lua_State *L, int idx);

/* Shared by the lifted batch bindings (runtime/llifted.c, runtime/lop.c): the penalty name
 * ("bregman" or "quadratic") at idx; the lists X (hidden layers), Z and G (every layer) at idx,
 * idx + 1, idx + 2 for n layers; the spare gradients of shares 2..parts (n per share, shaped like
 * grads) from the list at idx, or new ones left on the stack when it is nil; the options table
 * at idx for n layers (gamma, beta, scale, forward, energies, steps, mu, l1: the step lists and
 * the L1 weights stay on the stack);
 * and the results, a list of losses per share and a list per share of the hidden energies
 * (or nil), pushed. Errors name fname. */
blua_penalty_kind lblua_checkpenalty(lua_State *L, int idx);
void lblua_lifted_scratch(lua_State *L, int n, int idx, blua_tensor **X, blua_tensor **Z, blua_tensor **G,
                          const char *fname);
void lblua_spare_grads(lua_State *L, int idx, lua_Integer parts, int n, blua_tensor *const *grads, blua_tensor **spare,
                       const char *fname);
void lblua_lifted_opts(lua_State *L, int idx, int n, blua_lifted_batch_opts *o, const char *fname);
/* The L1 weights {[l] = alpha} of the table at idx for n layers (hidden layers 1..n-1, absent: 0)
 * as n - 1 numbers in a userdata left on the stack; NULL, nothing pushed, when idx holds nil. */
const double *lblua_l1_weights(lua_State *L, int idx, int n, const char *fname);
int lblua_lifted_results(lua_State *L, const blua_lifted_batch_opts *o, int parts, int n, const double *loss,
                         const double *energy);

/* Each binding file registers its functions into the module table on the stack top. */
void lblua_open_tensor(lua_State *L);
void lblua_open_prox(lua_State *L);
void lblua_open_io(lua_State *L);
void lblua_open_lifted(lua_State *L);
void lblua_open_op(lua_State *L);
void lblua_open_image(lua_State *L);
void lblua_open_epoch(lua_State *L);

/* Builds the whole module table (blua.core) and leaves it on the stack. */
int lblua_open(lua_State *L);

#endif
