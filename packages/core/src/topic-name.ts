// Topic-name rules, shared by every surface so that a name valid on one is valid on all.
// Names are also storage keys (`<topic>/<partition>`), hence the conservative alphabet.
import { GemError } from './errors.ts'

const TOPIC_NAME = /^[A-Za-z0-9._-]{1,200}$/

export function assertTopicName (name: unknown): asserts name is string {
  if (typeof name !== 'string' || !TOPIC_NAME.test(name) || name === '.' || name === '..') {
    throw new GemError('BAD_REQUEST', `invalid topic name ${JSON.stringify(name)}: use 1-200 characters from A-Z a-z 0-9 . _ -`)
  }
}

export function deadLetterTopic (topic: string): string {
  return `${topic}.dlq`
}
