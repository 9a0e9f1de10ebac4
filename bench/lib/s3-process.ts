// The S3 stand-in (fauxqs) in a process of its own, for benchmarks: in the bench process it would share the load
// generator's event loop and slow the client, not the node. Prints {"endpoint"} on stdout; exits when stdin closes.
import { startEmbeddedS3 } from '../../packages/node/src/storage/embedded-s3.ts'

const s3 = await startEmbeddedS3({ dir: process.argv[2] })
process.stdout.write(JSON.stringify({ endpoint: s3.endpoint }) + '\n')
// The parent holds our stdin: when it goes (even killed), so do we.
process.stdin.resume()
process.stdin.on('end', () => { void s3.stop().finally(() => process.exit(0)) })
process.on('SIGTERM', () => { void s3.stop().finally(() => process.exit(0)) })
