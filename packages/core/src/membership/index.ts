// The membership surface: SWIM failure detection with Lifeguard, incarnations and piggy-backed load reports.
// Sans-I/O: a driver feeds join/tick/receive with `now` and an injected random(), and performs the returned sends.
//
//   const m = new Membership({ self: { id: 'a', addr }, random })
//   act(m.join(['seed-addr'], now))                   // act(): send each 'send', surface each 'member' event
//   act(m.receive(fromAddr, JSON.parse(bytes), now))
//   act(m.tick(now)); setTimer(m.nextDeadline() - now, ...)
export { Membership, DEFAULT_MEMBERSHIP_CONFIG } from './membership.ts'
export type { MembershipConfig, MembershipOptions, MemberView, MemberEvent, SendAction, MembershipAction, MembershipStats } from './membership.ts'
export { parseMessage, MEMBERSHIP_VERSION, DEFAULT_MESSAGE_LIMITS } from './messages.ts'
export type {
  MembershipMessage, MessageBody, MessageType, GossipUpdate, AliveUpdate, SuspectUpdate, DeadUpdate, LoadUpdate,
  LoadReport, MemberMeta, MemberSnapshot, MemberState, MessageLimits, ParseResult,
} from './messages.ts'
export { Suspicion, suspicionTimeoutMs, suspicionBounds } from './suspicion.ts'
export { GossipQueue } from './gossip-queue.ts'
