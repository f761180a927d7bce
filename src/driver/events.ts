/**
 * Task events for Nomad's TaskEvents stream: every subscriber (one per open stream; Nomad
 * re-opens the stream after errors) gets every event published after it subscribed. Nomad
 * routes an event by alloc_id and task_name and shows it in `nomad alloc status` as a
 * "Driver" event.
 */

export interface TaskEvent {
  readonly taskId: string;
  readonly allocId: string;
  readonly taskName: string;
  readonly timestamp: Date;
  readonly message: string;
  readonly annotations: Readonly<Record<string, string>>;
}

export type TaskEventListener = (event: TaskEvent) => void;

export class TaskEventHub {
  private readonly listeners = new Set<TaskEventListener>();

  /** Returns the function that unsubscribes. */
  subscribe(listener: TaskEventListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  publish(event: TaskEvent): void {
    for (const listener of this.listeners) listener(event);
  }

  get subscriberCount(): number {
    return this.listeners.size;
  }
}
