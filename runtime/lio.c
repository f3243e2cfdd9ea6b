/* Binding of the io part of the core: blua.save, blua.load, blua.register_type, and the
 * low-level helpers behind lua/blua/data.lua (_idx, _onehot, _permutation).
 *
 * save walks the Lua value and appends tagged objects to a blua_buf (format in
 * docs/format.md); load decodes the payload straight into Lua values. Only data is stored:
 * never code, and tables come back through lua_rawset with their metatable restored from the
 * registry of saveable types, so loading runs no code from the file. */
#include "lblua.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "blua/idx.h"
#include "blua/random.h"
#include "blua/serialize.h"

#define TYPES_BYNAME "blua.types.byname"
#define TYPES_BYMT "blua.types.bymt"
#define BOX_MT "blua.iobox"
#define MAX_DEPTH 1000

/* Memory owned by a userdata so that a Lua error half-way through save or load frees it. */
typedef struct box {
  blua_buf buf;
  blua_cursor cur;
} box;

static int box_gc(lua_State *L) {
  box *b = luaL_checkudata(L, 1, BOX_MT);
  blua_buf_free(&b->buf);
  blua_checkpoint_close(&b->cur);
  return 0;
}

static box *push_box(lua_State *L) {
  box *b = lua_newuserdatauv(L, sizeof *b, 0);
  blua_buf_init(&b->buf);
  memset(&b->cur, 0, sizeof b->cur);
  b->cur.fd = -1;
  if (luaL_newmetatable(L, BOX_MT)) {
    lua_pushcfunction(L, box_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  return b;
}

/* Pushes the registry table called name (created on first use). */
static void push_registry_table(lua_State *L, const char *name) {
  if (lua_getfield(L, LUA_REGISTRYINDEX, name) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, name);
  }
}

/* blua.register_type(name, mt): tables with metatable mt are saved under name, and get mt
 * back on load. Registering a name again replaces its metatable. Returns mt. */
static int l_register_type(lua_State *L) {
  size_t len;
  const char *name = luaL_checklstring(L, 1, &len);
  luaL_checktype(L, 2, LUA_TTABLE);
  luaL_argcheck(L, len > 0 && len <= 256, 1, "type name must have 1 to 256 characters");
  lua_settop(L, 2);
  push_registry_table(L, TYPES_BYNAME); /* 3 */
  push_registry_table(L, TYPES_BYMT);   /* 4 */
  if (lua_getfield(L, 3, name) == LUA_TTABLE) { /* forget the old metatable of this name */
    lua_pushnil(L);
    lua_rawset(L, 4);
  } else {
    lua_pop(L, 1);
  }
  lua_pushvalue(L, 2);
  lua_setfield(L, 3, name);
  lua_pushvalue(L, 2);
  lua_pushvalue(L, 1);
  lua_rawset(L, 4);
  lua_settop(L, 2);
  return 1;
}

/* ---- save ---- */

typedef struct path_node {
  const struct path_node *parent;
  int key;  /* stack index of the key leading here; 0 for the root */
} path_node;

typedef struct saver {
  lua_State *L;
  blua_buf *b;
  int seen;   /* stack index: table or tensor -> id */
  int bymt;   /* stack index: metatable -> type name */
  lua_Integer next_id;
  int depth;
} saver;

/* Pushes a readable path like obj.layers[2].fn for the node. */
static void push_path(lua_State *L, const path_node *n) {
  const path_node *chain[MAX_DEPTH + 2];
  int k = 0;
  for (; n && k < MAX_DEPTH + 2; n = n->parent) chain[k++] = n;
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  luaL_addstring(&b, "obj");
  for (int i = k - 1; i >= 0; i--) {
    int key = chain[i]->key;
    if (key == 0) continue;
    switch (lua_type(L, key)) {
      case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(L, key, &len);
        int ident = len > 0 && len <= 64 && !(s[0] >= '0' && s[0] <= '9');
        for (size_t j = 0; ident && j < len; j++)
          ident = (s[j] >= 'a' && s[j] <= 'z') || (s[j] >= 'A' && s[j] <= 'Z') ||
                  (s[j] >= '0' && s[j] <= '9') || s[j] == '_';
        if (ident) {
          luaL_addchar(&b, '.');
          luaL_addlstring(&b, s, len);
        } else {
          luaL_addstring(&b, "[\"");
          luaL_addlstring(&b, s, len > 40 ? 40 : len);
          luaL_addstring(&b, len > 40 ? "...\"]" : "\"]");
        }
        break;
      }
      case LUA_TNUMBER:
        luaL_addchar(&b, '[');
        lua_pushvalue(L, key);
        luaL_addvalue(&b); /* numbers convert to strings in place of the copy */
        luaL_addchar(&b, ']');
        break;
      case LUA_TBOOLEAN:
        luaL_addstring(&b, lua_toboolean(L, key) ? "[true]" : "[false]");
        break;
      default:
        luaL_addchar(&b, '[');
        luaL_addstring(&b, luaL_typename(L, key));
        luaL_addchar(&b, ']');
        break;
    }
  }
  luaL_pushresult(&b);
}

static const char *what_is(lua_State *L, int idx) {
  if (lua_type(L, idx) == LUA_TUSERDATA) {
    if (luaL_testudata(L, idx, LBLUA_TENSOR_MT)) return "a closed tensor";
    return "a userdata that is not a tensor";
  }
  switch (lua_type(L, idx)) {
    case LUA_TFUNCTION: return "a function";
    case LUA_TTHREAD: return "a coroutine";
    case LUA_TLIGHTUSERDATA: return "a light userdata";
    default: return luaL_typename(L, idx);
  }
}

/* Raises "cannot save in 'blua.save': <path> is <what>"; plain says whether to list what
 * can be saved. */
static int save_fail(saver *S, const path_node *at, const char *what, int is_key, int plain) {
  lua_State *L = S->L;
  const char *hint = plain ? " (only booleans, numbers, strings, tables and tensors can be saved)" : "";
  push_path(L, at);
  if (is_key)
    return luaL_error(L, "cannot save in 'blua.save': a key of %s is %s%s", lua_tostring(L, -1), what, hint);
  return luaL_error(L, "cannot save in 'blua.save': %s is %s%s", lua_tostring(L, -1), what, hint);
}

/* Looks up the value at idx in `seen`: writes a reference and returns 1 when it was seen,
 * else records its new id and returns 0. */
static int seen_before(saver *S, int idx) {
  lua_State *L = S->L;
  lua_pushvalue(L, idx);
  if (lua_rawget(L, S->seen) == LUA_TNUMBER) {
    blua_buf_u8(S->b, BLUA_TAG_REF);
    blua_buf_u64(S->b, (uint64_t)lua_tointeger(L, -1));
    lua_pop(L, 1);
    return 1;
  }
  lua_pop(L, 1);
  lua_pushvalue(L, idx);
  lua_pushinteger(L, S->next_id++);
  lua_rawset(L, S->seen);
  return 0;
}

static void save_value(saver *S, int idx, const path_node *at, int is_key);

static void save_table(saver *S, int idx, const path_node *at) {
  lua_State *L = S->L;
  if (seen_before(S, idx)) return;
  if (lua_getmetatable(L, idx)) {
    lua_rawget(L, S->bymt);
    if (!lua_isstring(L, -1)) {
      lua_pop(L, 1);
      save_fail(S, at, "a table whose metatable is not a registered type (blua.register_type(name, mt) "
                "makes such tables saveable)", 0, 0);
    }
    size_t len;
    const char *name = lua_tolstring(L, -1, &len);
    blua_buf_u8(S->b, BLUA_TAG_TYPED);
    blua_buf_u64(S->b, len);
    blua_buf_put(S->b, name, len);
    lua_pop(L, 1);
  } else {
    blua_buf_u8(S->b, BLUA_TAG_TABLE);
  }
  /* The pair count is patched in once the pairs are written. */
  size_t count_at = S->b->len;
  blua_buf_u64(S->b, 0);
  uint64_t count = 0;
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    int key = lua_gettop(L) - 1;
    path_node here = {at, key};
    save_value(S, key, at, 1);
    save_value(S, key + 1, &here, 0);
    lua_pop(L, 1);
    count++;
  }
  blua_buf_patch_u64(S->b, count_at, count);
}

static void save_value(saver *S, int idx, const path_node *at, int is_key) {
  lua_State *L = S->L;
  switch (lua_type(L, idx)) {
    case LUA_TNIL:
      blua_buf_u8(S->b, BLUA_TAG_NIL);
      return;
    case LUA_TBOOLEAN:
      blua_buf_u8(S->b, lua_toboolean(L, idx) ? BLUA_TAG_TRUE : BLUA_TAG_FALSE);
      return;
    case LUA_TNUMBER:
      if (lua_isinteger(L, idx)) {
        blua_buf_u8(S->b, BLUA_TAG_INT);
        blua_buf_i64(S->b, (int64_t)lua_tointeger(L, idx));
      } else {
        blua_buf_u8(S->b, BLUA_TAG_FLOAT);
        blua_buf_f64(S->b, (double)lua_tonumber(L, idx));
      }
      return;
    case LUA_TSTRING: {
      size_t len;
      const char *s = lua_tolstring(L, idx, &len);
      blua_buf_u8(S->b, BLUA_TAG_STRING);
      blua_buf_u64(S->b, len);
      blua_buf_put(S->b, s, len);
      return;
    }
    case LUA_TTABLE:
      if (S->depth >= MAX_DEPTH) {
        save_fail(S, at, "nested more than 1000 tables deep", is_key, 0);
        return;
      }
      luaL_checkstack(L, 8, "saving nested tables");
      S->depth++;
      save_table(S, idx, at);
      S->depth--;
      return;
    case LUA_TUSERDATA: {
      if (lblua_totensor(L, idx)) {
        /* seen_before grows a table, and a GC step there may run a finalizer that closes the
         * tensor: fetch it only afterwards. */
        if (!seen_before(S, idx)) {
          blua_tensor *t = lblua_totensor(L, idx);
          if (!t) save_fail(S, at, "a tensor closed while it was being saved", is_key, 0);
          blua_buf_tensor(S->b, t);
        }
        return;
      }
      break;
    }
    default:
      break;
  }
  save_fail(S, at, what_is(L, idx), is_key, 1);
}

/* blua.save(path, obj) */
static int l_save(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  luaL_checkany(L, 2);
  /* (a third argument, options say, would be ignored) */
  if (lua_gettop(L) > 2)
    return luaL_error(L, "blua.save: (path, obj) expected, got %d more argument%s", lua_gettop(L) - 2,
                      lua_gettop(L) > 3 ? "s" : "");
  lua_settop(L, 2);
  box *bx = push_box(L);                 /* 3 */
  lua_newtable(L);                       /* 4: seen */
  push_registry_table(L, TYPES_BYMT);    /* 5 */
  saver S = {L, &bx->buf, 4, 5, 0, 0};
  path_node root = {NULL, 0};
  save_value(&S, 2, &root, 0);
  if (bx->buf.failed) return luaL_error(L, "out of memory in 'blua.save': '%s'", path);
  blua_err err;
  lblua_check(L, blua_checkpoint_write(path, &bx->buf, &err), "blua.save", &err);
  blua_buf_free(&bx->buf);
  return 0;
}

/* ---- load ---- */

typedef struct loader {
  lua_State *L;
  blua_cursor *c;
  int ids;     /* stack index: id -> table or tensor */
  int byname;  /* stack index: type name -> metatable */
  lua_Integer next_id;
  int depth;
  blua_err err;  /* one for the whole walk: deep recursion keeps small frames */
} loader;

/* LCHECK runs a cursor call that reports into D->err (named err_ at the call site). */
#define LCHECK(D, call) \
  do { blua_err *err_ = &(D)->err; if ((call) != BLUA_OK) lblua_error((D)->L, "blua.load", err_); } while (0)

#define LFAIL(D, ...) \
  do { blua_cur_fail((D)->c, &(D)->err, __VA_ARGS__); lblua_error((D)->L, "blua.load", &(D)->err); } while (0)

static void load_value(loader *D);

/* Pushes the metatable registered as name. Only the registry is consulted: loading never
 * requires a module (a module found through package.path could be any file, for example one in
 * the working directory). blua.load (lua/blua/init.lua) loads blua's own modules that define
 * saveable types before it calls this loader. */
static void push_type(loader *D, const char *name, size_t len) {
  lua_State *L = D->L;
  lua_pushlstring(L, name, len);
  if (lua_rawget(L, D->byname) == LUA_TTABLE) return;
  lua_pop(L, 1);
  lua_pushlstring(L, name, len);
  LFAIL(D, "unknown type '%s' (register it with blua.register_type before loading)", lua_tostring(L, -1));
}

static void load_table(loader *D, int typed) {
  lua_State *L = D->L;
  char name[257];
  uint64_t nlen = 0, count;
  if (typed) {
    LCHECK(D, blua_cur_u64(D->c, &nlen, "a type name", err_));
    if (nlen == 0 || nlen > 256) LFAIL(D, "type name of %llu bytes", (unsigned long long)nlen);
    LCHECK(D, blua_cur_read(D->c, name, (size_t)nlen, "a type name", err_));
    name[nlen] = '\0';
  }
  LCHECK(D, blua_cur_u64(D->c, &count, "a table header", err_));
  /* Every pair takes at least two bytes, which bounds count by the payload left. */
  if (count > D->c->left / 2)
    LFAIL(D, "table of %llu pairs in %llu bytes", (unsigned long long)count, (unsigned long long)D->c->left);
  if (typed) push_type(D, name, (size_t)nlen);
  lua_createtable(L, 0, count > 4096 ? 4096 : (int)count);
  int t = lua_gettop(L);
  lua_pushvalue(L, t);
  lua_rawseti(L, D->ids, D->next_id++);
  for (uint64_t i = 0; i < count; i++) {
    load_value(D);
    load_value(D);
    if (lua_isnil(L, -2) || lua_isnil(L, -1) ||
        (lua_type(L, -2) == LUA_TNUMBER && !lua_isinteger(L, -2) && isnan(lua_tonumber(L, -2))))
      LFAIL(D, "a table holds a nil or NaN key or a nil value");
    lua_rawset(L, t);
  }
  if (typed) {
    lua_pushvalue(L, t - 1);
    lua_setmetatable(L, t);
    lua_remove(L, t - 1);
  }
}

static void load_value(loader *D) {
  lua_State *L = D->L;
  unsigned tag;
  LCHECK(D, blua_cur_u8(D->c, &tag, "a value tag", err_));
  luaL_checkstack(L, 8, "loading nested tables");
  switch (tag) {
    case BLUA_TAG_NIL: lua_pushnil(L); return;
    case BLUA_TAG_FALSE: lua_pushboolean(L, 0); return;
    case BLUA_TAG_TRUE: lua_pushboolean(L, 1); return;
    case BLUA_TAG_INT: {
      int64_t v;
      LCHECK(D, blua_cur_i64(D->c, &v, "an integer", err_));
      lua_pushinteger(L, (lua_Integer)v);
      return;
    }
    case BLUA_TAG_FLOAT: {
      double v;
      LCHECK(D, blua_cur_f64(D->c, &v, "a number", err_));
      lua_pushnumber(L, (lua_Number)v);
      return;
    }
    case BLUA_TAG_STRING: {
      uint64_t len;
      LCHECK(D, blua_cur_u64(D->c, &len, "a string", err_));
      if (len > D->c->left)
        LFAIL(D, "string of %llu bytes with %llu left", (unsigned long long)len, (unsigned long long)D->c->left);
      luaL_Buffer b;
      char *p = luaL_buffinitsize(L, &b, (size_t)len);
      LCHECK(D, blua_cur_read(D->c, p, (size_t)len, "a string", err_));
      luaL_pushresultsize(&b, (size_t)len);
      return;
    }
    case BLUA_TAG_TABLE:
    case BLUA_TAG_TYPED:
      if (D->depth >= MAX_DEPTH) LFAIL(D, "tables nested more than %d deep", MAX_DEPTH);
      D->depth++;
      load_table(D, tag == BLUA_TAG_TYPED);
      D->depth--;
      return;
    case BLUA_TAG_REF: {
      uint64_t id;
      LCHECK(D, blua_cur_u64(D->c, &id, "a reference", err_));
      if (id >= (uint64_t)D->next_id) LFAIL(D, "reference to object %llu before it exists", (unsigned long long)id);
      lua_rawgeti(L, D->ids, (lua_Integer)id);
      return;
    }
    case BLUA_TAG_TENSOR:
    case BLUA_TAG_TENSOR_ND: {
      blua_tensor *t = tag == BLUA_TAG_TENSOR ? blua_cur_tensor(D->c, &D->err) : blua_cur_tensor_nd(D->c, &D->err);
      if (!t) lblua_error(L, "blua.load", &D->err);
      lblua_pushtensor(L, t);
      lua_pushvalue(L, -1);
      lua_rawseti(L, D->ids, D->next_id++);
      return;
    }
    default:
      LFAIL(D, "unknown value tag %u", tag);
  }
}

/* blua.load(path) */
static int l_load(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  lua_settop(L, 1);
  box *bx = push_box(L);                  /* 2 */
  blua_err err;
  lblua_check(L, blua_checkpoint_open(path, &bx->cur, &err), "blua.load", &err);
  lua_newtable(L);                        /* 3: ids (0-based ids stored at integer keys) */
  push_registry_table(L, TYPES_BYNAME);   /* 4 */
  loader *D = lua_newuserdatauv(L, sizeof *D, 0); /* 5: off the C stack */
  *D = (loader){L, &bx->cur, 3, 4, 0, 0, {{0}}};
  load_value(D);
  lblua_check(L, blua_checkpoint_finish(&bx->cur, &err), "blua.load", &err);
  blua_checkpoint_close(&bx->cur);
  return 1;
}

/* ---- data-set helpers ---- */

/* blua._idx(path [, scale [, shift [, max_elements]]]) -> tensor, {type=, dims={...}, compressed=} */
static int l_idx(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  double scale = luaL_optnumber(L, 2, 1.0), shift = luaL_optnumber(L, 3, 0.0);
  lua_Integer max = BLUA_MAX_ELEMENTS;
  if (!lua_isnoneornil(L, 4)) {
    max = lblua_checkint(L, 4, "max_elements", "blua.data.idx");
    if (max < 1) luaL_error(L, "bad max_elements in 'blua.data.idx': %I (must be positive)", (LUAI_UACINT)max);
    if (max > BLUA_MAX_ELEMENTS) max = BLUA_MAX_ELEMENTS;
  }
  blua_idx_info info;
  blua_err err;
  blua_tensor *t = blua_idx_load_opts(path, scale, shift, (int64_t)max, &info, &err);
  lblua_pushresult(L, t, "blua.data.idx", &err);
  lua_createtable(L, 0, 3);
  lua_pushstring(L, blua_idx_type_name(info.type));
  lua_setfield(L, -2, "type");
  lua_createtable(L, info.rank, 0);
  for (int i = 0; i < info.rank; i++) {
    lua_pushinteger(L, (lua_Integer)info.dims[i]);
    lua_rawseti(L, -2, i + 1);
  }
  lua_setfield(L, -2, "dims");
  lua_pushboolean(L, info.compressed);
  lua_setfield(L, -2, "compressed");
  return 2;
}

/* blua._onehot(y, classes) -> n x classes tensor */
static int l_onehot(lua_State *L) {
  blua_tensor *y = lblua_checktensor(L, 1);
  lua_Integer classes = luaL_checkinteger(L, 2);
  luaL_argcheck(L, classes >= 1 && classes <= (1 << 24), 2, "class count must be in 1..2^24");
  blua_err err;
  blua_tensor *out = blua_tensor_new2d(blua_tensor_rows(y), classes, &err);
  lblua_pushresult(L, out, "blua.data.onehot", &err);
  lblua_check(L, blua_onehot(out, y, classes, &err), "blua.data.onehot", &err);
  return 1;
}

/* blua._permutation(n [, seed]) -> {1..n shuffled}; a seed gives a private generator, no
 * seed draws from the process-wide one (so blua.manualSeed governs it). */
static int l_permutation(lua_State *L) {
  lua_Integer n = luaL_checkinteger(L, 1);
  luaL_argcheck(L, n >= 0 && n <= (lua_Integer)1 << 31, 1, "length must be in 0..2^31");
  blua_rng local, *r = blua_default_rng();
  if (!lua_isnoneornil(L, 2)) {
    blua_rng_seed(&local, (uint64_t)luaL_checkinteger(L, 2));
    r = &local;
  }
  int64_t *perm = lua_newuserdatauv(L, (size_t)(n ? n : 1) * sizeof *perm, 0);
  blua_rng_permutation(r, perm, n);
  lua_createtable(L, (int)n, 0);
  for (lua_Integer i = 0; i < n; i++) {
    lua_pushinteger(L, perm[i] + 1);
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

static const luaL_Reg io_funcs[] = {
    {"save", l_save}, {"load", l_load}, {"register_type", l_register_type}, {"registerType", l_register_type},
    {"_idx", l_idx}, {"_onehot", l_onehot}, {"_permutation", l_permutation},
    {NULL, NULL}};

void lblua_open_io(lua_State *L) { luaL_setfuncs(L, io_funcs, 0); }
