/** Letting go of a shared store view or /etc dir, removing it after its last holder. */
import { join } from 'node:path';
import { removeTree } from '../host/fs.js';
import { removeStoreView } from '../nix/store-view.js';
import { unmarkShared } from './ownership.js';
import type { SharedKind, SharedResources } from './shared-resources.js';

/**
 * Task `holder` lets go of a shared store view or /etc dir; the last holder's release removes
 * it (driver/shared-resources.ts), unless another Nomad client of this host (a shared
 * state_dir) still marks it as its own; `nodeId` gives this client's node when the removal
 * runs. Holders count from the start of StartTask or RecoverTask, not from the moment a task
 * is registered.
 */
export async function releaseShared(
  shared: SharedResources,
  stateDir: string,
  nodeId: () => string,
  kind: SharedKind,
  key: string,
  holder: string,
): Promise<void> {
  await shared.release(kind, key, holder, async () => {
    if (!(await unmarkShared(stateDir, kind, key, nodeId()))) return;
    if (kind === 'views') await removeStoreView(join(stateDir, 'views'), key);
    else await removeTree(join(stateDir, 'etc', key));
  });
}
