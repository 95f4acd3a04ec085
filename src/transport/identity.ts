// Who is at the other end of a raft connection. With peer TLS, a node is the
// name its certificate gives it, signed by the cluster's peer CA; nothing it
// says afterwards (its Hello, the `from` of its messages) may claim another.

import type { X509Certificate } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';
import type { NodeId } from '../../raft/index.js';

/** PEM contents: the peer CA every node trusts, and this node's certificate and key. */
export interface PeerTls {
  ca: string;
  cert: string;
  key: string;
}

/** Extended key usage a node certificate carries, and a client certificate does not (velo certs). */
export const SERVER_AUTH_OID = '1.3.6.1.5.5.7.3.1';

/**
 * The node a raft member id belongs to: the id itself, or the part before
 * `@incarnation` (a member that rejoined after losing its state).
 */
export function nodeOfMember(member: string): NodeId {
  const at = member.indexOf('@');
  return at < 0 ? member : member.slice(0, at);
}

/**
 * The node id a verified peer certificate names: its subject CN; only a
 * certificate without a CN names it in a DNS SAN, and then in exactly one.
 * A CN wins over SANs because a node certificate lists host names as SANs
 * too (localhost, say), and those must not be ids the node could claim.
 * Null when the certificate names no node, or may be used only by clients.
 */
export function certificateNodeId(cert: Pick<PeerCertificate, 'subject' | 'subjectaltname'> & { ext_key_usage?: string[] }): NodeId | null {
  // No EKU at all means any use (RFC 5280 §4.2.1.12); a listed one must include serverAuth.
  if (cert.ext_key_usage !== undefined && !cert.ext_key_usage.includes(SERVER_AUTH_OID)) return null;
  const cn = cert.subject?.CN;
  if (typeof cn === 'string') return isNodeId(cn) ? cn : null;
  if (Array.isArray(cn)) return null; // two CNs: ambiguous
  const dns = dnsNames(cert.subjectaltname ?? '');
  return dns.length === 1 && isNodeId(dns[0]!) ? dns[0]! : null;
}

/** certificateNodeId of a certificate read with node:crypto (a file, a joining node's proof) rather than from a TLS socket. */
export function x509NodeId(cert: X509Certificate): NodeId | null {
  const cns = cert.subject.split('\n').filter((l) => l.startsWith('CN='));
  const subject = cns.length === 0 ? {} : { CN: cns.length === 1 ? cns[0]!.slice(3) : cns.map((l) => l.slice(3)) };
  return certificateNodeId({ subject: subject as never, subjectaltname: cert.subjectAltName ?? '', ...(cert.keyUsage ? { ext_key_usage: cert.keyUsage } : {}) });
}

/** The DNS names of a subjectaltname string as Node prints it: "DNS:n1, IP Address:127.0.0.1". */
export function dnsNames(subjectAltName: string): string[] {
  return subjectAltName
    .split(', ')
    .filter((part) => part.startsWith('DNS:'))
    .map((part) => part.slice(4));
}

/** The shape `velo start --id` accepts. */
export function isNodeId(s: string): boolean {
  return /^[A-Za-z0-9._-]{1,64}$/.test(s);
}

/**
 * Why a raft message on a connection authenticated as `peer` (to this node,
 * `self`) is refused, or null: its sender must be a member of that peer's
 * node, and it must be addressed to a member of this node.
 */
export function misaddressed(from: string, to: string, peer: NodeId, self: NodeId): string | null {
  if (nodeOfMember(from) !== peer) return `a message from ${JSON.stringify(from.slice(0, 80))} on the connection of ${peer}`;
  if (nodeOfMember(to) !== self) return `a message to ${JSON.stringify(to.slice(0, 80))}, not to this node`;
  return null;
}
