// A cluster's certificates, made in memory: a CA, and certificates signed by
// it for nodes (peer mutual TLS and HTTPS serving) and for clients. ECDSA
// P-256 keys, made and used by Node's own WebCrypto; @peculiar/x509 only
// writes the X.509 structures, which node:crypto can read but not create.

import 'reflect-metadata'; // @peculiar/x509's dependency injection needs it loaded first
import { webcrypto } from 'node:crypto';
import { isIP } from 'node:net';
import * as x509 from '@peculiar/x509';

const crypto = webcrypto as unknown as Crypto;
x509.cryptoProvider.set(crypto);

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY_MS = 24 * 3600 * 1000;

/** PEM contents of one certificate and its private key (PKCS#8). */
export interface Issued {
  cert: string;
  key: string;
}

export interface IssueOptions {
  /** Sign with this CA (PEM certificate and PKCS#8 key) instead of making a new one: certificates for nodes added later. */
  ca?: Issued;
  /** How long the certificates are valid, from now (default ten years: a cache cluster has no renewal machinery yet). */
  validDays?: number;
  /** Names in the CA's subject (default "Velo cluster CA"). */
  caName?: string;
  now?: Date;
}

export interface ClusterCertificates {
  ca: Issued;
  nodes: Map<string, Issued>;
  clients: Map<string, Issued>;
}

/**
 * A CA, a certificate per node naming it (subject CN and a DNS SAN) plus
 * `hosts` as SANs, with serverAuth and clientAuth, and a certificate per
 * client with clientAuth only, so a client certificate can never act as a peer.
 */
export async function issueClusterCertificates(nodes: string[], hosts: string[], clients: string[], o: IssueOptions = {}): Promise<ClusterCertificates> {
  const notBefore = new Date((o.now ?? new Date()).getTime() - 3600_000); // an hour back: clocks differ a little
  const notAfter = new Date(notBefore.getTime() + (o.validDays ?? 3650) * DAY_MS);
  const { caKeys, caCert } = o.ca !== undefined ? await loadCa(o.ca) : await newCa(o.caName ?? 'Velo cluster CA', notBefore, notAfter);
  const leaf = async (name: string, usages: string[], altNames: x509.JsonGeneralName[]): Promise<Issued> => {
    const keys = await crypto.subtle.generateKey(ALG, true, ['sign', 'verify']);
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: serial(),
      subject: `CN=${escapeDn(name)}`,
      issuer: caCert.subject,
      notBefore,
      notAfter,
      publicKey: keys.publicKey,
      signingKey: caKeys.privateKey,
      signingAlgorithm: ALG,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyAgreement, true),
        new x509.ExtendedKeyUsageExtension(usages),
        ...(altNames.length > 0 ? [new x509.SubjectAlternativeNameExtension(altNames)] : []),
        await x509.AuthorityKeyIdentifierExtension.create(caCert),
      ],
    });
    return { cert: cert.toString('pem') + '\n', key: await keyPem(keys.privateKey) };
  };
  const hostNames: x509.JsonGeneralName[] = hosts.map((h) => (isIP(h) !== 0 ? { type: 'ip', value: h } : { type: 'dns', value: h }));
  const out: ClusterCertificates = { ca: o.ca ?? { cert: caCert.toString('pem') + '\n', key: await keyPem(caKeys.privateKey) }, nodes: new Map(), clients: new Map() };
  for (const n of nodes) {
    const names = [{ type: 'dns', value: n } as x509.JsonGeneralName, ...hostNames.filter((h) => h.value !== n)];
    out.nodes.set(n, await leaf(n, [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth], names));
  }
  for (const c of clients) out.clients.set(c, await leaf(c, [x509.ExtendedKeyUsage.clientAuth], []));
  return out;
}

async function newCa(name: string, notBefore: Date, notAfter: Date): Promise<{ caKeys: CryptoKeyPair; caCert: x509.X509Certificate }> {
  const caKeys = await crypto.subtle.generateKey(ALG, true, ['sign', 'verify']);
  const caCert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=${escapeDn(name)}`,
    notBefore,
    notAfter,
    keys: caKeys,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(caKeys.publicKey),
    ],
  });
  return { caKeys, caCert };
}

async function loadCa(ca: Issued): Promise<{ caKeys: { privateKey: CryptoKey }; caCert: x509.X509Certificate }> {
  const caCert = new x509.X509Certificate(ca.cert);
  const der = Buffer.from(ca.key.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
  const privateKey = await crypto.subtle.importKey('pkcs8', der, ALG, false, ['sign']);
  return { caKeys: { privateKey }, caCert };
}

async function keyPem(key: CryptoKey): Promise<string> {
  const der = Buffer.from(await crypto.subtle.exportKey('pkcs8', key));
  return `-----BEGIN PRIVATE KEY-----\n${der.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '')}\n-----END PRIVATE KEY-----\n`;
}

/** A random positive 128-bit serial (RFC 5280 §4.1.2.2: unique per CA, at most 20 octets). */
function serial(): string {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[0] = b[0]! & 0x7f;
  return Buffer.from(b).toString('hex');
}

/** Names are checked by the CLI (ids and host names); this keeps a DN well-formed whatever it is given. */
function escapeDn(s: string): string {
  return s.replace(/([,+"\\<>;=#])/g, '\\$1');
}
