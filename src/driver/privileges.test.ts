import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULT_ROOT_CAPABILITIES, taskCapabilities, type CapabilityRequest } from './privileges.js';

const ALLOW_DEFAULT = DEFAULT_ROOT_CAPABILITIES.map((c) => c.slice(4));
const ROOT: CapabilityRequest = { uid: 0, userName: 'root', capAdd: [], capDrop: [], allowCaps: ALLOW_DEFAULT, ambient: false, runtimeName: 'bwrap' };
const NOBODY: CapabilityRequest = { ...ROOT, uid: 65534, userName: 'nobody' };

const fails = (request: CapabilityRequest, message: string) =>
  assert.throws(() => taskCapabilities(request), { name: 'DriverError', code: 'invalid_argument', message });

describe('taskCapabilities', () => {
  it("gives a root task Nomad's default set, in bit order, and an unprivileged one nothing", () => {
    assert.deepEqual(taskCapabilities(ROOT), [
      'CAP_CHOWN',
      'CAP_DAC_OVERRIDE',
      'CAP_FOWNER',
      'CAP_FSETID',
      'CAP_KILL',
      'CAP_SETGID',
      'CAP_SETUID',
      'CAP_SETPCAP',
      'CAP_NET_BIND_SERVICE',
      'CAP_SYS_CHROOT',
      'CAP_MKNOD',
      'CAP_AUDIT_WRITE',
      'CAP_SETFCAP',
    ]);
    assert.deepEqual(taskCapabilities(NOBODY), []);
    assert.deepEqual(taskCapabilities({ ...NOBODY, capDrop: ['ALL'] }), []);
  });

  it('drops cap_drop ("ALL": everything), then adds cap_add, whatever the spelling', () => {
    assert.deepEqual(taskCapabilities({ ...ROOT, capDrop: ['ALL'] }), []);
    assert.deepEqual(taskCapabilities({ ...ROOT, capDrop: ['all'], capAdd: ['chown', 'CAP_KILL'] }), ['CAP_CHOWN', 'CAP_KILL']);
    const dropped = taskCapabilities({ ...ROOT, capDrop: ['cap_chown', 'Net_Bind_Service'] });
    assert.ok(!dropped.includes('CAP_CHOWN') && !dropped.includes('CAP_NET_BIND_SERVICE') && dropped.length === 11);
    assert.deepEqual(taskCapabilities({ ...ROOT, allowCaps: [...ALLOW_DEFAULT, 'NET_RAW'], capAdd: ['NET_RAW'] }).includes('CAP_NET_RAW'), true);
  });

  it('narrows the default set to allow_caps, as Nomad\'s exec driver does; "ALL" allows everything', () => {
    assert.deepEqual(taskCapabilities({ ...ROOT, allowCaps: ['CHOWN', 'KILL', 'SYS_ADMIN'] }), ['CAP_CHOWN', 'CAP_KILL']);
    assert.deepEqual(taskCapabilities({ ...ROOT, allowCaps: ['all'], capDrop: ['ALL'], capAdd: ['SYS_ADMIN'] }), ['CAP_SYS_ADMIN']);
  });

  it('refuses a cap_add outside allow_caps, naming the field, the value, allow_caps and the fix', () => {
    fails(
      { ...ROOT, capAdd: ['SYS_ADMIN'] },
      'failed to validate task config: cap_add "SYS_ADMIN" is not in the plugin\'s allow_caps (CHOWN, DAC_OVERRIDE, FOWNER, FSETID, KILL, SETGID, SETUID, SETPCAP, NET_BIND_SERVICE, SYS_CHROOT, MKNOD, AUDIT_WRITE, SETFCAP); fix: remove SYS_ADMIN from cap_add in the task\'s config { ... } block, or add "SYS_ADMIN" to allow_caps in the client\'s plugin "nix" { config { ... } } block',
    );
    fails(
      { ...NOBODY, allowCaps: [], capAdd: ['cap_net_raw'], ambient: true },
      'failed to validate task config: cap_add "cap_net_raw" is not in the plugin\'s allow_caps (none); fix: remove NET_RAW from cap_add in the task\'s config { ... } block, or add "NET_RAW" to allow_caps in the client\'s plugin "nix" { config { ... } } block',
    );
  });

  it('gives an unprivileged task exactly its cap_add where the runtime grants ambient capabilities, and refuses it elsewhere', () => {
    assert.deepEqual(taskCapabilities({ ...NOBODY, capAdd: ['NET_BIND_SERVICE', 'kill'], ambient: true, runtimeName: 'runc' }), [
      'CAP_KILL',
      'CAP_NET_BIND_SERVICE',
    ]);
    fails(
      { ...NOBODY, capAdd: ['NET_BIND_SERVICE'] },
      'failed to validate task config: cap_add "NET_BIND_SERVICE" cannot be granted to user "nobody" (uid 65534): bwrap gives capabilities only to root tasks; fix: use runtime = "runc" in the client\'s plugin "nix" { config { ... } } block (it grants them as ambient capabilities), run the task as root (user = "root" with allow_root = true), or remove cap_add',
    );
  });
});
