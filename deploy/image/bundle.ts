// The image ships the product as JavaScript bundled by esbuild, not as the TypeScript sources
// the repository runs. Two costs made every netmesh process larger than it needs to be:
//
// - Node strips types at run time with a WebAssembly build of swc whose memory only grows:
//   about 30 MB of resident memory per process (the webhook command: 172 -> 141 MB), for a
//   transform that gives the same bytes every time.
// - @kubernetes/client-node's entry point (which even KubeConfig loads) is a generated barrel:
//   about 225 API classes in three layers and every model, 7 MB of source parsed and kept by
//   V8 although netmesh calls half a dozen APIs. Importing it costs about 80 MB of resident
//   memory; only what netmesh reaches from it, tree-shaken, about 45-50 MB.
//
// So the image build bundles bin/netmesh.js with everything it imports from the product and from
// client-node into /app/bin (one chunk per lazily loaded command, so `netmesh inject` still
// does not load the operator). Every other package stays an import of /app/node_modules, as
// before: they are small, and their own layout (express, pino, node-forge) is what they are
// tested with. The output is not minified: stack traces keep the functions' names, and
// the .map files next to the chunks turn them back into source lines
// (NODE_OPTIONS=--enable-source-maps). The benchmarks run this bundle too, since it is what
// users run.
import { cpSync, mkdirSync, rmSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { build, type Metafile, type Plugin } from 'esbuild';

/** The one package bundled (tree-shaken) into the product; all others load from node_modules. */
export const BUNDLED_PACKAGE = '@kubernetes/client-node';

/** A bare specifier (a package), as opposed to a relative or absolute path or a node: builtin. */
function isPackage(spec: string): boolean {
  return !spec.startsWith('.') && !spec.startsWith('/') && !spec.startsWith('node:');
}

/** The package a bare specifier names: `@scope/name` or `name`. */
export function packageName(spec: string): string {
  const parts = spec.split('/');
  return spec.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!;
}

/**
 * Pure: whether an import stays external (loaded from node_modules at run time). Relative
 * imports are bundled, and BUNDLED_PACKAGE is; its own dependencies (js-yaml, undici, ...) are
 * not, so they resolve to the same copies the rest of netmesh uses.
 */
export function staysExternal(spec: string): boolean {
  return isPackage(spec) && packageName(spec) !== BUNDLED_PACKAGE;
}

const externalPackages: Plugin = {
  name: 'external-packages',
  setup(b) {
    b.onResolve({ filter: /.*/ }, (args) =>
      args.kind !== 'entry-point' && staysExternal(args.path) ? { path: args.path, external: true } : undefined,
    );
  },
};

/**
 * Bundles `repo`'s bin/netmesh.js into `dest`/bin (entry bin/netmesh.js, chunks beside it), ESM
 * for the pinned Node. Fails on any error (esbuild rejects) or warning, so an import the bundle
 * cannot follow is a build error rather than a crash in the image, and when client-node did not
 * end up in the bundle (the memory this file is for). Returns the bytes of client-node's code.
 * `entries` (output name: path in `repo`) bundles other scripts the same way, for the benchmarks.
 */
export async function bundleApp(
  repo: string,
  dest: string,
  entries: Record<string, string> = { netmesh: join('bin', 'netmesh.js') },
): Promise<number> {
  const result = await build({
    absWorkingDir: repo,
    entryPoints: Object.fromEntries(Object.entries(entries).map(([name, path]) => [name, join(repo, path)])),
    outdir: join(dest, 'bin'),
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: `node${process.versions.node.split('.')[0]}`,
    sourcemap: 'linked',
    sourcesContent: false,
    // Beside the entry: modules that find files relative to themselves (lib/build-info.ts)
    // expect to be one folder below /app.
    chunkNames: '[name]-[hash]',
    plugins: [externalPackages],
    metafile: true,
    logLevel: 'silent',
  });
  if (result.warnings.length) {
    throw new Error(
      `bundling netmesh: ${result.warnings.map((p) => `${p.location ? `${p.location.file}:${p.location.line}: ` : ''}${p.text}`).join('; ')}`,
    );
  }
  const bytes = bundledBytes(result.metafile);
  if (bytes === 0) throw new Error(`bundling netmesh: no code of ${BUNDLED_PACKAGE} in the bundle`);
  return bytes;
}

function bundledBytes(meta: Metafile): number {
  let bytes = 0;
  for (const out of Object.values(meta.outputs))
    for (const [input, { bytesInOutput }] of Object.entries(out.inputs))
      if (input.includes(`node_modules/${BUNDLED_PACKAGE}/`)) bytes += bytesInOutput;
  return bytes;
}

/**
 * A throwaway copy of the product as the image has it, to run it as the image does (the
 * benchmarks): the bundle, package.json, and the repository's node_modules linked in.
 */
export async function bundleAppTree(repo: string, dest: string): Promise<string> {
  rmSync(dest, { recursive: true, force: true });
  mkdirSync(dest, { recursive: true });
  await bundleApp(repo, dest);
  cpSync(join(repo, 'package.json'), join(dest, 'package.json'));
  symlinkSync(join(repo, 'node_modules'), join(dest, 'node_modules'));
  return dest;
}
