/**
 * hashicorp.nomad.plugins.drivers.proto.Driver: Nomad's task-driver API. Each handler converts
 * the request, calls NixDriver and converts the answer; no logic lives here.
 */
import * as grpc from '@grpc/grpc-js';
import { taskConfigFields } from '../config/task-config.js';
import { toHclSpec } from '../config/schema.js';
import type { NixDriver } from '../driver/driver.js';
import type { DriverHandlers } from '../gen/hashicorp/nomad/plugins/drivers/proto/Driver.js';
import type { Logger } from '../log/logger.js';
import { toDriverTaskEvent, toFingerprintResponse, toProtoCapabilities, toProtoSpec } from './codec.js';
import { aborted, failStream, serverStream, thrownBy, unary } from './handlers.js';

export function createDriverHandlers(driver: NixDriver, logger: Logger): DriverHandlers {
  const notYet = (rpc: string) => unary<unknown, never>(logger, rpc, () => driver.notImplemented(rpc));

  return {
    /** Init (Nomad ≥ 2.0.4): after SetConfig on every dispense, reattach included. An error kills the plugin. */
    Init: unary(logger, 'Init', () => {
      driver.init();
      return {};
    }),

    /** TaskConfigSchema: the hclspec of a task's `config {}` block; Nomad decodes it before StartTask. */
    TaskConfigSchema: unary(logger, 'TaskConfigSchema', () => ({ spec: toProtoSpec(toHclSpec(taskConfigFields)) })),

    /** Capabilities: decides task-dir layout, env paths, allowed network modes and volume mounts. */
    Capabilities: unary(logger, 'Capabilities', () => ({ capabilities: toProtoCapabilities(driver.capabilities()) })),

    /**
     * Fingerprint: a long-lived stream. Nomad needs the first message at once and marks the
     * driver unhealthy if the stream errors; it re-opens the stream when it ends.
     */
    Fingerprint: serverStream(logger, 'Fingerprint', async (_request, write, signal) => {
      for await (const fingerprint of driver.fingerprints(signal)) write(toFingerprintResponse(fingerprint));
    }),

    /**
     * TaskEvents: a long-lived stream of driver events (build progress and the like), each with
     * alloc_id and task_name so Nomad can route it to `nomad alloc status`.
     */
    TaskEvents: serverStream(logger, 'TaskEvents', async (_request, write, signal) => {
      const unsubscribe = driver.events.subscribe((event) => write(toDriverTaskEvent(event)));
      try {
        await Promise.race([aborted(signal), aborted(driver.shutdownSignal)]);
      } finally {
        unsubscribe();
      }
    }),

    /** Shutdown (Nomad ≥ 2.0.4): a notice before the agent kills the plugin; tasks keep running. */
    Shutdown: unary(logger, 'Shutdown', () => {
      driver.shutdown();
      return {};
    }),

    RecoverTask: notYet('recover task'),
    StartTask: notYet('start task'),
    WaitTask: notYet('wait for task'),
    StopTask: notYet('stop task'),
    DestroyTask: notYet('destroy task'),
    InspectTask: notYet('inspect task'),
    TaskStats: (call) => failStream(call, thrownBy(() => driver.notImplemented('collect task stats'))),
    SignalTask: notYet('signal task'),
    ExecTask: notYet('exec in task'),
    ExecTaskStreaming: (call) => failStream(call, thrownBy(() => driver.notImplemented('exec in task'))),
    /** CreateNetwork/DestroyNetwork: only called for drivers with must_create_network, which we are not. */
    CreateNetwork: (_call, callback) => callback({ code: grpc.status.UNIMPLEMENTED, details: 'failed to create network: the nix driver joins the network Nomad creates' }),
    DestroyNetwork: (_call, callback) => callback({ code: grpc.status.UNIMPLEMENTED, details: 'failed to destroy network: the nix driver joins the network Nomad creates' }),
  };
}
