// The embedded S3 stand-in: fauxqs (an S3-compatible dev server) in this process, on 127.0.0.1, objects stored as files.
// Used when no S3 is configured, so cold tiering works out of the box; never meant to face a network (any credentials pass).
import { mkdirSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

/** The stand-in's fixed credentials: a dev server on 127.0.0.1 holding test data, so they are a name, not a secret. */
export const EMBEDDED_S3_CREDENTIALS = { accessKeyId: 'gem-local', secretAccessKey: 'gem-local' } as const

export interface EmbeddedS3 {
  /** http://127.0.0.1:PORT */
  endpoint: string
  port: number
  /** Credentials it accepts (it accepts any). */
  credentials: { accessKeyId: string, secretAccessKey: string }
  stop(): Promise<void>
}

interface FastifyLike { listen(o: { port: number, host: string }): Promise<string>, close(): Promise<void> }

/**
 * Starts fauxqs with its S3 objects under `dir`. fauxqs's own startFauxqs() always listens on 0.0.0.0; this builds
 * the same app from its parts (stores, file persistence, router) and listens on `host` only. The parts are not in
 * fauxqs's `exports`, so they are loaded by file path (written against fauxqs 2.4).
 */
export async function startEmbeddedS3 (opts: { dir: string, port?: number, host?: string }): Promise<EmbeddedS3> {
  mkdirSync(opts.dir, { recursive: true })
  const dist = dirname(fileURLToPath(import.meta.resolve('fauxqs')))
  const load = async <T>(rel: string): Promise<T> => await import(pathToFileURL(join(dist, rel)).href) as T
  const { buildApp } = await load<{ buildApp(o: unknown): FastifyLike }>('app.js')
  const { SqsStore } = await load<{ SqsStore: new () => unknown }>('sqs/sqsStore.js')
  const { SnsStore } = await load<{ SnsStore: new () => unknown }>('sns/snsStore.js')
  const { S3Store } = await load<{ S3Store: new () => { persistence?: unknown } }>('s3/s3Store.js')
  const { FileS3Persistence } = await load<{ FileS3Persistence: new (dir: string) => { loadS3(s: unknown): void, close(): void } }>('s3/fileS3Persistence.js')
  const s3Store = new S3Store()
  const persistence = new FileS3Persistence(opts.dir)
  persistence.loadS3(s3Store)
  s3Store.persistence = persistence
  const app = buildApp({ logger: false, stores: { sqsStore: new SqsStore(), snsStore: new SnsStore(), s3Store } })
  const host = opts.host ?? '127.0.0.1'
  let address: string
  try {
    address = await app.listen({ port: opts.port ?? 0, host })
  } catch (err) {
    persistence.close()
    throw err
  }
  const port = Number(new URL(address).port)
  let stopped: Promise<void> | undefined
  return {
    endpoint: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    port,
    credentials: EMBEDDED_S3_CREDENTIALS,
    stop: () => {
      stopped ??= (async () => {
        try { await app.close() } finally { persistence.close() }
      })()
      return stopped
    },
  }
}
