/**
 * The services every go-plugin gRPC server exposes next to the application's: health, the
 * controller (Shutdown), stdio and the broker. Nomad's client opens the stdio and broker streams
 * right after connecting and ignores what they carry, so both stay idle.
 */
import * as grpc from '@grpc/grpc-js';
import type { HealthHandlers } from '../gen/grpc/health/v1/Health.js';
import type { GRPCBrokerHandlers } from '../gen/plugin/GRPCBroker.js';
import type { GRPCControllerHandlers } from '../gen/plugin/GRPCController.js';
import type { GRPCStdioHandlers } from '../gen/plugin/GRPCStdio.js';

/** go-plugin registers its health status under this service name. */
export const HEALTH_SERVICE_NAME = 'plugin';

function isServed(service: string | undefined): boolean {
  return service === undefined || service === '' || service === HEALTH_SERVICE_NAME;
}

export function createHealthHandlers(): HealthHandlers {
  return {
    Check: (call, callback) => {
      if (!isServed(call.request.service)) {
        callback({ code: grpc.status.NOT_FOUND, details: `unknown service ${JSON.stringify(call.request.service)}` });
        return;
      }
      callback(null, { status: 'SERVING' });
    },
    Watch: (call) => {
      call.write({ status: isServed(call.request.service) ? 'SERVING' : 'SERVICE_UNKNOWN' });
      // stays open until the client goes away; the status never changes while we serve
    },
  };
}

/** GRPCController.Shutdown: go-plugin's Kill() calls it; the plugin must then exit by itself. */
export function createControllerHandlers(onShutdown: () => void): GRPCControllerHandlers {
  return {
    Shutdown: (_call, callback) => {
      callback(null, {});
      setImmediate(onShutdown);
    },
  };
}

/** GRPCStdio.StreamStdio: we never forward stdio over gRPC (logs go to stderr as JSON). */
export function createStdioHandlers(): GRPCStdioHandlers {
  return {
    StreamStdio: () => {
      // idle until the client cancels
    },
  };
}

/** GRPCBroker.StartStream: Nomad drivers never use the broker; acknowledge nothing, end with the client. */
export function createBrokerHandlers(): GRPCBrokerHandlers {
  return {
    StartStream: (call) => {
      call.on('data', () => undefined);
      call.on('end', () => call.end());
    },
  };
}
