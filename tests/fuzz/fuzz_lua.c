/* libFuzzer harness of the Lua API: the input bytes become a short Lua program of blua calls
 * with hostile arguments, run in a fresh Lua state. Each byte group picks a statement template
 * and fills its holes with tensor slots, extreme integers (0, -1, 2^31, 2^32+1, 2^61,
 * math.maxinteger, math.mininteger, NaN, +-Inf, 1.5, 2^40) or small sizes; templates include
 * views (transposed, narrowed, N-d), callbacks that close tensors, raise errors or collect
 * garbage, and finalizers that close live tensors. Every statement runs under pcall: an error
 * is fine, a crash, a sanitizer report, a leak or a hang is a finding. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/stat.h>

#include "fuzz_harness.h"

static int mkdir_p(const char *dir) { return mkdir(dir, 0700) != 0 && access(dir, W_OK) != 0; }

static const char *const prelude =
    "local S = {blua.randn(3, 4), blua.ones(2, 3, 4), nil, nil, blua.tensor{1, 2, 3}, blua.zeros(0, 4)}\n"
    "S[3] = S[1]:t() S[4] = S[2]:narrow(3, 2, 2)\n"
    "local function close(t) if blua.isTensor(t) then getmetatable(t).__close(t) end end\n"
    "local function trim() for k = 1, 6 do local t = S[k]\n"
    "  if type(t) ~= 'userdata' or not blua.isTensor(t) or t:nElement() > 20000 then S[k] = blua.zeros(2, 2) end end end\n"
    "local P = os.getenv('BLUA_FUZZ_TMP') .. '/lua.blua'\n"
    /* blua._backpropEpoch: a spec of whatever tensors (bpe) or of consistent shapes for a
     * 4-3-2 network with hostile sizes (bpe_ok) */
    "local function bpe(a, b, c, d, batch, parts, t0)\n"
    "  local ws = {xb = a, yb = b, Z = {c, d}, X = {a}, D = {b, c}}\n"
    "  return {acts = {blua.activation.get('relu'), blua.activation.get('softmax')}, W = {a, b}, b = {c, d}, x = a,\n"
    "    y = b, batch = batch, parts = parts, ws = {ws, ws}, grads = {a, b, c, d}, spare = {d, c, b, a},\n"
    "    params = {a, b, c, d}, m = {b, c, d, a}, v = {c, d, a, b}, lr = {0.1, 0.1, 0.1, 0.1}, beta1 = 0.9,\n"
    "    beta2 = 0.999, eps = 1e-8, weight_decay = 0, t0 = t0} end\n"
    "local function bpe_ok(rows, batch, parts, t0)\n"
    "  local net = blua.nn.mlp{4, 3, 2}\n"
    "  local function ws(r) r = math.max(0, math.min(r, 64)) return {xb = blua.zeros(r, 4), yb = blua.zeros(r, 2),\n"
    "    Z = {blua.zeros(r, 3), blua.zeros(r, 2)}, X = {blua.zeros(r, 3)}, D = {blua.zeros(r, 3), blua.zeros(r, 2)}} end\n"
    "  local g, m, v, sp = {}, {}, {}, {}\n"
    "  for i, p in ipairs(net:parameters()) do g[i], m[i], v[i] = blua.zeros(p:size()), blua.zeros(p:size()), blua.zeros(p:size()) end\n"
    "  for i = 1, 4 * 3 do sp[i] = blua.zeros(net:parameters()[(i - 1) % 4 + 1]:size()) end\n"
    "  local y = blua.zeros(rows, 2) y:narrow(2, 1, 1):fill(1)\n"
    "  return {acts = {net:activation(1), net:activation(2)}, W = net.W, b = net.b, x = blua.randn(rows, 4), y = y,\n"
    "    batch = batch, parts = parts, ws = {ws(batch), ws(rows % batch)}, grads = g, spare = sp,\n"
    "    params = net:parameters(), m = m, v = v, lr = {0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1}, beta1 = 0.9,\n"
    "    beta2 = 0.999, eps = 1e-8, weight_decay = 0, t0 = t0} end\n";

/* Holes: A B C D slots (1..6), I an extreme integer, Z a small or bad size. */
static const char *const templates[] = {
    "S[A] = blua.zeros(Z, Z)", "S[A] = blua.ones(Z, Z, Z)", "S[A] = blua.randn(Z)", "S[A] = blua.rand(Z, Z, Z, Z)",
    "S[A] = blua.tensor{{I, I}, {I, I}}", "S[A] = blua.tensor{{{I}}, {{I}}}", "S[A] = blua.eye(Z)",
    "S[A] = S[B]:narrow(I, I, I)", "S[A] = S[B]:narrow(1, Z, Z)", "S[A] = S[B]:select(I, I)",
    "S[A] = S[B]:view(I, I)", "S[A] = S[B]:view(I)", "S[A] = S[B]:view(Z, -1)", "S[A] = S[B]:reshape(I, -1)",
    "S[A] = S[B]:transpose(I, I)", "S[A] = S[B]:t()", "S[A] = S[B]:squeeze(I)", "S[A] = S[B]:unsqueeze(I)",
    "S[A] = S[B]:index(I, {I, I})", "S[A] = S[B]:indexRows(blua.tensor{I})", "S[A] = S[B]:indexRows{I, Z}",
    "S[A] = blua.cat({S[B], S[C]}, I)", "S[A] = blua.cat({S[B], S[C], S[D]})",
    "S[A] = S[B] + S[C]", "S[A] = S[B] - I", "S[A] = S[B] * S[C]", "S[A] = I * S[B]", "S[A] = -S[B]",
    "S[A] = S[B] / I", "S[B]:cmul(S[C])", "S[B]:cdiv(S[C])", "S[B]:add(I, S[C])", "S[B]:copy(S[C])",
    "S[B]:cmax(S[C])", "S[B]:cmin(I)", "S[A] = S[B]:sum(I)", "S[A] = S[B]:mean(I)", "S[A], S[C] = S[B]:max(I)",
    "S[A], S[C] = S[B]:min(I)", "S[A] = S[B]:argmax(I)", "S[B]:sum() S[B]:max() S[B]:norm()",
    "S[B]:fill(I)", "S[B]:clamp(I, I)", "S[B]:exp():log():sqrt()", "S[B]:pow(I)", "S[B]:gt(I)",
    "S[B]:set(I, I, I)", "S[B]:set(I, I, I, I)", "S[B]:get(I, I)", "S[B][I] = I", "S[A] = S[B][I]", "S[B][I] = S[C]",
    "S[B]:map(function(v) close(S[C]) return v end)", "S[B]:map(function(v) collectgarbage() return v * 2 end)",
    "S[B]:map(function(v) error('callback error') end)", "S[B]:map(function(v) close(S[B]) return v end)",
    "setmetatable({}, {__gc = function() close(S[B]) end})",
    "for _ = 1, 4 do setmetatable({}, {__gc = function() close(S[B]) close(S[C]) end}) end",
    "collectgarbage()", "collectgarbage('step', 0)", "close(S[B])",
    "S[A] = S[B]:clone()", "S[A] = S[B]:contiguous()", "S[B]:isContiguous()", "tostring(S[B])", "S[B]:totable()",
    "S[B]:addRow(S[C])", "S[A] = S[B]:sumRows()", "S[C]:addmm(I, I, S[A], S[B])", "S[A] = S[B]:mm(S[C])", "S[C]:mm(S[A], S[B])", "S[C]:addmm(I, S[A], S[B])",
    "blua.save(P, {S[B], S[C], S[B]}) local v = blua.load(P) S[A] = v[1]",
    "S[A] = blua.activation.get('relu'):forward(S[B])", "S[A] = blua.activation.get('sigmoid'):prox(S[B], I)",
    "S[A] = blua.activation.get('softmax'):forward(S[B])", "blua.spectralNorm(S[B], I, S[C])",
    "S[B]:indexRows(setmetatable({}, {__len = function() return I end, __index = function() close(S[C]) return 1 end}))",
    "blua.setNumThreads(I)", "blua._adam(S[A], S[B], S[C], S[D], 0.1, 0.9, 0.999, 1e-8, 0, I)",
    "local n = blua.nn.mlp{4, 3, 2} n.b[1] = S[C] S[A] = n:forward(S[B])",
    "local n = blua.nn.mlp{4, 3, 2} n.W[1] = S[C] S[A] = n:forward(S[B])",
    "blua.data.subset({x = S[B], y = S[C], n = I}, I, I)", "S[A] = blua.randperm(Z)",
    "S[A] = blua.data.onehot(S[B], Z)", "S[B]:dot(S[C])", "S[B]:size(I)", "S[B]:stride(I)",
    "blua._backpropEpoch(bpe(S[A], S[B], S[C], S[D], Z, Z, I)):run(1, Z, 0)",
    "local e = blua._backpropEpoch(bpe_ok(Z, Z, Z, I)) e:run(1, Z, I) e:close() e:run(1, 1, 0)",
    "local s = bpe_ok(8, 4, 2, 0) local e = blua._backpropEpoch(s) close(s.x) close(s.W[1]) collectgarbage() e:run(1, Z, 0)",
    "local s = bpe_ok(Z, Z, Z, I) s.penalty, s.gamma, s.beta, s.inner, s.xsteps, s.energies = 'bregman', 0, 1, Z, Z, true "
    "s.sweep, s.power, s.mult, s.own, s.coupling = {1}, {S[A]}, {I}, {0}, {I} blua._liftedEpoch(s):run(1, Z, 0, {0})",
    "local s = bpe_ok(8, 4, 2, 0) s.penalty, s.gamma, s.beta, s.inner, s.xsteps = 'quadratic', 1, 1, 1, 1 "
    "s.sweep, s.power, s.mult, s.own, s.coupling = {1}, {blua.zeros(1, 2)}, {1}, {1}, {1} "
    "local e = blua._liftedEpoch(s) close(s.power[1]) e:run(1, Z, 0, {0, 0})",
    /* Torch7's methods: indexing and masking, shapes and products, maps and statistics,
     * callbacks (closing, collecting, raising, recursing) and the functional forms; range gets
     * sizes only (from 0 to 2^31 by 1 is a legal 8 GB tensor, past the fuzzer's malloc limit) */
    "S[B]:indexFill(I, {I, Z}, I)", "S[B]:indexCopy(I, {Z, I}, S[C])", "S[B]:indexAdd(I, blua.tensor{I, Z}, S[C])",
    "S[B]:indexAdd(1, S[B]:clone():fill(Z):view(-1), S[B])", "S[B]:maskedFill(S[C]:gt(0), I)",
    "S[A] = S[B]:maskedSelect(S[C]:ge(I))", "S[B]:maskedCopy(S[C]:lt(I), S[D])", "S[B]:maskedCopy(S[B]:gt(0), S[B])",
    "S[A] = S[B]:gather(I, S[C]:clone():fill(Z))", "S[B]:scatter(I, S[C]:clone():fill(Z), S[D])",
    "S[B]:scatter(I, S[C]:clone():fill(Z), I)", "S[B]:scatter(1, S[B]:clone():fill(1), S[B])",
    "S[B]:indexFill(1, setmetatable({Z}, {__len = function() return I end, __index = function() close(S[B]) return 1 end}), I)",
    "setmetatable({}, {__gc = function() close(S[C]) end}) S[B]:indexCopy(1, {Z, Z, Z, Z, Z, Z, Z, Z}, S[C])",
    "S[B]:addcmul(I, S[C], S[D])", "S[B]:addcdiv(S[C], S[D])", "S[B]:addcmul(S[B], S[B])", "S[A] = S[B]:mv(S[C])",
    "S[A]:mv(S[B], S[C])", "S[A]:addmv(I, I, S[B], S[C])", "S[A]:addr(I, S[B], S[C])", "S[A] = blua.mv(S[B], S[C])",
    "S[A] = blua.bmm(S[B], S[C])", "S[A]:bmm(S[B], S[C])", "S[A]:baddbmm(I, I, S[B], S[C])", "S[A]:addbmm(I, S[B], S[C])",
    "S[B]:bmm(S[B], S[B])", "S[A] = blua.range(Z, Z, Z)", "S[A] = blua.linspace(I, I, Z)",
    "S[A] = blua.logspace(I, I, Z)", "S[A] = S[B]:diag(I)", "S[A] = blua.diag(S[B], Z)", "S[B]:trace()",
    "S[A] = S[B]:tril(I)", "S[A] = S[B]:triu(I)", "S[A] = S[B]:repeatTensor(Z, Z)", "S[A] = S[B]:repeatTensor{Z, Z, Z}",
    "S[A] = S[B]:split(I, I)[1]", "S[A] = S[B]:chunk(I, Z)[1]", "S[B]:equal(S[C]) S[B]:isSameSizeAs(S[C])",
    "S[B]:sin():cos():tan():asin():acos():atan():sinh():cosh():frac():cinv():reciprocal()",
    "S[B]:fmod(I):remainder(I)", "S[B]:atan2(S[C])", "S[B]:lerp(S[C], I)", "S[B]:csub(S[C])", "S[B]:csub(I)",
    "S[A] = S[B]:cumprod(I)", "S[B]:dist(S[C], I)", "S[B]:renorm(I, I, I)", "S[A], S[C] = S[B]:median(I)",
    "S[A], S[C] = S[B]:kthvalue(I, I)", "S[A], S[C] = S[B]:mode()",
    "S[B]:apply(function(v) close(S[C]) return v end)", "S[B]:apply(function() collectgarbage() end)",
    "S[B]:map(S[C], function(x, y) collectgarbage() return y end)", "S[B]:map(S[C], function() close(S[C]) end)",
    "S[B]:map2(S[C], S[D], function(x, y, z) close(S[D]) return x end)", "S[B]:map2(S[B], S[B], function(x) return x + 1 end)",
    "S[B]:apply(function() S[B]:apply(function() error('inner') end) end)", "S[B]:apply(function() return 'x' end)",
    "S[B]:all() S[B]:any()", "S[A] = S[B]:viewAs(S[C])", "S[A] = S[B]:cat(S[C], I)", "S[B]:float():type()",
    "S[A] = S[B]:var(I, true)", "S[A] = S[B]:std(I, false)", "S[B]:var(nil, true)", "S[C]:mm(S[C], S[C])",
    "S[A] = blua.exp(S[B])", "S[A] = blua.addmm(I, S[B], I, S[C], S[D])", "S[A] = blua.repeatTensor(S[B], Z, Z)",
    "S[A] = blua.reshape(S[B], Z, -1)", "S[A] = blua.sum(S[B], I)", "S[A] = blua.addcdiv(S[B], I, S[C], S[D])",
    "S[A] = blua.gather(S[B], I, S[C])", "S[A] = blua.t(S[B])",
};
#define NTEMPLATES (sizeof templates / sizeof templates[0])

static const char *const ints[] = {"0",     "-1",   "1",         "2",     "3",          "4",
                                   "2^31",  "2^32+1", "1 << 61", "math.maxinteger", "math.mininteger", "(0/0)",
                                   "(1/0)", "(-1/0)", "1.5",     "2^40"};
static const char *const sizes[] = {"0", "1", "2", "3", "4", "5", "-1", "(1 << 61)", "math.maxinteger",
                                    "math.mininteger", "(0/0)", "1.5", "2^40", "7", "1", "2"};

typedef struct {
  char *p;
  size_t len, cap;
} text;

static void add(text *t, const char *s, size_t n) {
  if (t->len + n + 1 > t->cap) {
    t->cap = (t->len + n + 1) * 2;
    t->p = realloc(t->p, t->cap);
    if (!t->p) abort();
  }
  memcpy(t->p + t->len, s, n);
  t->len += n;
  t->p[t->len] = '\0';
}

static void adds(text *t, const char *s) { add(t, s, strlen(s)); }

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
  static char tmp[64];
  if (!tmp[0]) {
    snprintf(tmp, sizeof tmp, "/tmp/blua-fuzz-lua-%d", (int)getpid());
    if (mkdir_p(tmp)) abort();
    setenv("BLUA_FUZZ_TMP", tmp, 1);
  }
  text prog = {0};
  adds(&prog, prelude);
  size_t at = 0;
  int statements = 0;
  while (at < size && statements < 48) {
    const char *tpl = templates[data[at++] % NTEMPLATES];
    adds(&prog, "pcall(function() ");
    for (const char *c = tpl; *c; c++) {
      unsigned char b = at < size ? data[at] : 0;
      if (*c >= 'A' && *c <= 'D' && (c == tpl || !((c[-1] >= 'a' && c[-1] <= 'z') || (c[-1] >= 'A' && c[-1] <= 'Z'))) &&
          !((c[1] >= 'a' && c[1] <= 'z') || (c[1] >= 'A' && c[1] <= 'Z'))) {
        char d = (char)('1' + b % 6);
        add(&prog, &d, 1);
        at++;
      } else if ((*c == 'I' || *c == 'Z') && c > tpl && !((c[-1] >= 'a' && c[-1] <= 'z') || (c[-1] >= 'A' && c[-1] <= 'Z')) &&
                 !((c[1] >= 'a' && c[1] <= 'z') || (c[1] >= 'A' && c[1] <= 'Z'))) {
        adds(&prog, *c == 'I' ? ints[b % (sizeof ints / sizeof ints[0])] : sizes[b % (sizeof sizes / sizeof sizes[0])]);
        at++;
      } else {
        add(&prog, c, 1);
      }
    }
    adds(&prog, " end) trim()\n");
    statements++;
  }
  lua_State *L = fuzz_state();
  if (!L) abort();
  if (getenv("BLUA_FUZZ_PRINT")) fputs(prog.p, stderr);
  if (luaL_loadstring(L, prog.p) != LUA_OK) {
    fprintf(stderr, "generated program does not compile: %s\n%s", lua_tostring(L, -1), prog.p);
    abort();
  }
  if (lua_pcall(L, 0, 0, 0) != LUA_OK) {
    fprintf(stderr, "error outside pcall: %s\n", lua_tostring(L, -1));
    abort();
  }
  lua_close(L);
  free(prog.p);
  return 0;
}
