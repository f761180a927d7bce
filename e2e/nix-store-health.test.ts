/**
 * Issue 11: a client on which every realisation would fail is an unhealthy driver, not a
 * stream of failed tasks. Each test breaks one thing every `nix build` needs, through the
 * plugin's nix_options (as an operator's nix.conf would), and expects `driver.nix` detected but
 * unhealthy in Nomad, with the cause and the fix as its health description.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { NomadAgent, nomadBinary } from './support/nomad-agent.js';

const agents: NomadAgent[] = [];
const scratch = mkdtempSync(join(tmpdir(), 'nix-e2e-store-health-'));
before(() => {
  nomadBinary();
});
after(() => {
  for (const a of agents) a.cleanup();
  rmSync(scratch, { recursive: true, force: true });
});

/** Starts an agent with these nix_options and returns the nix driver's health as Nomad reports it. */
async function health(nixOptions: string[]): Promise<{ healthy: boolean; description: string; cli: string }> {
  const a = await NomadAgent.start({ pluginConfig: `    nix_options = ${JSON.stringify(nixOptions)}` });
  agents.push(a);
  try {
    const { driver } = await a.nixDriver((d) => d.Detected);
    const cli = spawnSync(nomadBinary(), ['node', 'status', `-address=${a.address}`, '-self', '-verbose'], { encoding: 'utf8' });
    assert.equal(cli.status, 0, cli.stderr);
    return { healthy: driver.Healthy, description: driver.HealthDescription, cli: cli.stdout };
  } finally {
    await a.stop();
  }
}

describe('the nix driver is unhealthy when Nix cannot build', { timeout: 600_000 }, () => {
  it('build-users-group names a group that does not exist (a fresh Debian nix-bin has no nixbld)', async () => {
    const h = await health(['build-users-group = nosuchgroup']);
    assert.equal(h.healthy, false);
    assert.equal(
      h.description,
      'Nix cannot build: the group "nosuchgroup" named by build-users-group does not exist (Nix running as root without a daemon runs every build as one of that group\'s members); fix: create the group and build users in it as Nix\'s installer does (groupadd --system nosuchgroup; then for i in 1 … 32: useradd --system --no-create-home --home-dir /var/empty --shell /usr/sbin/nologin --gid nosuchgroup --groups nosuchgroup --comment "Nix build user $i" nixbld$i; scripts/setup.sh does this), or run a nix-daemon and add "store = daemon" to nix_options in the plugin "nix" config',
    );
    // what an operator sees: the driver and its message in `nomad node status -self -verbose`
    assert.match(h.cli, /nix\s+true\s+false\s+Nix cannot build: the group "nosuchgroup" named by build-users-group does not exist/);
  });

  it('the store nix_options names has a database directory that is not a directory', async () => {
    const root = join(scratch, 'broken-store');
    mkdirSync(join(root, 'nix/store'), { recursive: true });
    mkdirSync(join(root, 'nix/var/nix'), { recursive: true });
    writeFileSync(join(root, 'nix/var/nix/db'), 'a file where Nix keeps its database directory\n');
    const h = await health([`store = ${root}`]);
    assert.equal(h.healthy, false);
    assert.equal(
      h.description,
      `Nix cannot open its store: the database directory "${root}/nix/var/nix/db" is not a directory; fix: move it away so Nix can create the directory, or point the store setting (nix.conf or nix_options) at an intact store`,
    );
    // Nix itself agrees: it cannot open that store
    const nix = spawnSync('nix-store', ['--store', root, '--query', '--requisites', '/nix/store/00000000000000000000000000000000-x'], { encoding: 'utf8' });
    assert.notEqual(nix.status, 0);
  });

  it('the store is a nix-daemon socket nothing listens on', async () => {
    const socket = join(scratch, 'no-daemon.sock');
    const h = await health([`store = unix://${socket}`]);
    assert.equal(h.healthy, false);
    assert.equal(
      h.description,
      `Nix cannot reach its daemon: store = "unix://${socket}" talks to a nix-daemon, and nothing accepts connections on "${socket}" (ENOENT); fix: start nix-daemon (systemctl start nix-daemon), or as root use the local store: remove "store" from nix.conf and nix_options`,
    );
  });
});
