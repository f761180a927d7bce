/**
 * The node's compute as Nomad's task stats express it: total MHz over all cores, and the core
 * count. Node's os.cpus() reports a speed of 0 on many VMs (no cpufreq), so the "cpu MHz"
 * lines of /proc/cpuinfo — what Nomad's own CPU fingerprint reads — are the fallback.
 */
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';

export interface NodeCompute {
  readonly totalMhz: number;
  readonly cores: number;
}

/** Sum of the "cpu MHz" lines of a /proc/cpuinfo text (0 when there are none). */
export function cpuinfoMhz(text: string): number[] {
  return [...text.matchAll(/^cpu MHz\s*:\s*([\d.]+)/gm)].map((m) => Number(m[1])).filter((n) => Number.isFinite(n) && n > 0);
}

let cached: NodeCompute | undefined;

export function nodeCompute(): NodeCompute {
  if (cached !== undefined) return cached;
  const list = cpus();
  let speeds = list.map((c) => c.speed).filter((s) => s > 0);
  if (speeds.length < list.length) {
    try {
      speeds = cpuinfoMhz(readFileSync('/proc/cpuinfo', 'utf8'));
    } catch {
      speeds = [];
    }
  }
  cached = { totalMhz: Math.round(speeds.reduce((sum, s) => sum + s, 0)), cores: list.length };
  return cached;
}
