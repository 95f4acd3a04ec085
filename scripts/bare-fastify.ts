// The HTTP ceiling for benchmarks: Fastify with the same item routes over a Map, no consensus.
import Fastify from 'fastify';

const port = Number(process.argv[2] ?? 7099);
const app = Fastify();
const store = new Map<string, { value: Buffer; type: string }>();
app.removeAllContentTypeParsers();
app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
app.put('/v1/caches/:cache/items/:key', async (req, reply) => {
  const { cache, key } = req.params as { cache: string; key: string };
  const id = `${cache}\u0000${key}`;
  const created = !store.has(id);
  store.set(id, { value: req.body as Buffer, type: req.headers['content-type'] ?? 'application/octet-stream' });
  return reply.status(created ? 201 : 200).send({ created });
});
app.get('/v1/caches/:cache/items/:key', async (req, reply) => {
  const { cache, key } = req.params as { cache: string; key: string };
  const item = store.get(`${cache}\u0000${key}`);
  if (!item) return reply.status(404).send({ error: { code: 'not_found', message: 'missing' } });
  return reply.header('content-type', item.type).send(item.value);
});
app.listen({ host: '127.0.0.1', port }).then(() => console.log(`bare fastify listening on ${port}`));
