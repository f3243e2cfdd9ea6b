/* The default waiting behaviour of OpenMP threads (private to the blua command and the module
 * loader). libgomp spin-waits for a few milliseconds at every barrier by default; when another
 * process holds one of the cores, the waiting thread burns the time slice the late thread
 * needs and an epoch runs several times slower than with one thread. So blua makes waiting
 * threads sleep after a short spin: BLUA_SPIN_COUNT rounds of libgomp's spin loop, about 7 µs
 * on the machines measured (24 ns a round). That covers the gap between two kernels called
 * one after another from Lua, where sleeping at once made each parallel region pay a wake-up
 * of ~40 µs; with a busy process beside it, a Lua-driven epoch costs what it costs with
 * sleeping at once (scripts/bench/waiting.lua).
 *
 * libgomp reads its settings once, while it is being loaded, so they must be in the
 * environment before that: the blua command re-executes itself, the module loader sets them
 * before it loads the part of the module that pulls libgomp in. */
#ifndef BLUA_WAIT_POLICY_H
#define BLUA_WAIT_POLICY_H

/* Set (to "1") alongside OMP_WAIT_POLICY when blua chose it, so that tools can tell blua's
 * default from a setting of the user's (and give other programs their own default). */
#define BLUA_WAIT_MARK "BLUA_SET_WAIT_POLICY"

#define BLUA_SPIN_COUNT "300"

/* Puts OMP_WAIT_POLICY=passive and GOMP_SPINCOUNT=BLUA_SPIN_COUNT into the environment unless
 * the user chose a policy (OMP_WAIT_POLICY or GOMP_SPINCOUNT set, even to an empty string).
 * Returns 1 when it did. */
int blua_default_wait_policy(void);

#endif
