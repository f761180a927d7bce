/**
 * The direct TaskStatsResponse encoder against protobufjs: the bytes it writes decode to the
 * same message as proto-loader's own serializer's, and the served Driver definition uses it.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as protoLoader from '@grpc/proto-loader';
import type * as grpc from '@grpc/grpc-js';
import type { TaskUsage } from '../driver/task-stats.js';
import type { TaskStatsResponse } from '../gen/hashicorp/nomad/plugins/drivers/proto/TaskStatsResponse.js';
import { toTaskStats } from './codec.js';
import { LOADER_OPTIONS, PROTO_FILES, loadProtos, protoDir } from './proto.js';
import { encodeTaskStatsResponse } from './task-stats-wire.js';

const generic = (
  protoLoader.loadSync([...PROTO_FILES], { ...LOADER_OPTIONS, includeDirs: [protoDir()] })[
    'hashicorp.nomad.plugins.drivers.proto.Driver'
  ] as grpc.ServiceDefinition
).TaskStats as grpc.MethodDefinition<unknown, TaskStatsResponse>;
const served = loadProtos().hashicorp.nomad.plugins.drivers.proto.Driver.service.TaskStats as grpc.MethodDefinition<unknown, TaskStatsResponse>;

const usage = (overrides: Partial<TaskUsage['stats']['memory']>, cpu: Partial<TaskUsage['cpu']>): TaskUsage => ({
  timestamp: new Date(Date.UTC(2026, 10, 30, 12, 0, 0, 123)),
  cpu: { percent: 12.5, userPercent: 10.25, systemPercent: 2.25, totalTicks: 312.123456789, ...cpu },
  stats: {
    cpu: { totalNs: 1_843_262_000, userNs: 1, systemNs: 2, throttledPeriods: 10, throttledTimeNs: 2 ** 40 + 7 },
    memory: { rss: 52_428_800, cache: 0, swap: 0, usage: 65_011_712, maxUsage: 2 ** 52, kernelUsage: 110_592, ...overrides },
    measuredCpu: ['System Mode', 'User Mode', 'Throttled Periods', 'Throttled Time', 'Percent'],
    measuredMemory: ['RSS', 'Cache', 'Swap', 'Usage', 'Max Usage', 'Kernel Usage'],
  },
});

describe('encodeTaskStatsResponse', () => {
  for (const [name, response] of [
    ['a full sample', { stats: toTaskStats('a1b2/web/0123abcd', usage({}, {})) }],
    ['a first sample (percentages 0)', { stats: toTaskStats('t', usage({ rss: 0 }, { percent: 0, userPercent: 0, systemPercent: 0, totalTicks: 0 })) }],
    ['no measured fields', { stats: { ...toTaskStats('ü/ñ', usage({}, {})), agg_resource_usage: { cpu: {}, memory: {} } } }],
  ] as const) {
    it(`writes bytes that decode as protobufjs's do: ${name}`, () => {
      const bytes = encodeTaskStatsResponse(response);
      assert.ok(bytes !== undefined);
      assert.deepEqual(generic.responseDeserialize(bytes), generic.responseDeserialize(generic.responseSerialize(response)));
    });
  }

  it('leaves a per-pid map and non-number values to the generic serializer', () => {
    const stats = toTaskStats('t', usage({}, {}));
    const byPid = { stats: { ...stats, resource_usage_by_pid: { '42': stats.agg_resource_usage ?? {} } } };
    assert.equal(encodeTaskStatsResponse(byPid), undefined);
    assert.deepEqual(served.responseDeserialize(served.responseSerialize(byPid)), generic.responseDeserialize(generic.responseSerialize(byPid)));
    const asString = { stats: { ...stats, agg_resource_usage: { memory: { rss: '12' } } } };
    assert.equal(encodeTaskStatsResponse(asString), undefined);
    assert.equal(served.responseDeserialize(served.responseSerialize(asString)).stats?.agg_resource_usage?.memory?.rss, 12);
  });

  it('is what the served Driver definition sends for TaskStats', () => {
    const response = { stats: toTaskStats('t', usage({}, {})) };
    assert.deepEqual(served.responseSerialize(response), encodeTaskStatsResponse(response));
  });
});
