// One in-process node (4 partitions, 10 ms ticks) behind the real HTTP API
// on a loopback port, for the api/ tests. Ready means every partition has
// elected its leader: that is the synchronisation point, polled.
import type { FastifyInstance } from 'fastify';
import { buildServer } from '../../api/server.js';
import { VeloNode } from '../../src/node/velo-node.js';
import type { VeloNodeOptions } from '../../src/node/velo-node.js';
import type { HttpLimits } from '../../api/http-limits.js';

export interface Served {
  node: VeloNode;
  app: FastifyInstance;
  /** http://127.0.0.1:PORT */
  base: string;
  close(): Promise<void>;
}

export async function serveNode(opts: { maxValueBytes: number; partitions?: number; metricsPublic?: boolean; limits?: Partial<HttpLimits>; browserGuard?: boolean } & Partial<Pick<VeloNodeOptions, 'eventLogCapacity' | 'maxMemoryBytes' | 'adminTokenFile'>>): Promise<Served> {
  const { maxValueBytes, partitions = 4, metricsPublic, limits, browserGuard, ...rest } = opts;
  const node = await VeloNode.start({ id: 'n1', http: '127.0.0.1:0', raft: '127.0.0.1:0', peers: new Map([['n1', '127.0.0.1:0']]), partitions, tickMs: 10, ...rest });
  const app = await buildServer({ service: node, maxValueBytes, ...(metricsPublic === undefined ? {} : { metricsPublic }), ...(limits ? { limits } : {}), ...(browserGuard ? { browserGuard } : {}) });
  await app.listen({ host: '127.0.0.1', port: 0 });
  for (let i = 0; i < 1000 && node.notReady() !== null; i++) await new Promise((r) => setTimeout(r, 10));
  if (node.notReady() !== null) throw new Error('the node did not elect its partitions’ leaders within 10 s');
  return {
    node,
    app,
    base: `http://127.0.0.1:${(app.server.address() as { port: number }).port}`,
    async close() {
      await app.close();
      await node.close();
    },
  };
}
