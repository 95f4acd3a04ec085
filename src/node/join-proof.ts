// A joining node's proof of identity, for a cluster that runs peer TLS: its
// certificate, and a signature with its peer key over what it registers.
// The member that receives POST /v1/cluster/members checks that the peer CA
// signed the certificate, that the certificate names the node, and that the
// signature is fresh and covers exactly this registration. A node whose
// certificate the CA did not sign cannot join, token or no token.

import { X509Certificate, createPrivateKey, sign, verify, type KeyObject } from 'node:crypto';
import { x509NodeId, type PeerTls } from '../transport/index.js';

/** What a joining node registers: its id, its raft member id and its addresses. */
export interface JoinClaim {
  id: string;
  member: string;
  raft: string;
  http: string;
}

export interface JoinProof {
  /** The node's peer certificate (PEM). */
  cert: string;
  /** When it signed, in ms since the epoch. */
  signedAt: number;
  /** base64 signature with the node's peer key over signedBytes(). */
  signature: string;
}

/** How far a proof's signing time may be from the verifier's clock: a proof is not a credential to keep. */
export const JOIN_PROOF_MAX_SKEW_MS = 5 * 60_000;

/** Bounds of the fields, for the HTTP schema. */
export const JOIN_PROOF_MAX_CERT_CHARS = 16 * 1024;
export const JOIN_PROOF_MAX_SIGNATURE_CHARS = 1024;

/** Ed25519 and Ed448 hash as part of the scheme; ECDSA and RSA keys sign a SHA-256 digest. */
function digestFor(key: KeyObject): string | null {
  return key.asymmetricKeyType === 'ed25519' || key.asymmetricKeyType === 'ed448' ? null : 'sha256';
}

/** The bytes signed: a label, the cluster, and the registration, unambiguously (a JSON array). */
function signedBytes(clusterId: string, claim: JoinClaim, signedAt: number): Buffer {
  return Buffer.from(JSON.stringify(['velo-join-v1', clusterId, claim.id, claim.member, claim.raft, claim.http, signedAt]));
}

export function makeJoinProof(tls: PeerTls, clusterId: string, claim: JoinClaim, nowMs: number): JoinProof {
  const key = createPrivateKey(tls.key);
  const signature = sign(digestFor(key), signedBytes(clusterId, claim, nowMs), key).toString('base64');
  return { cert: tls.cert, signedAt: nowMs, signature };
}

/** Why the proof does not prove the claim to a cluster whose peer CA is `caPem`, or null when it does. */
export function joinProofRefusal(caPem: string, clusterId: string, claim: JoinClaim, proof: JoinProof | undefined, nowMs: number): string | null {
  if (proof === undefined) return 'no proof of identity (this cluster runs peer TLS: a joining node signs its registration with its peer key)';
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(proof.cert);
  } catch {
    return 'the proof holds no PEM certificate';
  }
  const ca = new X509Certificate(caPem);
  if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey)) return 'the certificate is not one the peer CA signed';
  if (Date.parse(cert.validTo) < nowMs || Date.parse(cert.validFrom) > nowMs) return 'the certificate is not valid now';
  const named = x509NodeId(cert);
  if (named !== claim.id) return `the certificate names ${named ?? 'no node'}, not ${claim.id}`;
  if (!Number.isSafeInteger(proof.signedAt) || Math.abs(nowMs - proof.signedAt) > JOIN_PROOF_MAX_SKEW_MS) return `the proof was not signed within ${JOIN_PROOF_MAX_SKEW_MS / 60_000} minutes of now`;
  let ok = false;
  try {
    ok = verify(digestFor(cert.publicKey), signedBytes(clusterId, claim, proof.signedAt), cert.publicKey, Buffer.from(proof.signature, 'base64'));
  } catch {
    ok = false;
  }
  return ok ? null : 'the signature does not cover this registration with the certificate’s key';
}
