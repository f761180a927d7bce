import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { inspectDeviceNode, inspectVolumeSource, splitDeviceNumber } from './mount-sources.js';

describe('mount sources', () => {
  it('splits a dev_t like glibc (8-bit and 20-bit minors, 12-bit and 32-bit majors)', () => {
    assert.deepEqual(splitDeviceNumber(0x103n), { major: 1, minor: 3 });
    assert.deepEqual(splitDeviceNumber(0xae5n), { major: 10, minor: 229 });
    // makedev(259, 65536) = ((259 & 0xfff) << 8) | (65536 & 0xff) | ((65536 & ~0xff) << 12)
    assert.deepEqual(splitDeviceNumber((259n << 8n) | (65536n << 12n)), { major: 259, minor: 65536 });
    assert.deepEqual(splitDeviceNumber((0x1000n << 32n) | (1n << 8n)), { major: 0x1001, minor: 0 });
  });

  it('reads /dev/null as character device 1:3, and a directory as a volume', async () => {
    assert.deepEqual(await inspectDeviceNode('/dev/null'), { realPath: '/dev/null', deviceType: 'c', major: 1, minor: 3 });
    assert.equal((await inspectDeviceNode('/etc'))?.deviceType, undefined);
    assert.equal(await inspectDeviceNode('/dev/does-not-exist'), undefined);
    assert.deepEqual(await inspectVolumeSource('/etc'), { realPath: '/etc', kind: 'directory' });
    assert.equal(await inspectVolumeSource('/no/such/dir'), undefined);
  });
});
