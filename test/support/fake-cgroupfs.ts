/**
 * A fake cgroupfs in a temp dir, with just enough "kernel" behind the CgroupIo calls for the
 * cgroup module's tests to run the same code as on a real host:
 *
 * - mkdir creates the control files a real cgroup gets (v2: for the controllers enabled in
 *   the parent's cgroup.subtree_control; v1: those of the hierarchy), with their defaults;
 * - cgroup.controllers of a v2 child reads as its parent's cgroup.subtree_control;
 * - writing cgroup.subtree_control takes "+x -y" tokens, refuses controllers the cgroup does
 *   not have (EINVAL) and, below the root, a cgroup with processes (EBUSY), and adds the
 *   newly enabled controllers' files to the children;
 * - writing cgroup.procs adds a pid (ESRCH when no such process); reading it lists live ones;
 * - writing 1 to cgroup.kill SIGKILLs the listed processes;
 * - rmdir fails with EBUSY while the cgroup has live processes or child cgroups, otherwise
 *   removes the control files and the directory.
 *
 * Every write is also recorded in `writes` (path relative to the root, value).
 */
import { mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, statSync, unlinkSync, rmdirSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, relative } from 'node:path';
import { type CgroupFileReader, type CgroupIo, descriptorReader } from '../../src/cgroup/io.js';
import { isRunning } from '../../src/host/proc.js';

const V2_FILES: Readonly<Record<string, Readonly<Record<string, string>>>> = {
  '': {
    'cgroup.procs': '',
    'cgroup.subtree_control': '',
    'cgroup.events': 'populated 0\nfrozen 0\n',
    'cgroup.kill': '',
    'cpu.stat': 'usage_usec 0\nuser_usec 0\nsystem_usec 0\n',
  },
  cpu: { 'cpu.weight': '100\n', 'cpu.max': 'max 100000\n' },
  cpuset: { 'cpuset.cpus': '\n', 'cpuset.mems': '\n' },
  memory: {
    'memory.max': 'max\n',
    'memory.low': '0\n',
    'memory.high': 'max\n',
    'memory.current': '0\n',
    'memory.peak': '0\n',
    'memory.swap.current': '0\n',
    'memory.stat': 'anon 0\nfile 0\nkernel 0\n',
    'memory.events': 'low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n',
  },
  pids: { 'pids.max': 'max\n', 'pids.current': '0\n' },
};

const V1_FILES: Readonly<Record<string, Readonly<Record<string, string>>>> = {
  '': { 'cgroup.procs': '', tasks: '', 'cgroup.clone_children': '0\n', notify_on_release: '0\n' },
  cpu: { 'cpu.shares': '1024\n', 'cpu.cfs_quota_us': '-1\n', 'cpu.cfs_period_us': '100000\n', 'cpu.stat': 'nr_periods 0\nnr_throttled 0\nthrottled_time 0\n' },
  cpuacct: { 'cpuacct.usage': '0\n', 'cpuacct.usage_user': '0\n', 'cpuacct.usage_sys': '0\n', 'cpuacct.stat': 'user 0\nsystem 0\n' },
  cpuset: { 'cpuset.cpus': '\n', 'cpuset.mems': '\n' },
  memory: {
    'memory.limit_in_bytes': '9223372036854771712\n',
    'memory.soft_limit_in_bytes': '9223372036854771712\n',
    'memory.usage_in_bytes': '0\n',
    'memory.max_usage_in_bytes': '0\n',
    'memory.kmem.usage_in_bytes': '0\n',
    'memory.kmem.max_usage_in_bytes': '0\n',
    'memory.stat': 'cache 0\nrss 0\nswap 0\ntotal_cache 0\ntotal_rss 0\ntotal_swap 0\n',
    'memory.oom_control': 'oom_kill_disable 0\nunder_oom 0\noom_kill 0\n',
    'memory.failcnt': '0\n',
  },
  pids: { 'pids.max': 'max\n', 'pids.current': '0\n' },
  freezer: { 'freezer.state': 'THAWED\n' },
};

function errno(code: string, path: string): Error {
  return Object.assign(new Error(`${code}: fake cgroupfs, ${path}`), { code });
}

const words = (text: string) => text.split(/\s+/).filter((w) => w !== '');

export class FakeCgroupfs implements CgroupIo {
  readonly writes: Array<{ readonly path: string; readonly value: string }> = [];

  private constructor(
    readonly root: string,
    readonly version: 'v1' | 'v2',
  ) {}

  /** A unified hierarchy whose root offers `controllers` and has `subtree` enabled. */
  static v2(options: { controllers?: string; subtree?: string } = {}): FakeCgroupfs {
    const root = mkdtempSync(join(tmpdir(), 'fake-cgroup2-'));
    writeFileSync(join(root, 'cgroup.controllers'), `${options.controllers ?? 'cpuset cpu io memory hugetlb pids rdma misc'}\n`);
    writeFileSync(join(root, 'cgroup.subtree_control'), `${options.subtree ?? ''}\n`);
    writeFileSync(join(root, 'cgroup.procs'), '');
    return new FakeCgroupfs(root, 'v2');
  }

  /** A tmpfs of v1 hierarchies, one per controller; cpuset's root has `cpus` and `mems`. */
  static v1(options: { controllers?: readonly string[]; cpus?: string; mems?: string } = {}): FakeCgroupfs {
    const root = mkdtempSync(join(tmpdir(), 'fake-cgroup1-'));
    for (const controller of options.controllers ?? ['cpu', 'cpuacct', 'cpuset', 'memory', 'pids', 'freezer']) {
      mkdirSync(join(root, controller));
      for (const [file, value] of Object.entries({ ...V1_FILES[''], ...V1_FILES[controller] })) writeFileSync(join(root, controller, file), value);
      if (controller === 'cpuset') {
        writeFileSync(join(root, controller, 'cpuset.cpus'), `${options.cpus ?? '0-3'}\n`);
        writeFileSync(join(root, controller, 'cpuset.mems'), `${options.mems ?? '0'}\n`);
      }
    }
    return new FakeCgroupfs(root, 'v1');
  }

  /** Removes the whole temp tree (a fake one: real cgroupfs is never removed recursively). */
  dispose(): void {
    rmSync(this.root, { recursive: true, force: true });
  }

  /** Reads a file by its path relative to the root, trimmed. */
  file(path: string): string {
    return readFileSync(join(this.root, path), 'utf8').trim();
  }

  /** Replaces a file's content, as the kernel would update a counter. */
  setFile(path: string, text: string): void {
    writeFileSync(join(this.root, path), text);
  }

  private isRoot(dir: string): boolean {
    return this.version === 'v2' ? dir === this.root : dirname(dir) === this.root;
  }

  private hierarchy(dir: string): string {
    return relative(this.root, dir).split('/')[0] ?? '';
  }

  private livePids(dir: string): number[] {
    const path = join(dir, 'cgroup.procs');
    if (!existsSync(path)) return [];
    return words(readFileSync(path, 'utf8'))
      .map(Number)
      .filter((pid) => isRunning(pid));
  }

  private addControllerFiles(dir: string, controllers: readonly string[]): void {
    for (const controller of controllers) {
      for (const [file, value] of Object.entries(V2_FILES[controller] ?? {})) {
        if (!existsSync(join(dir, file))) writeFileSync(join(dir, file), value);
      }
    }
  }

  async mkdir(dir: string): Promise<boolean> {
    if (existsSync(dir)) return false;
    if (!existsSync(dirname(dir))) throw errno('ENOENT', dir);
    mkdirSync(dir);
    if (this.version === 'v2') {
      this.addControllerFiles(dir, ['']);
      this.addControllerFiles(dir, words(readFileSync(join(dirname(dir), 'cgroup.subtree_control'), 'utf8')));
    } else {
      for (const [file, value] of Object.entries({ ...V1_FILES[''], ...V1_FILES[this.hierarchy(dir)] })) writeFileSync(join(dir, file), value);
    }
    return true;
  }

  async rmdir(dir: string): Promise<void> {
    if (!existsSync(dir)) throw errno('ENOENT', dir);
    const entries = readdirSync(dir);
    if (this.livePids(dir).length > 0 || entries.some((e) => statSync(join(dir, e)).isDirectory())) throw errno('EBUSY', dir);
    for (const entry of entries) unlinkSync(join(dir, entry));
    rmdirSync(dir);
  }

  /** Paths opened by openReader, in order (a stats stream should open each file once). */
  readonly opened: string[] = [];

  async openReader(file: string): Promise<CgroupFileReader | undefined> {
    if (!existsSync(file)) return undefined;
    this.opened.push(relative(this.root, file));
    return descriptorReader(openSync(file, 'r'));
  }

  async read(file: string): Promise<string | undefined> {
    return this.readNow(file);
  }

  private readNow(file: string): string | undefined {
    const dir = dirname(file);
    if (this.version === 'v2' && basename(file) === 'cgroup.controllers' && dir !== this.root) {
      return existsSync(dir) ? readFileSync(join(dirname(dir), 'cgroup.subtree_control'), 'utf8') : undefined;
    }
    if (basename(file) === 'cgroup.procs')
      return existsSync(file)
        ? this.livePids(dir)
            .map((pid) => `${pid}\n`)
            .join('')
        : undefined;
    return existsSync(file) ? readFileSync(file, 'utf8') : undefined;
  }

  async write(file: string, value: string): Promise<void> {
    this.writeNow(file, value);
  }

  writeNow(file: string, value: string): void {
    if (!existsSync(file)) throw errno('ENOENT', file);
    this.writes.push({ path: relative(this.root, file), value });
    const dir = dirname(file);
    switch (basename(file)) {
      case 'cgroup.procs': {
        const pid = Number(value.trim());
        if (!isRunning(pid)) throw errno('ESRCH', file);
        writeFileSync(file, [...new Set([...this.livePids(dir), pid])].map((p) => `${p}\n`).join(''));
        return;
      }
      case 'cgroup.kill':
        for (const pid of this.livePids(dir)) process.kill(pid, 'SIGKILL');
        return;
      case 'cgroup.subtree_control': {
        const available = words(this.readNow(join(dir, 'cgroup.controllers')) ?? '');
        const enabled = new Set(words(readFileSync(file, 'utf8')));
        for (const token of words(value)) {
          const name = token.slice(1);
          if (!available.includes(name) || !/^[+-]/.test(token)) throw errno('EINVAL', file);
          if (token.startsWith('+')) enabled.add(name);
          else enabled.delete(name);
        }
        if (!this.isRoot(dir) && this.livePids(dir).length > 0) throw errno('EBUSY', file);
        const ordered = available.filter((c) => enabled.has(c));
        writeFileSync(file, `${ordered.join(' ')}\n`);
        for (const entry of readdirSync(dir)) {
          if (statSync(join(dir, entry)).isDirectory()) this.addControllerFiles(join(dir, entry), ordered);
        }
        return;
      }
      default:
        writeFileSync(file, value);
    }
  }

  async exists(path: string): Promise<boolean> {
    return existsSync(path);
  }
}
