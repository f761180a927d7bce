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
import { TASK_HANDLE_VERSION } from '../version.js';
import {
  checkDriverStateLimits,
  durationMs,
  fromProtoStartTask,
  fromProtoTaskConfig,
  toDriverTaskEvent,
  exitMessage,
  toExitResult,
  toFingerprintResponse,
  toProtoCapabilities,
  toProtoSpec,
  toTaskStats,
  toTaskStatus,
} from './codec.js';
import { execStreamHandler } from './exec-stream.js';
import { aborted, serverStream, unary } from './handlers.js';

export function createDriverHandlers(driver: NixDriver, logger: Logger): DriverHandlers {
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

    /**
     * RecoverTask: after a plugin or agent restart, for every task Nomad still has a handle for
     * (the task id is in handle.config.id). A no-op for a task this process knows; otherwise
     * the task is rebuilt from driver_state alone. An error makes Nomad destroy the task and
     * start it again, so a task that is gone without an exit record fails here.
     */
    RecoverTask: unary(logger, 'RecoverTask', async (request) => {
      const taskId = request.handle?.config?.id ?? request.task_id;
      checkDriverStateLimits(request.handle?.driver_state ?? new Uint8Array());
      await driver.recoverTask(taskId, request.handle?.driver_state ?? new Uint8Array(), () =>
        fromProtoTaskConfig(request.handle?.config, { withDriverConfig: false }),
      );
      return {};
    }),

    /**
     * StartTask: realise, plan, launch. Nomad reads only `handle` (and network_override);
     * failures must be gRPC errors, whose text Nomad shows in `nomad alloc status`.
     */
    StartTask: unary(logger, 'StartTask', async (request) => {
      const handle = await driver.startTask(fromProtoStartTask(request.task));
      return {
        handle: { version: TASK_HANDLE_VERSION, config: request.task ?? {}, state: 'RUNNING', driver_state: handle.driverState() },
      };
    }),

    /**
     * WaitTask: held open until the task exits; Nomad may call it several times. `err` becomes
     * the Terminated event's "Exit Message" in `nomad alloc status` (oom_killed alone only
     * shows in the event's details), so an OOM kill is spelled out there, as the docker driver does.
     */
    WaitTask: unary(logger, 'WaitTask', async (request) => {
      const status = await driver.waitTask(request.task_id);
      return { result: toExitResult(status), err: exitMessage(status) };
    }),

    /** StopTask: kill_signal, then SIGKILL after the timeout (kill_timeout capped by max_kill_timeout). */
    StopTask: unary(logger, 'StopTask', async (request) => {
      await driver.stopTask(request.task_id, request.signal, durationMs(request.timeout, 5_000));
      return {};
    }),

    /** DestroyTask: releases everything of the task (kills it first when force is set). */
    DestroyTask: unary(logger, 'DestroyTask', async (request) => {
      await driver.destroyTask(request.task_id, request.force);
      return {};
    }),

    /** InspectTask: result and timestamps are always set (nil ones crash Nomad's client). */
    InspectTask: unary(logger, 'InspectTask', (request) => ({
      task: toTaskStatus(driver.inspectTask(request.task_id)),
      driver: { attributes: {} },
    })),
    /**
     * TaskStats: a stream Nomad opens per running task (the client's stats collection
     * interval, 1 s by default); one sample per interval, ending when the task exits. Nomad
     * stops re-opening it on UNIMPLEMENTED, so errors here are real errors.
     */
    TaskStats: serverStream(logger, 'TaskStats', async (request, write, signal) => {
      for await (const usage of driver.taskStats(request.task_id, durationMs(request.collection_interval, 1_000), signal)) {
        write({ stats: toTaskStats(request.task_id, usage) });
      }
    }),
    /** SignalTask: `nomad alloc signal -s SIG`; the signal reaches the task's command. */
    SignalTask: unary(logger, 'SignalTask', (request) => {
      driver.signalTask(request.task_id, request.signal);
      return {};
    }),
    /**
     * ExecTask: script checks and template change scripts. `result` is always set on success
     * (Nomad's client dereferences it); a timeout is a DEADLINE_EXCEEDED status.
     */
    ExecTask: unary(logger, 'ExecTask', async (request) => {
      const result = await driver.execTask(request.task_id, request.command, durationMs(request.timeout, 0));
      return { stdout: result.stdout, stderr: result.stderr, result: toExitResult(result.exit) };
    }),
    /** ExecTaskStreaming: `nomad alloc exec`, frame by frame (rpc/exec-stream.ts). */
    ExecTaskStreaming: execStreamHandler(driver, logger),
    /** CreateNetwork/DestroyNetwork: only called for drivers with must_create_network, which we are not. */
    CreateNetwork: (_call, callback) =>
      callback({ code: grpc.status.UNIMPLEMENTED, details: 'failed to create network: the nix driver joins the network Nomad creates' }),
    DestroyNetwork: (_call, callback) =>
      callback({ code: grpc.status.UNIMPLEMENTED, details: 'failed to destroy network: the nix driver joins the network Nomad creates' }),
  };
}
