// What the figures were measured on, for the report.
import { readFileSync } from 'node:fs';
import { cpus, release, totalmem } from 'node:os';
import { versionOf } from './tools.js';

export interface Machine {
  date: string;
  cpuModel: string;
  cores: number;
  ramGiB: number;
  kernel: string;
  node: string;
  wrk: string | null;
  etcd: string | null;
  redis: string | null;
}

function cpuModel(): string {
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) return m[1]!.trim();
  } catch {
    // not Linux
  }
  return cpus()[0]?.model ?? 'unknown';
}

export function describeMachine(): Machine {
  return {
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    cpuModel: cpuModel(),
    cores: cpus().length,
    ramGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    kernel: release(),
    node: process.version,
    wrk: versionOf('wrk', ['-v'], /wrk\s+(\S+)/),
    etcd: versionOf('etcd', ['--version'], /etcd Version:\s*(\S+)/),
    redis: versionOf('redis-server', ['--version'], /v=(\S+)/),
  };
}
