/**
 * What the e2e tests need of any HashiCorp agent they run (Nomad, Consul): its exit, its log
 * file, its HTTP API, polling with the log tail in the failure, and a graceful stop.
 */
import type { ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, readFileSync } from 'node:fs';

/**
 * Appends the child's stdout and stderr to one log file. Both pipes leave the file open
 * (`end: false`) and it is closed once the child closed both: with the default `end: true` the
 * first stream to end closed the file and the other's last lines threw ERR_STREAM_WRITE_AFTER_END
 * (an agent refusing its config, whose stdout ended before its stderr).
 */
export function logOutputTo(child: ChildProcess, logPath: string): void {
  const log = createWriteStream(logPath, { flags: 'a' });
  child.stdout?.pipe(log, { end: false });
  child.stderr?.pipe(log, { end: false });
  child.once('close', () => log.end());
}

export abstract class AgentProcess {
  private exitCode: number | string | undefined;
  protected readonly exited: Promise<number | string>;

  protected constructor(
    readonly child: ChildProcess,
    readonly workDir: string,
    readonly logPath: string,
    /** Base URL of the agent's HTTP API, e.g. http://127.0.0.1:4646. */
    readonly address: string,
    /** How failures name the agent ("agent", "consul"). */
    private readonly label: string,
  ) {
    this.exited = new Promise((resolve) =>
      child.once('exit', (code, signal) => {
        this.exitCode = code ?? signal ?? -1;
        resolve(this.exitCode);
      }),
    );
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  get hasExited(): boolean {
    return this.exitCode !== undefined;
  }

  log(): string {
    return existsSync(this.logPath) ? readFileSync(this.logPath, 'utf8') : '';
  }

  /**
   * The last lines of the agent log, for assertion messages, without the HTTP API's own request
   * lines (a test polling the API every 250 ms filled the whole tail with them).
   */
  logTail(lines = 40): string {
    return this.log()
      .split('\n')
      .filter((line) => !line.includes('http: request complete'))
      .slice(-lines)
      .join('\n');
  }

  async api<T>(path: string): Promise<T> {
    const response = await fetch(`${this.address}${path}`);
    if (!response.ok) throw new Error(`GET ${path}: ${response.status} ${await response.text()}`);
    return (await response.json()) as T;
  }

  /** Polls until `probe` returns a value (not undefined) or the time is up. */
  async waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    let lastError: unknown;
    while (Date.now() < deadline) {
      if (this.hasExited) throw new Error(`${this.label} exited (${this.exitCode}) while waiting for ${what}\n${this.logTail()}`);
      try {
        const value = await probe();
        if (value !== undefined) return value;
      } catch (error) {
        lastError = error;
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    throw new Error(`timed out waiting for ${what}${lastError === undefined ? '' : ` (${String(lastError)})`}\n${this.logTail()}`);
  }

  /** Graceful stop (SIGINT, as Ctrl-C), SIGKILL of its process group after `timeoutMs`. Resolves with the exit code. */
  async stop(timeoutMs = 30_000): Promise<number | string> {
    if (!this.hasExited) {
      process.kill(this.pid, 'SIGINT');
      const timer = setTimeout(() => {
        if (!this.hasExited) process.kill(-this.pid, 'SIGKILL');
      }, timeoutMs);
      await this.exited;
      clearTimeout(timer);
    }
    return this.exited;
  }
}
