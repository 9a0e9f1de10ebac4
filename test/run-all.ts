// `npm test`: typecheck, core tests on Node, Deno and Bun, node-package and integration tests, then browser specs.
// Streams each runner's output, sums their pass/fail counts, and ends with one line `N passed, N failed`.
import { spawn } from 'node:child_process'
import { existsSync, globSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = dirname(dirname(fileURLToPath(import.meta.url)))
const MINUTE = 60_000

interface Counts { passed: number, failed: number }

interface Step {
  name: string
  cmd: string
  args: string[]
  /** Wall-clock limit for the whole runner: a hung runner is killed and counted as a failure. */
  timeoutMs: number
  parse(output: string): Counts | null
  /** Set when the step cannot run meaningfully (no test files): printed instead of running. */
  skip?: string
}

interface Result extends Counts { name: string, note?: string }

const bin = (name: string): string => {
  const local = join(ROOT, 'node_modules', '.bin', name)
  return existsSync(local) ? local : name
}

const files = (...patterns: string[]): string[] =>
  patterns.flatMap(p => globSync(p, { cwd: ROOT })).filter(f => !f.includes('node_modules')).sort()

const lastInt = (text: string, re: RegExp): number | undefined => {
  let last: number | undefined
  for (const m of text.matchAll(re)) last = Number(m[1])
  return last
}

/** node --test: the spec reporter's `ℹ pass N` or TAP's `# pass N`; cancelled tests count as failed. */
function parseNodeTest (out: string): Counts | null {
  const pass = lastInt(out, /^(?:ℹ|#) pass (\d+)$/gm)
  const fail = lastInt(out, /^(?:ℹ|#) fail (\d+)$/gm)
  if (pass === undefined || fail === undefined) return null
  return { passed: pass, failed: fail + (lastInt(out, /^(?:ℹ|#) cancelled (\d+)$/gm) ?? 0) }
}

/** deno test: `ok | 12 passed (3 steps) | 0 failed (40ms)` (counts top-level tests; steps are in parentheses). */
function parseDeno (out: string): Counts | null {
  const lines = out.split('\n').filter(l => /^(ok|FAILED) \| \d+ passed/.test(l))
  const line = lines[lines.length - 1]
  if (line === undefined) return null
  return { passed: Number(/(\d+) passed/.exec(line)![1]), failed: Number(/(\d+) failed/.exec(line)?.[1] ?? 0) }
}

/** bun test: ` 12 pass` / ` 0 fail` lines at the end. */
function parseBun (out: string): Counts | null {
  const pass = lastInt(out, /^\s*(\d+) pass$/gm)
  const fail = lastInt(out, /^\s*(\d+) fail$/gm)
  if (pass === undefined && fail === undefined) return null
  return { passed: pass ?? 0, failed: fail ?? 0 }
}

/** Playwright list reporter: `12 passed`, `1 failed`, `2 flaky` (passed on retry), `3 did not run`, `1 interrupted`. */
function parsePlaywright (out: string): Counts | null {
  const passed = lastInt(out, /^\s*(\d+) passed/gm)
  const failed = lastInt(out, /^\s*(\d+) failed/gm)
  if (passed === undefined && failed === undefined) return null
  return {
    passed: (passed ?? 0) + (lastInt(out, /^\s*(\d+) flaky/gm) ?? 0),
    failed: (failed ?? 0) + (lastInt(out, /^\s*(\d+) did not run/gm) ?? 0) + (lastInt(out, /^\s*(\d+) interrupted/gm) ?? 0),
  }
}

function buildSteps (): Step[] {
  const node = process.execPath
  const coreTests = files('packages/core/test/**/*.test.ts')
  const nodeTests = files('packages/node/test/**/*.test.ts', 'test/**/*.test.ts').filter(f => !f.startsWith('test/browser/'))
  const browserSpecs = files('test/browser/**/*.spec.ts', 'test/browser/**/*.test.ts')
  // Integration tests spawn nodes and CLIs; on 2 cores one file at a time keeps them from starving each other.
  const cores = availableParallelism()
  const concurrency = cores <= 2 ? 1 : Math.min(4, Math.floor(cores / 2))
  const noCore = coreTests.length === 0 ? 'no test files in packages/core/test' : undefined
  return [
    {
      name: 'typecheck',
      cmd: bin('tsc'),
      args: ['--noEmit', '-p', 'tsconfig.json'],
      timeoutMs: 5 * MINUTE,
      parse: () => null, // exit code only; it counts as one test
    },
    {
      name: 'core (node)',
      cmd: node,
      args: ['--test', '--test-reporter=spec', '--test-timeout=300000', ...coreTests],
      timeoutMs: 8 * MINUTE,
      parse: parseNodeTest,
      ...(noCore !== undefined ? { skip: noCore } : {}),
    },
    {
      name: 'core (deno)',
      cmd: bin('deno'),
      args: ['test', '--no-check', '--no-lock', '-A', 'packages/core/test/'],
      timeoutMs: 8 * MINUTE,
      parse: parseDeno,
      ...(noCore !== undefined ? { skip: noCore } : {}),
    },
    {
      name: 'core (bun)',
      cmd: bin('bun'),
      args: ['test', '--timeout', '300000', './packages/core/test/'],
      timeoutMs: 8 * MINUTE,
      parse: parseBun,
      ...(noCore !== undefined ? { skip: noCore } : {}),
    },
    {
      name: 'node + integration',
      cmd: node,
      args: ['--test', '--test-reporter=spec', `--test-concurrency=${concurrency}`, '--test-timeout=300000', ...nodeTests],
      timeoutMs: 15 * MINUTE,
      parse: parseNodeTest,
      ...(nodeTests.length === 0 ? { skip: 'no test files in packages/node/test or test/' } : {}),
    },
    {
      name: 'browser (playwright)',
      cmd: bin('playwright'),
      args: ['test', '--reporter=list'],
      timeoutMs: 10 * MINUTE,
      parse: parsePlaywright,
      ...(browserSpecs.length === 0 ? { skip: 'no browser specs in test/browser yet' } : {}),
    },
  ]
}

// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-9;?]*[ -/]*[@-~]/g
/** Only the end of a runner's output holds its summary; keep a bounded tail. */
const TAIL_CHARS = 1 << 20

let current: ReturnType<typeof spawn> | undefined

function killGroup (signal: NodeJS.Signals): void {
  if (current?.pid === undefined || current.exitCode !== null) return
  try { process.kill(-current.pid, signal) } catch {}
}

async function runStep (step: Step): Promise<Result> {
  const shownCmd = step.cmd === process.execPath ? 'node' : step.cmd.replace(ROOT + '/', '')
  process.stdout.write(`\n=== ${step.name}: ${[shownCmd, ...step.args].join(' ')}\n`)
  const started = Date.now()
  let tail = ''
  const keep = (chunk: Buffer) => {
    tail += chunk.toString('utf8')
    if (tail.length > 2 * TAIL_CHARS) tail = tail.slice(-TAIL_CHARS)
  }
  const exit = await new Promise<{ code: number | null, signal: NodeJS.Signals | null, error?: Error, timedOut: boolean }>(resolve => {
    let timedOut = false
    // Its own process group, so that a timeout takes down the runner and every process its tests spawned.
    const child = spawn(step.cmd, step.args, {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
      env: { ...process.env, NO_COLOR: '1' },
    })
    current = child
    child.stdout!.on('data', (c: Buffer) => { process.stdout.write(c); keep(c) })
    child.stderr!.on('data', (c: Buffer) => { process.stderr.write(c); keep(c) })
    const timer = setTimeout(() => {
      timedOut = true
      process.stderr.write(`\n${step.name}: still running after ${step.timeoutMs / MINUTE} min; killing it\n`)
      killGroup('SIGKILL')
    }, step.timeoutMs)
    child.once('error', error => { clearTimeout(timer); resolve({ code: null, signal: null, error, timedOut }) })
    child.once('close', (code, signal) => { clearTimeout(timer); resolve({ code, signal, timedOut }) })
  })
  current = undefined
  const seconds = ((Date.now() - started) / 1000).toFixed(1)
  if (exit.error !== undefined) return { name: step.name, passed: 0, failed: 1, note: `could not start: ${exit.error.message}` }

  const counts = step.name === 'typecheck'
    ? { passed: exit.code === 0 ? 1 : 0, failed: exit.code === 0 ? 0 : 1 }
    : step.parse(tail.replace(ANSI, ''))
  const result: Result = { name: step.name, passed: counts?.passed ?? 0, failed: counts?.failed ?? 0, note: `${seconds}s` }
  // A runner that failed without reporting a failed test crashed (or timed out): that is one failure more.
  if ((exit.code !== 0 || exit.timedOut) && result.failed === 0) {
    result.failed = 1
    result.note += exit.timedOut ? ', timed out' : `, exited with ${exit.code ?? exit.signal} without a failing test`
  } else if (counts === null && step.name !== 'typecheck') {
    result.note += ', no summary found'
  }
  return result
}

async function main (): Promise<number> {
  const onSignal = (sig: NodeJS.Signals) => {
    killGroup('SIGTERM')
    process.stderr.write(`\ninterrupted by ${sig}\n`)
    process.exit(130)
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)

  const results: Result[] = []
  for (const step of buildSteps()) {
    if (step.skip !== undefined) {
      process.stdout.write(`\n=== ${step.name}: skipped (${step.skip})\n`)
      results.push({ name: step.name, passed: 0, failed: 0, note: `skipped: ${step.skip}` })
      continue
    }
    results.push(await runStep(step))
  }

  const width = Math.max(...results.map(r => r.name.length))
  process.stdout.write('\n=== summary\n')
  for (const r of results) {
    process.stdout.write(`${r.name.padEnd(width)}  ${String(r.passed).padStart(5)} pass  ${String(r.failed).padStart(4)} fail  ${r.note ?? ''}\n`)
  }
  const passed = results.reduce((n, r) => n + r.passed, 0)
  const failed = results.reduce((n, r) => n + r.failed, 0)
  process.stdout.write(`${passed} passed, ${failed} failed\n`)
  return failed > 0 ? 1 : 0
}

process.exitCode = await main()
