// Protected mode's rules as pure functions: which addresses are loopback or
// "every address", when a node may start, and when the browser guard is on.
import { describe, expect, test } from 'vitest';
import { browserGuardApplies, checkProtectedMode } from '../../src/cli/protected-mode.js';
import type { Exposure } from '../../src/cli/protected-mode.js';
import { isLoopbackHost, isUnspecifiedHost } from '../../src/node/loopback.js';

const base: Exposure = { http: '127.0.0.1:7070', advertiseHttp: null, raft: '127.0.0.1:7170', advertiseRaft: null, tokens: false, peerTls: false, httpsServed: false, insecure: false };

describe('addresses', () => {
  test('loopback: localhost, *.localhost, 127.0.0.0/8, ::1 in its forms; nothing else', () => {
    for (const h of ['localhost', 'LOCALHOST', 'app.localhost', '127.0.0.1', '127.255.0.9', '::1', '[::1]', '0:0:0:0:0:0:0:1', '::ffff:127.0.0.1']) expect([h, isLoopbackHost(h)]).toEqual([h, true]);
    for (const h of ['0.0.0.0', '::', '10.0.0.1', '192.0.2.1', '128.0.0.1', 'localhost.evil.example', '127.0.0.1.evil.example', 'example.com', '::2', '']) expect([h, isLoopbackHost(h)]).toEqual([h, false]);
  });

  test('every address: 0.0.0.0 and :: in its forms', () => {
    for (const h of ['0.0.0.0', '::', '[::]', '0:0:0:0:0:0:0:0']) expect([h, isUnspecifiedHost(h)]).toEqual([h, true]);
    for (const h of ['127.0.0.1', '::1', '0.0.0.1', 'localhost']) expect([h, isUnspecifiedHost(h)]).toEqual([h, false]);
  });
});

describe('checkProtectedMode', () => {
  test('loopback without credentials starts without a warning', () => {
    expect(checkProtectedMode(base)).toEqual([]);
  });

  test('credentials let a node off loopback start: tokens for HTTP, peer TLS for raft', () => {
    expect(checkProtectedMode({ ...base, http: '10.0.0.1:7070', tokens: true })).toEqual([]);
    expect(checkProtectedMode({ ...base, raft: '10.0.0.1:7170', peerTls: true })).toEqual([]);
    expect(() => checkProtectedMode({ ...base, http: '10.0.0.1:7070', peerTls: true })).toThrow(/add --admin-token-file FILE/);
    expect(() => checkProtectedMode({ ...base, raft: '10.0.0.1:7170', tokens: true })).toThrow(/add --peer-ca FILE --peer-cert FILE --peer-key FILE/);
  });

  test('an embedded node without HTTP is judged on its raft address only', () => {
    expect(checkProtectedMode({ ...base, http: null, advertiseHttp: '10.0.0.1:7070' })).toEqual([]);
  });

  test('--insecure starts anything with a warning per open port, and still refuses 0.0.0.0 without an advertised address', () => {
    const open = checkProtectedMode({ ...base, http: '0.0.0.0:7070', advertiseHttp: '10.0.0.1:7070', raft: '10.0.0.1:7170', insecure: true });
    expect(open).toHaveLength(2);
    expect(open[0]).toMatch(/^--insecure: the HTTP API \(--http 0\.0\.0\.0:7070\) needs no token/);
    expect(open[1]).toMatch(/^--insecure: the raft port \(--raft 10\.0\.0\.1:7170\) accepts any peer/);
    expect(() => checkProtectedMode({ ...base, http: '0.0.0.0:7070', insecure: true })).toThrow(/add --advertise-http/);
    expect(checkProtectedMode({ ...base, insecure: true })).toEqual(['--insecure: protected mode is off, but nothing is exposed (both addresses are loopback or protected)']);
  });
});

describe('browserGuardApplies', () => {
  test('only to an HTTP API open on loopback: no tokens, no TLS, not advertised elsewhere', () => {
    expect(browserGuardApplies(base)).toBe(true);
    expect(browserGuardApplies({ ...base, tokens: true })).toBe(false);
    expect(browserGuardApplies({ ...base, httpsServed: true })).toBe(false);
    expect(browserGuardApplies({ ...base, http: null })).toBe(false);
    expect(browserGuardApplies({ ...base, advertiseHttp: '10.0.0.1:7070', insecure: true })).toBe(false);
    expect(browserGuardApplies({ ...base, http: '0.0.0.0:7070', advertiseHttp: '127.0.0.1:7070', insecure: true })).toBe(false);
  });
});
