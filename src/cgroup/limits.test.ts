import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cpuSharesToWeight, limitWrites, nomadTaskLimits, type TaskLimits } from './limits.js';

const MIB = 1024 * 1024;
const ALL: TaskLimits = { cpuShares: 1024, cpusetCpus: '0-1,3', memoryLimitBytes: 512 * MIB, memorySoftLimitBytes: 256 * MIB, pidsLimit: 100 };

const rejects = (limits: TaskLimits, message: string) =>
  assert.throws(() => limitWrites('v2', limits), { name: 'DriverError', code: 'invalid_argument', message });

describe('limitWrites', () => {
  it('maps every limit to its v1 controller file', () => {
    assert.deepEqual(limitWrites('v1', ALL), [
      { controller: 'cpuset', file: 'cpuset.cpus', value: '0-1,3' },
      { controller: 'cpu', file: 'cpu.shares', value: '1024' },
      { controller: 'memory', file: 'memory.limit_in_bytes', value: '536870912' },
      { controller: 'memory', file: 'memory.soft_limit_in_bytes', value: '268435456' },
      { controller: 'pids', file: 'pids.max', value: '100' },
    ]);
  });

  it('maps every limit to its v2 file: weight for shares, memory.low for the soft limit', () => {
    assert.deepEqual(limitWrites('v2', ALL), [
      { controller: 'cpuset', file: 'cpuset.cpus', value: '0-1,3' },
      { controller: 'cpu', file: 'cpu.weight', value: '100' },
      { controller: 'memory', file: 'memory.max', value: '536870912' },
      { controller: 'memory', file: 'memory.low', value: '268435456' },
      { controller: 'pids', file: 'pids.max', value: '100' },
    ]);
  });

  it('writes nothing for what is not limited', () => {
    assert.deepEqual(limitWrites('v1', {}), []);
    assert.deepEqual(limitWrites('v2', { pidsLimit: 1 }), [{ controller: 'pids', file: 'pids.max', value: '1' }]);
  });

  it('names the field and the rule of a value out of range', () => {
    rejects({ memoryLimitBytes: -5 }, 'failed to start task: field "memoryLimitBytes" must be a whole number of bytes from 4096 to 9007199254740991, got -5');
    rejects(
      { memorySoftLimitBytes: 1.5 },
      'failed to start task: field "memorySoftLimitBytes" must be a whole number of bytes from 1 to 9007199254740991, got 1.5',
    );
    rejects({ cpuShares: 1 }, 'failed to start task: field "cpuShares" must be a whole number of shares from 2 to 262144, got 1');
    rejects({ cpuShares: Number.NaN }, 'failed to start task: field "cpuShares" must be a whole number of shares from 2 to 262144, got NaN');
    rejects({ pidsLimit: 0 }, 'failed to start task: field "pidsLimit" must be a whole number of processes from 1 to 4194304, got 0');
    rejects({ cpusetCpus: '0-a' }, 'failed to start task: field "cpusetCpus" "0-a" is not a list of CPU numbers and ranges such as "0-3,6"');
    rejects({ cpusetCpus: '' }, 'failed to start task: field "cpusetCpus" "" is not a list of CPU numbers and ranges such as "0-3,6"');
    rejects({ cpusetCpus: '0,3-1' }, 'failed to start task: field "cpusetCpus" "0,3-1" has the descending range "3-1"');
    rejects(
      { memoryLimitBytes: 100 * MIB, memorySoftLimitBytes: 200 * MIB },
      'failed to start task: field "memorySoftLimitBytes" must be at most memoryLimitBytes (104857600), got 209715200; fix: set resources.memory to at most resources.memory_max',
    );
  });
});

describe('cpuSharesToWeight', () => {
  it('matches opencontainers/cgroups v0.0.6 at its tested points (min, default, max)', () => {
    // utils_test.go TestConvertCPUSharesToCgroupV2Value
    assert.equal(cpuSharesToWeight(1), 1);
    assert.equal(cpuSharesToWeight(2), 1);
    assert.equal(cpuSharesToWeight(3), 2);
    assert.equal(cpuSharesToWeight(1024), 100);
    assert.equal(cpuSharesToWeight(262_143), 10_000);
    assert.equal(cpuSharesToWeight(262_144), 10_000);
    assert.equal(cpuSharesToWeight(300_000), 10_000);
  });

  it("gives Nomad's default cpu = 100 MHz weight 17 and doubles roughly with log-scale", () => {
    // 10^((log2(100)^2 + 125 log2(100)) / 612 - 7/34) = 10^1.2232 = 16.72 → 17
    assert.equal(cpuSharesToWeight(100), 17);
    assert.equal(cpuSharesToWeight(2048), 174);
    assert.equal(cpuSharesToWeight(4096), 303);
  });
});

describe('nomadTaskLimits', () => {
  it('makes memory the hard limit when memory_max is unset', () => {
    assert.deepEqual(nomadTaskLimits({ cpuShares: 500, memoryMb: 300 }), { cpuShares: 500, memoryLimitBytes: 300 * MIB });
    assert.deepEqual(nomadTaskLimits({ cpuShares: 500, memoryMb: 300, memoryMaxMb: 0 }), { cpuShares: 500, memoryLimitBytes: 300 * MIB });
  });

  it('makes memory_max the hard limit and memory the soft one under oversubscription', () => {
    assert.deepEqual(nomadTaskLimits({ cpuShares: 500, memoryMb: 300, memoryMaxMb: 512 }), {
      cpuShares: 500,
      memoryLimitBytes: 512 * MIB,
      memorySoftLimitBytes: 300 * MIB,
    });
  });

  it('sets no hard limit for memory_max = -1', () => {
    assert.deepEqual(nomadTaskLimits({ cpuShares: 500, memoryMb: 300, memoryMaxMb: -1 }), { cpuShares: 500, memorySoftLimitBytes: 300 * MIB });
  });

  it("clamps shares as Nomad's executor does, and keeps reserved cores and a pids limit", () => {
    assert.equal(nomadTaskLimits({ cpuShares: 0, memoryMb: 10 }).cpuShares, 2);
    assert.equal(nomadTaskLimits({ cpuShares: 1000, memoryMb: 10, totalComputeMhz: 524_288 }).cpuShares, 500);
    assert.equal(nomadTaskLimits({ cpuShares: 1000, memoryMb: 10, totalComputeMhz: 8000 }).cpuShares, 1000);
    assert.deepEqual(nomadTaskLimits({ cpuShares: 2000, memoryMb: 10, cpusetCpus: '2,3', pidsLimit: 64 }), {
      cpuShares: 2000,
      memoryLimitBytes: 10 * MIB,
      cpusetCpus: '2,3',
      pidsLimit: 64,
    });
    assert.equal('cpusetCpus' in nomadTaskLimits({ cpuShares: 2000, memoryMb: 10, cpusetCpus: '' }), false);
  });
});
