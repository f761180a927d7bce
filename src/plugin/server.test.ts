/**
 * deferredHandlers: the server listens before the driver's handlers are loaded (main.ts prints
 * the handshake line first); calls made meanwhile reach the handlers once they are there.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type * as grpc from '@grpc/grpc-js';
import { deferredHandlers } from './server.js';

const SERVICE = { PluginInfo: {}, Fingerprint: {} } as unknown as grpc.ServiceDefinition;
type Handler = (call: { cancelled?: boolean; id: number }, callback?: unknown) => void;

function loader() {
  let resolve: (implementation: grpc.UntypedServiceImplementation) => void = () => undefined;
  const loaded = new Promise<grpc.UntypedServiceImplementation>((r) => {
    resolve = r;
  });
  const seen: string[] = [];
  const implementation = {
    PluginInfo: (call: { id: number }, callback: unknown) => seen.push(`PluginInfo ${call.id} ${typeof callback}`),
    Fingerprint: (call: { id: number }) => seen.push(`Fingerprint ${call.id}`),
  } as unknown as grpc.UntypedServiceImplementation;
  return { loaded, load: () => resolve(implementation), seen };
}

describe('deferredHandlers', () => {
  it('holds calls made before the handlers load and passes them on, call and callback, once they do', async () => {
    const { loaded, load, seen } = loader();
    const handlers = deferredHandlers(SERVICE, loaded) as unknown as Record<string, Handler>;
    handlers.PluginInfo?.({ id: 1 }, () => undefined);
    handlers.Fingerprint?.({ id: 2 });
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(seen, []);
    load();
    await loaded;
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(seen, ['PluginInfo 1 function', 'Fingerprint 2']);
  });

  it('drops a held call that the client cancelled before the handlers loaded', async () => {
    const { loaded, load, seen } = loader();
    const handlers = deferredHandlers(SERVICE, loaded) as unknown as Record<string, Handler>;
    const call = { id: 3, cancelled: false };
    handlers.Fingerprint?.(call);
    call.cancelled = true;
    load();
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(seen, []);
  });

  it('calls the loaded handler directly (same tick) once loaded', async () => {
    const { loaded, load, seen } = loader();
    const handlers = deferredHandlers(SERVICE, loaded) as unknown as Record<string, Handler>;
    load();
    await new Promise((r) => setImmediate(r));
    handlers.PluginInfo?.({ id: 4 }, () => undefined);
    assert.deepEqual(seen, ['PluginInfo 4 function']);
  });

  it('leaves held calls waiting when the handlers fail to load (main.ts exits then)', async () => {
    const handlers = deferredHandlers(SERVICE, Promise.reject(new Error('no driver'))) as unknown as Record<string, Handler>;
    let called = false;
    handlers.PluginInfo?.({ id: 5 }, () => {
      called = true;
    });
    await new Promise((r) => setImmediate(r));
    assert.equal(called, false);
  });
});
