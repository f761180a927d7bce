/**
 * Undo actions for a multi-step operation: each step that creates something pushes how to
 * remove it; on failure they run in reverse order, so a failed StartTask leaves no trace.
 */
import { errorMessage } from '../errors.js';
import type { Logger } from '../log/logger.js';

export class CleanupStack {
  private readonly actions: { readonly what: string; readonly run: () => Promise<void> | void }[] = [];

  push(what: string, run: () => Promise<void> | void): void {
    this.actions.push({ what, run });
  }

  /** Runs every action, newest first; failures are logged, never thrown. */
  async unwind(logger: Logger): Promise<void> {
    for (const action of this.actions.reverse()) {
      try {
        await action.run();
      } catch (error) {
        logger.error(`failed to ${action.what} while cleaning up`, { err: errorMessage(error) });
      }
    }
    this.actions.length = 0;
  }
}
