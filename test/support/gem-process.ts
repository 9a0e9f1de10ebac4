// Test harness: runs a real GEM node as a child process (`gem start`) on a temp data dir,
// finds its gateway URL from node.json, and always kills what it started.
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'

const ROOT = resolve(import.meta.dirname, '../..')
const CLI = join(ROOT, 'packages/node/src/cli/main.ts')

export interface GemProcess {
  url: string
  dataDir: string
  child: ChildProcess
  output(): string
  /** SIGKILL: no flush, no goodbye. */
  kill(): Promise<void>
  /** SIGTERM and wait for a clean exit; returns the exit code. */
  stop(): Promise<number | null>
}

/**
 * Every node this process started and has not seen exit. If the test or bench process itself dies (an uncaught error
 * skips its `finally` blocks), the exit hook still SIGKILLs them, so no node outlives the run that started it.
 */
const live = new Set<ChildProcess>()
process.once('exit', () => { for (const c of live) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL') })

export function tempDataDir (prefix = 'gem-test-', parent = tmpdir()): { dir: string, remove(): void } {
  const dir = mkdtempSync(join(parent, prefix))
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) }
}

export async function startGem (dataDir: string, extraArgs: string[] = [], timeoutMs = 20_000): Promise<GemProcess> {
  const nodeJson = join(dataDir, 'node.json')
  // A node.json from a previous run must not be mistaken for this one.
  rmSync(nodeJson, { force: true })
  // GEM_TEST_NODE_FLAGS: Node flags for the spawned node only (--cpu-prof, --trace-gc, --inspect=...), for profiling a bench.
  const nodeFlags = (process.env.GEM_TEST_NODE_FLAGS ?? '').split(' ').filter(Boolean)
  const child = spawn(process.execPath, [...nodeFlags, CLI, 'start', '--data-dir', dataDir, '--http-port', '0', '--log-level', 'warn', ...extraArgs], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, GEM_CONFIG: '' },
  })
  let out = ''
  child.stdout!.on('data', d => { out += d })
  child.stderr!.on('data', d => { out += d })
  live.add(child)
  const exited = new Promise<number | null>(res => child.once('exit', code => { live.delete(child); res(code) }))
  const deadline = Date.now() + timeoutMs
  let url: string | undefined
  while (url === undefined) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`gem start exited early (${child.exitCode ?? child.signalCode}):\n${out}`)
    if (Date.now() > deadline) { child.kill('SIGKILL'); throw new Error(`gem start did not write node.json within ${timeoutMs} ms:\n${out}`) }
    if (existsSync(nodeJson)) {
      try {
        const info = JSON.parse(readFileSync(nodeJson, 'utf8')) as { httpUrl?: string, pid?: number }
        if (info.pid === child.pid && typeof info.httpUrl === 'string') {
          const res = await fetch(info.httpUrl + '/health').catch(() => undefined)
          if (res?.ok === true) url = info.httpUrl
        }
      } catch { /* partially written: try again */ }
    }
    if (url === undefined) await new Promise(r => setTimeout(r, 25))
  }
  return {
    url,
    dataDir,
    child,
    output: () => out,
    kill: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
      await exited
    },
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000)
      try { return await exited } finally { clearTimeout(timer) }
    },
  }
}

/** One JSON request to a gateway; a string body is sent as it is (for malformed-JSON tests). */
export async function api (url: string, method: string, path: string, body?: unknown): Promise<{ status: number, json: any, headers: Headers }> {
  const res = await fetch(url + path, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    signal: AbortSignal.timeout(20_000),
  })
  const text = await res.text()
  let json: unknown
  try { json = text.length > 0 ? JSON.parse(text) : undefined } catch { json = text }
  return { status: res.status, json, headers: res.headers }
}

/** Reads every message of a partition through the REST API. */
/** A node's libp2p identity as its GET /info reports it: the peer id and the plain tcp multiaddr a Node host dials. */
export async function tcpTarget (url: string): Promise<{ peer: string, addr: string }> {
  const info = (await api(url, 'GET', '/info')).json
  const addr = (info.multiaddrs as string[]).find(a => a.includes('/tcp/') && !a.includes('/ws'))
  if (addr === undefined) throw new Error(`${url} lists no plain tcp multiaddr: ${JSON.stringify(info.multiaddrs)}`)
  return { peer: info.peer_id as string, addr }
}

export async function readAll (url: string, topic: string, partition = 0): Promise<Array<{ id: string, offset: number, payload: unknown }>> {
  const out: Array<{ id: string, offset: number, payload: unknown }> = []
  let from = 0
  for (;;) {
    const r = await api(url, 'GET', `/topics/${topic}/messages?partition=${partition}&from=${from}&limit=1000`)
    if (r.status !== 200) throw new Error(`read failed: ${r.status} ${JSON.stringify(r.json)}`)
    if (r.json.messages.length === 0) return out
    out.push(...r.json.messages)
    from = r.json.next
  }
}
