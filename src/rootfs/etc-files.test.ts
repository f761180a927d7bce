import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { renderEtcFiles, type EtcInput } from './etc-files.js';

const INPUT: EtcInput = {
  user: { name: 'app', uid: 1000, gid: 1000, home: '/local' },
  hostname: 'web-1',
  dns: { servers: ['10.0.0.2', '2001:db8::53'], searches: ['svc.example', 'example'], options: ['ndots:2', 'edns0'] },
  extraHosts: [{ ip: '10.1.2.3', names: ['db', 'db.internal'] }],
};

const fails = (input: EtcInput, message: string) => assert.throws(() => renderEtcFiles(input), { name: 'DriverError', code: 'invalid_argument', message });

describe('renderEtcFiles', () => {
  it('renders every file for a task user', () => {
    assert.deepEqual(renderEtcFiles(INPUT), {
      passwd: ['root:x:0:0:root:/root:/bin/sh', 'nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin', 'app:x:1000:1000:app:/local:/bin/sh', ''].join(
        '\n',
      ),
      group: ['root:x:0:', 'nogroup:x:65534:', 'app:x:1000:', ''].join('\n'),
      hosts: [
        '# Written by nomad-driver-nix for this task.',
        '127.0.0.1\tlocalhost web-1',
        '::1\tlocalhost ip6-localhost ip6-loopback',
        '10.1.2.3\tdb db.internal',
        '',
      ].join('\n'),
      'resolv.conf': [
        '# Written by nomad-driver-nix for this task.',
        'nameserver 10.0.0.2',
        'nameserver 2001:db8::53',
        'search svc.example example',
        'options ndots:2 edns0',
        '',
      ].join('\n'),
      'nsswitch.conf': ['# Written by nomad-driver-nix for this task.', 'passwd: files', 'group: files', 'hosts: files dns', ''].join('\n'),
    });
  });

  it('does not repeat root or nobody, nor their groups', () => {
    const root = renderEtcFiles({ ...INPUT, user: { name: 'root', uid: 0, gid: 0, home: '/root' } });
    assert.equal(root.passwd, 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n');
    assert.equal(root.group, 'root:x:0:\nnogroup:x:65534:\n');
    const nobody = renderEtcFiles({ ...INPUT, user: { name: 'nobody', uid: 65534, gid: 65534, home: '/nonexistent' } });
    assert.equal(nobody.passwd, root.passwd);
    assert.equal(nobody.group, root.group);
    const shared = renderEtcFiles({ ...INPUT, user: { name: 'svc', uid: 990, gid: 65534, home: '/local' } });
    assert.equal(shared.passwd.split('\n')[2], 'svc:x:990:65534:svc:/local:/bin/sh');
    assert.equal(shared.group, 'root:x:0:\nnogroup:x:65534:\n');
  });

  it('gives root or nobody as the task user its home in the task, keeping the other entry as it is', () => {
    const root = renderEtcFiles({ ...INPUT, user: { name: 'root', uid: 0, gid: 0, home: '/local' } });
    assert.equal(root.passwd, 'root:x:0:0:root:/local:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n');
    const nobody = renderEtcFiles({ ...INPUT, user: { name: 'nobody', uid: 65534, gid: 65534, home: '/local' } });
    assert.equal(nobody.passwd, 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/local:/usr/sbin/nologin\n');
  });

  it('omits empty search and options lines, and a duplicate localhost', () => {
    const files = renderEtcFiles({ user: INPUT.user, hostname: 'localhost', dns: { servers: ['9.9.9.9'], searches: [], options: [] } });
    assert.equal(files['resolv.conf'], '# Written by nomad-driver-nix for this task.\nnameserver 9.9.9.9\n');
    assert.equal(files.hosts, '# Written by nomad-driver-nix for this task.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n');
  });

  it('rejects values that would add lines or fields to the files', () => {
    fails(
      { ...INPUT, user: { ...INPUT.user, name: 'app\nroot' } },
      'failed to start task: user.name "app\\nroot" contains whitespace or a NUL byte; fix: set the task user to a plain user name',
    );
    fails(
      { ...INPUT, user: { ...INPUT.user, name: 'a:0:0' } },
      'failed to start task: user.name "a:0:0" contains ":"; fix: set the task user to a plain user name',
    );
    fails(
      { ...INPUT, user: { ...INPUT.user, uid: -1 } },
      'failed to start task: user.uid -1 is not an integer from 0 to 4294967294; fix: run the task as an existing host user',
    );
    fails(
      { ...INPUT, user: { ...INPUT.user, home: 'home' } },
      'failed to start task: user.home "home" is not an absolute path; fix: give the user an absolute home directory',
    );
    fails(
      { ...INPUT, hostname: 'a b' },
      'failed to start task: hostname "a b" contains whitespace or a NUL byte; fix: set a hostname of letters, digits, "-" and "."',
    );
    fails(
      { ...INPUT, dns: { ...INPUT.dns, servers: ['dns.google'] } },
      'failed to start task: dns.servers[0] "dns.google" is not an IP address; fix: fix the dns block of the job or the host\'s /etc/resolv.conf',
    );
    fails(
      { ...INPUT, dns: { ...INPUT.dns, options: ['ndots:1\nnameserver 6.6.6.6'] } },
      'failed to start task: dns.options[0] "ndots:1\\nnameserver 6.6.6.6" contains whitespace or a NUL byte; fix: fix the dns block of the job or the host\'s /etc/resolv.conf',
    );
    fails(
      { ...INPUT, extraHosts: [{ ip: '10.0.0.1', names: [] }] },
      'failed to start task: extraHosts[0].names is empty; fix: write extra_hosts entries as "name:IP"',
    );
    fails(
      { ...INPUT, extraHosts: [{ ip: 'db', names: ['10.0.0.1'] }] },
      'failed to start task: extraHosts[0].ip "db" is not an IP address; fix: write extra_hosts entries as "name:IP"',
    );
  });
});
