// Builds one of the browser suite's test pages with Vite: no config file, env files or public dir, the cache in a temp
// dir of the caller's, unminified, so a build reads only the page and the packages it imports, and nothing else.
import { join } from 'node:path'
import { build } from 'vite'

/** Builds the page whose index.html is in `root` into `outDir` (emptied first), caching under `cacheRoot`. */
export async function buildTestPage (root: string, outDir: string, cacheRoot: string): Promise<void> {
  await build({
    root,
    configFile: false,
    envFile: false,
    publicDir: false,
    cacheDir: join(cacheRoot, 'vite-cache'),
    logLevel: 'warn',
    // libp2p and onnxruntime-web make big chunks; they are test pages, not shipped.
    build: { outDir, emptyOutDir: true, minify: false, reportCompressedSize: false, target: 'es2023', chunkSizeWarningLimit: 30_000 },
  })
}
