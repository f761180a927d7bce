/**
 * Prints what the flake sandbox (src/nix/eval-sandbox.ts) adds to one `nix build`: the median
 * and 90th percentile of an unchanged, already built `path:` flake (the busybox fixture) built
 * directly and in the sandbox, alternating, and of the sandbox alone running `true`.
 *   npx tsc -p . && node dist/bench/flake-sandbox.js [runs]
 * Needs root, bwrap and Nix; the flake lives in a temporary directory that is removed.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { defaultPluginConfig } from '../src/config/plugin-config.js';
import { flakeSandboxHost, nixTools } from '../src/driver/start-task.js';
import { flakeSandboxArgv, PROC_PRELUDE } from '../src/nix/eval-sandbox.js';
import { flakeBuildArgs } from '../src/nix/realise.js';
import { makeFlake, NO_SUBSTITUTERS } from '../test/support/nix-fixtures.js';

const runs = Number(process.argv[2] ?? 30);
const dir = mkdtempSync(join(tmpdir(), 'flake-sandbox-bench-'));
try {
  const config = { ...defaultPluginConfig(), state_dir: join(dir, 'state'), allow_local_flakes: [join(dir, 'flakes')] };
  const flake = makeFlake(join(dir, 'flakes', 'f'), 'bench', 'echo bench > $out');
  const tools = nixTools(config, process.env.PATH);
  const host = await flakeSandboxHost(config, tools.nix, process.env.PATH);
  const args = flakeBuildArgs({ extraOptions: NO_SUBSTITUTERS }, flake);
  const plain = [tools.nix, ...args];
  const boxed = flakeSandboxArgv(host, args);
  const bare = [...boxed.slice(0, boxed.indexOf('--')), '--', '/bin/sh', '-c', PROC_PRELUDE, 'bench', '/bin/true'];
  const time = (argv: readonly string[]): number => {
    const started = performance.now();
    const result = spawnSync(argv[0] ?? '', argv.slice(1), { encoding: 'utf8' });
    if (result.status !== 0) throw new Error(`${argv.join(' ')}: ${result.stderr}`);
    return performance.now() - started;
  };
  time(plain);
  time(boxed);
  const samples = { plain: [] as number[], sandboxed: [] as number[], 'sandbox alone (true)': [] as number[] };
  for (let i = 0; i < runs; i += 1) {
    samples.plain.push(time(plain));
    samples.sandboxed.push(time(boxed));
    samples['sandbox alone (true)'].push(time(bare));
  }
  const at = (values: number[], q: number) => [...values].sort((a, b) => a - b)[Math.floor(values.length * q)]?.toFixed(1);
  for (const [name, values] of Object.entries(samples)) console.log(`${name}: median ${at(values, 0.5)} ms, p90 ${at(values, 0.9)} ms (${runs} runs)`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
