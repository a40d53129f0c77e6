// Writes container images as OCI image layouts and archives without a container engine: each
// layer is a tar (tar-stream) of a staged directory, gzipped, named by its digest. The output
// is reproducible (sorted entries, fixed owner and mtime), so an unchanged layer keeps its
// digest and containerd does not unpack it again. An archive (a tar of the layout) is what
// `ctr images import`, `kind load image-archive`, `docker load` and `skopeo` read.
import { createHash } from 'node:crypto';
import {
  createReadStream,
  createWriteStream,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join, posix, relative } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import tar from 'tar-stream';

export const MEDIA = {
  index: 'application/vnd.oci.image.index.v1+json',
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  config: 'application/vnd.oci.image.config.v1+json',
  layer: 'application/vnd.oci.image.layer.v1.tar+gzip',
} as const;

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}

/** The runtime part of an image config (the OCI `config` object, Docker's field names). */
export interface ImageRuntimeConfig {
  Entrypoint?: string[];
  Cmd?: string[];
  Env?: string[];
  User?: string;
  WorkingDir?: string;
  ExposedPorts?: Record<string, Record<string, never>>;
  Labels?: Record<string, string>;
}

export interface ImageSpec {
  /** Full reference the image is known by, e.g. `localhost/netmesh:0.1.0`. */
  reference: string;
  /** Staged root filesystems, one layer each, applied in order. */
  layers: { dir: string; comment: string }[];
  config: ImageRuntimeConfig;
}

export interface BuiltImage {
  reference: string;
  layoutDir: string;
  manifest: Descriptor;
}

/** One fixed time for every entry and the config: builds of the same input are identical. */
const EPOCH = new Date(0);

function sha256File(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(path)
      .on('data', (c) => h.update(c))
      .on('end', () => resolve(h.digest('hex')))
      .on('error', reject);
  });
}

function writeBlob(layoutDir: string, content: Buffer | string, mediaType: string): Descriptor {
  const buf = Buffer.isBuffer(content) ? content : Buffer.from(content);
  const hex = createHash('sha256').update(buf).digest('hex');
  const dir = join(layoutDir, 'blobs', 'sha256');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, hex), buf);
  return { mediaType, digest: `sha256:${hex}`, size: buf.length };
}

/** Every path under `root`, parents before children, in byte order (reproducible). */
function walk(root: string): string[] {
  const out: string[] = [];
  const visit = (dir: string): void => {
    for (const name of readdirSync(dir).sort()) {
      const p = join(dir, name);
      out.push(p);
      if (lstatSync(p).isDirectory()) visit(p);
    }
  };
  visit(root);
  return out;
}

/**
 * Tars `dir` as a layer: owner root unless the staged file says otherwise through `owners`
 * (image path → uid:gid), permissions as staged, symlinks kept.
 */
async function writeLayer(
  layoutDir: string,
  dir: string,
  owners: Record<string, [number, number]>,
): Promise<{ descriptor: Descriptor; diffId: string }> {
  const blobs = join(layoutDir, 'blobs', 'sha256');
  mkdirSync(blobs, { recursive: true });
  const tmp = join(blobs, `.layer-${process.pid}-${Date.now()}`);
  const pack = tar.pack();
  const diff = createHash('sha256');
  const gzip = createGzip({ level: 1 });
  const written = pipeline(
    pack as unknown as Readable,
    async function* (source: AsyncIterable<Buffer>) {
      for await (const chunk of source) {
        diff.update(chunk);
        yield chunk;
      }
    },
    gzip,
    createWriteStream(tmp),
  );
  for (const path of walk(dir)) {
    const name = relative(dir, path).split('\\').join('/');
    const st = lstatSync(path);
    const [uid, gid] = owners[`/${name}`] ?? [0, 0];
    const header = { name, mode: st.mode & 0o7777, uid, gid, uname: '', gname: '', mtime: EPOCH };
    if (st.isSymbolicLink()) {
      pack.entry({ ...header, type: 'symlink', linkname: readlinkSync(path) });
    } else if (st.isDirectory()) {
      pack.entry({ ...header, name: `${name}/`, type: 'directory' });
    } else if (st.isFile()) {
      const entry = pack.entry({ ...header, type: 'file', size: st.size });
      await pipeline(createReadStream(path), entry);
    }
  }
  pack.finalize();
  await written;
  const hex = await sha256File(tmp);
  renameSync(tmp, join(blobs, hex));
  return {
    descriptor: { mediaType: MEDIA.layer, digest: `sha256:${hex}`, size: statSync(join(blobs, hex)).size },
    diffId: `sha256:${diff.digest('hex')}`,
  };
}

/** The tag part of a reference (`latest` when it has none). */
export function tagOf(reference: string): string {
  const last = reference.slice(reference.lastIndexOf('/') + 1);
  return last.includes(':') ? last.slice(last.indexOf(':') + 1) : 'latest';
}

/** Writes `spec` as an OCI image layout in `layoutDir` (replacing what was there). */
export async function writeImageLayout(
  spec: ImageSpec,
  layoutDir: string,
  owners: Record<string, [number, number]> = {},
): Promise<BuiltImage> {
  rmSync(layoutDir, { recursive: true, force: true });
  mkdirSync(layoutDir, { recursive: true });
  writeFileSync(join(layoutDir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  const layers: Descriptor[] = [];
  const diffIds: string[] = [];
  for (const l of spec.layers) {
    const { descriptor, diffId } = await writeLayer(layoutDir, l.dir, owners);
    layers.push(descriptor);
    diffIds.push(diffId);
  }
  const config = {
    created: EPOCH.toISOString(),
    architecture: 'amd64',
    os: 'linux',
    config: spec.config,
    rootfs: { type: 'layers', diff_ids: diffIds },
    history: spec.layers.map((l) => ({ created: EPOCH.toISOString(), created_by: l.comment })),
  };
  const configDesc = writeBlob(layoutDir, JSON.stringify(config), MEDIA.config);
  const manifest = { schemaVersion: 2, mediaType: MEDIA.manifest, config: configDesc, layers };
  const manifestDesc = writeBlob(layoutDir, JSON.stringify(manifest), MEDIA.manifest);
  const named: Descriptor = {
    ...manifestDesc,
    annotations: {
      // containerd (ctr import, kind load) names the image from this annotation ...
      'io.containerd.image.name': spec.reference,
      // ... OCI tools (skopeo, docker load) from this one.
      'org.opencontainers.image.ref.name': tagOf(spec.reference),
    },
  };
  writeFileSync(
    join(layoutDir, 'index.json'),
    JSON.stringify({ schemaVersion: 2, mediaType: MEDIA.index, manifests: [named] }),
  );
  return { reference: spec.reference, layoutDir, manifest: manifestDesc };
}

/** Reads back the named manifest of a layout written by writeImageLayout. */
export function readLayout(layoutDir: string): BuiltImage {
  const index = JSON.parse(readFileSync(join(layoutDir, 'index.json'), 'utf8')) as {
    manifests: Descriptor[];
  };
  const m = index.manifests[0];
  const reference = m?.annotations?.['io.containerd.image.name'];
  if (!m || !reference) throw new Error(`${layoutDir} holds no named image`);
  const { annotations: _a, ...manifest } = m;
  return { reference, layoutDir, manifest };
}

/** Packs a layout directory into one archive file (an uncompressed tar of the layout). */
export async function writeLayoutArchive(layoutDir: string, archivePath: string): Promise<void> {
  const tmp = `${archivePath}.tmp-${process.pid}`;
  const pack = tar.pack();
  const written = pipeline(pack as unknown as Readable, createWriteStream(tmp));
  for (const path of walk(layoutDir)) {
    const name = posix.join(...relative(layoutDir, path).split('\\'));
    if (name.includes('/.layer-')) continue;
    const st = statSync(path);
    const header = { name, mode: 0o644, uid: 0, gid: 0, mtime: EPOCH };
    if (st.isDirectory()) pack.entry({ ...header, name: `${name}/`, mode: 0o755, type: 'directory' });
    else await pipeline(createReadStream(path), pack.entry({ ...header, type: 'file', size: st.size }));
  }
  pack.finalize();
  await written;
  renameSync(tmp, archivePath);
}
