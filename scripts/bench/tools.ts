// The external programs the benchmark drives — wrk, etcd, redis-server — come
// from Debian's packages. A missing one is installed with apt-get; if that
// fails the rows that need it are skipped with the reason, never the run.
import { execFileSync, spawnSync } from 'node:child_process';

export interface Tool {
  /** The binary on PATH. */
  binary: string;
  /** The Debian package that provides it. */
  debianPackage: string;
}

export const WRK: Tool = { binary: 'wrk', debianPackage: 'wrk' };
export const ETCD: Tool = { binary: 'etcd', debianPackage: 'etcd-server' };
export const REDIS: Tool = { binary: 'redis-server', debianPackage: 'redis-server' };

function onPath(binary: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${binary}`], { stdio: 'ignore' }).status === 0;
}

let updated = false;

/** Null when the tool is there (now); otherwise why it is not. */
export function ensureTool(tool: Tool, log: (line: string) => void): string | null {
  if (onPath(tool.binary)) return null;
  log(`${tool.binary} not found: apt-get install -y ${tool.debianPackage}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const install = () => spawnSync('apt-get', ['install', '-y', '--no-install-recommends', tool.debianPackage], { env, encoding: 'utf8' });
  let r = install();
  if (r.status !== 0 && !updated) {
    // The package lists may be missing or old on a fresh machine.
    updated = true;
    log('apt-get install failed: apt-get update, then again');
    spawnSync('apt-get', ['update'], { env, stdio: 'ignore' });
    r = install();
  }
  if (r.status === 0 && onPath(tool.binary)) return null;
  const why = (r.error?.message ?? r.stderr ?? '').trim().split('\n').slice(-1)[0] || `exit status ${r.status}`;
  return `${tool.binary} is missing and apt-get could not install ${tool.debianPackage} (${why})`;
}

/** The first line of `binary --version`-style output, or null. */
export function versionOf(binary: string, args: string[], pattern: RegExp): string | null {
  try {
    const out = execFileSync(binary, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    return pattern.exec(out)?.[1] ?? null;
  } catch (e) {
    // wrk -v exits 1 after printing its version.
    const out = String((e as { stdout?: string }).stdout ?? '');
    return pattern.exec(out)?.[1] ?? null;
  }
}
