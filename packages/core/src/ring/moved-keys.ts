// movedKeys: how much two placements differ, the work a membership change costs (handovers to plan).
// Pure comparison of two key -> replicas maps; it never decides anything.
import type { Placement } from './assign-partitions.ts'

export interface MovedKeys {
  /** Keys in either placement. */
  readonly keys: number
  /** Keys whose preferred leader changed (or that exist in only one placement). */
  readonly primary: number
  /** Keys whose replica set changed, ignoring order (or that exist in only one placement). */
  readonly replicaSets: number
  /** Replicas that land on a node that did not hold the key before: the copies a handover must make. */
  readonly slots: number
}

export function movedKeys (before: ReadonlyMap<string, readonly string[]>, after: ReadonlyMap<string, readonly string[]>): MovedKeys {
  let keys = before.size
  let primary = 0
  let replicaSets = 0
  let slots = 0
  for (const [key, now] of after) {
    const was = before.get(key)
    if (was === undefined) {
      keys++; primary++; replicaSets++; slots += now.length
      continue
    }
    if (was[0] !== now[0]) primary++
    let added = 0
    for (const id of now) if (!was.includes(id)) added++
    slots += added
    if (added > 0 || was.length !== now.length) replicaSets++
  }
  for (const [key] of before) if (!after.has(key)) { primary++; replicaSets++ }
  return { keys, primary, replicaSets, slots }
}
