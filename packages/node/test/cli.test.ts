// End-to-end tests of the `gem` CLI: a real node started with `gem start` in a child process, driven by more CLI processes.
// Covers publish/subscribe/topics/status, usage errors (exit 2), server errors (exit 1) and a graceful SIGTERM stop.
import { test, describe, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const GEM = fileURLToPath(new URL('../bin/gem.js', import.meta.url))
const DEADLINE_MS = 30_000

interface Finished { code: number | null, signal: NodeJS.Signals | null, stdout: string, stderr: string }

/** Env for children: no GEM_* settings leaking in from the developer's shell. */
function cleanEnv (extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('GEM_')) env[k] = v
  return { ...env, ...extra }
}

function killByPid (child: ChildProcess): void {
  if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
    try { process.kill(child.pid, 'SIGKILL') } catch {}
  }
}

/** Waits for a child to exit (with a deadline) and collects its output. */
function finished (child: ChildProcess, out: { stdout: string, stderr: string }): Promise<Finished> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`gem process ${child.pid} did not exit within ${DEADLINE_MS} ms\n${out.stderr}`)), DEADLINE_MS)
    child.once('close', (code, signal) => { clearTimeout(timer); resolve({ code, signal, ...out }) })
  })
}

/** Runs `gem ...args` to completion; the process is killed (by pid) if anything goes wrong. */
async function gem (args: string[], opts: { input?: string, env?: Record<string, string> } = {}): Promise<Finished> {
  const child = spawn(process.execPath, [GEM, ...args], { env: cleanEnv(opts.env), stdio: ['pipe', 'pipe', 'pipe'] })
  const out = { stdout: '', stderr: '' }
  child.stdout.on('data', (c: Buffer) => { out.stdout += c.toString() })
  child.stderr.on('data', (c: Buffer) => { out.stderr += c.toString() })
  try {
    child.stdin.end(opts.input ?? '')
    return await finished(child, out)
  } finally {
    killByPid(child)
  }
}

const jsonLines = (text: string): Array<Record<string, unknown>> =>
  text.split('\n').filter(l => l.trim() !== '').map(l => JSON.parse(l) as Record<string, unknown>)

interface RunningNode { child: ChildProcess, out: { stdout: string, stderr: string }, url: string, nodeId: string }

/** `gem start` on dataDir with an ephemeral port; resolves once node.json names this process and its URL. */
async function startNodeProcess (dataDir: string): Promise<RunningNode> {
  const child = spawn(process.execPath, [GEM, 'start', '--http-port', '0', '--data-dir', dataDir], {
    env: cleanEnv(),
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const out = { stdout: '', stderr: '' }
  child.stdout!.on('data', (c: Buffer) => { out.stdout += c.toString() })
  child.stderr!.on('data', (c: Buffer) => { out.stderr += c.toString() })
  try {
    const deadline = Date.now() + DEADLINE_MS
    for (;;) {
      if (child.exitCode !== null) throw new Error(`gem start exited with ${child.exitCode}\n${out.stderr}\n${out.stdout}`)
      try {
        const info = JSON.parse(readFileSync(join(dataDir, 'node.json'), 'utf8')) as { pid?: number, httpUrl?: string, nodeId: string }
        if (info.pid === child.pid && typeof info.httpUrl === 'string') return { child, out, url: info.httpUrl, nodeId: info.nodeId }
      } catch {}
      if (Date.now() > deadline) throw new Error(`no node.json from gem start within ${DEADLINE_MS} ms\n${out.stderr}`)
      await new Promise(resolve => setTimeout(resolve, 50))
    }
  } catch (err) {
    killByPid(child)
    throw err
  }
}

describe('gem CLI against a running node', () => {
  let dir: string
  let node: RunningNode | undefined

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'gem-cli-'))
    node = await startNodeProcess(join(dir, 'data'))
  })

  after(() => {
    if (node !== undefined) killByPid(node.child)
    rmSync(dir, { recursive: true, force: true })
  })

  const url = () => ['--url', node!.url]

  test('gem start prints one human line with the node id and the URL', () => {
    assert.match(node!.out.stderr, new RegExp(`GEM node ${node!.nodeId} listening on ${node!.url.replace(/[.]/g, '\\.')}`))
    assert.match(node!.url, /^http:\/\/127\.0\.0\.1:\d+$/)
  })

  test('topics create, then list', async () => {
    const created = await gem(['topics', 'create', 'orders', '--partitions', '3', ...url()])
    assert.equal(created.code, 0, created.stderr)
    const info = JSON.parse(created.stdout) as { name: string, partitions: number }
    assert.equal(info.name, 'orders')
    assert.equal(info.partitions, 3)

    const listed = await gem(['topics', ...url()])
    assert.equal(listed.code, 0, listed.stderr)
    assert.match(listed.stdout, /^orders\s+3\s+0\s/m)

    const json = await gem(['topics', 'list', '--json', ...url()])
    assert.equal(json.code, 0, json.stderr)
    assert.deepEqual((JSON.parse(json.stdout) as Array<{ name: string }>).map(t => t.name), ['orders'])

    const again = await gem(['topics', 'create', 'orders', ...url()])
    assert.equal(again.code, 1)
    assert.match(again.stderr, /^error TOPIC_EXISTS: /m)
  })

  test('publish from an argument and from stdin lines prints one ack per message', async () => {
    const one = await gem(['publish', 'orders', 'hello', '--key', 'k1', '--header', 'source=cli', '--id', 'first', ...url()])
    assert.equal(one.code, 0, one.stderr)
    const [ack] = jsonLines(one.stdout)
    assert.equal(ack!.id, 'first')
    assert.equal(typeof ack!.partition, 'number')
    assert.equal(typeof ack!.offset, 'number')

    // GEM_URL is the fallback for --url.
    const many = await gem(['publish', 'orders'], { input: 'a\nb\n\nc\n', env: { GEM_URL: node!.url } })
    assert.equal(many.code, 0, many.stderr)
    assert.equal(jsonLines(many.stdout).length, 3)

    const json = await gem(['publish', 'orders', '{"n":1}', '--json', ...url()])
    assert.equal(json.code, 0, json.stderr)
  })

  test('subscribe --from earliest prints one JSON line per message', async () => {
    const sub = await gem(['subscribe', 'orders', '--from', 'earliest', '--count', '5', ...url()])
    assert.equal(sub.code, 0, sub.stderr)
    const lines = jsonLines(sub.stdout)
    assert.equal(lines.length, 5)
    const text = JSON.stringify(lines)
    for (const p of ['hello', '"a"', '"b"', '"c"']) assert.ok(text.includes(p), `${p} in ${text}`)
  })

  test('subscribe with a durable group', async () => {
    const sub = await gem(['subscribe', 'orders', '--group', 'billing', '--from', 'earliest', '--count', '5', ...url()])
    assert.equal(sub.code, 0, sub.stderr)
    assert.equal(jsonLines(sub.stdout).length, 5)
  })

  test('status prints a readable summary', async () => {
    const st = await gem(['status', ...url()])
    assert.equal(st.code, 0, st.stderr)
    assert.match(st.stdout, /ok/)
    assert.match(st.stdout, /orders/)
    const json = await gem(['status', '--json', ...url()])
    assert.equal(json.code, 0, json.stderr)
    assert.equal((JSON.parse(json.stdout) as { health: { status: string } }).health.status, 'ok')
  })

  test('bad command-line input exits 2 with a message, and the node keeps serving', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['publish'], /missing required argument 'topic'/],
      [['publish', 'orders', 'x', '--bogus', ...url()], /unknown option '--bogus'/],
      [['subscribe', 'orders', '--from', 'sometime', ...url()], /--from expects earliest, latest or an offset/],
      [['topics', 'create', 't2', '--partitions', 'many', ...url()], /--partitions expects an integer/],
      [['publish', 'orders', 'x', '--header', 'novalue', ...url()], /--header expects key=value/],
      [['publish', 'orders', 'x', '--url', 'not a url'], /--url must be an http\(s\) URL/],
      [['start', '--http-port', 'abc', '--data-dir', join(dir, 'unused')], /httpPort.*--http-port/],
      [['start', '--durability', 'sometimes', '--data-dir', join(dir, 'unused')], /durability.*fsync, none/],
      [['frobnicate'], /unknown command 'frobnicate'/],
    ]
    for (const [args, message] of cases) {
      const r = await gem(args)
      assert.equal(r.code, 2, `gem ${args.join(' ')}: ${r.stderr}`)
      assert.match(r.stderr, /^error BAD_REQUEST: /m, `gem ${args.join(' ')}`)
      assert.match(r.stderr, message, `gem ${args.join(' ')}`)
    }
    const st = await gem(['status', ...url()])
    assert.equal(st.code, 0, st.stderr)
  })

  test('server and network errors exit 1 with the error code', async () => {
    const missing = await gem(['publish', 'no-such-topic', 'x', ...url()])
    assert.equal(missing.code, 1)
    assert.match(missing.stderr, /^error TOPIC_NOT_FOUND: /m)

    const down = await gem(['status', '--url', 'http://127.0.0.1:1'])
    assert.equal(down.code, 1)
    assert.match(down.stderr, /^error UNAVAILABLE: /m)
  })

  test('topics delete removes the topic', async () => {
    assert.equal((await gem(['topics', 'create', 'scratch', ...url()])).code, 0)
    const del = await gem(['topics', 'delete', 'scratch', ...url()])
    assert.equal(del.code, 0, del.stderr)
    const list = await gem(['topics', 'list', '--json', ...url()])
    assert.deepEqual((JSON.parse(list.stdout) as Array<{ name: string }>).map(t => t.name), ['orders'])
  })

  test('SIGTERM stops the node gracefully (exit 0); a restart on the same data dir keeps id and messages', async () => {
    const first = node!
    const exited = finished(first.child, first.out)
    first.child.kill('SIGTERM')
    const r = await exited
    assert.equal(r.code, 0, r.stderr)
    const file = JSON.parse(readFileSync(join(dir, 'data', 'node.json'), 'utf8')) as { nodeId: string, httpUrl?: string, stoppedAt?: string }
    assert.equal(file.nodeId, first.nodeId)
    assert.equal(file.httpUrl, undefined)
    assert.equal(typeof file.stoppedAt, 'string')

    node = await startNodeProcess(join(dir, 'data'))
    assert.equal(node.nodeId, first.nodeId)
    const list = await gem(['topics', 'list', '--json', ...url()])
    assert.equal(list.code, 0, list.stderr)
    const [orders] = JSON.parse(list.stdout) as Array<{ name: string, offsets: Array<{ low: number, high: number }> }>
    assert.equal(orders!.name, 'orders')
    assert.equal(orders!.offsets.reduce((n, o) => n + o.high - o.low, 0), 5)

    const second = node
    const exited2 = finished(second.child, second.out)
    second.child.kill('SIGINT')
    assert.equal((await exited2).code, 0)
  })
})
