/* Binding of the PNG reader and writer (runtime/image.c). The Lua side (lua/blua/image.lua)
 * shapes the planes into the tensor a script sees. */
#include "lblua.h"

#include <string.h>

#include "blua/image.h"

/* Images above this many pixels are refused: a crafted header must not make us allocate
 * gigabytes. 2^28 pixels is a 16384 x 16384 picture. */
#define MAX_PIXELS ((int64_t)1 << 28)

/* blua._imageLoad(path [, channels]) -> planes (channels*H x W tensor), H, W, channels.
 * channels: 0 (the file's own, default), 1 (grey) or 3 (colour). */
static int l_imageLoad(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  int want = (int)luaL_optinteger(L, 2, 0);
  blua_image img;
  blua_err err;
  if (blua_image_load(path, want, MAX_PIXELS, &img, &err) != BLUA_OK) lblua_error(L, "blua.image.load", &err);
  blua_tensor *t = blua_tensor_new2d((int64_t)img.channels * img.height, img.width, &err);
  if (t == NULL) {
    blua_image_free(&img);
    lblua_error(L, "blua.image.load", &err);
  }
  memcpy(blua_tensor_data(t), img.data, sizeof(float) * (size_t)img.channels * (size_t)img.height * (size_t)img.width);
  blua_image_free(&img);
  lblua_pushtensor(L, t);
  lua_pushinteger(L, img.height);
  lua_pushinteger(L, img.width);
  lua_pushinteger(L, img.channels);
  return 4;
}

/* blua._imageSave(path, t, H, W, channels): t contiguous with channels*H*W entries, the
 * planes one after another. */
static int l_imageSave(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  blua_tensor *t = lblua_checktensor(L, 2);
  lua_Integer h = luaL_checkinteger(L, 3), w = luaL_checkinteger(L, 4), c = luaL_checkinteger(L, 5);
  if (!blua_tensor_is_contiguous(t)) return luaL_error(L, "not contiguous in 'blua.image.save'");
  if (h < 1 || w < 1 || (c != 1 && c != 3) || h > ((lua_Integer)1 << 30) / w ||
      blua_tensor_nelement(t) != (int64_t)(c * h * w))
    return luaL_error(L, "size mismatch in 'blua.image.save': %d planes of %dx%d for a tensor of %d entries", (int)c,
                      (int)h, (int)w, (int)blua_tensor_nelement(t));
  blua_err err;
  lblua_check(L, blua_image_save(path, blua_tensor_data(t), h, w, (int)c, &err), "blua.image.save", &err);
  return 0;
}

void lblua_open_image(lua_State *L) {
  lua_pushcfunction(L, l_imageLoad);
  lua_setfield(L, -2, "_imageLoad");
  lua_pushcfunction(L, l_imageSave);
  lua_setfield(L, -2, "_imageSave");
}
