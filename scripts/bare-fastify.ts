// The HTTP ceiling for benchmarks: Fastify with the same item routes over a
// Map, no consensus. Every write takes the next number of one counter as the
// item's version, sent as `ETag: "<version>"` on PUT and GET, and a PUT with
// `If-Match` answers 412 unless it names the current version — so the
// compare-and-set workload has a ceiling too. Nothing else of Velo's API.
//
//   node dist/scripts/bare-fastify.js [port]     prints "bare fastify listening on <port>"
import Fastify from 'fastify';

interface Item {
  value: Buffer;
  type: string;
  version: number;
}

const port = Number(process.argv[2] ?? 7099);
const app = Fastify();
const store = new Map<string, Item>();
let lastVersion = 0;

app.removeAllContentTypeParsers();
app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
app.put('/v1/caches/:cache/items/:key', async (req, reply) => {
  const { cache, key } = req.params as { cache: string; key: string };
  const id = `${cache}\u0000${key}`;
  const current = store.get(id);
  const ifMatch = req.headers['if-match'];
  if (ifMatch !== undefined && (!current || ifMatch !== `"${current.version}"`)) {
    return reply.status(412).send({ error: { code: 'precondition_failed', message: 'version mismatch' } });
  }
  const version = ++lastVersion;
  store.set(id, { value: req.body as Buffer, type: req.headers['content-type'] ?? 'application/octet-stream', version });
  return reply
    .status(current ? 200 : 201)
    .header('etag', `"${version}"`)
    .send({ version: String(version), created: !current });
});
app.get('/v1/caches/:cache/items/:key', async (req, reply) => {
  const { cache, key } = req.params as { cache: string; key: string };
  const item = store.get(`${cache}\u0000${key}`);
  if (!item) return reply.status(404).send({ error: { code: 'not_found', message: 'missing' } });
  return reply.header('content-type', item.type).header('etag', `"${item.version}"`).send(item.value);
});
app.listen({ host: '127.0.0.1', port }).then(() => console.log(`bare fastify listening on ${port}`));
