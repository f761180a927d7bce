/**
 * What the e2e tests need of any HashiCorp agent they run (Nomad, Consul): its exit, its log
 * file, its HTTP API, polling with the log tail in the failure, and a graceful stop.
 */
import { type ChildProcess, type SpawnOptions, spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';

/**
 * Spawns an agent with its stdout and stderr appended to `logPath` by the kernel: the file is
 * the agent's own fd 1 and 2, not a pipe the test process drains. A pipe made the agent depend
 * on the test's event loop, which `spawnSync` (every `nomad` CLI call) blocks: an agent writing
 * more than a pipe's 64 KiB of DEBUG lines meanwhile blocked in its logger, its HTTP API stopped
 * answering, and the CLI waited for it until its 120 s timeout (three CI runs:
 * `nomad job run -detach` hung after printing its evaluation id, in the CLI's follow-up
 * /v1/agent/self call, while the agent logged three failing allocations).
 */
export function spawnLogged(file: string, args: readonly string[], logPath: string, options: Omit<SpawnOptions, 'stdio'>): ChildProcess {
  const fd = openSync(logPath, 'a');
  try {
    return spawn(file, [...args], { ...options, stdio: ['ignore', fd, fd] });
  } finally {
    closeSync(fd);
  }
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
