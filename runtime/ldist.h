/* The MPI backend of blua.dist. It is compiled into the blua executable only (never into the
 * loadable module): Open MPI loads its own plugins with dlopen, which fails when libmpi itself
 * came in through a Lua C module opened with RTLD_LOCAL. docs/design.md, "Distributed training". */
#ifndef LDIST_H
#define LDIST_H

#include <lua.h>

/* 1 when this process was started by an MPI launcher (mpirun sets its rank variables). */
int ldist_launched(void);
/* Initialises MPI with MPI_THREAD_FUNNELED (OpenMP threads never call MPI). Returns 1 on
 * success; on failure writes a message into msg and returns 0. */
int ldist_init(char *msg, size_t len);
/* The prefix for error messages of this process ("rank 1 of 2"), or "" on a single process. */
const char *ldist_who(void);
/* A fatal error in a job of several ranks: MPI_Abort, so no other rank waits forever in a
 * collective. Does nothing (returns) when MPI is not running or the job has one rank. */
void ldist_abort(int code);
/* MPI_Finalize when MPI was initialised and not yet finalised. */
void ldist_finalize(void);
/* The backend table for package.preload["blua.mpi"]. */
int luaopen_blua_mpi(lua_State *L);

#endif
