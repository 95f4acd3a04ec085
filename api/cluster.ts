// Cluster and operations routes (API.md "Cluster and operations"), and
// membership changes (README "Growing and shrinking the cluster").
import type { FastifyInstance } from 'fastify';
import type { CacheService } from '../src/node/service.js';
import { errorBody } from './errors.js';
import { PERMIT } from './auth.js';
import { VeloError } from '../src/node/errors.js';
import { JOIN_PROOF_MAX_CERT_CHARS, JOIN_PROOF_MAX_SIGNATURE_CHARS, type JoinProof } from '../src/node/join-proof.js';

const NODE_ID = '^[A-Za-z0-9._-]{1,64}$';
const HOST_PORT = '^(\\[[^\\]]+\\]|[^:\\s]+):[0-9]{1,5}$';
const HTTPS_HOST_PORT = `^https://${HOST_PORT.slice(1)}`;

const memberBody = {
  type: 'object',
  required: ['id', 'raft', 'http'],
  additionalProperties: false,
  properties: {
    id: { type: 'string', pattern: NODE_ID },
    raft: { type: 'string', pattern: HOST_PORT },
    // host:port over plain HTTP, https://host:port over TLS, '' for an embedded node that serves no HTTP.
    http: { type: 'string', anyOf: [{ pattern: HOST_PORT }, { pattern: HTTPS_HOST_PORT }, { maxLength: 0 }] },
    // Its raft member id; a new node's own id by default.
    member: { type: 'string', pattern: '^[A-Za-z0-9._-]{1,64}(@[0-9]{1,20})?$' },
    // With peer TLS: the joining node's certificate and its signature over this registration (src/node/join-proof.ts).
    proof: {
      type: 'object',
      required: ['cert', 'signedAt', 'signature'],
      additionalProperties: false,
      properties: {
        cert: { type: 'string', maxLength: JOIN_PROOF_MAX_CERT_CHARS },
        signedAt: { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER },
        signature: { type: 'string', maxLength: JOIN_PROOF_MAX_SIGNATURE_CHARS },
      },
    },
  },
} as const;

type MemberBody = { id: string; raft: string; http: string; member?: string; proof?: JoinProof };
const claimOf = (b: MemberBody) => ({ id: b.id, raft: b.raft, http: b.http, member: b.member ?? b.id });

export async function clusterRoutes(app: FastifyInstance, opts: { service: CacheService }): Promise<void> {
  const { service } = opts;
  app.get('/cluster', { config: { permission: PERMIT.read } }, async () => service.cluster());

  // An admin token adds any member; with peer TLS, a node's proof of its own identity adds that node without one.
  const proven = (b: MemberBody) => service.joinProofRefusal(claimOf(b), b.proof) === null;
  app.post('/cluster/members', { config: { permission: { ...PERMIT.admin, alternative: (req) => proven(req.body as MemberBody) } }, schema: { body: memberBody } }, async (req) => {
    const b = req.body as MemberBody;
    const refusal = service.joinProofRefusal(claimOf(b), b.proof);
    // Peer TLS without tokens: a node whose certificate the peer CA did not sign cannot join.
    if (refusal !== undefined && refusal !== null && req.auth?.role !== 'admin') {
      throw new VeloError('forbidden', `this cluster runs peer TLS and the joining node did not prove it is ${b.id}: ${refusal}`);
    }
    if (b.member !== undefined && b.member.split('@')[0] !== b.id) {
      return Promise.reject(Object.assign(new Error(`member "${b.member}" is not a member id of node "${b.id}"`), { statusCode: 400 }));
    }
    return service.addMember(claimOf(b));
  });

  app.delete(
    '/cluster/members/:id',
    {
      config: { permission: PERMIT.admin },
      schema: {
        params: { type: 'object', required: ['id'], properties: { id: { type: 'string', pattern: NODE_ID } } },
        querystring: { type: 'object', additionalProperties: false, properties: { force: { type: 'string', enum: ['true', 'false'] } } },
      },
    },
    async (req, reply) => {
      const { id } = req.params as { id: string };
      const force = (req.query as { force?: string }).force === 'true';
      return reply.status(202).send(await service.removeMember(id, force));
    },
  );
}

/** Outside /v1: health, readiness and metrics. */
export async function operationsRoutes(app: FastifyInstance, opts: { service: CacheService; metricsPublic?: boolean; metrics?: () => string }): Promise<void> {
  app.get('/healthz', { config: { permission: PERMIT.public } }, async () => ({ status: 'ok' }));
  app.get('/readyz', { config: { permission: PERMIT.public } }, async (_req, reply) => {
    const why = opts.service.notReady();
    if (why === null) return { status: 'ready' };
    return reply.status(503).header('Retry-After', '1').send(errorBody(why.code, why.message));
  });
  app.get('/metrics', { config: { permission: opts.metricsPublic === true ? PERMIT.public : PERMIT.admin } }, async (_req, reply) => reply.type('text/plain; version=0.0.4').send(opts.service.metrics() + (opts.metrics?.() ?? '')));
}
