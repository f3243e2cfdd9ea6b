/* The blua command: a Lua 5.4 interpreter with the blua module preloaded.
 *
 * It behaves like the stock `lua` front end (options, the `arg` table, an init variable, a
 * REPL) and adds what a training tool needs: the module as the global `blua`, a lookup of bare
 * script names in the installed scripts folder, and a REPL with readline editing, history,
 * Tab completion and Ctrl-C that stops the running statement but keeps the session. */
#define _XOPEN_SOURCE 700 /* POSIX 2008 with realpath */

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <unistd.h>

#include <readline/history.h>
#include <readline/readline.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "lblua.h"
#include "wait_policy.h"
#ifdef BLUA_HAVE_MPI
#include "ldist.h"
#endif

#define PROGNAME "blua"
#define PROMPT1 "> "
#define PROMPT2 ">> "
#define HISTORY_LINES 1000
/* Marks a syntax error that only says the input stopped too early. */
#define EOF_MARK "<eof>"

/* The state a SIGINT handler reaches; also keeps the state reachable for leak checkers when a
 * script ends with os.exit. */
static lua_State *g_state = NULL;
/* Set by the SIGINT handler while the REPL waits for input. */
static volatile sig_atomic_t g_sigint_at_prompt = 0;
/* Whether errors carry a traceback: yes in the REPL and for -e; a script's ordinary mistake is
 * one line (BLUA_TRACEBACK=1 brings the traceback back for debugging). */
static int g_traceback = 1;

/* ---------------------------------------------------------------- messages */

/* Under mpirun with several ranks, messages say which rank they come from. */
static const char *who(void) {
#ifdef BLUA_HAVE_MPI
  return ldist_who();
#else
  return "";
#endif
}

static void print_error(const char *msg) {
  const char *w = who();
  fprintf(stderr, "%s: %s%s%s\n", PROGNAME, w, w[0] ? ": " : "", msg);
  fflush(stderr);
}

/* Prints the error message on the stack top (if any) and pops it. */
static int report(lua_State *L, int status) {
  if (status != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    print_error(msg ? msg : "(error object is not a string)");
    lua_pop(L, 1);
  }
  return status;
}

/* ---------------------------------------------------------------- layout on disk */

/* Where the Lua library and the scripts are: next to the executable when installed
 * (<prefix>/bin/blua with <prefix>/share/...), else in the source tree of this build. */
typedef struct layout {
  char lua_dir[2 * PATH_MAX];
  char scripts_dir[2 * PATH_MAX];
} layout;

static int file_exists(const char *path) { return access(path, R_OK) == 0; }

static void find_layout(layout *lay) {
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n > 0) {
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash) *slash = '\0';
    char probe[PATH_MAX + 64];
    snprintf(probe, sizeof probe, "%s/../share/lua/5.4/blua/init.lua", exe);
    if (file_exists(probe)) {
      char prefix[PATH_MAX + 8], resolved[PATH_MAX];
      snprintf(prefix, sizeof prefix, "%s/..", exe);
      const char *root = realpath(prefix, resolved) ? resolved : prefix;
      snprintf(lay->lua_dir, sizeof lay->lua_dir, "%s/share/lua/5.4", root);
      snprintf(lay->scripts_dir, sizeof lay->scripts_dir, "%s/share/blua/scripts", root);
      return;
    }
  }
  snprintf(lay->lua_dir, sizeof lay->lua_dir, "%s", BLUA_SOURCE_DIR "/lua");
  snprintf(lay->scripts_dir, sizeof lay->scripts_dir, "%s", BLUA_SOURCE_DIR "/scripts");
}

/* ---------------------------------------------------------------- running code */

/* The folder of blua's own Lua library (its modules are <dir>/blua/NAME.lua), set at start-up. */
static char g_lua_dir[2 * PATH_MAX] = "";

static int in_library(const lua_Debug *ar) {
  size_t n = strlen(g_lua_dir);
  return ar->source[0] == '@' && n > 0 && strncmp(ar->source + 1, g_lua_dir, n) == 0 &&
         strncmp(ar->source + 1 + n, "/blua/", 6) == 0;
}

/* An error raised inside blua's library with a position there ("…/blua/nn.lua:40: …") is the
 * caller's mistake as far as the user can tell: the position becomes that of the innermost
 * frame outside the library (the user's line). Leaves the message on the stack top. */
static const char *caller_position(lua_State *L, const char *msg) {
  lua_Debug ar;
  int raised = 0;
  for (int level = 0; lua_getstack(L, level, &ar); level++) {
    if (!lua_getinfo(L, "Sl", &ar) || ar.currentline <= 0) continue;
    if (in_library(&ar)) {
      if (!raised) { /* the message's position is this library frame's? */
        char pos[LUA_IDSIZE + 32];
        snprintf(pos, sizeof pos, "%s:%d: ", ar.short_src, ar.currentline);
        if (strncmp(msg, pos, strlen(pos)) == 0) raised = (int)strlen(pos);
      }
      continue;
    }
    if (!raised) return msg; /* raised by (or at) the user's own code */
    return lua_pushfstring(L, "%s:%d: %s", ar.short_src, ar.currentline, msg + raised);
  }
  return msg;
}

/* Message handler: turns any error value into a string, moves a position inside blua's library
 * to the caller's, and appends a traceback (not for a script, see g_traceback). */
static int message_handler(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (msg == NULL) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) return 1;
    msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  }
  msg = caller_position(L, msg);
  if (!g_traceback) {
    /* Ctrl-C ends a script with one clean line, not the hook's internal wording. */
    if (strcmp(msg, "interrupted!") == 0) lua_pushliteral(L, "interrupted");
    else lua_pushstring(L, msg);
    return 1;
  }
  luaL_traceback(L, L, msg, 1);
  return 1;
}

static void set_sigint(void (*handler)(int)) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = handler;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0; /* no SA_RESTART: a blocked read must see EINTR */
  sigaction(SIGINT, &sa, NULL);
}

/* SIGINT while Lua runs: a hook raises an error at the next instruction (lua_sethook is safe in
 * a signal handler). One Ctrl-C may arrive twice (timeout and some shells signal the process and
 * its group), so only after a second one does the next get the default action: pressing Ctrl-C
 * three times still kills a long C call that never reaches the hook. */
static volatile sig_atomic_t g_sigint_count = 0;

static void stop_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  lua_sethook(L, NULL, 0, 0);
  g_sigint_count = 0;
  lua_pushliteral(L, "interrupted!"); /* no position: the traceback says where */
  lua_error(L);
}

static void on_sigint_running(int sig) {
  (void)sig;
  if (++g_sigint_count >= 2) set_sigint(SIG_DFL);
  lua_sethook(g_state, stop_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKLINE | LUA_MASKCOUNT, 1);
}

static void on_sigint_prompt(int sig) {
  (void)sig;
  g_sigint_at_prompt = 1;
}

/* The SIGINT action between calls: the default one, except in the REPL, which must survive a
 * Ctrl-C that lands while it prints a result or compiles a line. */
static void (*g_idle_sigint)(int) = SIG_DFL;

/* Calls the function below its nargs arguments with the message handler and Ctrl-C hook. */
static int docall(lua_State *L, int nargs, int nresults) {
  int base = lua_gettop(L) - nargs;
  lua_pushcfunction(L, message_handler);
  lua_insert(L, base);
  g_sigint_count = 0;
  set_sigint(on_sigint_running);
  int status = lua_pcall(L, nargs, nresults, base);
  /* Outside the REPL an interrupted run is about to end; a doubled SIGINT must not kill it. */
  set_sigint(g_sigint_count > 0 && g_idle_sigint == SIG_DFL ? SIG_IGN : g_idle_sigint);
  lua_sethook(L, NULL, 0, 0); /* a Ctrl-C that came too late must not hit the next call */
  lua_remove(L, base);
  return status;
}

static int dochunk(lua_State *L, int status) {
  if (status == LUA_OK) status = docall(L, 0, 0);
  return report(L, status);
}

static int dostring(lua_State *L, const char *code, const char *chunkname) {
  return dochunk(L, luaL_loadbuffer(L, code, strlen(code), chunkname));
}

static int dofile(lua_State *L, const char *path) { return dochunk(L, luaL_loadfile(L, path)); }

/* -l [global=]module: require the module and store it in a global (named after the module, or
 * before '=', or before a '-' suffix as lua 5.4 does). */
static int dolibrary(lua_State *L, const char *spec) {
  const char *eq = strchr(spec, '=');
  const char *modname = eq ? eq + 1 : spec;
  size_t globlen = eq ? (size_t)(eq - spec) : strlen(spec);
  if (!eq) {
    const char *dash = strchr(spec, '-');
    if (dash) globlen = (size_t)(dash - spec);
  }
  lua_getglobal(L, "require");
  lua_pushstring(L, modname);
  int status = docall(L, 1, 1);
  if (status == LUA_OK) { /* _G[globname] = module */
    lua_pushglobaltable(L);
    lua_pushlstring(L, spec, globlen);
    lua_rotate(L, -3, -1);
    lua_settable(L, -3);
    lua_pop(L, 1);
  }
  return report(L, status);
}

/* ---------------------------------------------------------------- options */

typedef struct options {
  int interactive; /* -i */
  int version;     /* -v */
  int exec;        /* some -e */
  int noenv;       /* -E */
  int help;        /* --help */
  int script;      /* index of the script in argv, 0 when none */
} options;

static void print_usage(FILE *out, const layout *lay) {
  fprintf(out,
          "usage: " PROGNAME " [options] [script [args]]\n"
          "Options:\n"
          "  -e stat   run the Lua statement 'stat'\n"
          "  -i        enter the interactive prompt after running 'script'\n"
          "  -l mod    require module 'mod' into the global 'mod'\n"
          "  -l g=mod  require module 'mod' into the global 'g'\n"
          "  -v        print the versions of blua, Lua and OpenBLAS and the thread count\n"
          "  -E        ignore BLUA_INIT, LUA_PATH and LUA_CPATH\n"
          "  -W        turn warnings on\n"
          "  --        stop handling options\n"
          "  -         run standard input as the script and stop handling options\n"
          "  --help, -h  print this help\n"
          "Without a script, " PROGNAME " starts the interactive prompt on a terminal and runs\n"
          "standard input otherwise. The module is the global 'blua'. A bare script name\n"
          "not found in the working directory is looked up in\n"
          "  %s\n"
          "BLUA_INIT (or BLUA_INIT_5_4) holds code, or @file, to run before anything else.\n",
          lay->scripts_dir);
}

/* Sets *bad to the offending argument (or a message) on failure and returns 0. */
static int parse_options(int argc, char **argv, options *o, const char **bad) {
  memset(o, 0, sizeof *o);
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (a[0] != '-') { o->script = i; return 1; }
    switch (a[1]) {
      case '\0': /* "-": standard input */
        o->script = i;
        return 1;
      case '-':
        if (a[2] == '\0') { o->script = (i + 1 < argc) ? i + 1 : 0; return 1; }
        if (strcmp(a, "--help") == 0) { o->help = 1; return 1; }
        *bad = a;
        return 0;
      case 'h': /* -h is --help, as most commands have it */
        if (a[2] != '\0') { *bad = a; return 0; }
        o->help = 1;
        return 1;
      case 'E': case 'W': case 'i': case 'v':
        if (a[2] != '\0') { *bad = a; return 0; }
        if (a[1] == 'E') o->noenv = 1;
        if (a[1] == 'i') o->interactive = 1;
        if (a[1] == 'v') o->version = 1;
        break;
      case 'e': case 'l':
        if (a[1] == 'e') o->exec = 1;
        if (a[2] == '\0') {
          if (i + 1 >= argc || argv[i + 1][0] == '-') { *bad = a; return 0; }
          i++;
        }
        break;
      default:
        *bad = a;
        return 0;
    }
  }
  return 1;
}

/* Runs -e, -l and -W in their order on the command line. */
static int run_options(lua_State *L, int argc, char **argv, const options *o) {
  int last = o->script ? o->script : argc;
  for (int i = 1; i < last; i++) {
    const char *a = argv[i];
    if (a[0] != '-' || a[1] == '-' || a[1] == '\0') break;
    if (a[1] == 'W') lua_warning(L, "@on", 0);
    if (a[1] != 'e' && a[1] != 'l') continue;
    const char *val = a[2] ? a + 2 : argv[++i];
    int status = a[1] == 'e' ? dostring(L, val, "=(command line)") : dolibrary(L, val);
    if (status != LUA_OK) return 0;
  }
  return 1;
}

/* arg[0] is the script, the script's arguments follow, the interpreter's words get negative
 * indices; without a script arg[0] is the program name. */
static void create_arg_table(lua_State *L, int argc, char **argv, int script, const char *script_path) {
  int zero = script ? script : 0;
  lua_createtable(L, argc - zero - 1 > 0 ? argc - zero - 1 : 0, zero + 1);
  for (int i = 0; i < argc; i++) {
    lua_pushstring(L, (i == script && script_path) ? script_path : argv[i]);
    lua_rawseti(L, -2, i - zero);
  }
  lua_setglobal(L, "arg");
}

static int handle_init_env(lua_State *L) {
  const char *name = "BLUA_INIT_5_4";
  const char *init = getenv(name);
  if (init == NULL) init = getenv(name = "BLUA_INIT");
  if (init == NULL) return LUA_OK;
  if (init[0] == '@') return dofile(L, init + 1);
  char chunkname[32];
  snprintf(chunkname, sizeof chunkname, "=%s", name);
  return dostring(L, init, chunkname);
}

/* ---------------------------------------------------------------- start-up */

static void prepend_package_path(lua_State *L, const char *dir) {
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "path");
  lua_pushfstring(L, "%s/?.lua;%s/?/init.lua;%s", dir, dir, lua_tostring(L, -1));
  lua_setfield(L, -3, "path");
  lua_pop(L, 2);
}

static void preload_core(lua_State *L) {
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, lblua_open);
  lua_setfield(L, -2, "blua.core");
#ifdef BLUA_HAVE_MPI
  lua_pushcfunction(L, luaopen_blua_mpi); /* the backend of blua.dist */
  lua_setfield(L, -2, "blua.mpi");
#endif
  lua_pop(L, 1);
}

static int load_blua(lua_State *L) {
  lua_getglobal(L, "require");
  lua_pushliteral(L, "blua");
  int status = docall(L, 1, 1);
  if (status == LUA_OK) lua_setglobal(L, "blua");
  return report(L, status);
}

static void print_version(void) {
  printf(PROGNAME " %s (%s)\n", BLUA_VERSION, LUA_RELEASE);
  printf("%s; core %s; %d threads\n", blua_blas_config(), blua_blas_core(), blua_get_num_threads());
  fflush(stdout);
}

/* The script path to run: a bare name missing from the working directory is taken from the
 * scripts folder when it is there. Returns name itself otherwise. */
static const char *resolve_script(const char *name, const layout *lay, char *buf, size_t size) {
  if (strchr(name, '/') || file_exists(name)) return name;
  snprintf(buf, size, "%s/%s", lay->scripts_dir, name);
  return file_exists(buf) ? buf : name;
}

/* Pushes arg[1..n], the script's arguments, and returns n. */
static int push_script_args(lua_State *L) {
  lua_getglobal(L, "arg");
  int n = (int)luaL_len(L, -1);
  luaL_checkstack(L, n + 3, "too many arguments to script");
  for (int i = 1; i <= n; i++) lua_rawgeti(L, -i, i);
  lua_remove(L, -n - 1);
  return n;
}

static int run_script(lua_State *L, const char *path, int from_stdin, const layout *lay) {
  int status = luaL_loadfile(L, from_stdin ? NULL : path);
  if (status != LUA_OK) {
    if (!from_stdin && !strchr(path, '/') && !file_exists(path)) {
      const char *msg = lua_tostring(L, -1);
      lua_pushfstring(L, "%s (not in the working directory nor in %s)", msg, lay->scripts_dir);
      lua_remove(L, -2);
    }
    return report(L, status);
  }
  int n = push_script_args(L); /* the script receives them as '...' */
  const char *tb = getenv("BLUA_TRACEBACK");
  g_traceback = tb != NULL && tb[0] != '\0' && strcmp(tb, "0") != 0;
  status = docall(L, n, 0);
  g_traceback = 1;
  if (status != LUA_OK && isatty(STDERR_FILENO)) {
    /* A Ctrl-C leaves "^C" or a progress bar on the terminal's line: the message gets its own. */
    const char *msg = lua_tostring(L, -1);
    if (msg && strncmp(msg, "interrupted", 11) == 0) fputs("\r\33[K", stderr);
  }
  return report(L, status);
}

/* ---------------------------------------------------------------- the REPL: reading lines */

typedef enum { LINE_OK, LINE_EOF, LINE_CANCELLED } line_status;

typedef struct repl {
  lua_State *L;
  int tty;              /* readline on a terminal, else plain lines without prompts */
  char history[PATH_MAX];
  int complete_ref;     /* registry ref of blua.repl.complete, or LUA_NOREF */
  int pretty_ref;       /* registry ref of blua.repl.pretty (prints tables), or LUA_NOREF */
} repl;

static char *g_rl_line = NULL;
static int g_rl_done = 0;

static void on_readline_line(char *line) {
  g_rl_line = line;
  g_rl_done = 1;
  rl_callback_handler_remove(); /* restores the terminal and stops the prompt from redrawing */
}

static void cancel_readline_line(void) {
  rl_free_line_state();
  rl_callback_sigcleanup();
  rl_replace_line("", 0);
  rl_callback_handler_remove();
  fputs("\n", rl_outstream ? rl_outstream : stdout);
  fflush(rl_outstream ? rl_outstream : stdout);
}

/* Reads one line through readline's callback interface, so that Ctrl-C (which interrupts the
 * wait) can abandon the line and return. SIGINT stays blocked except inside pselect. */
static line_status read_tty_line(const char *prompt, char **out) {
  sigset_t block, old;
  sigemptyset(&block);
  sigaddset(&block, SIGINT);
  sigprocmask(SIG_BLOCK, &block, &old);
  g_sigint_at_prompt = 0;
  set_sigint(on_sigint_prompt);
  g_rl_line = NULL;
  g_rl_done = 0;
  rl_callback_handler_install(prompt, on_readline_line);
  line_status st = LINE_OK;
  int fd = fileno(rl_instream ? rl_instream : stdin);
  while (!g_rl_done) {
    fd_set fds;
    FD_ZERO(&fds);
    FD_SET(fd, &fds);
    int n = pselect(fd + 1, &fds, NULL, NULL, NULL, &old);
    if (n < 0 && errno == EINTR) {
      if (g_sigint_at_prompt) { cancel_readline_line(); st = LINE_CANCELLED; break; }
      continue;
    }
    if (n < 0) { rl_callback_handler_remove(); st = LINE_EOF; break; }
    rl_callback_read_char();
  }
  set_sigint(g_idle_sigint);
  sigprocmask(SIG_SETMASK, &old, NULL);
  if (st != LINE_OK) return st;
  *out = g_rl_line;
  return g_rl_line ? LINE_OK : LINE_EOF;
}

/* Reads one line from a non-terminal stdin, without prompts; the newline is dropped. */
static line_status read_plain_line(char **out) {
  char *line = NULL;
  size_t cap = 0;
  g_sigint_at_prompt = 0;
  set_sigint(on_sigint_prompt);
  ssize_t n = getline(&line, &cap, stdin);
  set_sigint(g_idle_sigint);
  if (n < 0) {
    free(line);
    if (errno == EINTR && g_sigint_at_prompt) { clearerr(stdin); return LINE_CANCELLED; }
    return LINE_EOF;
  }
  if (n > 0 && line[n - 1] == '\n') line[n - 1] = '\0';
  *out = line;
  return LINE_OK;
}

/* The prompt: the global _PROMPT / _PROMPT2 when set (as lua allows), else the default. It is
 * copied because Lua code (completion) runs while readline shows it. */
static const char *get_prompt(lua_State *L, int first) {
  static char prompt[256];
  /* A raw read: a strict-mode __index on _G ("undefined _PROMPT") must not end the session. */
  lua_pushglobaltable(L);
  lua_pushstring(L, first ? "_PROMPT" : "_PROMPT2");
  lua_rawget(L, -2);
  const char *p = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
  snprintf(prompt, sizeof prompt, "%s", p ? p : first ? PROMPT1 : PROMPT2);
  lua_pop(L, 2);
  return prompt;
}

static line_status read_line(repl *r, int first, char **out) {
  if (!r->tty) return read_plain_line(out);
  return read_tty_line(get_prompt(r->L, first), out);
}

/* ---------------------------------------------------------------- the REPL: history */

static void history_open(repl *r) {
  const char *path = getenv("BLUA_HISTORY");
  const char *home = getenv("HOME");
  r->history[0] = '\0';
  if (path && path[0]) snprintf(r->history, sizeof r->history, "%s", path);
  else if (home && home[0]) snprintf(r->history, sizeof r->history, "%s/.blua_history", home);
  using_history();
  stifle_history(HISTORY_LINES);
  if (r->history[0] && read_history(r->history) != 0)
    write_history(r->history); /* creates it so appends work; failure only loses history */
}

static void history_add(repl *r, const char *entry) {
  if (!r->tty || entry[0] == '\0') return;
  HIST_ENTRY *last = history_length > 0 ? history_get(history_base + history_length - 1) : NULL;
  if (last && strcmp(last->line, entry) == 0) return;
  add_history(entry);
  if (r->history[0]) append_history(1, r->history);
}

static void history_close(repl *r) {
  if (r->tty && r->history[0]) history_truncate_file(r->history, HISTORY_LINES);
}

/* ---------------------------------------------------------------- the REPL: Tab completion */

/* Readline asks from C; the candidates come from blua.repl.complete(text) in Lua. */
static repl *g_repl = NULL;
static char **g_candidates = NULL;
static size_t g_ncandidates = 0, g_next_candidate = 0;

static void free_candidates(void) {
  for (size_t i = 0; i < g_ncandidates; i++) free(g_candidates[i]);
  free(g_candidates);
  g_candidates = NULL;
  g_ncandidates = g_next_candidate = 0;
}

static int collect_candidates(lua_State *L) {
  const char *text = lua_tostring(L, 2);
  lua_pushvalue(L, 1);
  lua_pushstring(L, text);
  lua_call(L, 1, 1);
  if (!lua_istable(L, -1)) return 0;
  size_t n = (size_t)luaL_len(L, -1);
  g_candidates = calloc(n ? n : 1, sizeof *g_candidates);
  if (g_candidates == NULL) return 0;
  for (size_t i = 1; i <= n; i++) {
    lua_rawgeti(L, -1, (lua_Integer)i);
    const char *s = lua_tostring(L, -1);
    if (s && (g_candidates[g_ncandidates] = strdup(s)) != NULL) g_ncandidates++;
    lua_pop(L, 1);
  }
  return 0;
}

static char *next_candidate(const char *text, int state) {
  (void)text;
  (void)state;
  if (g_next_candidate >= g_ncandidates) return NULL;
  char *c = g_candidates[g_next_candidate];
  g_candidates[g_next_candidate++] = NULL; /* readline frees it */
  return c;
}

static char **complete_word(const char *text, int start, int end) {
  (void)start;
  (void)end;
  rl_attempted_completion_over = 1; /* never fall back to file names */
  rl_completion_append_character = '\0';
  if (g_repl == NULL || g_repl->complete_ref == LUA_NOREF) return NULL;
  lua_State *L = g_repl->L;
  free_candidates();
  lua_pushcfunction(L, collect_candidates);
  lua_rawgeti(L, LUA_REGISTRYINDEX, g_repl->complete_ref);
  lua_pushstring(L, text);
  if (lua_pcall(L, 2, 0, 0) != LUA_OK) lua_pop(L, 1); /* a failing completer completes nothing */
  char **matches = g_ncandidates ? rl_completion_matches(text, next_candidate) : NULL;
  free_candidates();
  return matches;
}

/* Loads blua.repl: complete (for Tab) and pretty (for printing tables). Without it the REPL
 * still works, with plain printing and no completion. */
static void repl_helpers_open(repl *r) {
  lua_State *L = r->L;
  r->complete_ref = r->pretty_ref = LUA_NOREF;
  lua_getglobal(L, "require");
  lua_pushliteral(L, "blua.repl");
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) { lua_pop(L, 1); return; }
  if (lua_istable(L, -1)) {
    lua_getfield(L, -1, "complete");
    if (lua_isfunction(L, -1)) r->complete_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    else lua_pop(L, 1);
    lua_getfield(L, -1, "pretty");
    if (lua_isfunction(L, -1)) r->pretty_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    else lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

static void completion_open(repl *r) {
  g_repl = r;
  rl_readline_name = PROGNAME;
  /* '.' and ':' are not word breaks, so "blua.nn.Li" reaches the completer whole. */
  rl_basic_word_break_characters = " \t\n\"'`@$><=;|&{}()[],+-*/%^#~";
  rl_attempted_completion_function = complete_word;
}

/* ---------------------------------------------------------------- the REPL: compiling */

#define CHUNK_INCOMPLETE (-1)

static int is_incomplete(lua_State *L, int status) {
  if (status != LUA_ERRSYNTAX) return 0;
  size_t len;
  const char *msg = lua_tolstring(L, -1, &len);
  size_t mark = sizeof(EOF_MARK) - 1;
  return msg && len >= mark && strcmp(msg + len - mark, EOF_MARK) == 0;
}

/* A trailing ';' (before trailing blanks) asks not to print the values. */
static int ends_with_semicolon(const char *code) {
  size_t n = strlen(code);
  while (n > 0 && (code[n - 1] == ' ' || code[n - 1] == '\t' || code[n - 1] == '\n' || code[n - 1] == '\r')) n--;
  return n > 0 && code[n - 1] == ';';
}

/* The REPL runs each chunk as its own function, so a `local` would vanish with it. A chunk that
 * starts with `local` declares globals instead (as Torch's trepl does): "local a, b = f()" runs
 * as "a, b = f()", "local function g" as "function g", and "local x" as "x = nil". Locals
 * with attributes (<const>, <close>) stay local. Returns the text to compile. */
static const char *globalise_local(lua_State *L, const char *code) {
  const char *p = code;
  while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
  if (strncmp(p, "local", 5) != 0 || !(p[5] == ' ' || p[5] == '\t' || p[5] == '\n')) return code;
  const char *rest = p + 5;
  while (*rest == ' ' || *rest == '\t' || *rest == '\n') rest++;
  if (strncmp(rest, "function", 8) == 0) return rest;
  for (const char *q = rest; *q; q++) {
    if (*q == '<') return code;
    if (*q == '=') return rest;
    if (*q == ';' || *q == '\n') return code; /* "local x; ..." : left as it is */
  }
  return lua_pushfstring(L, "%s = nil", rest); /* the caller pops it */
}

/* Compiles code, first as an expression ("return " prefix, whose values get printed) and then
 * as a statement. Leaves the function on the stack and returns LUA_OK, or leaves nothing and
 * returns CHUNK_INCOMPLETE when more lines could complete either form, or leaves the
 * statement form's message and returns its error status. */
static int compile_chunk(lua_State *L, const char *code, int *print_values) {
  const char *expr = lua_pushfstring(L, "return %s", code);
  int status = luaL_loadbuffer(L, expr, strlen(expr), "=stdin");
  if (status == LUA_OK) {
    lua_remove(L, -2);
    *print_values = !ends_with_semicolon(code);
    return LUA_OK;
  }
  int expr_incomplete = is_incomplete(L, status);
  lua_pop(L, 2);
  *print_values = 0;
  int top = lua_gettop(L);
  const char *stat = globalise_local(L, code);
  status = luaL_loadbuffer(L, stat, strlen(stat), "=stdin");
  if (lua_gettop(L) > top + 1) lua_remove(L, top + 1); /* the rewritten text, if any */
  if (status == LUA_OK) return LUA_OK;
  if (expr_incomplete || is_incomplete(L, status)) {
    lua_pop(L, 1);
    return CHUNK_INCOMPLETE;
  }
  return status;
}

/* Input ended inside a chunk: pushes the message of the form (expression or statement) that
 * was waiting for more. */
static int push_incomplete_error(lua_State *L, const char *code) {
  const char *expr = lua_pushfstring(L, "return %s", code);
  int status = luaL_loadbuffer(L, expr, strlen(expr), "=stdin");
  lua_remove(L, -2);
  if (status != LUA_OK && is_incomplete(L, status)) return status;
  lua_pop(L, 1);
  status = luaL_loadbuffer(L, code, strlen(code), "=stdin");
  if (status == LUA_OK) { /* cannot happen: the chunk was incomplete */
    lua_pop(L, 1);
    lua_pushliteral(L, "incomplete statement");
    status = LUA_ERRSYNTAX;
  }
  return status;
}

/* Results of read_chunk besides Lua statuses. */
#define READ_EOF (-2)
#define READ_CANCELLED (-3)

static void push_line(lua_State *L, char *line) {
  lua_pushstring(L, line);
  free(line);
}

/* Reads lines until they form a chunk. Returns LUA_OK with the function on the stack, an error
 * status with the message on the stack, READ_EOF or READ_CANCELLED with nothing pushed. */
static int read_chunk(repl *r, int *print_values) {
  lua_State *L = r->L;
  char *line = NULL;
  line_status st = read_line(r, 1, &line);
  if (st == LINE_EOF) return READ_EOF;
  if (st == LINE_CANCELLED) return READ_CANCELLED;
  push_line(L, line); /* the chunk text so far, at the stack top */
  for (;;) {
    int status = compile_chunk(L, lua_tostring(L, -1), print_values);
    if (status != CHUNK_INCOMPLETE) {
      history_add(r, lua_tostring(L, -2));
      lua_remove(L, -2);
      return status;
    }
    st = read_line(r, 0, &line);
    if (st != LINE_OK) {
      history_add(r, lua_tostring(L, -1));
      if (st == LINE_CANCELLED) { lua_pop(L, 1); return READ_CANCELLED; }
      status = push_incomplete_error(L, lua_tostring(L, -1));
      lua_remove(L, -2);
      return status;
    }
    lua_pushliteral(L, "\n");
    push_line(L, line);
    lua_concat(L, 3);
  }
}

/* ---------------------------------------------------------------- the REPL: running */

/* Writes its arguments as print does (tostring, tab-separated), except that tables without a
 * __tostring go through the upvalue (blua.repl.pretty) when there is one; run under pcall. */
static int write_values(lua_State *L) {
  int n = lua_gettop(L);
  for (int i = 1; i <= n; i++) {
    size_t len;
    const char *s;
    if (lua_type(L, i) == LUA_TTABLE && !lua_isnil(L, lua_upvalueindex(1)) &&
        luaL_getmetafield(L, i, "__tostring") == LUA_TNIL) {
      lua_pushvalue(L, lua_upvalueindex(1));
      lua_pushvalue(L, i);
      lua_call(L, 1, 1);
      s = luaL_tolstring(L, -1, &len);
      lua_remove(L, -2);
    } else {
      if (lua_type(L, i) == LUA_TTABLE) lua_settop(L, n); /* drop the metafield, if pushed */
      s = luaL_tolstring(L, i, &len);
    }
    if (i > 1) fputc('\t', stdout);
    fwrite(s, 1, len, stdout);
    lua_pop(L, 1);
  }
  fputc('\n', stdout);
  fflush(stdout);
  return 0;
}

static void print_results(lua_State *L, int base, int pretty_ref) {
  int n = lua_gettop(L) - base;
  if (n <= 0) return;
  if (pretty_ref != LUA_NOREF) lua_rawgeti(L, LUA_REGISTRYINDEX, pretty_ref);
  else lua_pushnil(L);
  lua_pushcclosure(L, write_values, 1);
  lua_insert(L, base + 1);
  if (lua_pcall(L, n, 0, 0) != LUA_OK)
    print_error(lua_pushfstring(L, "error printing the result (%s)", lua_tostring(L, -1)));
  lua_settop(L, base);
}

static void print_banner(void) {
  printf(PROGNAME " %s (%s): Tab completes, Ctrl-C interrupts, Ctrl-D leaves\n", BLUA_VERSION,
         LUA_RELEASE);
  fflush(stdout);
}

static void run_repl(lua_State *L) {
  repl r;
  memset(&r, 0, sizeof r);
  r.L = L;
  r.tty = isatty(STDIN_FILENO);
  g_idle_sigint = on_sigint_prompt;
  set_sigint(g_idle_sigint);
  repl_helpers_open(&r);
  if (r.tty) {
    rl_catch_signals = 0; /* SIGINT is ours: read_tty_line handles it */
    print_banner();
    history_open(&r);
    completion_open(&r);
  }
  int base = lua_gettop(L);
  for (;;) {
    int print_values = 0;
    int status = read_chunk(&r, &print_values);
    if (status == READ_EOF) break;
    if (status == READ_CANCELLED) continue;
    if (status == LUA_OK) status = docall(L, 0, LUA_MULTRET);
    if (status == LUA_OK && print_values) print_results(L, base, r.pretty_ref);
    else report(L, status);
    lua_settop(L, base);
  }
  if (r.tty) {
    fputs("\n", stdout);
    fflush(stdout);
  }
  history_close(&r);
  if (r.complete_ref != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, r.complete_ref);
  if (r.pretty_ref != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, r.pretty_ref);
  g_repl = NULL;
  g_idle_sigint = SIG_DFL;
  set_sigint(g_idle_sigint);
}

/* ---------------------------------------------------------------- main */

typedef struct main_args {
  int argc;
  char **argv;
} main_args;

static int protected_main(lua_State *L) {
  main_args *ma = lua_touserdata(L, 1);
  int argc = ma->argc;
  char **argv = ma->argv;
  layout lay;
  find_layout(&lay);

  options o;
  const char *bad = NULL;
  if (!parse_options(argc, argv, &o, &bad)) {
    if (bad[1] == 'e' || bad[1] == 'l')
      fprintf(stderr, PROGNAME ": '%s' needs an argument\n", bad);
    else
      fprintf(stderr, PROGNAME ": unrecognized option '%s'\n", bad);
    print_usage(stderr, &lay);
    return 0;
  }
  if (o.help) {
    print_usage(stdout, &lay);
    lua_pushboolean(L, 1);
    return 1;
  }

  luaL_checkversion(L);
  if (o.noenv) { /* the package library then ignores LUA_PATH and LUA_CPATH */
    lua_pushboolean(L, 1);
    lua_setfield(L, LUA_REGISTRYINDEX, "LUA_NOENV");
  }
  luaL_openlibs(L);
  preload_core(L);
  prepend_package_path(L, lay.lua_dir);
  snprintf(g_lua_dir, sizeof g_lua_dir, "%s", lay.lua_dir);

  int from_stdin = o.script && strcmp(argv[o.script], "-") == 0 && strcmp(argv[o.script - 1], "--") != 0;
  char found[4 * PATH_MAX];
  const char *script_path = NULL;
  if (o.script && !from_stdin) script_path = resolve_script(argv[o.script], &lay, found, sizeof found);
  create_arg_table(L, argc, argv, o.script, script_path);

  if (load_blua(L) != LUA_OK) return 0;
  if (o.version) print_version();
  if (!o.noenv && handle_init_env(L) != LUA_OK) return 0;
  if (!run_options(L, argc, argv, &o)) return 0;
  if (o.script && run_script(L, script_path, from_stdin, &lay) != LUA_OK) return 0;
  if (o.interactive) {
    run_repl(L);
  } else if (o.script == 0 && !o.exec && !o.version) {
    if (isatty(STDIN_FILENO)) run_repl(L);
    else if (dofile(L, NULL) != LUA_OK) return 0;
  }
  lua_pushboolean(L, 1);
  return 1;
}

int main(int argc, char **argv) {
  /* libgomp read its settings before main: to make passive waiting the default, the process
   * starts over with it in the environment (if that fails, it goes on spinning). */
  if (blua_default_wait_policy()) execv("/proc/self/exe", argv);
#ifdef BLUA_HAVE_MPI
  /* Started by mpirun: join the job before anything runs. Without a launcher MPI stays off and
   * blua.dist is a single-process communicator (no singleton start-up cost). */
  if (ldist_launched()) {
    char msg[256];
    if (!ldist_init(msg, sizeof msg)) {
      print_error(msg);
      ldist_abort(EXIT_FAILURE);
      ldist_finalize();
      return EXIT_FAILURE;
    }
  }
#endif
  lua_State *L = luaL_newstate();
  if (L == NULL) {
    print_error("cannot create the Lua state: not enough memory");
    return EXIT_FAILURE;
  }
  g_state = L;
  main_args ma = {argc, argv};
  lua_pushcfunction(L, protected_main);
  lua_pushlightuserdata(L, &ma);
  int status = lua_pcall(L, 1, 1, 0);
  int ok = lua_toboolean(L, -1);
  report(L, status);
#ifdef BLUA_HAVE_MPI
  /* A rank that failed takes the whole job down, so no other rank waits for it forever. */
  if (!(status == LUA_OK && ok)) ldist_abort(EXIT_FAILURE);
#endif
  lua_close(L);
  g_state = NULL;
#ifdef BLUA_HAVE_MPI
  ldist_finalize();
#endif
  return (status == LUA_OK && ok) ? EXIT_SUCCESS : EXIT_FAILURE;
}
