import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cpuinfoMhz, nodeCompute } from './cpu-info.js';

describe('cpu info', () => {
  it("reads every core's MHz from /proc/cpuinfo text", () => {
    assert.deepEqual(cpuinfoMhz('processor\t: 0\ncpu MHz\t\t: 2596.130\nprocessor\t: 1\ncpu MHz\t\t: 2400\n'), [2596.13, 2400]);
    assert.deepEqual(cpuinfoMhz('processor\t: 0\n'), []);
  });

  it('gives this node a non-zero total and its core count', () => {
    const compute = nodeCompute();
    assert.ok(compute.cores > 0);
    assert.ok(compute.totalMhz > 0, 'a VM without cpufreq still reports MHz through /proc/cpuinfo');
  });
});
