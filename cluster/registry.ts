// A read-only container registry on loopback that serves the images built on this machine (OCI
// Distribution API: manifests and blobs by tag or digest). The node's containerd uses it for
// every registry host, so a pull (imagePullPolicy Always, or a `:latest` image such as the
// course's `busybox`) resolves locally and no pull ever leaves the machine: an image that was
// not built here is a 404 and an ErrImagePull, never a request to the Internet.
// It runs as its own process (spawned and owned like the cluster's daemons), so a caller that
// blocks its event loop (execFileSync of kubectl) never stalls the node's image pulls. The
// images it serves are listed in a catalog file, re-read when it changes.
import { createReadStream, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BuiltImage } from '../deploy/image/oci.ts';
import { tagOf } from '../deploy/image/oci.ts';
import { type OwnedProcess, spawnOwned } from './processes.ts';

export interface LocalRegistry {
  /** `127.0.0.1:<port>` */
  host: string;
  /** Serves these images (replacing the catalog). */
  serve(images: BuiltImage[]): void;
  process: OwnedProcess;
  close(): Promise<void>;
}

/** `docker.io/library/busybox:latest` → `library/busybox`; `localhost/netmesh:1` → `netmesh`. */
export function repositoryOf(reference: string): string {
  const noTag = reference.replace(/@.*$/, '').replace(/:[^/:]+$/, '');
  const parts = noTag.split('/');
  const first = parts[0] ?? '';
  const hasHost = parts.length > 1 && (first.includes('.') || first.includes(':') || first === 'localhost');
  const path = hasHost ? parts.slice(1) : parts;
  return path.length === 1 ? `library/${path[0]}` : path.join('/');
}

function sendError(res: ServerResponse, status: number, code: string, message: string): void {
  const body = JSON.stringify({ errors: [{ code, message }] });
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

/** The request handler over a catalog (a function, so the catalog can change under it). */
export function registryHandler(catalog: () => BuiltImage[]) {
  const blobPath = (digest: string): string | undefined => {
    const m = /^sha256:([a-f0-9]{64})$/.exec(digest);
    if (!m) return undefined;
    for (const img of catalog()) {
      const p = join(img.layoutDir, 'blobs', 'sha256', m[1]!);
      if (existsSync(p)) return p;
    }
    return undefined;
  };
  return (req: IncomingMessage, res: ServerResponse): void => {
    res.setHeader('Docker-Distribution-API-Version', 'registry/2.0');
    const url = new URL(req.url ?? '/', 'http://registry');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      sendError(res, 405, 'UNSUPPORTED', 'read-only registry');
      return;
    }
    if (url.pathname === '/v2/' || url.pathname === '/v2') {
      res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': 2 });
      res.end(req.method === 'HEAD' ? undefined : '{}');
      return;
    }
    const m = /^\/v2\/(.+)\/(manifests|blobs)\/([^/]+)$/.exec(url.pathname);
    if (!m) {
      sendError(res, 404, 'NAME_UNKNOWN', `${url.pathname} is not served here`);
      return;
    }
    const [, repo = '', kind, ref = ''] = m;
    let digest = ref;
    let mediaType = 'application/octet-stream';
    if (kind === 'manifests') {
      const img = catalog().find((i) =>
        ref.startsWith('sha256:')
          ? i.manifest.digest === ref
          : repositoryOf(i.reference) === repo && tagOf(i.reference) === ref,
      );
      if (!img) {
        sendError(res, 404, 'MANIFEST_UNKNOWN', `${repo}:${ref} is not built on this machine`);
        return;
      }
      digest = img.manifest.digest;
      mediaType = img.manifest.mediaType;
    }
    const path = blobPath(digest);
    if (!path) {
      sendError(res, 404, 'BLOB_UNKNOWN', `${digest} is not here`);
      return;
    }
    res.writeHead(200, {
      'Content-Type': mediaType,
      'Content-Length': statSync(path).size,
      'Docker-Content-Digest': digest,
    });
    if (req.method === 'HEAD') res.end();
    else createReadStream(path).pipe(res);
  };
}

/** Starts the registry process serving `images`; the catalog file lives in `dir`. */
export async function startLocalRegistry(images: BuiltImage[], dir: string): Promise<LocalRegistry> {
  const catalogFile = join(dir, 'registry-catalog.json');
  const portFile = join(dir, 'registry-port');
  const serve = (list: BuiltImage[]): void => writeFileSync(catalogFile, JSON.stringify(list));
  serve(images);
  const proc = spawnOwned(
    'registry',
    process.execPath,
    [fileURLToPath(import.meta.url), catalogFile, portFile],
    {
      logDir: dir,
      stateDir: dir,
    },
  );
  const deadline = Date.now() + 15_000;
  let port = 0;
  while (!port) {
    if (proc.child.exitCode !== null) throw new Error(`the local registry exited (log ${proc.logFile})`);
    if (Date.now() > deadline) throw new Error(`the local registry did not start (log ${proc.logFile})`);
    try {
      port = Number(readFileSync(portFile, 'utf8'));
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return { host: `127.0.0.1:${port}`, serve, process: proc, close: () => proc.stop() };
}

// The registry process: serves the catalog file's images on a free loopback port, which it
// writes to the port file once listening.
if (import.meta.url === `file://${process.argv[1]}`) {
  const [catalogFile, portFile] = process.argv.slice(2) as [string, string];
  let cached: { mtimeMs: number; images: BuiltImage[] } = { mtimeMs: -1, images: [] };
  const catalog = (): BuiltImage[] => {
    const { mtimeMs } = statSync(catalogFile);
    if (mtimeMs !== cached.mtimeMs) {
      cached = { mtimeMs, images: JSON.parse(readFileSync(catalogFile, 'utf8')) as BuiltImage[] };
    }
    return cached.images;
  };
  const server = createServer(registryHandler(catalog));
  server.listen(0, '127.0.0.1', () => {
    writeFileSync(portFile, String((server.address() as AddressInfo).port));
  });
}
