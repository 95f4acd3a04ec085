// Velo nodes in this process, each behind the real HTTP API on its own
// loopback port and talking raft to the others over real TCP: what the
// client tests run against. Unlike test/support/served-node.ts, every node
// knows its real HTTP address, so /v1/cluster tells a client where each
// leader listens. Ready means every partition is led by its preferred
// replica on every node's view: leadership no longer moves by itself.
import type { FastifyInstance } from 'fastify';
import { buildServer } from '../../api/server.js';
import { VeloNode } from '../../src/node/velo-node.js';
import type { VeloNodeOptions } from '../../src/node/velo-node.js';
import { freePort } from '../../scripts/ports.js';
import { until } from '../../scripts/poll.js';

export interface ClusterMember {
  id: string;
  /** host:port */
  http: string;
  node: VeloNode;
  app: FastifyInstance;
}

export type ClusterOptions = { maxValueBytes?: number } & Partial<Pick<VeloNodeOptions, 'partitions' | 'tickMs' | 'electionTicks' | 'requestTimeoutMs' | 'eventLogCapacity'>>;

export class InProcessCluster {
  readonly members = new Map<string, ClusterMember>();

  private constructor(readonly partitions: number) {}

  static async start(ids: string[], opts: ClusterOptions = {}): Promise<InProcessCluster> {
    const { maxValueBytes = 1 << 20, partitions = 4, ...nodeOpts } = opts;
    const ports = new Map<string, { http: number; raft: number }>();
    for (const id of ids) ports.set(id, { http: await freePort(), raft: await freePort() });
    const peers = new Map(ids.map((id) => [id, `127.0.0.1:${ports.get(id)!.raft}`]));
    const c = new InProcessCluster(partitions);
    // Together: a node serves once every peer has answered its start-up probe.
    await Promise.all(
      ids.map(async (id) => {
        const http = `127.0.0.1:${ports.get(id)!.http}`;
        const node = await VeloNode.start({ id, http, raft: peers.get(id)!, peers, partitions, ...nodeOpts });
        const app = await buildServer({ service: node, maxValueBytes });
        await app.listen({ host: '127.0.0.1', port: ports.get(id)!.http });
        c.members.set(id, { id, http, node, app });
      }),
    );
    await c.settled();
    return c;
  }

  /**
   * Every live node sees the same live leader of every partition: its
   * preferred replica (placement's first) by default, or any when `preferred`
   * is false (after a member stopped, leadership goes to whichever replica won).
   */
  async settled(preferred = true): Promise<void> {
    await until('every partition led by the same live member on every node', async () => {
      for (let p = 0; p < this.partitions; p++) {
        const seen = new Set<string | null>();
        let wanted: string | null = null;
        for (const m of this.members.values()) {
          const part = m.node.localCluster().partitions[p]!;
          seen.add(part.leader);
          wanted = part.replicas[0]!;
        }
        const [leader] = [...seen];
        if (seen.size !== 1 || leader === null || leader === undefined || !this.members.has(leader)) return false;
        if (preferred && leader !== wanted) return false;
      }
      return true;
    }, 30_000, 20);
  }

  member(id: string): ClusterMember {
    const m = this.members.get(id);
    if (!m) throw new Error(`no live member ${id}`);
    return m;
  }

  url(id: string, path: string): string {
    return `http://${this.member(id).http}${path}`;
  }

  /** HTTP addresses of the live members. */
  addresses(): string[] {
    return [...this.members.values()].map((m) => m.http);
  }

  /** A partition's leader as `from` (default: any live member) sees it. */
  leaderOf(partition: number, from?: string): string | null {
    const m = from ? this.member(from) : this.members.values().next().value!;
    return m.node.localCluster().partitions[partition]!.leader;
  }

  /** velo_forwarded_total summed over the live members, read through GET /metrics. */
  async forwarded(): Promise<number> {
    let sum = 0;
    for (const id of this.members.keys()) {
      const text = await (await fetch(this.url(id, '/metrics'))).text();
      const m = /^velo_forwarded_total (\d+)$/m.exec(text);
      if (!m) throw new Error(`no velo_forwarded_total in ${id}'s metrics`);
      sum += Number(m[1]);
    }
    return sum;
  }

  /** Stops a member: its HTTP listener (open streams included) and its node. */
  async stop(id: string): Promise<void> {
    const m = this.member(id);
    this.members.delete(id);
    const closing = m.app.close();
    // Open event streams would hold the close forever; a client may reconnect until the listener stops, so keep cutting.
    m.app.server.closeAllConnections();
    const cutting = setInterval(() => m.app.server.closeAllConnections(), 20);
    try {
      await closing;
    } finally {
      clearInterval(cutting);
    }
    await m.node.close();
  }

  async close(): Promise<void> {
    await Promise.all([...this.members.keys()].map((id) => this.stop(id)));
  }
}
