// Builds src/room.js into a WebAssembly component of the `channel-plugin`
// world. componentize-js generates the bindings from the WIT package in
// ../../wit at every build, so the plugin always matches the contract the
// host implements.
//
// `plume build` runs this (`npm run build`) with PLUME_PLUGIN_OUT set to the
// file to write; run by hand, it writes dist/room-js.wasm.

import { componentize } from '@bytecodealliance/componentize-js';
import { mkdir, readFile, readdir, rename, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const wit = resolve(here, '../../wit');
const sources = resolve(here, 'src');
const out = resolve(process.env.PLUME_PLUGIN_OUT ?? resolve(here, 'dist/room-js.wasm'));

await checkImportVersions();

const { component } = await componentize({
  sourcePath: join(sources, 'room.js'),
  witPath: wit,
  worldName: 'channel-plugin',
  // The host gives plugins no WASI (no stdio, clocks, randomness or
  // network): everything a plugin may do goes through plume's own imports.
  // Without these features the component imports only the plume world.
  disableFeatures: ['stdio', 'random', 'clocks', 'http', 'fetch-event'],
});

// Write aside and rename, so a server watching `out` never loads half a file.
await mkdir(dirname(out), { recursive: true });
const partial = `${out}.${process.pid}.partial`;
await writeFile(partial, component);
await rename(partial, out);
console.log(`room-js: wrote ${out} (${(component.length / 1024 / 1024).toFixed(1)} MiB)`);

/** Host imports are ES modules named with the WIT package's version
 * (`plume:plugin/channel@0.3.0`). When the package's version moves on, an
 * old specifier would fail deep inside the engine's snapshot with "Error
 * loading module"; say what to change instead. */
async function checkImportVersions() {
  const files = (await readdir(wit)).filter((name) => name.endsWith('.wit'));
  const texts = await Promise.all(files.map((name) => readFile(join(wit, name), 'utf8')));
  const version = texts.join('\n').match(/^package plume:plugin@([^;\s]+);/m)?.[1];
  if (!version) throw new Error(`no \`package plume:plugin@...;\` in ${wit}`);
  for (const name of await readdir(sources)) {
    if (!name.endsWith('.js')) continue;
    const text = await readFile(join(sources, name), 'utf8');
    for (const [specifier, used] of text.matchAll(/plume:plugin\/[a-z-]+@([^'"]+)/g)) {
      if (used !== version) {
        console.error(`room-js: src/${name} imports '${specifier}', but wit/ is plume:plugin@${version}: import '${specifier.replace(`@${used}`, `@${version}`)}' (and check the WIT's changes)`);
        process.exit(1);
      }
    }
  }
}
