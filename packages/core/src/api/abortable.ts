// Waiting on a promise with an AbortSignal: the SDK's publish on every runtime (Node, browser peers) stops waiting when
// the signal fires. Aborting stops the wait, not the work: a publish may still be stored.
import { GemError } from '../errors.ts'

/** `p`, or its signal's reason (CLOSED 'aborted' by default) if the signal fires first. */
export async function untilAborted<T> (p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return await p
  return await new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason ?? new GemError('CLOSED', 'aborted'))
    signal.addEventListener('abort', onAbort, { once: true })
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort))
  })
}
