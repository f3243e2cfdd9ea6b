/* blua.mpi: MPI_COMM_WORLD for blua.dist (lua/blua/dist.lua), in the blua executable only.
 *
 * Tensors travel as their float32 contents; a list of tensors is packed into one buffer, so an
 * all-reduce of every gradient of a network is one MPI call, not one per tensor. MPI errors
 * come back as return codes (MPI_ERRORS_RETURN) and become Lua errors naming the function.
 * Ranks are 0-based, as MPI, mpirun's messages and torch.distributed number them. */
#include "ldist.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpi.h>

#include "lblua.h"

static int g_rank = 0, g_size = 1;
/* A private copy of MPI_COMM_WORLD for the collectives built from point-to-point messages, so
 * their messages never meet a user's send/recv. */
static MPI_Comm g_comm = MPI_COMM_NULL;
static char g_who[64] = "";

/* The packing buffer, kept between calls: a training step all-reduces the same list again. */
static float *g_buf = NULL;
static size_t g_buf_cap = 0;

/* Largest element count of one MPI call (counts are int). */
#define CHUNK ((int64_t)1 << 28)

int ldist_launched(void) {
  /* Open MPI's mpirun, PMIx launchers and the Hydra/Slurm PMI family. */
  return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") || getenv("PMI_RANK");
}

static int running(void) {
  int init = 0, fin = 0;
  MPI_Initialized(&init);
  MPI_Finalized(&fin);
  return init && !fin;
}

int ldist_init(char *msg, size_t len) {
  int provided = 0;
  if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
    snprintf(msg, len, "MPI_Init_thread failed");
    return 0;
  }
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &g_size);
  if (MPI_Comm_dup(MPI_COMM_WORLD, &g_comm) != MPI_SUCCESS) {
    snprintf(msg, len, "MPI_Comm_dup failed");
    return 0;
  }
  MPI_Comm_set_errhandler(g_comm, MPI_ERRORS_RETURN);
  if (provided < MPI_THREAD_FUNNELED) {
    /* OpenMP loops run beside MPI in every rank; this MPI cannot promise that is safe. */
    snprintf(msg, len, "MPI provides thread level %d, blua needs MPI_THREAD_FUNNELED (%d)", provided,
             MPI_THREAD_FUNNELED);
    return 0;
  }
  if (g_size > 1) snprintf(g_who, sizeof g_who, "rank %d of %d", g_rank, g_size);
  return 1;
}

const char *ldist_who(void) { return g_who; }

void ldist_abort(int code) {
  if (running() && g_size > 1) MPI_Abort(MPI_COMM_WORLD, code);
}

void ldist_finalize(void) {
  if (running()) {
    if (g_comm != MPI_COMM_NULL) MPI_Comm_free(&g_comm);
    MPI_Finalize();
  }
  free(g_buf);
  g_buf = NULL;
  g_buf_cap = 0;
}

/* ---------------------------------------------------------------- helpers */

static int mpi_error(lua_State *L, const char *fname, int rc) {
  char text[MPI_MAX_ERROR_STRING];
  int n = 0;
  if (MPI_Error_string(rc, text, &n) != MPI_SUCCESS) snprintf(text, sizeof text, "code %d", rc);
  return luaL_error(L, "MPI error in 'dist.%s': %s", fname, text);
}

#define CHECK_MPI(L, fname, call)                 \
  do {                                            \
    int rc_ = (call);                             \
    if (rc_ != MPI_SUCCESS) mpi_error(L, fname, rc_); \
  } while (0)

static void check_running(lua_State *L, const char *fname) {
  if (!running()) luaL_error(L, "dist.%s: MPI is not running (the process was not started by mpirun)", fname);
}

/* A contiguous tensor at idx; views that skip elements cannot be sent as one block. */
static blua_tensor *check_block(lua_State *L, int idx, const char *fname, const char *what) {
  blua_tensor *t = lblua_totensor(L, idx);
  if (t == NULL) luaL_error(L, "bad argument to 'dist.%s' (%s is not a tensor)", fname, what);
  if (!blua_tensor_is_contiguous(t)) {
    char shape[64];
    luaL_error(L, "non-contiguous tensor in 'dist.%s': %s is a %s view; pass t:contiguous() or a clone", fname,
               what, blua_tensor_shape(t, shape, sizeof shape));
  }
  return t;
}

/* Pushes the tensors of the list at idx onto the stack (they stay referenced there for the whole
 * call) and returns how many; *total gets the sum of their element counts. */
static int push_list(lua_State *L, int idx, const char *fname, int64_t *total) {
  luaL_checktype(L, idx, LUA_TTABLE);
  lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
  if (n > INT_MAX / 2) luaL_error(L, "bad argument #%d to 'dist.%s' (too many tensors)", idx, fname);
  luaL_checkstack(L, (int)n + 8, "too many tensors");
  *total = 0;
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, idx, i);
    char what[32];
    snprintf(what, sizeof what, "item %lld", (long long)i);
    blua_tensor *t = check_block(L, -1, fname, what);
    *total += blua_tensor_nelement(t); /* each at most 2^34: no overflow for any list that fits */
  }
  return (int)n;
}

static float *buffer(lua_State *L, int64_t total, const char *fname) {
  if ((uint64_t)total > SIZE_MAX / sizeof(float)) luaL_error(L, "out of memory in 'dist.%s'", fname);
  size_t need = (size_t)total;
  if (need <= g_buf_cap && g_buf) return g_buf;
  float *b = realloc(g_buf, (need ? need : 1) * sizeof(float));
  if (b == NULL) luaL_error(L, "out of memory in 'dist.%s': %I floats", fname, (lua_Integer)total);
  g_buf = b;
  g_buf_cap = need;
  return b;
}

/* Copies the n tensors on the stack top into buf (dir > 0) or back out of it (dir < 0). */
static void pack(lua_State *L, int n, float *buf, int dir) {
  size_t at = 0;
  for (int i = n; i >= 1; i--) {
    blua_tensor *t = lblua_totensor(L, -i);
    size_t k = (size_t)blua_tensor_nelement(t);
    if (dir > 0) memcpy(buf + at, blua_tensor_data(t), k * sizeof(float));
    else memcpy(blua_tensor_data(t), buf + at, k * sizeof(float));
    at += k;
  }
}

static int check_rank(lua_State *L, int idx, const char *fname, const char *what) {
  lua_Integer r = luaL_checkinteger(L, idx);
  if (r < 0 || r >= g_size)
    luaL_error(L, "bad argument #%d to 'dist.%s' (%s %I out of range 0..%d)", idx, fname, what, r, g_size - 1);
  return (int)r;
}

static int check_tag(lua_State *L, int idx, const char *fname) {
  lua_Integer tag = luaL_optinteger(L, idx, 0);
  if (tag < 0 || tag > 32767) /* the tag bound every MPI guarantees */
    luaL_error(L, "bad argument #%d to 'dist.%s' (tag %I out of range 0..32767)", idx, fname, tag);
  return (int)tag;
}

/* ---------------------------------------------------------------- the Lua functions */

static int l_rank(lua_State *L) {
  lua_pushinteger(L, g_rank);
  return 1;
}

static int l_size(lua_State *L) {
  lua_pushinteger(L, g_size);
  return 1;
}

static int l_running(lua_State *L) {
  lua_pushboolean(L, running());
  return 1;
}

static int l_barrier(lua_State *L) {
  check_running(L, "barrier");
  CHECK_MPI(L, "barrier", MPI_Barrier(MPI_COMM_WORLD));
  return 0;
}

/* allreduce({t1, t2, ...}[, op]): every tensor becomes the sum (or max, min) over the ranks. */
static int l_allreduce(lua_State *L) {
  static const char *const ops[] = {"sum", "max", "min", NULL};
  static const MPI_Op mpi_ops[] = {MPI_SUM, MPI_MAX, MPI_MIN};
  int op = luaL_checkoption(L, 2, "sum", ops);
  lua_settop(L, 1);
  int64_t total;
  int n = push_list(L, 1, "allreduce", &total);
  check_running(L, "allreduce");
  if (total == 0) return 0;
  float *buf = buffer(L, total, "allreduce");
  pack(L, n, buf, 1);
  for (int64_t at = 0; at < total; at += CHUNK) {
    int count = (int)(total - at < CHUNK ? total - at : CHUNK);
    CHECK_MPI(L, "allreduce", MPI_Allreduce(MPI_IN_PLACE, buf + at, count, MPI_FLOAT, mpi_ops[op], MPI_COMM_WORLD));
  }
  pack(L, n, buf, -1);
  return 0;
}

/* broadcast({t1, ...}, root): every rank's tensors get root's contents. The element counts are
 * compared first, so lists of different sizes are an error rather than a truncated message. */
static int l_broadcast(lua_State *L) {
  int root = check_rank(L, 2, "broadcast", "root");
  lua_settop(L, 2);
  int64_t total;
  int n = push_list(L, 1, "broadcast", &total);
  check_running(L, "broadcast");
  long long counts[2] = {total, -total}, agreed[2];
  CHECK_MPI(L, "broadcast", MPI_Allreduce(counts, agreed, 2, MPI_LONG_LONG, MPI_MAX, MPI_COMM_WORLD));
  if (agreed[0] != -agreed[1])
    return luaL_error(L, "size mismatch in 'dist.broadcast': the ranks' lists hold between %I and %I elements",
                      (lua_Integer)-agreed[1], (lua_Integer)agreed[0]);
  if (total == 0) return 0;
  float *buf = buffer(L, total, "broadcast");
  if (g_rank == root) pack(L, n, buf, 1);
  for (int64_t at = 0; at < total; at += CHUNK) {
    int count = (int)(total - at < CHUNK ? total - at : CHUNK);
    CHECK_MPI(L, "broadcast", MPI_Bcast(buf + at, count, MPI_FLOAT, root, MPI_COMM_WORLD));
  }
  if (g_rank != root) pack(L, n, buf, -1);
  return 0;
}

/* send(t, dest[, tag]): blocks until the message is on its way. */
static int l_send(lua_State *L) {
  blua_tensor *t = check_block(L, 1, "send", "argument #1");
  int dest = check_rank(L, 2, "send", "destination");
  int tag = check_tag(L, 3, "send");
  check_running(L, "send");
  if (dest == g_rank) return luaL_error(L, "bad argument #2 to 'dist.send' (rank %d cannot send to itself)", g_rank);
  int64_t total = blua_tensor_nelement(t);
  if (total > INT_MAX) return luaL_error(L, "dist.send: %I elements are more than one message carries", (lua_Integer)total);
  CHECK_MPI(L, "send", MPI_Send(blua_tensor_data(t), (int)total, MPI_FLOAT, dest, tag, MPI_COMM_WORLD));
  return 0;
}

/* recv(t, src[, tag]): fills t with the message; its element count must match t's. */
static int l_recv(lua_State *L) {
  blua_tensor *t = check_block(L, 1, "recv", "argument #1");
  int src = check_rank(L, 2, "recv", "source");
  int tag = check_tag(L, 3, "recv");
  check_running(L, "recv");
  if (src == g_rank) return luaL_error(L, "bad argument #2 to 'dist.recv' (rank %d cannot receive from itself)", g_rank);
  MPI_Status st;
  int count = 0;
  CHECK_MPI(L, "recv", MPI_Probe(src, tag, MPI_COMM_WORLD, &st));
  CHECK_MPI(L, "recv", MPI_Get_count(&st, MPI_FLOAT, &count));
  int64_t total = blua_tensor_nelement(t);
  if (count != total) {
    /* Take the message off the line anyway, so the next receive does not meet it. */
    float *buf = buffer(L, count, "recv");
    CHECK_MPI(L, "recv", MPI_Recv(buf, count, MPI_FLOAT, src, tag, MPI_COMM_WORLD, MPI_STATUS_IGNORE));
    char shape[64];
    return luaL_error(L, "size mismatch in 'dist.recv': rank %d sent %d elements, the tensor is %s", src, count,
                      blua_tensor_shape(t, shape, sizeof shape));
  }
  CHECK_MPI(L, "recv", MPI_Recv(blua_tensor_data(t), count, MPI_FLOAT, src, tag, MPI_COMM_WORLD, MPI_STATUS_IGNORE));
  return 0;
}

/* ---------------------------------------------------------------- sharded collectives
 *
 * reduce_scatter and allgather treat a list of tensors as one flat vector of `total` floats cut
 * into one contiguous segment per rank (dist.segment: sizes differ by at most one, the earlier
 * ranks take the extra). Data travels straight between the tensors, described to MPI by an
 * indexed datatype over the pieces of a segment, so nothing is packed; one message per pair of
 * ranks and direction. */

static void segment_of(int64_t total, int r, int p, int64_t *first, int64_t *count) {
  int64_t base = total / p, extra = total % p;
  *first = (int64_t)r * base + (r < extra ? r : extra);
  *count = base + (r < extra ? 1 : 0);
}

/* An MPI datatype for elements [first, first + count) of the n tensors on the stack top, as
 * absolute addresses (send or receive it from MPI_BOTTOM). Returns an MPI code. */
static int pieces_type(lua_State *L, int n, int64_t first, int64_t count, MPI_Datatype *type) {
  int *blocks = malloc((size_t)(n > 0 ? n : 1) * sizeof *blocks);
  MPI_Aint *at = malloc((size_t)(n > 0 ? n : 1) * sizeof *at);
  if (!blocks || !at) {
    free(blocks);
    free(at);
    return MPI_ERR_NO_MEM;
  }
  int k = 0;
  int64_t off = 0, end = first + count;
  for (int i = n; i >= 1; i--) {
    blua_tensor *t = lblua_totensor(L, -i);
    int64_t len = blua_tensor_nelement(t);
    int64_t lo = off > first ? off : first, hi = off + len < end ? off + len : end;
    if (hi > lo) {
      MPI_Get_address(blua_tensor_data(t) + (lo - off), &at[k]);
      blocks[k++] = (int)(hi - lo);
    }
    off += len;
  }
  int rc = MPI_Type_create_hindexed(k, blocks, at, MPI_FLOAT, type);
  if (rc == MPI_SUCCESS) rc = MPI_Type_commit(type);
  free(blocks);
  free(at);
  return rc;
}

/* The list at argument 1 on the stack, its segments checked to fit in one message. */
static int sharded_list(lua_State *L, const char *fname, int64_t *total) {
  lua_settop(L, 1);
  int n = push_list(L, 1, fname, total);
  check_running(L, fname);
  if (*total / g_size + 1 > INT_MAX)
    luaL_error(L, "dist.%s: %I elements per rank are more than one message carries", fname, (lua_Integer)(*total / g_size + 1));
  return n;
}

/* reduce_scatter(list): afterwards this rank's segment of the list holds the sum over the ranks,
 * added in rank order ((x0 + x1) + x2) + ..., the order in which one process adds the same
 * shares, so every rank's segment has the bits one process would compute. The other segments
 * keep this rank's own values. */
static int l_reduce_scatter(lua_State *L) {
  int64_t total;
  int n = sharded_list(L, "reduce_scatter", &total);
  if (g_size == 1 || total == 0) return 0;
  int64_t first, count;
  segment_of(total, g_rank, g_size, &first, &count);
  /* the other ranks' contributions to my segment, slot q - (q > rank) for rank q */
  float *in = buffer(L, (int64_t)(g_size - 1) * count, "reduce_scatter");
  MPI_Request *req = malloc(2 * (size_t)g_size * sizeof *req);
  MPI_Datatype *types = malloc((size_t)g_size * sizeof *types);
  if (!req || !types) {
    free(req);
    free(types);
    return luaL_error(L, "out of memory in 'dist.reduce_scatter'");
  }
  int nreq = 0, ntypes = 0, rc = MPI_SUCCESS;
  for (int q = 0; q < g_size; q++) {
    if (q == g_rank) continue;
    int64_t qf, qc;
    segment_of(total, q, g_size, &qf, &qc);
    if (rc == MPI_SUCCESS && (rc = pieces_type(L, n, qf, qc, &types[ntypes])) == MPI_SUCCESS) ntypes++;
    if (rc == MPI_SUCCESS)
      rc = MPI_Irecv(in + (int64_t)(q - (q > g_rank)) * count, (int)count, MPI_FLOAT, q, 1, g_comm, &req[nreq++]);
    if (rc == MPI_SUCCESS) rc = MPI_Isend(MPI_BOTTOM, 1, types[ntypes - 1], q, 1, g_comm, &req[nreq++]);
  }
  int done = MPI_Waitall(nreq, req, MPI_STATUSES_IGNORE); /* also after a failed post: no request left behind */
  if (rc == MPI_SUCCESS) rc = done;
  for (int i = 0; i < ntypes; i++) MPI_Type_free(&types[i]);
  free(req);
  free(types);
  if (rc != MPI_SUCCESS) return mpi_error(L, "reduce_scatter", rc);
  /* Add up in rank order, one pass per rank (vectorised): rank 0 adds into its own values;
   * another rank accumulates in slot 0 (rank 0's part), taking its own part in its turn,
   * and copies the sum back. */
  int64_t off = 0, end = first + count;
  for (int i = n; i >= 1; i--) {
    blua_tensor *t = lblua_totensor(L, -i);
    int64_t len = blua_tensor_nelement(t);
    int64_t at = off, lo = off > first ? off : first, hi = off + len < end ? off + len : end;
    off += len;
    if (hi <= lo) continue;
    float *mine = blua_tensor_data(t) + (lo - at);
    float *acc = g_rank == 0 ? mine : in + (lo - first);
    for (int q = 1; q < g_size; q++) {
      const float *part = q == g_rank ? mine : in + (int64_t)(q - (q > g_rank)) * count + (lo - first);
      for (int64_t k = 0; k < hi - lo; k++) acc[k] += part[k];
    }
    if (acc != mine) memcpy(mine, acc, (size_t)(hi - lo) * sizeof *mine);
  }
  return 0;
}

/* allgather(list): afterwards every rank's segment q holds rank q's segment q. */
static int l_allgather(lua_State *L) {
  int64_t total;
  int n = sharded_list(L, "allgather", &total);
  if (g_size == 1 || total == 0) return 0;
  int64_t first, count;
  segment_of(total, g_rank, g_size, &first, &count);
  MPI_Request *req = malloc(2 * (size_t)g_size * sizeof *req);
  MPI_Datatype *types = malloc((size_t)(g_size + 1) * sizeof *types);
  if (!req || !types) {
    free(req);
    free(types);
    return luaL_error(L, "out of memory in 'dist.allgather'");
  }
  int nreq = 0, ntypes = 0, rc = pieces_type(L, n, first, count, &types[0]);
  if (rc == MPI_SUCCESS) ntypes++; /* types[0]: my segment, sent to everyone */
  for (int q = 0; q < g_size; q++) {
    if (q == g_rank) continue;
    int64_t qf, qc;
    segment_of(total, q, g_size, &qf, &qc);
    if (rc == MPI_SUCCESS && (rc = pieces_type(L, n, qf, qc, &types[ntypes])) == MPI_SUCCESS) ntypes++;
    if (rc == MPI_SUCCESS) rc = MPI_Irecv(MPI_BOTTOM, 1, types[ntypes - 1], q, 2, g_comm, &req[nreq++]);
    if (rc == MPI_SUCCESS) rc = MPI_Isend(MPI_BOTTOM, 1, types[0], q, 2, g_comm, &req[nreq++]);
  }
  int done = MPI_Waitall(nreq, req, MPI_STATUSES_IGNORE); /* also after a failed post: no request left behind */
  if (rc == MPI_SUCCESS) rc = done;
  for (int i = 0; i < ntypes; i++) MPI_Type_free(&types[i]);
  free(req);
  free(types);
  if (rc != MPI_SUCCESS) return mpi_error(L, "allgather", rc);
  return 0;
}

/* abort(message[, code]): ends every rank of the job at once, after printing the message. */
static int l_abort(lua_State *L) {
  const char *msg = luaL_optstring(L, 1, "aborted");
  lua_Integer code = luaL_optinteger(L, 2, 1);
  fprintf(stderr, "blua: %s%s%s\n", g_who, g_who[0] ? ": " : "", msg);
  fflush(stderr);
  if (running()) MPI_Abort(MPI_COMM_WORLD, code > 0 && code < 256 ? (int)code : 1);
  exit(code > 0 && code < 256 ? (int)code : 1);
}

static int l_library(lua_State *L) {
  char text[MPI_MAX_LIBRARY_VERSION_STRING];
  int n = 0;
  MPI_Get_library_version(text, &n);
  char *nl = strchr(text, '\n');
  if (nl) *nl = '\0';
  char *comma = strchr(text, ',');
  if (comma) *comma = '\0';
  lua_pushstring(L, text);
  return 1;
}

int luaopen_blua_mpi(lua_State *L) {
  static const luaL_Reg fns[] = {
    {"rank", l_rank}, {"size", l_size}, {"running", l_running}, {"barrier", l_barrier},
    {"allreduce", l_allreduce}, {"broadcast", l_broadcast},
    {"reduce_scatter", l_reduce_scatter}, {"allgather", l_allgather}, {"send", l_send}, {"recv", l_recv},
    {"abort", l_abort}, {"library", l_library}, {NULL, NULL},
  };
  luaL_newlib(L, fns);
  return 1;
}
