// Whether this node demands tokens, and whose a presented one is: the node's
// side of API.md "Security" (api/auth.ts is the HTTP side). Tokens live in
// the metadata group, so every member verifies against the same records and
// a revocation reaches every member with the commit that carries it.
//
// A node started with --admin-token-file demands tokens from the start, but
// can verify none until its metadata holds them: it proposes the cluster's
// first admin token (once per cluster: the metadata remembers it was done)
// and answers 'pending' (503) until that, or the metadata it learns as a
// joining node, is applied here.

import type { Logger } from 'pino';
import type { ClusterMeta, MetaCommand } from './cluster-meta.js';
import { findToken, hashSecret } from './tokens.js';
import type { Principal, TokenRecord } from './tokens.js';

export type AccessMode =
  /** No token is configured anywhere: every request is served (the default on loopback). */
  | { mode: 'open' }
  /** Tokens are demanded, but this node cannot verify them yet. */
  | { mode: 'pending'; why: string }
  | { mode: 'enforced' };

export interface AccessHost {
  readonly meta: ClusterMeta;
  readonly log: Logger;
  /** The secret of --admin-token-file; null without one. */
  readonly adminSecret: string | null;
  /** Proposes a command to the metadata group at its leader. */
  command(c: MetaCommand): Promise<unknown>;
}

/** A bootstrap proposal that failed (no metadata leader yet) is tried again after this long. */
const BOOTSTRAP_RETRY_MS = 1000;

export class AccessControl {
  private proposing = false;
  private lastProposal = 0;
  private warnedForeignAdmin = false;

  constructor(private readonly host: AccessHost) {}

  mode(): AccessMode {
    const s = this.host.meta.state;
    if (s?.tokensRequired === true) return { mode: 'enforced' };
    if (this.host.adminSecret === null) return { mode: 'open' };
    return { mode: 'pending', why: s === null ? 'this node has not received the cluster metadata yet' : 'the admin token from --admin-token-file is not committed to the cluster metadata yet' };
  }

  /** The token whose secret this is, as this node's metadata replica holds it; null when none matches. */
  authenticate(secret: string): Principal | null {
    const t = findToken(this.host.meta.state?.tokens ?? [], secret);
    return t === null ? null : { name: t.name, role: t.role, caches: t.caches === null ? null : [...t.caches] };
  }

  tokens(): TokenRecord[] {
    return this.host.meta.state?.tokens ?? [];
  }

  /**
   * Called on every tick: proposes the bootstrap admin token while this
   * node's metadata says it was never proposed (the command is idempotent,
   * so bootstrap members racing each other do no harm).
   */
  tick(now: number): void {
    const s = this.host.meta.state;
    const secret = this.host.adminSecret;
    if (secret === null || s === null || this.proposing || now - this.lastProposal < BOOTSTRAP_RETRY_MS) return;
    if (s.adminBootstrapped === true) {
      this.checkOwnAdmin(secret);
      return;
    }
    this.proposing = true;
    this.lastProposal = now;
    this.host
      .command({ type: 'bootstrapAdmin', hash: hashSecret(secret), createdAt: now })
      .then(() => this.host.log.info('the admin token from --admin-token-file is in the cluster metadata'))
      .catch((e: unknown) => this.host.log.debug({ err: (e as Error).message }, 'proposing the admin token failed; retrying'))
      .finally(() => {
        this.proposing = false;
      });
  }

  /** Another member's file won the bootstrap: this node's own file then grants nothing, which its operator should know. */
  private checkOwnAdmin(secret: string): void {
    if (this.warnedForeignAdmin || this.host.meta.state?.tokensRequired !== true) return;
    if (findToken(this.tokens(), secret) === null) {
      this.warnedForeignAdmin = true;
      this.host.log.warn('the secret in --admin-token-file matches no token of this cluster (another member bootstrapped a different one, or it was revoked): use a token the cluster knows');
    }
  }
}
