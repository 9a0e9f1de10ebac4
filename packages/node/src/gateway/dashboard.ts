// The built dashboard (demo/dist) served read-only at /dashboard/ on every gateway, so any node is one URL from it.
// It never builds the dashboard (`npm start` and the browser suite do, see demo/build-dashboard.ts); when it is missing it says so.
import { existsSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { serveStatic } from '@hono/node-server/serve-static'
import type { Hono, MiddlewareHandler } from 'hono'
import { restError } from './json-errors.ts'

/** Where the workspace's Vite build writes the dashboard. */
export const DASHBOARD_DIST = resolve(import.meta.dirname, '../../../../demo/dist')

export function mountDashboard (app: Hono, dir: string = DASHBOARD_DIST): void {
  // Relative asset urls in the page only resolve under the trailing slash.
  app.get('/dashboard', c => c.redirect('/dashboard/', 301))
  // Made on first use: serveStatic complains on the console about a root that does not exist (yet).
  let files: MiddlewareHandler | undefined
  app.on(['GET', 'HEAD'], '/dashboard/*', async (c, next) => {
    // Dot files (the build stamp) are bookkeeping, not part of the page.
    if (c.req.path.includes('/.')) return await next()
    if (!existsSync(join(dir, 'index.html'))) {
      return restError('NOT_FOUND', 'the dashboard is not built: run `npm run build -w demo` (npm start builds it when it is missing)')
    }
    files ??= serveStatic({ root: dir, rewriteRequestPath: path => path.slice('/dashboard'.length) })
    const res = await files(c, next)
    // Vite names assets by content hash: they never change, while index.html must be fetched fresh after a rebuild.
    if (res instanceof Response && res.status === 200) {
      res.headers.set('cache-control', /\/$|\.html$/.test(c.req.path) ? 'no-cache' : 'public, max-age=31536000, immutable')
    }
    return res
  })
}
