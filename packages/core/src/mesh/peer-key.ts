// Peer keys: the Ed25519 identity a mesh node's peer id comes from, and its byte form for persistence.
// Web-standard (Web Crypto through @libp2p/crypto); where the bytes are kept is the runtime package's business.
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { PrivateKey } from '@libp2p/interface'
import { GemError } from '../errors.ts'

export type { PrivateKey }

export function generatePeerKey (): Promise<PrivateKey> {
  return generateKeyPair('Ed25519')
}

/** libp2p's protobuf key encoding, the form other libp2p tools read too. */
export function peerKeyToBytes (key: PrivateKey): Uint8Array {
  return privateKeyToProtobuf(key)
}

export function peerKeyFromBytes (bytes: Uint8Array): PrivateKey {
  try {
    return privateKeyFromProtobuf(bytes)
  } catch (err) {
    throw new GemError('CORRUPT_RECORD', `not a libp2p private key: ${(err as Error).message}`)
  }
}

export function peerIdOf (key: PrivateKey): string {
  return peerIdFromPrivateKey(key).toString()
}
