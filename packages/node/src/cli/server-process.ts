// How a `gem start` process is tuned for memory: glibc malloc and V8's young generation, which are set only at process
// start, so the process re-executes itself once (same pid, via process.execve) with them. It never touches other commands.
//
// Measured on the tiers bench (1M retained 256-byte messages, offload to S3): RSS right after the load was 443 MiB, of
// which ~185 MiB was malloc memory that glibc kept (per-thread arenas of LevelDB's and libuv's threads, and large
// Buffers placed in the heap once glibc's dynamic mmap threshold had risen) and ~128 MiB V8's young generation, grown to
// its default maximum under the publish load. Two arenas and a fixed mmap threshold (large blocks are mapped, and go back
// to the OS when freed) plus 16 MiB semi-spaces: 245 MiB.

/** Set in the re-executed process (and by whoever wants the process left as it is). */
const MARKER = 'GEM_PROCESS_TUNED'
const SEMI_SPACE_MIB = 16
const MALLOC_ENV: Record<string, string> = { MALLOC_ARENA_MAX: '2', MALLOC_MMAP_THRESHOLD_: String(128 * 1024) }

/**
 * Re-executes this process with the tuned settings, unless that is done already, opted out of (GEM_PROCESS_TUNED set)
 * or impossible (no process.execve: Windows, Node < 22.15). Settings the user gave (env, Node flags) are kept as given.
 * Returns only when the process is not re-executed.
 */
export function tuneServerProcess (): void {
  const execve = (process as { execve?: (file: string, args: string[], env: NodeJS.ProcessEnv) => never }).execve
  if (process.env[MARKER] !== undefined || typeof execve !== 'function' || process.platform !== 'linux') return
  const env: NodeJS.ProcessEnv = { ...process.env, [MARKER]: '1' }
  for (const [k, v] of Object.entries(MALLOC_ENV)) env[k] ??= v
  const given = [...process.execArgv, process.env.NODE_OPTIONS ?? ''].join(' ')
  const flags = /--max-semi-space-size\b|--semi-space-growth-factor\b/.test(given) ? [] : [`--max-semi-space-size=${SEMI_SPACE_MIB}`]
  try {
    execve.call(process, process.execPath, [process.execPath, ...process.execArgv, ...flags, ...process.argv.slice(1)], env)
  } catch {
    // Not re-executed (e.g. the call is refused in this environment): run untuned rather than not at all.
  }
}
