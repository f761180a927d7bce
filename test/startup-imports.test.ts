/**
 * What the plugin loads before it prints its handshake line (issue 16: start ≤ 100 ms to the
 * line): main.ts's static imports, followed through src/. The driver and everything below it
 * (msgpackr, the runtimes; node-pty loads on the first exec with a terminal) come in by main.ts's dynamic import of
 * plugin/app.ts after the line, and .proto files are parsed at build time, not here.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';

const SRC = fileURLToPath(new URL('../../src', import.meta.url));

/** The modules `entry` loads before it runs (static value imports, not `import type`), transitively. */
function staticGraph(entry: string): { files: string[]; packages: string[] } {
  const pattern = /^\s*(import|export)\s+(type\s+)?(?:[^'";]*?\s+from\s+)?['"]([^'"]+)['"]/gm;
  const files = new Set<string>();
  const packages = new Set<string>();
  const visit = (file: string) => {
    if (files.has(file)) return;
    files.add(file);
    for (const match of readFileSync(file, 'utf8').matchAll(pattern)) {
      const specifier = match[3] ?? '';
      if (match[2] !== undefined) continue;
      // `import { type A, type B } from` loads nothing either
      if (/^\s*import\s*\{(\s*type\s+[^,}]+,?)+\s*\}\s*from/.test(match[0])) continue;
      if (specifier.startsWith('.')) {
        const target = resolve(dirname(file), specifier).replace(/\.js$/, '.ts');
        if (existsSync(target)) visit(target);
      } else if (!specifier.startsWith('node:')) packages.add(specifier);
    }
  };
  visit(join(SRC, entry));
  return { files: [...files].map((f) => relative(SRC, f)).sort(), packages: [...packages].sort() };
}

describe('modules loaded before the handshake line', () => {
  const graph = staticGraph('main.ts');

  it('are grpc-js, protobufjs without its .proto parser, and pino: nothing of the driver', () => {
    assert.deepEqual(graph.packages, ['@grpc/grpc-js', 'pino', 'protobufjs/light.js']);
  });

  it('include no module of the driver, its runtimes or the task-facing rpc services', () => {
    const below = graph.files.filter(
      (f) => /^(driver|nix|rootfs|runtime|cgroup)\//.test(f) || /^rpc\/(driver-service|base-service|codec|exec-stream)\.ts$/.test(f),
    );
    assert.deepEqual(below, []);
  });

  it('load the driver through plugin/app.ts, which main.ts imports after the line', () => {
    const main = readFileSync(join(SRC, 'main.ts'), 'utf8');
    const handshake = main.indexOf('writeHandshake(handshakeLine(');
    const load = main.indexOf("await import('./plugin/app.js')");
    assert.ok(handshake > 0 && load > handshake, 'main.ts imports plugin/app.js after it writes the handshake line');
    const app = staticGraph('plugin/app.ts');
    assert.equal(app.packages.includes('msgpackr'), true);
    assert.equal(app.files.includes('driver/driver.ts'), true);
  });
});
