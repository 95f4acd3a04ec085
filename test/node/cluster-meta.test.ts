import { describe, expect, it } from 'vitest';
import { ClusterMeta, applyCommand, encodeMetaCommand, initialMeta } from '../../src/node/cluster-meta.js';
import type { MetaCommand, MetaState } from '../../src/node/cluster-meta.js';

const state = (): MetaState => initialMeta(['n3', 'n1', 'n2'], 4, 3);
const register = (id: string, member = id): MetaCommand => ({ type: 'register', id, raft: `127.0.0.1:${id.length}`, http: '127.0.0.1:1', member });

describe('the cluster metadata', () => {
  it('starts every bootstrap member from the same state, whatever the order of --peers', () => {
    expect(initialMeta(['n2', 'n3', 'n1'], 4, 3)).toEqual(state());
    expect(state().members.map((m) => m.id)).toEqual(['n1', 'n2', 'n3']);
    expect(state().targets.every((t) => t.replicas.length === 3 && !t.moving)).toBe(true);
  });

  it('registers a new member as active, keeps members sorted, and updates a known one in place', () => {
    const s = state();
    expect(applyCommand(s, register('a0'))).toEqual({ code: 'ok', changed: true });
    expect(s.members.map((m) => m.id)).toEqual(['a0', 'n1', 'n2', 'n3']);
    expect(applyCommand(s, register('a0'))).toEqual({ code: 'ok', changed: false });
    expect(applyCommand(s, register('a0', 'a0@7'))).toEqual({ code: 'ok', changed: true });
    expect(s.members[0]).toMatchObject({ id: 'a0', member: 'a0@7', status: 'active' });
  });

  it('refuses a drain that would leave fewer members than the replication factor, unless forced', () => {
    const s = state();
    const r = applyCommand(s, { type: 'setStatus', id: 'n2', status: 'draining' });
    expect(r.code).toBe('conflict');
    expect((r as { message: string }).message).toMatch(/fewer than the replication factor 3/);
    expect(s.members.every((m) => m.status === 'active')).toBe(true);
    expect(applyCommand(s, { type: 'setStatus', id: 'n2', status: 'draining', force: true })).toEqual({ code: 'ok', changed: true });
  });

  it('never drains the last active member, even forced', () => {
    const s = initialMeta(['n1'], 2, 3);
    expect(applyCommand(s, { type: 'setStatus', id: 'n1', status: 'draining', force: true }).code).toBe('conflict');
  });

  it('marks a member removed only once no target holds it, and a removed id cannot register again', () => {
    const s = state();
    applyCommand(s, register('n4'));
    expect(applyCommand(s, { type: 'setStatus', id: 'n2', status: 'draining' }).code).toBe('ok');
    expect(applyCommand(s, { type: 'setStatus', id: 'n2', status: 'removed' }).code).toBe('conflict');
    s.targets.forEach((t, p) => applyCommand(s, { type: 'setTarget', partition: p, from: t.replicas, replicas: t.replicas.map((id) => (id === 'n2' ? 'n4' : id)) }));
    expect(applyCommand(s, { type: 'setStatus', id: 'n2', status: 'removed' })).toEqual({ code: 'ok', changed: true });
    expect(applyCommand(s, register('n2')).code).toBe('conflict');
    expect(applyCommand(s, { type: 'setStatus', id: 'n9', status: 'draining' }).code).toBe('not_found');
  });

  it('changes a target only from the plan it was made from, marks it moving, and clears that when done', () => {
    const s = state();
    const from = s.targets[1]!.replicas;
    expect(applyCommand(s, { type: 'setTarget', partition: 1, from: ['x'], replicas: ['n1', 'n2', 'n4'] }).code).toBe('conflict');
    expect(applyCommand(s, { type: 'setTarget', partition: 1, from, replicas: ['n1', 'n2', 'n4'] })).toEqual({ code: 'ok', changed: true });
    expect(s.targets[1]).toEqual({ replicas: ['n1', 'n2', 'n4'], moving: true });
    // A report for another target (an older plan) changes nothing.
    expect(applyCommand(s, { type: 'moveDone', partition: 1, replicas: from })).toEqual({ code: 'ok', changed: false });
    expect(applyCommand(s, { type: 'moveDone', partition: 1, replicas: ['n1', 'n2', 'n4'] })).toEqual({ code: 'ok', changed: true });
    expect(s.targets[1]!.moving).toBe(false);
    expect(applyCommand(s, { type: 'setTarget', partition: 9, from: [], replicas: [] }).code).toBe('bad_request');
  });

  it('survives a snapshot round trip, and refuses a malformed snapshot', () => {
    const a = new ClusterMeta(state());
    a.apply(1, encodeMetaCommand(register('n4')));
    const b = new ClusterMeta(null);
    b.restore(a.snapshot(), 1);
    expect(b.state).toEqual(a.state);
    expect(() => b.restore(new TextEncoder().encode('{"partitions":2,"members":[],"targets":[]}'), 2)).toThrow(/malformed/);
  });

  it('answers an undecodable command with an error and leaves the state alone', () => {
    const m = new ClusterMeta(state());
    const before = structuredClone(m.state);
    expect(m.apply(1, new TextEncoder().encode('{not json')).code).toBe('bad_request');
    expect(m.state).toEqual(before);
  });
});
