// The V8 flags every launcher passes to a GEM server process it spawns (the local mesh, the test harness, benches).
// They live here once so that what `npm start` runs, what the tests exercise and what the benchmarks measure agree.

/**
 * A young generation that starts at its full 16 MiB per semi-space instead of growing there from 1 MiB: at 5k msg/s
 * a node allocates a few KiB per message (frames, JSON, batches) and, from the default start, scavenges about
 * 3 times a second, each pause stalling every message in flight. Starting big cuts the scavenges ~2.3x (32 -> 14
 * over 55k messages, `--trace-gc`) at the same pause length, since a scavenge costs what survives, not the space.
 * `gem start` run directly (npx gem start) uses V8's defaults unless you pass the flag yourself:
 * `node --min-semi-space-size=16 node_modules/.bin/gem start`. The cost is up to 32 MiB more resident memory.
 */
export const SERVER_V8_FLAGS: readonly string[] = ['--min-semi-space-size=16']
