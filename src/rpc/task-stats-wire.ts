/**
 * A direct protobuf encoder for TaskStatsResponse, the one message the plugin sends every
 * second per running task (issue 16). proto-loader's serializer runs protobufjs fromObject
 * first, which makes a Long object for each of the message's nine uint64 fields and a
 * message instance per level; that was a third of the plugin's CPU time for 50 streams.
 * This writes the same wire format (proto/plugins/drivers/proto/driver.proto: TaskStats,
 * TaskResourceUsage, CPUUsage, MemoryUsage; google/protobuf/timestamp.proto) straight from
 * the object toTaskStats builds: fields in number order, zero values left out as proto3
 * allows, repeated enums packed. What it does not expect (a resource_usage_by_pid entry,
 * a non-number value, an unknown enum name) makes it return undefined, and the caller uses
 * the generic serializer. codec.test.ts checks that both decode to the same message.
 */
import type { TaskStatsResponse } from '../gen/hashicorp/nomad/plugins/drivers/proto/TaskStatsResponse.js';

const CPU_FIELDS: Readonly<Record<string, number>> = { SYSTEM_MODE: 0, USER_MODE: 1, TOTAL_TICKS: 2, THROTTLED_PERIODS: 3, THROTTLED_TIME: 4, PERCENT: 5 };
const MEMORY_FIELDS: Readonly<Record<string, number>> = { RSS: 0, CACHE: 1, MAX_USAGE: 2, KERNEL_USAGE: 3, KERNEL_MAX_USAGE: 4, USAGE: 5, SWAP: 6 };

class Unsupported extends Error {}

/** Bytes of one message, appended in order; `message()` nests another length-prefixed. */
class Writer {
  readonly bytes: number[] = [];

  varint(value: number): void {
    if (!Number.isSafeInteger(value) || value < 0) throw new Unsupported();
    let v = value;
    while (v >= 0x80) {
      this.bytes.push((v % 0x80) | 0x80);
      v = Math.floor(v / 0x80);
    }
    this.bytes.push(v);
  }

  tag(field: number, wireType: number): void {
    this.varint(field * 8 + wireType);
  }

  /** uint64/int64/int32 ≥ 0 (wire type 0); 0 is left out. */
  uint(field: number, value: unknown): void {
    if (value === undefined || value === null || value === 0) return;
    if (typeof value !== 'number') throw new Unsupported();
    this.tag(field, 0);
    this.varint(value);
  }

  /** double (wire type 1, little-endian); 0 is left out. */
  double(field: number, value: unknown): void {
    if (value === undefined || value === null || value === 0) return;
    if (typeof value !== 'number') throw new Unsupported();
    this.tag(field, 1);
    DOUBLE.setFloat64(0, value, true);
    for (let i = 0; i < 8; i += 1) this.bytes.push(DOUBLE.getUint8(i));
  }

  string(field: number, value: unknown): void {
    if (value === undefined || value === null || value === '') return;
    if (typeof value !== 'string') throw new Unsupported();
    this.bytes_(field, Buffer.from(value, 'utf8'));
  }

  bytes_(field: number, data: ArrayLike<number>): void {
    this.tag(field, 2);
    this.varint(data.length);
    for (let i = 0; i < data.length; i += 1) this.bytes.push(data[i] ?? 0);
  }

  /** A packed repeated enum, by name through `names`. */
  enums(field: number, values: readonly unknown[] | undefined, names: Readonly<Record<string, number>>): void {
    if (values === undefined || values.length === 0) return;
    const packed = new Writer();
    for (const value of values) {
      const n = typeof value === 'string' ? names[value] : value;
      if (typeof n !== 'number') throw new Unsupported();
      packed.varint(n);
    }
    this.bytes_(field, packed.bytes);
  }

  message(field: number, value: object | null | undefined, write: (w: Writer, value: never) => void): void {
    if (value === undefined || value === null) return;
    const inner = new Writer();
    write(inner, value as never);
    this.bytes_(field, inner.bytes);
  }
}

const DOUBLE = new DataView(new ArrayBuffer(8));

type Usage = NonNullable<NonNullable<TaskStatsResponse['stats']>['agg_resource_usage']>;

function writeUsage(w: Writer, usage: Usage): void {
  w.message(1, usage.cpu, (c: Writer, cpu: NonNullable<Usage['cpu']>) => {
    c.double(1, cpu.system_mode);
    c.double(2, cpu.user_mode);
    c.double(3, cpu.total_ticks);
    c.uint(4, cpu.throttled_periods);
    c.uint(5, cpu.throttled_time);
    c.double(6, cpu.percent);
    c.enums(7, cpu.measured_fields, CPU_FIELDS);
  });
  w.message(2, usage.memory, (m: Writer, memory: NonNullable<Usage['memory']>) => {
    m.uint(1, memory.rss);
    m.uint(2, memory.cache);
    m.uint(3, memory.max_usage);
    m.uint(4, memory.kernel_usage);
    m.uint(5, memory.kernel_max_usage);
    m.enums(6, memory.measured_fields, MEMORY_FIELDS);
    m.uint(7, memory.usage);
    m.uint(8, memory.swap);
  });
}

/** The wire bytes of `response`, or undefined when it holds something this encoder leaves to protobufjs. */
export function encodeTaskStatsResponse(response: TaskStatsResponse): Buffer | undefined {
  try {
    const w = new Writer();
    w.message(1, response.stats, (s: Writer, stats: NonNullable<TaskStatsResponse['stats']>) => {
      if (stats.resource_usage_by_pid !== undefined && Object.keys(stats.resource_usage_by_pid).length > 0) throw new Unsupported();
      s.string(1, stats.id);
      s.message(2, stats.timestamp, (t: Writer, ts: { seconds?: unknown; nanos?: unknown }) => {
        t.uint(1, ts.seconds);
        t.uint(2, ts.nanos);
      });
      s.message(3, stats.agg_resource_usage, writeUsage);
    });
    return Buffer.from(w.bytes);
  } catch (error) {
    if (error instanceof Unsupported) return undefined;
    throw error;
  }
}
