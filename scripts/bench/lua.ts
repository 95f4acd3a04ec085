// The wrk scripts, generated per figure with their settings baked in: what
// each request is, for Velo's API (which the ceiling serves too) and for
// etcd's v3 JSON gateway, and a done() hook that prints one line
// `@@BENCH {json}` with the counts and the latency quantiles (see wrk.ts).

/** The HTTP dialect of a system under test. */
export type Protocol = 'velo' | 'etcd';

export type Workload = 'writes' | 'strong-reads' | 'local-reads' | 'mixed' | 'cas';

export interface ScriptSettings {
  protocol: Protocol;
  workload: Workload;
  /** The host:port the requests go to (their Host header). */
  host: string;
  keys: number;
  valueBytes: number;
  /** Percentage of reads in the mixed workload. */
  readPercent: number;
  seed: number;
  /** A bearer token sent on every request (velo-secure); none when absent. */
  token?: string;
}

/**
 * The quantiles (in %) each wrk reports: 0.5 % apart in the body of the
 * distribution, finer toward the tail, so that the merged p99 of three wrk
 * processes is exact to 0.01 % of the requests (wrk.ts merges them).
 */
export const QUANTILE_GRID: readonly number[] = (() => {
  const qs: number[] = [];
  for (let q = 0.5; q < 90; q += 0.5) qs.push(Number(q.toFixed(2)));
  for (let q = 90; q < 99; q += 0.1) qs.push(Number(q.toFixed(2)));
  for (let q = 99; q < 100; q += 0.01) qs.push(Number(q.toFixed(2)));
  qs.push(100);
  return qs;
})();

/** Key `i` (1-based) of the key space, as every system names it. */
export function keyName(i: number): string {
  return `k${i}`;
}

/**
 * The value written under key `i`: the key and a `|`, padded with `x` to
 * `valueBytes`. Velo's compare-and-set script reads the key back from a GET's
 * body, since wrk does not say which request a response answers.
 */
export function valueFor(i: number, valueBytes: number): string {
  const head = `${keyName(i)}|`;
  return head.length >= valueBytes ? head.slice(0, valueBytes) : head + 'x'.repeat(valueBytes - head.length);
}

const lua = String.raw;

/**
 * `text` as a Lua string literal. Tokens are printable ASCII (the node refuses
 * others), but the literal is escaped anyway so that no text can end it early.
 */
export function luaString(text: string): string {
  let out = '"';
  for (const ch of Buffer.from(text, 'utf8')) {
    // Decimal escapes (\ddd, three digits so a following digit is not read into one) for all but plain printable ASCII.
    out += ch >= 0x20 && ch < 0x7f && ch !== 0x22 && ch !== 0x5c ? String.fromCharCode(ch) : `\\${String(ch).padStart(3, '0')}`;
  }
  return out + '"';
}

/**
 * The header lines every request carries besides Host: an Authorization
 * header with a token, or nothing, so that without one every request is
 * byte for byte what it was before tokens existed.
 */
export function authHeader(token: string | undefined): string {
  if (token === undefined) return '';
  if (!/^[\x21-\x7e]+$/.test(token)) throw new Error('a bearer token must be printable ASCII without spaces');
  return `Authorization: Bearer ${token}\r\n`;
}

/** Shared by every script: settings, base64, the key tables and done(). */
function prelude(s: ScriptSettings): string {
  return lua`
local KEYS = ${s.keys}
local VALUE_BYTES = ${s.valueBytes}
local HOST = "${s.host}"
local READ_PERCENT = ${s.readPercent}
-- Header lines after Host on every request: "" or "Authorization: Bearer …\r\n".
local AUTH = ${luaString(authHeader(s.token))}
local random = math.random
math.randomseed(${s.seed})

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local function base64(s)
  local out, n = {}, #s
  for i = 1, n, 3 do
    local a, b, c = s:byte(i, i + 2)
    local v = a * 65536 + (b or 0) * 256 + (c or 0)
    local d1, d2 = math.floor(v / 262144) % 64, math.floor(v / 4096) % 64
    local d3, d4 = math.floor(v / 64) % 64, v % 64
    out[#out + 1] = B64:sub(d1 + 1, d1 + 1) .. B64:sub(d2 + 1, d2 + 1) ..
      (b and B64:sub(d3 + 1, d3 + 1) or "=") .. (c and B64:sub(d4 + 1, d4 + 1) or "=")
  end
  return table.concat(out)
end

local function key_name(i) return "k" .. i end
local pads = {}
local function value_for(i)
  local head = key_name(i) .. "|"
  if #head >= VALUE_BYTES then return head:sub(1, VALUE_BYTES) end
  local n = VALUE_BYTES - #head
  if not pads[n] then pads[n] = string.rep("x", n) end
  return head .. pads[n]
end

-- Counts kept by response() in the thread's Lua state, read by done() in the main one.
cas_ok, cas_conflict, cas_other = 0, 0, 0
local threads = {}
function setup(thread) threads[#threads + 1] = thread end

local QUANTILES = { ${QUANTILE_GRID.join(', ')} }
function done(summary, latency, requests)
  local qs = {}
  for i, q in ipairs(QUANTILES) do qs[i] = string.format("%d", latency:percentile(q)) end
  local ok, conflict, other = 0, 0, 0
  for _, t in ipairs(threads) do
    ok = ok + (t:get("cas_ok") or 0)
    conflict = conflict + (t:get("cas_conflict") or 0)
    other = other + (t:get("cas_other") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    '@@BENCH {"requests":%d,"durationUs":%d,"bytes":%d,"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"cas":{"ok":%d,"conflict":%d,"other":%d},"quantilesUs":[%s]}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    ok, conflict, other, table.concat(qs, ",")))
end
`;
}

/** Velo's item routes (and the ceiling's, which are the same). */
function veloRequests(): string {
  return lua`
local PATH = "/v1/caches/default/items/"
local function get_request(i, query)
  return "GET " .. PATH .. key_name(i) .. query .. " HTTP/1.1\r\nHost: " .. HOST .. "\r\n" .. AUTH .. "\r\n"
end
local function put_request(i, if_match)
  local value = value_for(i)
  return "PUT " .. PATH .. key_name(i) .. " HTTP/1.1\r\nHost: " .. HOST .. "\r\n" .. AUTH ..
    "Content-Type: application/octet-stream\r\n" .. (if_match and ("If-Match: " .. if_match .. "\r\n") or "") ..
    "Content-Length: " .. #value .. "\r\n\r\n" .. value
end
local strong_reads, local_reads, writes = {}, {}, {}
for i = 1, KEYS do
  strong_reads[i] = get_request(i, "")
  local_reads[i] = get_request(i, "?consistency=local")
  -- Whole write requests are kept when they fit in a few MB; larger ones are built per request.
  if VALUE_BYTES <= 2048 then writes[i] = put_request(i) end
end
local function write_request(i) return writes[i] or put_request(i) end
local function cas_request(i, version) return put_request(i, version) end

-- A GET answers the value, which starts with its key ("k123|…"), and the ETag;
-- a PUT answers JSON ("{…}"), 412 when the version was stale.
local function cas_response(status, headers, body)
  if status == 200 and body:byte(1) == 107 then
    local i = tonumber(body:match("^k(%d+)|"))
    local version = headers["etag"] or headers["ETag"]
    if i and version then return i, version end
    cas_other = cas_other + 1
  elseif status == 200 or status == 201 then cas_ok = cas_ok + 1
  elseif status == 412 then cas_conflict = cas_conflict + 1
  else cas_other = cas_other + 1 end
end
`;
}

/** etcd's v3 JSON gateway (grpc-gateway): keys and values are base64. */
function etcdRequests(): string {
  return lua`
local function post(path, json)
  return "POST " .. path .. " HTTP/1.1\r\nHost: " .. HOST .. "\r\n" .. AUTH ..
    "Content-Type: application/json\r\nContent-Length: " .. #json .. "\r\n\r\n" .. json
end
local key64, index_of = {}, {}
for i = 1, KEYS do
  key64[i] = base64(key_name(i))
  index_of[key64[i]] = i
end
-- One value for every key: etcd's range answer names the key, so the value need not.
local VALUE64 = base64(value_for(1))
local strong_reads, local_reads, writes = {}, {}, {}
for i = 1, KEYS do
  strong_reads[i] = post("/v3/kv/range", '{"key":"' .. key64[i] .. '"}')
  local_reads[i] = post("/v3/kv/range", '{"key":"' .. key64[i] .. '","serializable":true}')
  if VALUE_BYTES <= 2048 then writes[i] = post("/v3/kv/put", '{"key":"' .. key64[i] .. '","value":"' .. VALUE64 .. '"}') end
end
local function write_request(i)
  return writes[i] or post("/v3/kv/put", '{"key":"' .. key64[i] .. '","value":"' .. VALUE64 .. '"}')
end
-- Compare-and-set: a transaction that puts only if the key's mod_revision is still the one read.
local function cas_request(i, revision)
  return post("/v3/kv/txn", '{"compare":[{"key":"' .. key64[i] .. '","target":"MOD","mod_revision":"' .. revision ..
    '","result":"EQUAL"}],"success":[{"request_put":{"key":"' .. key64[i] .. '","value":"' .. VALUE64 .. '"}}]}')
end

-- A range answers "kvs" with the key and its mod_revision; a transaction
-- answers "succeeded":true, or no "succeeded" at all when the compare failed.
local function cas_response(status, headers, body)
  if status ~= 200 then cas_other = cas_other + 1; return end
  if body:find('"kvs"', 1, true) then
    local i = index_of[body:match('"key":"([^"]+)"')]
    local revision = body:match('"mod_revision":"(%d+)"')
    if i and revision then return i, revision end
    cas_other = cas_other + 1
  elseif body:find('"succeeded":true', 1, true) then cas_ok = cas_ok + 1
  else cas_conflict = cas_conflict + 1 end
end
`;
}

function workloadFunctions(w: Workload): string {
  switch (w) {
    case 'writes':
      return lua`function request() return write_request(random(KEYS)) end`;
    case 'strong-reads':
      return lua`function request() return strong_reads[random(KEYS)] end`;
    case 'local-reads':
      return lua`function request() return local_reads[random(KEYS)] end`;
    case 'mixed':
      return lua`
function request()
  local i = random(KEYS)
  if random(100) <= READ_PERCENT then return strong_reads[i] end
  return write_request(i)
end`;
    case 'cas':
      // Read-modify-write: a strong read of a random key, then (as the next
      // request of whichever connection is free) a conditional write with the
      // version that read returned.
      return lua`
local pending, head, tail = {}, 1, 0
function request()
  if head <= tail then
    local p = pending[head]
    pending[head] = nil
    head = head + 1
    return cas_request(p[1], p[2])
  end
  return strong_reads[random(KEYS)]
end
function response(status, headers, body)
  local i, version = cas_response(status, headers, body)
  if i then
    tail = tail + 1
    pending[tail] = { i, version }
  end
end`;
  }
}

/** The whole wrk script for one wrk process of one figure. */
export function wrkScript(s: ScriptSettings): string {
  return [prelude(s), s.protocol === 'velo' ? veloRequests() : etcdRequests(), workloadFunctions(s.workload)].join('\n');
}
