// Builds a small standard-library Go program that lives in bench/ (the open-loop load
// generator) with the local toolchain, once: the binary is cached under ~/.cache/netmesh/bench
// by the hash of its sources and the Go version, as cluster/build.ts caches the control plane.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, globSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { cacheRoot } from '../../cluster/build.ts';
import { UserFacingError } from '../../lib/errors.ts';

function goVersion(go: string): string {
  try {
    return execFileSync(go, ['env', 'GOVERSION'], { encoding: 'utf8' }).trim();
  } catch {
    throw new UserFacingError(
      'the webhook benchmark builds its load generator with Go, which was not found',
      'install Go >= 1.24 (the local control plane needs it too)',
    );
  }
}

/** Path of the built binary for the Go module in `dir`; builds it when the cache has none. */
export function ensureGoTool(dir: string, name: string): string {
  const go = process.env['GO'] ?? 'go';
  const version = goVersion(go);
  const h = createHash('sha256').update(version);
  for (const f of globSync('**/{go.mod,go.sum,*.go}', { cwd: dir }).sort()) {
    h.update(f)
      .update('\0')
      .update(readFileSync(join(dir, f)));
  }
  const outDir = join(cacheRoot(), 'bench', `${name}-${h.digest('hex').slice(0, 12)}`);
  const binary = join(outDir, name);
  if (existsSync(binary)) return binary;
  mkdirSync(outDir, { recursive: true });
  const tmp = `${binary}.${process.pid}.tmp`;
  try {
    // GOTOOLCHAIN=local: never download another toolchain; GOFLAGS cleared so a user's
    // -mod=vendor or the like cannot change the build of a dependency-free module.
    execFileSync(go, ['build', '-trimpath', '-o', tmp, '.'], {
      cwd: dir,
      env: { ...process.env, GOTOOLCHAIN: 'local', GOFLAGS: '', CGO_ENABLED: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    renameSync(tmp, binary);
  } catch (err) {
    rmSync(tmp, { force: true });
    const stderr = (err as { stderr?: Buffer }).stderr?.toString().trim();
    throw new UserFacingError(`building ${name} failed`, stderr || (err as Error).message);
  }
  return binary;
}
