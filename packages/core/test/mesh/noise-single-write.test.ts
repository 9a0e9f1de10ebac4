// singleWriteEncrypter: a secured stream's multi-buffer encrypt output becomes one buffer; single buffers pass through.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { singleWriteEncrypter } from '../../src/mesh/noise-single-write.ts'

class FakeList {
  bufs: Uint8Array[]
  constructor (bufs: Uint8Array[]) { this.bufs = bufs }
  subarray (): Uint8Array { const out = new Uint8Array(this.bufs.reduce((n, b) => n + b.byteLength, 0)); let at = 0; for (const b of this.bufs) { out.set(b, at); at += b.byteLength } return out }
}
class FakeSecured { encrypt (data: Uint8Array[]): FakeList { return new FakeList(data) } }

test('an encrypted send of several buffers reaches the transport as one; one buffer stays as it is', async () => {
  const factory = (): any => ({ protocol: '/fake', secureInbound: async () => ({ connection: new FakeSecured() }), secureOutbound: async () => ({ connection: new FakeSecured() }) })
  const enc = singleWriteEncrypter(factory)({})
  const { connection } = await enc.secureOutbound({} as any) as any
  assert.deepEqual(connection.encrypt([Uint8Array.of(0, 3), Uint8Array.of(7, 8, 9)]), Uint8Array.of(0, 3, 7, 8, 9))
  const single = connection.encrypt([Uint8Array.of(1)])
  assert.ok(single instanceof FakeList)
  const again = await enc.secureInbound({} as any) as any
  assert.deepEqual(again.connection.encrypt([Uint8Array.of(1), Uint8Array.of(2)]), Uint8Array.of(1, 2))
})

test('an encrypt output without the bufs field it looks at is passed on unchanged, not thrown on', async () => {
  class Opaque { subarray (): Uint8Array { return Uint8Array.of(9) } }
  class OtherSecured { encrypt (): Opaque { return new Opaque() } }
  const factory = (): any => ({ protocol: '/fake', secureInbound: async () => ({ connection: new OtherSecured() }), secureOutbound: async () => ({ connection: new OtherSecured() }) })
  const { connection } = await singleWriteEncrypter(factory)({}).secureOutbound({} as any) as any
  assert.ok(connection.encrypt() instanceof Opaque)
})
