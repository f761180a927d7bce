import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { cpuUsage, parseKeyedValues, parseOomKills, parsePids, parseSingleValue, STATS_FILES, statsFromFiles } from './stats.js';

const fixture = (path: string) => readFileSync(fileURLToPath(new URL(`../../../test/fixtures/cgroup/${path}`, import.meta.url)), 'utf8');

/** The fixture directory's files keyed as STATS_FILES has them. */
function filesOf(version: 'v1' | 'v2', except: readonly string[] = []): Map<string, string> {
  const files = new Map<string, string>();
  for (const key of STATS_FILES[version]) {
    const name = key.includes('/') ? key.slice(key.indexOf('/') + 1) : key;
    if (except.includes(name)) continue;
    try {
      files.set(key, fixture(`${version}-task/${name}`));
    } catch {
      // not in the fixture
    }
  }
  return files;
}

describe('cgroup stats parsing', () => {
  it('parses keyed and single-value files', () => {
    assert.deepEqual(
      [...parseKeyedValues('user 45\nsystem 5\n\njunk line here\nbig 9223372036854771712\n')],
      [
        ['user', 45],
        ['system', 5],
        // cgroup v1's "no limit" (2^63 - 4096): a double holds it exactly
        ['big', Number(9223372036854771712n)],
      ],
    );
    assert.equal(parseSingleValue('8753152\n'), 8753152);
    assert.equal(parseSingleValue('max\n'), undefined);
    assert.equal(parseSingleValue(undefined), undefined);
    assert.deepEqual(parsePids('13662\n13678\n'), [13662, 13678]);
    assert.deepEqual(parsePids(''), []);
  });

  it('reads a real v1 task cgroup (cpuacct ns counters, throttling, hierarchical memory)', () => {
    assert.deepEqual(statsFromFiles('v1', filesOf('v1')), {
      cpu: { totalNs: 512041271, userNs: 455764579, systemNs: 55988923, throttledPeriods: 10, throttledTimeNs: 482884740 },
      memory: { rss: 8351744, cache: 4096, swap: 0, usage: 8753152, maxUsage: 16764928, kernelUsage: 167936, kernelMaxUsage: 581632 },
      measuredCpu: ['System Mode', 'User Mode', 'Throttled Periods', 'Throttled Time', 'Percent'],
      measuredMemory: ['RSS', 'Cache', 'Swap', 'Usage', 'Max Usage', 'Kernel Usage', 'Kernel Max Usage'],
    });
  });

  it('falls back to cpuacct.stat ticks (USER_HZ = 100) without cpuacct.usage_user/_sys', () => {
    const stats = statsFromFiles('v1', filesOf('v1', ['cpuacct.usage_user', 'cpuacct.usage_sys']));
    assert.equal(stats.cpu.userNs, 450_000_000);
    assert.equal(stats.cpu.systemNs, 50_000_000);
  });

  it('leaves out what a v1 kernel without swap accounting or kmem does not have', () => {
    const files = filesOf('v1', ['memory.kmem.usage_in_bytes', 'memory.kmem.max_usage_in_bytes']);
    files.set('memory/memory.stat', 'cache 4096\nrss 8351744\n');
    const stats = statsFromFiles('v1', files);
    assert.deepEqual(stats.memory, { rss: 8351744, cache: 4096, usage: 8753152, maxUsage: 16764928 });
    assert.deepEqual(stats.measuredMemory, ['RSS', 'Cache', 'Usage', 'Max Usage']);
  });

  it('reads a v2 task cgroup (cpu.stat in µs, anon/file/kernel, memory.current/peak, swap)', () => {
    assert.deepEqual(statsFromFiles('v2', filesOf('v2')), {
      cpu: { totalNs: 1843262000, userNs: 1520117000, systemNs: 323145000, throttledPeriods: 17, throttledTimeNs: 905331000 },
      memory: { rss: 52428800, cache: 10485760, swap: 1048576, usage: 65011712, maxUsage: 70254592, kernelUsage: 1835008 },
      measuredCpu: ['System Mode', 'User Mode', 'Throttled Periods', 'Throttled Time', 'Percent'],
      measuredMemory: ['RSS', 'Cache', 'Swap', 'Usage', 'Max Usage', 'Kernel Usage'],
    });
  });

  it('reports only what an older v2 kernel has (no memory.peak, no swap accounting, cpu not enabled)', () => {
    const files = filesOf('v2', ['memory.peak', 'memory.swap.current']);
    files.set('cpu.stat', 'usage_usec 10\nuser_usec 7\nsystem_usec 3\n');
    const stats = statsFromFiles('v2', files);
    assert.deepEqual(stats.cpu, { totalNs: 10_000, userNs: 7_000, systemNs: 3_000 });
    assert.deepEqual(stats.measuredCpu, ['System Mode', 'User Mode', 'Percent']);
    assert.deepEqual(stats.measuredMemory, ['RSS', 'Cache', 'Usage', 'Kernel Usage']);
  });

  it('reads the OOM-kill counter from v1 memory.oom_control and v2 memory.events', () => {
    assert.equal(parseOomKills(fixture('v1-task/memory.oom_control')), 0);
    // memory.oom_control of a v1 cgroup (16 MiB limit) right after its process was OOM-killed
    assert.equal(parseOomKills('oom_kill_disable 0\nunder_oom 0\noom_kill 1\n'), 1);
    assert.equal(parseOomKills(fixture('v2-task/memory.events')), 1);
    assert.equal(parseOomKills('oom_kill_disable 0\nunder_oom 0\n'), undefined);
  });
});

describe('cpuUsage', () => {
  const compute = { totalMhz: 4000, cores: 2 };

  it("is CPU time over wall time in percent of one core, and ticks are that share of a core's MHz", () => {
    const prev = { totalNs: 1_000_000_000, userNs: 800_000_000, systemNs: 200_000_000 };
    const next = { totalNs: 2_500_000_000, userNs: 2_000_000_000, systemNs: 500_000_000 };
    assert.deepEqual(cpuUsage(prev, next, 1_000_000_000, compute), { percent: 150, userPercent: 120, systemPercent: 30, totalTicks: 3000 });
    assert.deepEqual(cpuUsage(prev, next, 2_000_000_000, compute), { percent: 75, userPercent: 60, systemPercent: 15, totalTicks: 1500 });
  });

  it('is 0 for the first sample, a counter that did not grow, or no elapsed time', () => {
    const zero = { percent: 0, userPercent: 0, systemPercent: 0, totalTicks: 0 };
    const sample = { totalNs: 5, userNs: 3, systemNs: 2 };
    assert.deepEqual(cpuUsage(undefined, sample, 1e9, compute), zero);
    assert.deepEqual(cpuUsage(sample, sample, 1e9, compute), zero);
    assert.deepEqual(cpuUsage(sample, { totalNs: 1, userNs: 1, systemNs: 0 }, 1e9, compute), zero);
    assert.deepEqual(cpuUsage({ totalNs: 1 }, { totalNs: 5 }, 0, compute), zero);
  });
});
