/* libFuzzer harness of the checkpoint decoder (blua.load: the envelope in serialize.c and the
 * value walk in lio.c). The first byte picks the mode: even, the rest of the input is the whole
 * file; odd, the rest is a payload wrapped in a valid header (version from the byte's bit 1),
 * so the fuzzer reaches the decoder past the checksums. A decoded value must save and load
 * back. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "blua/serialize.h"
#include "fuzz_harness.h"

static char path[64], path2[64];
static lua_State *L;

static void put_le(unsigned char *o, uint64_t v, int n) {
  for (int i = 0; i < n; i++) o[i] = (unsigned char)(v >> (8 * i));
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
  if (!path[0]) {
    snprintf(path, sizeof path, "/tmp/blua-fuzz-ckpt-%d", (int)getpid());
    snprintf(path2, sizeof path2, "/tmp/blua-fuzz-ckpt-%d.2", (int)getpid());
  }
  if (!L) {
    L = fuzz_state();
    if (!L) abort();
    /* A registered type, so typed tables can load. */
    if (luaL_dostring(L, "blua.register_type('blua.fuzz.T', {})") != LUA_OK) abort();
  }
  if (size == 0) return 0;
  FILE *f = fopen(path, "wb");
  if (!f) abort();
  if (data[0] & 1) {
    unsigned char h[BLUA_CKPT_HEADER];
    memcpy(h, BLUA_CKPT_MAGIC, 8);
    put_le(h + 8, (data[0] & 2) ? 1 : 2, 4);
    put_le(h + 12, 0, 4);
    put_le(h + 16, size - 1, 8);
    put_le(h + 24, (uint32_t)crc32(0, data + 1, (uInt)(size - 1)), 4);
    put_le(h + 28, (uint32_t)crc32(0, h, 28), 4);
    fwrite(h, 1, sizeof h, f);
  }
  if (size > 1) fwrite(data + 1, 1, size - 1, f);
  fclose(f);
  lua_settop(L, 0);
  lua_pushfstring(L,
                  "local ok, v = pcall(blua.load, '%s')\n"
                  "if ok then\n"
                  "  blua.save('%s', v)\n"
                  "  local w = blua.load('%s')\n"
                  "  assert(type(w) == type(v))\n"
                  "elseif type(v) ~= 'string' then error('a load error must be a message') end\n",
                  path, path2, path2);
  if (luaL_loadstring(L, lua_tostring(L, -1)) != LUA_OK) abort();
  if (lua_pcall(L, 0, 0, 0) != LUA_OK) {
    fprintf(stderr, "harness check failed: %s\n", lua_tostring(L, -1));
    abort();
  }
  lua_gc(L, LUA_GCCOLLECT);
  return 0;
}
