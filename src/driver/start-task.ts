/**
 * StartTask as a list of named steps. Each step that creates something registers its undo on
 * a cleanup stack; when any step fails the stack unwinds, so a failed start leaves no process,
 * state file, GC root or store view behind, and the error (a DriverError in the project's
 * grammar) reaches `nomad alloc status`.
 */
import { hostname } from 'node:os';
import { join } from 'node:path';
import { parseNixOption, trustOptions, type PluginConfig } from '../config/plugin-config.js';
import { asFailure, failure, quote } from '../errors.js';
import { findExecutable, isExecutable, listDir, realPathOf } from '../host/which.js';
import { ensureDirectory, entryKind, removeTree, resolveExisting, unsearchableAncestor } from '../host/fs.js';
import { inspectDeviceNode, inspectVolumeSource } from '../host/mount-sources.js';
import { binaryCacheDirProblem } from '../host/binary-cache-dir.js';
import { isWithin } from '../paths.js';
import { lookupUser, type HostUser } from '../host/users.js';
import { ensureSharedFiles, readFile, sharedFilesKey } from '../host/task-files.js';
import type { Logger } from '../log/logger.js';
import { addTaskGcRoot, removeTaskGcRoot } from '../nix/gc-roots.js';
import type { ClosureCache } from '../nix/closure-cache.js';
import { narHashOf, realise, type NixTools } from '../nix/realise.js';
import { fetchMessage } from '../nix/progress.js';
import { ROOT_ENTRIES, type FlakeSandboxHost, type RootEntry } from '../nix/eval-sandbox.js';
import { ensureStoreView, storeViewKey } from '../nix/store-view.js';
import { chooseDns } from '../rootfs/dns.js';
import { renderEtcFiles } from '../rootfs/etc-files.js';
import { planRoot, taskHome } from '../rootfs/plan.js';
import type { LaunchedTask, ProcessSpec, Runtime } from '../runtime/runtime.js';
import { writeFileAtomic } from '../host/fs.js';
import { encodePersistedTask, PERSISTED_TASK_FILE, persistedTask, taskStateDir, type PersistedTask } from './persisted-task.js';
import { markDir, markShared, owner } from './ownership.js';
import type { CgroupVersion } from '../cgroup/limits.js';
import type { TaskCgroup } from '../cgroup/task-cgroup.js';
import { prepareTaskCgroup, releaseCgroup, taskCgroupPlace, taskLimits, withOomKills } from './task-cgroup.js';
import { CleanupStack } from './cleanup-stack.js';
import type { SharedKind } from './shared-resources.js';
import { taskCapabilities } from './privileges.js';
import { checkMountRequests, resolveMounts } from './volumes.js';
import { checkedInstallable } from './local-flake.js';
import { checkFlakePolicy } from './flake-policy.js';
import { binDirs, fhsLinks, resolveCommand, taskEnvironment } from './task-request.js';
import { TaskHandle, taskKey, type StartRequest, type TaskRequest } from './task.js';
import { oomKillEventMessage, watchOomKills } from './oom-watch.js';

export interface StartContext {
  readonly config: PluginConfig;
  readonly runtime: Runtime;
  readonly logger: Logger;
  /** Publishes a task event (shown in `nomad alloc status`). */
  readonly event: (message: string) => void;
  /**
   * Holds a shared store view or /etc dir for this task from now on, while `create` makes it
   * or finds it made (under the key's lock: driver/shared-resources.ts).
   */
  readonly acquireShared: <T>(kind: SharedKind, key: string, create: () => Promise<T>) => Promise<T>;
  /** Lets go of it; the last holder's release removes it. */
  readonly releaseShared: (kind: SharedKind, key: string) => Promise<void>;
  /** Directories known to be searchable by a uid:gid (see unsearchableAncestor). */
  readonly searchable: Set<string>;
  /** Creates the driver's own directories (once per configuration). */
  readonly ensureDirs: () => Promise<void>;
  /** Closures of store paths started before (no Nix command on a repeat start). */
  readonly closures: ClosureCache;
  /** The host's cgroup version (detected once per plugin process). */
  readonly cgroupVersion: () => Promise<CgroupVersion>;
}

const DEFAULT_USER = 'nobody';

/** The nix binaries and options the plugin config selects. */
export function nixTools(config: PluginConfig, pathEnv: string | undefined): NixTools {
  const find = (name: string) => {
    const path = findExecutable(name, { dir: config.nix_bin, pathEnv: pathEnv ?? '' });
    if (path === undefined) {
      throw failure('find nix', `${name} not found ${config.nix_bin === '' ? "on the agent's PATH" : `in nix_bin ${quote(config.nix_bin)}`}`, {
        code: 'failed_precondition',
        fix: 'install Nix on the client or set nix_bin in the plugin "nix" config',
      });
    }
    return path;
  };
  const extraOptions = [
    ...config.nix_options.flatMap((line) => {
      const [name, value] = parseNixOption(line) ?? ['', ''];
      return ['--option', name, value];
    }),
    // after nix_options, so the trust settings win (nix_options may not name them either)
    ...trustOptions(config),
  ];
  return {
    nix: find('nix'),
    nixStore: find('nix-store'),
    extraOptions,
    ...(config.trusted_public_keys === undefined ? {} : { trustedKeyNames: config.trusted_public_keys.map((k) => k.split(':')[0] ?? '') }),
  };
}

/**
 * The host as the flake sandbox (nix/eval-sandbox.ts) needs it: bwrap found like the
 * runtime's (on the agent's PATH), the entries of / that hold programs, the resolved
 * allow_local_flakes, and Nix's HOME `<state_dir>/nix-home` (created, root-only). Throws a
 * `failed_precondition` DriverError when bwrap is missing: flakes are never built unsandboxed.
 */
export async function flakeSandboxHost(config: PluginConfig, nix: string, pathEnv: string | undefined): Promise<FlakeSandboxHost> {
  const bwrap = findExecutable('bwrap', { pathEnv: pathEnv ?? '' });
  if (bwrap === undefined) {
    throw failure(
      'build flake',
      "bwrap not found on the agent's PATH: flakes are evaluated and built only inside a bubblewrap sandbox that hides the client's files",
      {
        code: 'failed_precondition',
        fix: 'install bubblewrap on the client, or build the closure elsewhere and set store_path',
      },
    );
  }
  const rootEntries: RootEntry[] = [];
  for (const path of ROOT_ENTRIES) {
    const kind = await entryKind(path);
    const target = kind === 'symlink' ? realPathOf(path) : undefined;
    if (target !== undefined) rootEntries.push({ path, kind: 'symlink', target });
    else if (kind === 'directory') rootEntries.push({ path, kind: 'directory' });
  }
  const flakeDirs = config.allow_local_flakes.map((dir) => realPathOf(dir)).filter((dir): dir is string => dir !== undefined);
  const home = join(config.state_dir, 'nix-home');
  await ensureDirectory(home, 0o700);
  return { bwrap, rootEntries, home, flakeDirs, nix: realPathOf(nix) ?? nix, env: process.env };
}

/**
 * Throws a `failed_precondition` DriverError when the NAR hash Nix recorded for `path` is not
 * `pinned` (the task's nar_hash, SRI).
 */
export async function checkNarHash(tools: NixTools, path: string, pinned: string): Promise<void> {
  const actual = await narHashOf(tools, path);
  if (actual === pinned) return;
  throw failure(`verify store path ${quote(path)}`, `its NAR hash is ${actual}, not the nar_hash ${pinned} the task pins; nothing of the task ran`, {
    code: 'failed_precondition',
    fix: `set nar_hash to the narHash that nix path-info --json ${path} prints where the closure was built and signed, or find out why this client's copy differs (nix-store --verify-path ${path}; nix path-info --sigs ${path})`,
  });
}

/**
 * The `file://` URL of a task's closure_cache (`local/…`, validated at the edge): resolved with
 * symlinks, inside the task's own `local/`, and a plain binary-cache directory
 * (host/binary-cache-dir.ts). Throws an `invalid_argument` DriverError naming closure_cache,
 * the value and the fix otherwise.
 */
export async function closureCacheUrl(request: TaskRequest, closureCache: string): Promise<string> {
  const taskDir = join(request.allocDir, request.name);
  const local = realPathOf(join(taskDir, 'local'));
  const real = realPathOf(join(taskDir, closureCache));
  const refuse = (cause: string) =>
    failure('read closure cache', `closure_cache ${quote(closureCache)} ${cause}`, {
      code: 'invalid_argument',
      fix: 'unpack a binary cache written by nix copy --to file://<dir> there, e.g. artifact { source = "https://…/closure.tar.gz" destination = "local/closure" } with a checksum, or check closure_cache in the task\'s config { ... } block',
    });
  if (real === undefined || local === undefined) throw refuse("does not exist in the task's directory");
  if (!isWithin(real, local)) throw refuse(`resolves to ${real}, outside the task's local/ (symlinks followed)`);
  const problem = await binaryCacheDirProblem(real);
  if (problem !== undefined) throw refuse(problem);
  return `file://${real}`;
}

/** The host user the task runs as: its `user`, else nobody; root only with allow_root. */
export function taskUser(request: TaskRequest, config: PluginConfig): HostUser {
  const name = request.user === '' ? DEFAULT_USER : request.user;
  const user = lookupUser(name);
  if (user === undefined) {
    throw failure('resolve task user', `user ${quote(name)} does not exist on this client`, {
      code: 'invalid_argument',
      fix: 'create the user on the client, use a numeric uid, or remove user from the task',
    });
  }
  if (user.uid === 0 && !config.allow_root) {
    throw failure('resolve task user', `user ${quote(name)} is root and the plugin config does not allow root tasks`, {
      code: 'invalid_argument',
      fix: 'run the task as an unprivileged user, or set allow_root = true in the client\'s plugin "nix" { config { ... } } block',
    });
  }
  return user;
}

/**
 * The TaskHandle of a launched (or recovered) task. OOM: the kernel's kill counter of the
 * cgroup grew while the task ran (Nomad reuses a task's cgroup across restarts, so the counter
 * is compared with its value at start, not read): each growth is a task event through `event`
 * when given, and the exit is an OOM kill only when the main process died of SIGKILL
 * (driver/oom-watch.ts).
 */
export function adoptTask(
  request: TaskRequest,
  launched: LaunchedTask,
  persisted: PersistedTask,
  cgroup: TaskCgroup | undefined,
  process?: ProcessSpec,
  event?: (message: string) => void,
): TaskHandle {
  if (cgroup !== undefined && event !== undefined) {
    // a kill of any of the task's processes, reported when it happens (driver/oom-watch.ts)
    const limitBytes = taskLimits(request, 0).memoryLimitBytes;
    // the counter's file stays open while the task runs: one pread per poll
    const counter = cgroup.openOomKills().catch(() => undefined);
    let ended = false;
    const end = () => {
      ended = true;
      void counter.then((opened) => opened?.close());
    };
    launched.exited.then(end, end);
    void counter.then((opened) => {
      if (opened === undefined || ended) return;
      watchOomKills({
        read: () => opened.read(),
        since: persisted.oomKillsBefore,
        until: launched.exited,
        report: (killed) => event(oomKillEventMessage(killed, limitBytes)),
      });
    });
  }
  const exited = launched.exited.then((status) => withOomKills(status, cgroup, persisted.oomKillsBefore));
  return new TaskHandle(request, launched, persisted, {
    exited,
    ...(cgroup === undefined ? {} : { cgroup }),
    ...(process === undefined ? {} : { process }),
  });
}

export async function startTask(request: StartRequest, context: StartContext): Promise<TaskHandle> {
  const { config, logger } = context;
  const cleanup = new CleanupStack();
  const key = taskKey(request.id);
  const started = performance.now();
  const steps: Record<string, number> = {};
  const mark = (step: string) => (steps[step] = Math.round((performance.now() - started) * 10) / 10);
  try {
    // 1. the config block (decoded and validated at the RPC edge), then what needs the host
    const { config: taskConfig, closure: validated } = request;
    // the client's evaluation policy: flakes at all, in this namespace, from this reference
    if (validated.flake !== undefined) checkFlakePolicy(validated.flake, request.namespace, config);
    // a path:/git+file: flake only below allow_local_flakes, resolved (Nix gets the real path)
    const closureRequest =
      validated.flake === undefined
        ? validated
        : {
            ...validated,
            flake: await checkedInstallable(validated.flake, {
              allowLocalFlakes: config.allow_local_flakes,
              allocDir: request.allocDir,
              realPath: async (p) => realPathOf(p),
            }),
          };
    const user = taskUser(request, config);
    const capabilities = taskCapabilities({
      uid: user.uid,
      userName: user.name,
      capAdd: taskConfig.cap_add,
      capDrop: taskConfig.cap_drop,
      allowCaps: config.allow_caps,
      ambient: context.runtime.ambientCapabilities,
      runtimeName: context.runtime.name,
    });
    checkMountRequests(request.mounts, config);
    const { extraMounts, devices, reach } = await resolveMounts(request, { volume: inspectVolumeSource, device: inspectDeviceNode });
    mark('validated');

    // 2. the closure: realised (built or substituted), held by a GC root before anything uses it
    let realised = await context.closures.lookup(closureRequest);
    if (realised === undefined) {
      const plain = nixTools(config, process.env.PATH);
      const tools = closureRequest.flake === undefined ? plain : { ...plain, flakeSandbox: await flakeSandboxHost(config, plain.nix, process.env.PATH) };
      context.event(closureRequest.flake !== undefined ? `Building flake ${closureRequest.flake}` : `Realising ${closureRequest.storePath}`);
      const closureCache = closureRequest.closureCache === undefined ? undefined : await closureCacheUrl(request, closureRequest.closureCache);
      realised = await realise(tools, closureRequest, {
        ...(closureCache === undefined ? {} : { extraSubstituters: [closureCache] }),
        onProgress: context.event,
        onFetched: (summary) => {
          const message = fetchMessage(summary);
          if (message !== undefined) context.event(message);
        },
      });
      await context.closures.remember(closureRequest, realised);
    }
    //    a pinned NAR hash: checked on every start (a cached closure too), before anything runs
    if (taskConfig.nar_hash !== undefined) await checkNarHash(nixTools(config, process.env.PATH), realised.mainOutput, taskConfig.nar_hash);
    // every entry the driver creates carries its owner: the orphan sweep removes only its own node's
    const who = owner(request.nodeId, request.nodeName);
    // the GC root's name is the task's state key
    cleanup.push('remove GC root', () => removeTaskGcRoot(config.gc_roots_dir, key));
    mark('realised');
    await addTaskGcRoot(config.gc_roots_dir, key, [realised.mainOutput, ...realised.packageOutputs], who);
    mark('gc_root');

    // 3. the store view: one directory with exactly the closure, shared by its tasks. The
    //    driver's dirs must be traversable (not readable) by unprivileged task users, whose
    //    bwrap binds the view and the task's /etc from here.
    await context.ensureDirs();
    //    Held from here (before it is made or found) until the task is destroyed, so no other
    //    task's exit or failed start removes it while this one starts or runs; marked as this
    //    node's before it is made, so another client's sweep on a shared state_dir leaves it.
    const closure = realised.closure;
    const viewKey = storeViewKey(closure);
    cleanup.push('release store view', () => context.releaseShared('views', viewKey));
    const view = await context.acquireShared('views', viewKey, async () => {
      await markShared(config.state_dir, 'views', viewKey, who);
      return ensureStoreView(join(config.state_dir, 'views'), closure);
    });
    mark('view');
    if (view.built) {
      const how = view.method === 'private-mount-namespace' ? ' (in a private mount namespace: the store is a read-only bind mount)' : '';
      context.event(`Prepared a store view of ${realised.closure.length} store paths in ${Math.round(view.durationMs)} ms${how}`);
    }

    // 4. the command, inside the closure
    const command = resolveCommand(taskConfig.command, realised, { isExecutable, realPath: realPathOf, list: listDir });

    // 5. host-side state: the task's dir and its synthesized /etc
    const stateDir = taskStateDir(config.state_dir, key);
    cleanup.push('remove task state', () => removeTree(stateDir));
    await ensureDirectory(stateDir, 0o711);
    await markDir(stateDir, who);
    const host = hostname();
    const [hostResolvConf, systemdResolvConf] = await Promise.all(
      ['/etc/resolv.conf', '/run/systemd/resolve/resolv.conf'].map((path) => readFile(path, 'utf8').catch(() => '')),
    );
    const dns = chooseDns({
      ...(request.dns === undefined ? {} : { nomad: request.dns }),
      hostResolvConf: hostResolvConf ?? '',
      systemdResolvConf: systemdResolvConf ?? '',
    });
    // tasks with the same user, hostname and DNS share one generated /etc (written once)
    const home = taskHome(user.home, extraMounts);
    const etcFiles = renderEtcFiles({ user: { name: user.name, uid: user.uid, gid: user.gid, home }, hostname: host, dns });
    const etc = await context.acquireShared('etc', sharedFilesKey(etcFiles), () => ensureSharedFiles(join(config.state_dir, 'etc'), etcFiles));
    cleanup.push('release /etc files', () => context.releaseShared('etc', etc.key));
    await markShared(config.state_dir, 'etc', etc.key, who);
    const etcDir = etc.dir;

    mark('etc');
    // 6. bwrap runs as the task user and binds the task dirs and volumes itself: it must reach them
    if (context.runtime.mountsAsTaskUser) {
      const mode = (m: number) => m.toString(8).padStart(4, '0');
      for (const dir of [join(request.allocDir, 'alloc'), join(request.allocDir, request.name)]) {
        const blocked = await unsearchableAncestor(dir, user.uid, user.gid, context.searchable);
        if (blocked !== undefined) {
          throw failure(
            'start task',
            `user ${quote(user.name)} (uid ${user.uid}) cannot reach the task directory ${dir}: ${blocked.dir} has mode ${mode(blocked.mode)}`,
            {
              code: 'failed_precondition',
              fix: `let other users search the Nomad client's data_dir and its parents (chmod o+x ${blocked.dir}), or give the client a data_dir such as /opt/nomad/data`,
            },
          );
        }
      }
      for (const volume of reach) {
        const blocked = await unsearchableAncestor(volume.dir, user.uid, user.gid, context.searchable);
        if (blocked !== undefined) {
          throw failure(
            'mount volume',
            `user ${quote(user.name)} (uid ${user.uid}) cannot reach the volume ${volume.source} for ${quote(volume.taskPath)}: ${blocked.dir} has mode ${mode(blocked.mode)}`,
            {
              code: 'failed_precondition',
              fix: `let the task user search it (chmod o+x ${blocked.dir}, or give it to the task's user), or point the client's host_volume at a directory the task user can reach; bubblewrap binds volumes as the task user`,
            },
          );
        }
      }
    }

    // 7. the task's cgroup, owned by the driver (task-cgroup.ts): Nomad's (or our own), made
    //    and limited here; the runtime only puts the task in it before the command starts
    const limits = taskLimits(request, taskConfig.pids_limit > 0 ? taskConfig.pids_limit : config.pids_limit);
    const location = taskCgroupPlace(request, key, await context.cgroupVersion());
    const { cgroup, oomKillsBefore, placement } = await prepareTaskCgroup(location, limits, (created) =>
      cleanup.push('remove task cgroup', () => releaseCgroup(created)),
    );
    mark('cgroup');

    // 8. the root plan and the process
    const plan = planRoot({
      storeView: view.path,
      allocDir: request.allocDir,
      taskName: request.name,
      etcDir,
      extraMounts,
      devices,
      protectedHostDirs: [await resolveExisting(config.state_dir)],
      fhsLinks: fhsLinks(taskConfig.fhs_links, realised, { isExecutable, realPath: realPathOf }),
    });
    const env = taskEnvironment({ path: binDirs(realised.mainOutput, realised.packageOutputs).join(':'), userName: user.name, home }, request.env);
    const taskProcess: ProcessSpec = {
      argv: [command, ...taskConfig.args],
      env,
      cwd: taskConfig.work_dir === '' ? '/local' : taskConfig.work_dir,
      uid: user.uid,
      gid: user.gid,
      hostname: host,
      capabilities,
    };
    const launched = await context.runtime.launch({
      key,
      plan,
      process: taskProcess,
      ...(request.networkNamespace === undefined ? {} : { networkNamespace: request.networkNamespace }),
      cgroup: placement,
      stateDir,
      stdoutPath: request.stdoutPath,
      stderrPath: request.stderrPath,
      mark,
    });
    cleanup.push('kill task', async () => {
      await launched.kill();
    });
    mark('launched');
    const persisted = persistedTask({
      taskId: request.id,
      nodeId: request.nodeId,
      runtime: context.runtime.name === 'runc' ? 'runc' : 'bwrap',
      stateRoot: config.state_dir,
      viewKey: view.key,
      etcKey: etc.key,
      launched,
      cgroup: location,
      oomKillsBefore,
      process: taskProcess,
    });
    // the same bytes Nomad keeps as driver_state, for the orphan sweep (reconcile.ts)
    await writeFileAtomic(join(stateDir, PERSISTED_TASK_FILE), encodePersistedTask(persisted));
    logger.info('task started', {
      task_id: request.id,
      runtime: context.runtime.name,
      pid: launched.pid,
      init_pid: launched.initPid,
      command,
      user: user.name,
      closure_paths: realised.closure.length,
      steps_ms: steps,
    });
    return adoptTask(request, launched, persisted, cgroup, taskProcess, context.event);
  } catch (error) {
    await cleanup.unwind(logger);
    throw asFailure('start task', error);
  }
}
