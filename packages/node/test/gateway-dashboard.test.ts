// The /dashboard/ route (gateway/dashboard.ts) on a bare Hono app: serves a built directory with the right cache
// headers, refuses traversal and dot files, and says how to build the dashboard when it is missing.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Hono } from 'hono'
import { mountDashboard } from '../src/gateway/dashboard.ts'
import { restError } from '../src/gateway/json-errors.ts'

function appServing (dir: string): Hono {
  const app = new Hono()
  mountDashboard(app, dir)
  app.notFound(c => restError('NOT_FOUND', `no route for ${c.req.method} ${c.req.path}`))
  return app
}

test('serves the built dashboard under /dashboard/, with no-cache html and immutable assets', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'gem-dashboard-dist-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  mkdirSync(join(dir, 'assets'))
  writeFileSync(join(dir, 'index.html'), '<!doctype html><title>GEM</title>')
  writeFileSync(join(dir, 'assets', 'index-abc.js'), 'console.log(1)')
  writeFileSync(join(dir, '.built-from'), '1')
  writeFileSync(join(dir, '..', 'outside.txt'), 'secret')
  t.after(() => rmSync(join(dir, '..', 'outside.txt'), { force: true }))
  const app = appServing(dir)

  const redirect = await app.request('/dashboard')
  assert.equal(redirect.status, 301)
  assert.equal(redirect.headers.get('location'), '/dashboard/')

  const index = await app.request('/dashboard/')
  assert.equal(index.status, 200)
  assert.match(index.headers.get('content-type') ?? '', /text\/html/)
  assert.equal(index.headers.get('cache-control'), 'no-cache')
  assert.match(await index.text(), /GEM/)

  const asset = await app.request('/dashboard/assets/index-abc.js')
  assert.equal(asset.status, 200)
  assert.match(asset.headers.get('content-type') ?? '', /javascript/)
  assert.match(asset.headers.get('cache-control') ?? '', /immutable/)

  const head = await app.request('/dashboard/', { method: 'HEAD' })
  assert.equal(head.status, 200)

  for (const path of ['/dashboard/../outside.txt', '/dashboard/%2e%2e/outside.txt', '/dashboard/..%2foutside.txt', '/dashboard/.built-from', '/dashboard/missing.js']) {
    const r = await app.request(path)
    assert.equal(r.status, 404, path)
    assert.equal((await r.json() as { error: string }).error, 'NOT_FOUND', path)
  }
  const post = await app.request('/dashboard/', { method: 'POST' })
  assert.equal(post.status, 404)
})

test('a dashboard that is not built answers NOT_FOUND with how to build it, and starts serving once it is', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'gem-dashboard-missing-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const app = appServing(join(dir, 'dist'))
  const r = await app.request('/dashboard/')
  assert.equal(r.status, 404)
  const body = await r.json() as { error: string, message: string }
  assert.equal(body.error, 'NOT_FOUND')
  assert.match(body.message, /npm run build -w demo/)

  mkdirSync(join(dir, 'dist'))
  writeFileSync(join(dir, 'dist', 'index.html'), '<!doctype html><title>GEM</title>')
  assert.equal((await app.request('/dashboard/')).status, 200)
})
