import { describe, expect, test } from 'vitest';
import { formatBytes, parseByteSize } from '../../src/cli/byte-size.js';
import { UsageError } from '../../src/cli/args.js';

describe('--max-memory sizes', () => {
  test('plain bytes and binary suffixes, any case', () => {
    expect(parseByteSize('max-memory', '1048576', 1, 2 ** 50)).toBe(1048576);
    expect(parseByteSize('max-memory', '512mb', 1, 2 ** 50)).toBe(512 * 2 ** 20);
    expect(parseByteSize('max-memory', '2GB', 1, 2 ** 50)).toBe(2 * 2 ** 30);
    expect(parseByteSize('max-memory', '1.5GiB', 1, 2 ** 50)).toBe(1.5 * 2 ** 30);
    expect(parseByteSize('max-memory', '64k', 1, 2 ** 50)).toBe(65536);
  });

  test('anything else, or out of range, is a usage error naming the flag', () => {
    for (const bad of ['', 'lots', '-1', '1e9', '5 pb', '0x10', '12mbb']) expect(() => parseByteSize('max-memory', bad, 1, 2 ** 50)).toThrowError(UsageError);
    expect(() => parseByteSize('max-memory', '1kb', 2 ** 20, 2 ** 50)).toThrowError(/--max-memory must be from 1 MiB/);
  });

  test('sizes print in the largest unit', () => {
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(2 ** 30)).toBe('1 GiB');
    expect(formatBytes(1.5 * 2 ** 30)).toBe('1.5 GiB');
  });
});
