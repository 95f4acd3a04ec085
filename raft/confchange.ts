// Encoding of a ConfChange in an entry's data, and applying one to a ConfState.
import { ConfChangeType } from './types.js';
import type { ConfChange, ConfState } from './types.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function encodeConfChange(cc: ConfChange): Uint8Array {
  return encoder.encode(JSON.stringify({ type: cc.type, node: cc.node }));
}

export function decodeConfChange(data: Uint8Array): ConfChange {
  const v = JSON.parse(decoder.decode(data)) as { type: unknown; node: unknown };
  if (typeof v.node !== 'string' || (v.type !== 0 && v.type !== 1 && v.type !== 2)) {
    throw new Error('malformed configuration change entry');
  }
  return { type: v.type as ConfChangeType, node: v.node };
}

/** The configuration that results from applying `cc` to `conf`. */
export function applyConfChange(conf: ConfState, cc: ConfChange): ConfState {
  const voters = conf.voters.filter((id) => id !== cc.node);
  const learners = conf.learners.filter((id) => id !== cc.node);
  if (cc.type === ConfChangeType.AddVoter) voters.push(cc.node);
  else if (cc.type === ConfChangeType.AddLearner) learners.push(cc.node);
  voters.sort();
  learners.sort();
  return { voters, learners };
}
