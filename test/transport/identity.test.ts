// The identity rules of peer TLS on their own: which node a certificate
// names, and which raft messages a connection may carry.

import { X509Certificate } from 'node:crypto';
import { describe, expect, test } from 'vitest';
import { issueClusterCertificates } from '../../src/certs/issue.js';
import { certificateNodeId, misaddressed, nodeOfMember, SERVER_AUTH_OID } from '../../src/transport/identity.js';

const CLIENT_AUTH_OID = '1.3.6.1.5.5.7.3.2';
const both = [SERVER_AUTH_OID, CLIENT_AUTH_OID];

describe('certificateNodeId', () => {
  test('the subject CN names the node, whatever host names the SANs list', () => {
    expect(certificateNodeId({ subject: { CN: 'n1' } as never, subjectaltname: 'DNS:n1, IP Address:127.0.0.1, DNS:localhost', ext_key_usage: both })).toBe('n1');
  });

  test('a SAN cannot name a node when there is a CN: localhost in every node certificate is no id', () => {
    expect(certificateNodeId({ subject: { CN: 'n1' } as never, subjectaltname: 'DNS:localhost', ext_key_usage: both })).toBe('n1');
  });

  test('without a CN, exactly one DNS SAN names the node', () => {
    expect(certificateNodeId({ subject: {} as never, subjectaltname: 'DNS:n2, IP Address:10.0.0.2' })).toBe('n2');
    expect(certificateNodeId({ subject: {} as never, subjectaltname: 'DNS:n2, DNS:n3' })).toBeNull();
    expect(certificateNodeId({ subject: {} as never, subjectaltname: 'IP Address:10.0.0.2' })).toBeNull();
  });

  test('a certificate for clients only (no serverAuth) names no node', () => {
    expect(certificateNodeId({ subject: { CN: 'n1' } as never, subjectaltname: '', ext_key_usage: [CLIENT_AUTH_OID] })).toBeNull();
  });

  test('a name that is not a node id, or two CNs, names no node', () => {
    expect(certificateNodeId({ subject: { CN: 'n1@5' } as never, subjectaltname: '' })).toBeNull();
    expect(certificateNodeId({ subject: { CN: 'a b' } as never, subjectaltname: '' })).toBeNull();
    expect(certificateNodeId({ subject: { CN: ['n1', 'n2'] } as never, subjectaltname: '' })).toBeNull();
  });

  test('velo certs: a node certificate names its node, a client certificate none, and both chain to the CA', async () => {
    const c = await issueClusterCertificates(['n1'], ['127.0.0.1', 'localhost'], ['app']);
    const ca = new X509Certificate(c.ca.cert);
    const node = new X509Certificate(c.nodes.get('n1')!.cert);
    const client = new X509Certificate(c.clients.get('app')!.cert);
    expect(ca.ca).toBe(true);
    for (const cert of [node, client]) {
      expect(cert.checkIssued(ca)).toBe(true);
      expect(cert.verify(ca.publicKey)).toBe(true);
    }
    expect(node.subjectAltName).toBe('DNS:n1, IP Address:127.0.0.1, DNS:localhost');
    const asPeer = (x: X509Certificate) => ({ subject: { CN: /CN=(.*)/.exec(x.subject)![1]! } as never, subjectaltname: x.subjectAltName ?? '', ext_key_usage: x.keyUsage });
    expect(certificateNodeId(asPeer(node))).toBe('n1');
    expect(certificateNodeId(asPeer(client))).toBeNull();
  });
});

describe('misaddressed', () => {
  test('a message from any incarnation of the connection’s node, to any of this node’s, passes', () => {
    expect(nodeOfMember('n1@1700000000000')).toBe('n1');
    expect(misaddressed('n1', 'n2', 'n1', 'n2')).toBeNull();
    expect(misaddressed('n1@7', 'n2@9', 'n1', 'n2')).toBeNull();
  });

  test('a message from another node, or to another node, is refused', () => {
    expect(misaddressed('n3', 'n2', 'n1', 'n2')).toMatch(/from "n3" on the connection of n1/);
    expect(misaddressed('n3@1', 'n2', 'n1', 'n2')).toMatch(/from "n3@1"/);
    expect(misaddressed('n10', 'n2', 'n1', 'n2')).not.toBeNull(); // a prefix is not the node
    expect(misaddressed('n1', 'n3', 'n1', 'n2')).toMatch(/to "n3", not to this node/);
  });
});
