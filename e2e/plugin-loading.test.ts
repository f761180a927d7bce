/**
 * Issue: a plugin that a real Nomad agent loads, configures and fingerprints.
 * Every test starts a real `nomad agent -dev` with our plugin_dir and a `plugin "nix"` block.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { NomadAgent, childrenOf, isAlive, nomadBinary, pluginPids } from './support/nomad-agent.js';

const agents: NomadAgent[] = [];
async function agent(options: Parameters<typeof NomadAgent.start>[0] = {}): Promise<NomadAgent> {
  const a = await NomadAgent.start(options);
  agents.push(a);
  return a;
}

before(() => {
  nomadBinary(); // build (or find) Nomad before any timing starts
});
after(() => {
  for (const a of agents) a.cleanup();
});

function which(name: string): string | undefined {
  const result = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
  return result.status === 0 ? result.stdout.trim() : undefined;
}

describe('a real Nomad agent with the nix plugin', { timeout: 600_000 }, () => {
  it('(a) reports driver nix detected and healthy, with its attributes', async () => {
    const a = await agent();
    try {
      const { node, driver } = await a.nixDriver((d) => d.Detected && d.Healthy);
      const attrs = driver.Attributes ?? {};
      assert.equal(driver.HealthDescription, 'healthy');
      assert.equal(attrs['driver.nix'], 'true');
      // on the node, Nomad renders the bool as "1", exactly as for its builtin driver.raw_exec
      assert.equal(node.Attributes?.['driver.nix'], '1');
      assert.equal(node.Attributes?.['driver.nix'], node.Attributes?.['driver.raw_exec']);
      assert.equal(attrs['driver.nix.version'], '0.1.0');
      assert.equal(attrs['driver.nix.runtime'], 'bwrap');
      const nixVersion = /(\d+\.\d+\S*)/.exec(spawnSync('nix', ['--version'], { encoding: 'utf8' }).stdout)?.[1];
      assert.equal(attrs['driver.nix.nix_version'], nixVersion);
      assert.equal(attrs['driver.nix.nix_implementation'], 'Nix');
      const bwrapVersion = /bubblewrap (\S+)/.exec(spawnSync('bwrap', ['--version'], { encoding: 'utf8' }).stdout)?.[1];
      assert.equal(attrs['driver.nix.runtime_version'], bwrapVersion);
      assert.equal(attrs['driver.nix.cgroups'], node.Attributes?.['os.cgroups.version'] === '2' ? 'v2' : 'v1');
      // Nomad copies driver attributes onto the node, where constraints can use them
      assert.equal(node.Attributes?.['driver.nix.runtime'], 'bwrap');
      // the CLI an operator would use shows the driver too
      const cli = spawnSync(nomadBinary(), ['node', 'status', `-address=${a.address}`, '-self', '-verbose'], { encoding: 'utf8' });
      assert.equal(cli.status, 0, cli.stderr);
      assert.match(cli.stdout, /driver\.nix\.runtime\s+= bwrap/);
      // the agent parsed every plugin log line as hclog JSON (none fell back to raw text)
      const log = a.log();
      assert.match(log, /\[INFO\]\s+agent\.plugin_loader\.nix: plugin started|\[INFO\]\s+.*nix.*plugin started/);
      assert.doesNotMatch(log, /nix: \{"@level"/, 'a plugin line was not parsed as hclog JSON');
    } finally {
      await a.stop();
    }
  });

  it('(a) honours runtime = "runc" from the plugin config block', async () => {
    const a = await agent({ pluginConfig: '    runtime = "runc"' });
    try {
      const { driver } = await a.nixDriver((d) => d.Detected && d.Healthy);
      assert.equal(driver.Attributes?.['driver.nix.runtime'], 'runc');
      assert.match(driver.Attributes?.['driver.nix.runtime_version'] ?? '', /^\d+\.\d+/);
    } finally {
      await a.stop();
    }
  });

  it('(b) a bad plugin config value stops the agent with a message naming the field and the allowed values', async () => {
    const a = await agent({ pluginConfig: '    runtime = "docker"' });
    const code = await a.waitForExit(60_000);
    assert.notEqual(code, undefined, `agent kept running with runtime = "docker"\n${a.logTail()}`);
    assert.notEqual(code, 0);
    assert.match(a.log(), /field "runtime": "docker" is not one of "bwrap", "runc"/);
    // Nomad does not kill the validating plugin when it gives up; the plugin notices and exits
    assert.deepEqual(await pluginsGone(3_000), []);
  });

  it('(c) without nix on PATH the driver is detected but unhealthy, with the install hint', async () => {
    // the agent's PATH with every program but nix* (Nomad itself needs df and friends)
    const bin = mkdtempSync(join(tmpdir(), 'nix-e2e-path-'));
    try {
      for (const dir of (process.env.PATH ?? '').split(':')) {
        if (!dir.startsWith('/') || !existsSync(dir)) continue;
        for (const name of readdirSync(dir)) {
          if (name.startsWith('nix') || existsSync(join(bin, name))) continue;
          symlinkSync(join(dir, name), join(bin, name));
        }
      }
      assert.equal(which('nix') !== undefined, true, 'this test needs nix installed, to hide it');
      const a = await agent({ path: bin });
      try {
        const { driver } = await a.nixDriver((d) => d.Detected);
        assert.equal(driver.Healthy, false);
        assert.match(
          driver.HealthDescription,
          /nix not found on the agent's PATH; fix: install Nix \(Debian\/Ubuntu: apt-get install nix-bin\) or set nix_bin/,
        );
        assert.equal(driver.Attributes?.['driver.nix'], 'true');
      } finally {
        await a.stop();
      }
    } finally {
      rmSync(bin, { recursive: true, force: true });
    }
  });

  it('(d) the plugin exits within 2 s of the agent stopping, and nothing is left running', async () => {
    const a = await agent();
    await a.nixDriver((d) => d.Healthy);
    const plugins = childrenOf(a.pid).filter((pid) => pluginPids().includes(pid));
    assert.equal(plugins.length, 1, `expected one long-lived plugin process under the agent, found ${plugins.length}`);
    const [plugin] = plugins as [number];
    // a -dev agent exits 1 after a clean Ctrl-C shutdown ("agent: shutdown complete"); only its exit matters here
    await a.stop();
    const stoppedAt = Date.now();
    while (isAlive(plugin) && Date.now() - stoppedAt < 5_000) await new Promise((r) => setTimeout(r, 50));
    const lingered = Date.now() - stoppedAt;
    assert.equal(isAlive(plugin), false, 'plugin still running 5 s after the agent exited');
    assert.ok(lingered <= 2_000, `plugin outlived the agent by ${lingered} ms`);
    assert.deepEqual(await pluginsGone(1_000), []);
  });
});

/** Waits up to `ms` for every plugin process to exit; returns the pids still alive. */
async function pluginsGone(ms: number): Promise<number[]> {
  const deadline = Date.now() + ms;
  for (;;) {
    const alive = pluginPids().filter((pid) => isAlive(pid));
    if (alive.length === 0 || Date.now() > deadline) return alive;
    await new Promise((r) => setTimeout(r, 100));
  }
}
