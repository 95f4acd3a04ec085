// Protected mode: a node refuses to start where anyone could reach it
// without credentials. An HTTP address off loopback needs tokens
// (--admin-token-file), a raft address off loopback needs peer TLS
// (--peer-ca/--peer-cert/--peer-key), unless --insecure, which is then
// logged at every start. A node bound to every address (0.0.0.0, ::) must
// say which address the others reach it at: advertising 0.0.0.0 would send
// every client and peer to itself.

import { isLoopbackHost, isUnspecifiedHost } from '../node/loopback.js';
import { splitHostPort } from '../node/velo-node.js';
import { UsageError } from './args.js';

/** What a node exposes, and with which protections, as `velo start` and `startNode` were asked. */
export interface Exposure {
  /** host:port the HTTP API listens on; null when it serves none (an embedded node). */
  http: string | null;
  advertiseHttp: string | null;
  raft: string;
  advertiseRaft: string | null;
  /** Started with --admin-token-file: every request needs a token. */
  tokens: boolean;
  /** Started with --peer-ca/--peer-cert/--peer-key: raft connections are mutual TLS. */
  peerTls: boolean;
  /** Serves HTTPS (--tls-cert/--tls-key). */
  httpsServed: boolean;
  insecure: boolean;
}

function hostOf(addr: string): string {
  return splitHostPort(addr)[0];
}

/** Checks one listener's advertised address; returns the address others are told. */
function advertised(flag: string, listen: string, advertise: string | null): string {
  if (advertise !== null && isUnspecifiedHost(hostOf(advertise))) {
    throw new UsageError(`--advertise-${flag} ${advertise}: never advertise an address that means "every address"; give the address ${flag === 'http' ? 'clients and other nodes reach' : 'the other nodes reach'} this node at`);
  }
  if (advertise === null && isUnspecifiedHost(hostOf(listen))) {
    throw new UsageError(`--${flag} ${listen} listens on every address: add --advertise-${flag} HOST:PORT, the address ${flag === 'http' ? 'clients and other nodes reach' : 'the other nodes reach'} this node at`);
  }
  return advertise ?? listen;
}

/** `--http ADDR` or `--advertise-http ADDR` (the first off loopback), or null when both are on loopback (or no HTTP is served). */
function httpOffLoopback(e: Exposure): string | null {
  if (e.http === null) return null;
  return offLoopback('http', e.http, e.advertiseHttp);
}

/** The first of `--FLAG listen` and `--advertise-FLAG` that is off loopback; null when neither is. */
function offLoopback(flag: 'http' | 'raft', listen: string, advertise: string | null): string | null {
  const told = advertised(flag, listen, advertise);
  if (!isLoopbackHost(hostOf(listen))) return `--${flag} ${listen}`;
  return isLoopbackHost(hostOf(told)) ? null : `--advertise-${flag} ${told}`;
}

/**
 * Throws a UsageError (exit 2) with the one thing to add when the node may
 * not start; otherwise returns the warnings to log (none unless --insecure).
 */
export function checkProtectedMode(e: Exposure): string[] {
  // Both are checked for an unspecified address before either refusal: the first line names the first thing to fix.
  const httpExposed = httpOffLoopback(e);
  const raftExposed = offLoopback('raft', e.raft, e.advertiseRaft);
  const open: string[] = [];
  if (httpExposed !== null && !e.tokens) {
    if (!e.insecure) throw new UsageError(`${httpExposed} is not a loopback address: add --admin-token-file FILE so that every request needs a token (or --insecure to serve it to anyone)`);
    open.push(`the HTTP API (${httpExposed}) needs no token: anyone who reaches it can read, write and drop every cache and change the membership`);
  }
  if (raftExposed !== null && !e.peerTls) {
    if (!e.insecure) throw new UsageError(`${raftExposed} is not a loopback address: add --peer-ca FILE --peer-cert FILE --peer-key FILE so that peers must prove who they are (or --insecure to accept any peer)`);
    open.push(`the raft port (${raftExposed}) accepts any peer: anyone who reaches it can read and write partitions as a member`);
  }
  if (!e.insecure) return [];
  if (open.length === 0) return ['--insecure: protected mode is off, but nothing is exposed (both addresses are loopback or protected)'];
  return open.map((what) => `--insecure: ${what}`);
}

/**
 * The browser guard (api/browser-guard.ts) protects a node whose HTTP API is
 * open on loopback: no tokens, no TLS. There the attacker is any web page
 * the user opens (DNS rebinding, cross-site forms). Tokens stop both; over
 * TLS a rebound name fails the certificate check.
 */
export function browserGuardApplies(e: Exposure): boolean {
  return e.http !== null && httpOffLoopback(e) === null && !e.tokens && !e.httpsServed;
}
