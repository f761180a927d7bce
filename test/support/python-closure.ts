/**
 * Closures of Debian's Python 3 and OpenSSL for the issue-13 workloads (test/support/debian-closure.ts
 * builds them; each is cached under its GC-root directory):
 *
 *   pythonClosure() → `bin/python3` with the standard library (`lib/python3.X`, data group
 *     `python3-stdlib`), supervisor and its pkg_resources (`lib/python3/dist-packages`, data group
 *     `supervisor`) and the time-zone database (`share/zoneinfo`, data group `tzdata`). Run it with
 *     `PYTHONHOME=<path>` (Debian's interpreter has /usr compiled in) and `TZDIR=<path>/share/zoneinfo`.
 *   opensslClosure(caBundle?) → `bin/openssl`, with `caBundle` (a host PEM file) as the data group
 *     `ca-certificates` at `etc/ssl/certs/ca-certificates.crt` when given.
 */
import { execFileSync } from 'node:child_process';
import { buildDebianClosure, type DebianClosure } from './debian-closure.js';

/** `3.11`: the minor version of the host's python3 (Debian 12). */
export const pythonVersion = (): string => execFileSync('python3', ['-c', 'import sys; print("%d.%d" % sys.version_info[:2])'], { encoding: 'utf8' }).trim();

/** Parts of the standard library no workload loads (tests, Tk, IDLE, the C headers' config). */
const STDLIB_EXCLUDE = [
  'test',
  'idlelib',
  'tkinter',
  'turtledemo',
  'ensurepip',
  'lib2to3/tests',
  'unittest/test',
  'ctypes/test',
  'distutils/tests',
  'sqlite3/test',
  'config-{v}-x86_64-linux-gnu',
  'lib-dynload/_tkinter.cpython-{m}-x86_64-linux-gnu.so',
];

export function pythonClosure(gcRootsDir?: string): DebianClosure {
  const v = pythonVersion();
  const m = v.replace('.', '');
  return buildDebianClosure({
    name: 'python3',
    programs: [{ from: `/usr/bin/python${v}`, to: 'bin/python3' }],
    data: [
      {
        name: 'python3-stdlib',
        paths: [
          {
            from: `/usr/lib/python${v}`,
            to: `lib/python${v}`,
            exclude: STDLIB_EXCLUDE.map((e) => e.replace('{v}', v).replace('{m}', m)),
            excludeNames: ['__pycache__'],
          },
        ],
      },
      {
        name: 'supervisor',
        paths: ['supervisor', 'pkg_resources'].map((p) => ({
          from: `/usr/lib/python3/dist-packages/${p}`,
          to: `lib/python3/dist-packages/${p}`,
          excludeNames: ['__pycache__', 'tests'],
        })),
      },
      { name: 'tzdata', paths: [{ from: '/usr/share/zoneinfo', to: 'share/zoneinfo' }] },
    ],
    ...(gcRootsDir === undefined ? {} : { gcRootsDir }),
  });
}

export function opensslClosure(caBundle?: string, gcRootsDir?: string): DebianClosure {
  return buildDebianClosure({
    name: 'openssl',
    programs: [{ from: '/usr/bin/openssl', to: 'bin/openssl' }],
    data: caBundle === undefined ? [] : [{ name: 'ca-certificates', paths: [{ from: caBundle, to: 'etc/ssl/certs/ca-certificates.crt' }] }],
    ...(gcRootsDir === undefined ? {} : { gcRootsDir }),
  });
}
