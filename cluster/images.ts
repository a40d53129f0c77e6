// The images the local node runs, all built on this machine (no registry is reachable):
//   pause          the Pod sandbox (go/images/pause)
//   busybox        the course's Pod and the tests' workloads, from Debian's busybox-static
//   envoy-standin  the sidecar of the test template (go/images/envoy-standin): reads the
//                  mounted Envoy configuration and is Ready only when it could
//   netmesh        the product image, from deploy/Dockerfile (npm run image)
// Each is an OCI layout in the cache, rebuilt only when its input changes.
import { createHash } from 'node:crypto';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { type BuiltImage, readLayout, writeImageLayout, writeLayoutArchive } from '../deploy/image/oci.ts';
import type { ClusterBinaries } from './build.ts';
import { cacheRoot } from './build.ts';
import { run } from './host.ts';

export const PAUSE_IMAGE = 'localhost/netmesh-node/pause:3.10';
export const BUSYBOX_IMAGE = 'docker.io/library/busybox:latest';
export const ENVOY_STANDIN_IMAGE = 'localhost/netmesh-e2e/envoy-standin:1';
/** Also served as `busybox:1.35`, a tag with IfNotPresent semantics for the tests. */
export const BUSYBOX_PINNED_IMAGE = 'docker.io/library/busybox:1.35';

export interface LocalImage extends BuiltImage {
  archive: string;
}

type Stage = (root: string) => void;

const passwd =
  (extra = ''): Stage =>
  (root) => {
    mkdirSync(join(root, 'etc'), { recursive: true });
    writeFileSync(
      join(root, 'etc', 'passwd'),
      `root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n${extra}`,
    );
    writeFileSync(join(root, 'etc', 'group'), 'root:x:0:\nnogroup:x:65534:\n');
    mkdirSync(join(root, 'tmp'), { recursive: true });
    chmodSync(join(root, 'tmp'), 0o1777);
  };

function place(root: string, path: string, src: string): void {
  mkdirSync(join(root, dirname(path)), { recursive: true });
  copyFileSync(src, join(root, path));
  chmodSync(join(root, path), 0o755);
}

/** Builds `reference` from `stage` unless the cache holds it for the same `inputs`. */
async function cachedImage(
  reference: string,
  inputs: string[],
  stage: Stage,
  config: object,
): Promise<LocalImage> {
  const dir = join(cacheRoot(), 'images');
  const safe = reference.replace(/[^\w.-]+/g, '_');
  const layoutDir = join(dir, `${safe}.layout`);
  const archive = join(dir, `${safe}.oci.tar`);
  const stamp = join(dir, `${safe}.inputs`);
  const h = createHash('sha256').update(reference).update(JSON.stringify(config));
  for (const f of inputs) h.update(readFileSync(f));
  const hash = h.digest('hex');
  if (existsSync(archive) && existsSync(stamp) && readFileSync(stamp, 'utf8') === hash) {
    return { ...readLayout(layoutDir), archive };
  }
  mkdirSync(dir, { recursive: true });
  const root = join(dir, `${safe}.rootfs-${process.pid}`);
  rmSync(root, { recursive: true, force: true });
  mkdirSync(root, { recursive: true });
  try {
    stage(root);
    const image = await writeImageLayout(
      { reference, layers: [{ dir: root, comment: 'netmesh local build' }], config },
      layoutDir,
    );
    await writeLayoutArchive(layoutDir, archive);
    writeFileSync(stamp, hash);
    return { ...image, archive };
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

function busyboxApplets(): string[] {
  return run('/bin/busybox', ['--list-full']).split('\n').filter(Boolean);
}

/** The node's own images (not the product's): sandbox, workloads, test sidecar. */
export async function ensureNodeImages(bins: ClusterBinaries): Promise<LocalImage[]> {
  const pause = await cachedImage(PAUSE_IMAGE, [bins.pause], (root) => place(root, 'pause', bins.pause), {
    Entrypoint: ['/pause'],
    User: '65535:65535',
  });
  const stageBusybox: Stage = (root) => {
    passwd()(root);
    place(root, 'bin/busybox', '/bin/busybox');
    for (const applet of busyboxApplets()) {
      if (applet === 'bin/busybox') continue;
      const target = join(root, applet);
      mkdirSync(dirname(target), { recursive: true });
      if (!existsSync(target)) symlinkSync('/bin/busybox', target);
    }
  };
  const busyboxConfig = {
    Cmd: ['sh'],
    Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
  };
  const busybox = await cachedImage(BUSYBOX_IMAGE, ['/bin/busybox'], stageBusybox, busyboxConfig);
  const busyboxPinned = await cachedImage(
    BUSYBOX_PINNED_IMAGE,
    ['/bin/busybox'],
    stageBusybox,
    busyboxConfig,
  );
  const standin = await cachedImage(
    ENVOY_STANDIN_IMAGE,
    [bins.envoyStandin],
    (root) => {
      passwd('envoy:x:101:101:envoy:/nonexistent:/bin/false\n')(root);
      place(root, 'usr/local/bin/envoy-standin', bins.envoyStandin);
      // The course's template runs /usr/local/bin/envoy: the stand-in answers to that name too.
      symlinkSync('envoy-standin', join(root, 'usr/local/bin/envoy'));
    },
    {
      Entrypoint: ['/usr/local/bin/envoy'],
      User: '101:101',
      ExposedPorts: { '15001/tcp': {}, '15000/tcp': {} },
    },
  );
  return [pause, busybox, busyboxPinned, standin];
}
