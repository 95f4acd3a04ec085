// A joining node's proof of identity on its own: what it must hold for a
// member to add it without a token.

import { beforeAll, describe, expect, test } from 'vitest';
import { issueClusterCertificates, type ClusterCertificates } from '../../src/certs/issue.js';
import { JOIN_PROOF_MAX_SKEW_MS, joinProofRefusal, makeJoinProof } from '../../src/node/join-proof.js';

let mine: ClusterCertificates;
let other: ClusterCertificates;
beforeAll(async () => {
  mine = await issueClusterCertificates(['n1', 'n4'], ['127.0.0.1'], ['n4']);
  other = await issueClusterCertificates(['n4'], ['127.0.0.1'], []);
});

const NOW = 1_800_000_000_000;
const claim = { id: 'n4', member: 'n4', raft: '127.0.0.1:7104', http: '127.0.0.1:7004' };
const tlsOf = (c: ClusterCertificates, id: string, kind: 'nodes' | 'clients' = 'nodes') => ({ ca: c.ca.cert, ...c[kind].get(id)! });
const refusal = (proof: Parameters<typeof joinProofRefusal>[3], what = claim, clusterId = 'velo', now = NOW) => joinProofRefusal(mine.ca.cert, clusterId, what, proof, now);

describe('a join proof', () => {
  test('signed by the node whose certificate the peer CA signed, for this registration, now: proven', () => {
    expect(refusal(makeJoinProof(tlsOf(mine, 'n4'), 'velo', claim, NOW))).toBeNull();
    expect(refusal(makeJoinProof(tlsOf(mine, 'n4'), 'velo', claim, NOW - JOIN_PROOF_MAX_SKEW_MS + 1000))).toBeNull();
  });

  test('refused: none, another CA, another node, a client certificate', () => {
    expect(refusal(undefined)).toMatch(/no proof of identity/);
    expect(refusal(makeJoinProof(tlsOf(other, 'n4'), 'velo', claim, NOW))).toMatch(/not one the peer CA signed/);
    expect(refusal(makeJoinProof(tlsOf(mine, 'n1'), 'velo', claim, NOW))).toMatch(/the certificate names n1, not n4/);
    expect(refusal(makeJoinProof(tlsOf(mine, 'n4', 'clients'), 'velo', claim, NOW))).toMatch(/the certificate names no node, not n4/);
  });

  test('refused: any field of the registration changed, another cluster, too old or from the future', () => {
    const proof = makeJoinProof(tlsOf(mine, 'n4'), 'velo', claim, NOW);
    for (const changed of [{ raft: '127.0.0.9:1' }, { http: '10.0.0.1:80' }, { member: 'n4@5' }]) {
      expect(refusal(proof, { ...claim, ...changed })).toMatch(/the signature does not cover this registration/);
    }
    expect(refusal(proof, claim, 'another')).toMatch(/the signature does not cover/);
    expect(refusal({ ...proof, signedAt: NOW + 1 })).toMatch(/the signature does not cover/);
    expect(refusal(proof, claim, 'velo', NOW + JOIN_PROOF_MAX_SKEW_MS + 1)).toMatch(/not signed within 5 minutes/);
    expect(refusal(proof, claim, 'velo', NOW - JOIN_PROOF_MAX_SKEW_MS - 1)).toMatch(/not signed within 5 minutes/);
  });

  test('refused, never thrown: a malformed certificate or signature', () => {
    const proof = makeJoinProof(tlsOf(mine, 'n4'), 'velo', claim, NOW);
    expect(refusal({ ...proof, cert: 'not a certificate' })).toMatch(/no PEM certificate/);
    expect(refusal({ ...proof, signature: '!!!' })).toMatch(/the signature does not cover/);
    expect(refusal({ ...proof, signature: '' })).toMatch(/the signature does not cover/);
  });
});
