import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { chooseDns, isIpAddress, isLoopbackAddress, parseResolvConf } from './dns.js';

const HOST = 'nameserver 10.0.0.2\nnameserver 10.0.0.3\nsearch corp.example\noptions edns0\n';
const STUB = '# This is /run/systemd/resolve/stub-resolv.conf\nnameserver 127.0.0.53\noptions edns0 trust-ad\nsearch lan\n';
const UPSTREAM = '# This is /run/systemd/resolve/resolv.conf\nnameserver 192.168.1.1\nnameserver fe80::1%eth0\nsearch lan\n';

describe('parseResolvConf', () => {
  it('reads nameservers, the last search line and every options token, skipping comments', () => {
    const text = [
      '# comment',
      '; also a comment',
      'nameserver 1.1.1.1 # trailing comment',
      'nameserver   2606:4700:4700::1111',
      'nameserver not-an-ip',
      'search old.example',
      'search a.example b.example',
      'options ndots:2',
      'options timeout:1 attempts:3',
      'sortlist 130.155.160.0/255.255.240.0',
      '',
    ].join('\n');
    assert.deepEqual(parseResolvConf(text), {
      servers: ['1.1.1.1', '2606:4700:4700::1111'],
      searches: ['a.example', 'b.example'],
      options: ['ndots:2', 'timeout:1', 'attempts:3'],
    });
  });

  it('treats domain as a one-entry search list and accepts an empty file', () => {
    assert.deepEqual(parseResolvConf('domain example.org\nnameserver 9.9.9.9'), { servers: ['9.9.9.9'], searches: ['example.org'], options: [] });
    assert.deepEqual(parseResolvConf(''), { servers: [], searches: [], options: [] });
  });
});

describe('IP address helpers', () => {
  it('recognises IPv4 and IPv6 literals', () => {
    for (const ok of ['1.2.3.4', '::', '::1', 'fe80::1%eth0', '2001:db8::8a2e:370:7334', '::ffff:10.1.2.3', '1:2:3:4:5:6:7:8']) assert.ok(isIpAddress(ok), ok);
    for (const bad of ['', '256.1.1.1', '1.2.3', 'dns.google', '1::2::3', '1:2:3:4:5:6:7:8:9', '12345::', '1.2.3.4::']) assert.ok(!isIpAddress(bad), bad);
  });

  it('recognises loopback addresses', () => {
    for (const yes of ['127.0.0.1', '127.0.0.53', '127.255.0.9', '::1', '0:0:0:0:0:0:0:1', '::ffff:127.0.0.1']) assert.ok(isLoopbackAddress(yes), yes);
    for (const no of ['10.0.0.1', '::', '::2', '128.0.0.1', 'localhost']) assert.ok(!isLoopbackAddress(no), no);
  });
});

describe('chooseDns', () => {
  it('uses the host resolv.conf when neither the job nor Nomad sets dns', () => {
    assert.deepEqual(chooseDns({ hostResolvConf: HOST }), { servers: ['10.0.0.2', '10.0.0.3'], searches: ['corp.example'], options: ['edns0'] });
  });

  it("prefers the job, then Nomad, field by field, as Nomad's GenerateDNSMount does", () => {
    const task = { servers: ['8.8.8.8'], searches: [], options: [] };
    const nomad = { servers: ['1.1.1.1'], searches: ['svc.example'], options: [] };
    assert.deepEqual(chooseDns({ task, nomad, hostResolvConf: HOST }), { servers: ['8.8.8.8'], searches: ['svc.example'], options: ['edns0'] });
    assert.deepEqual(chooseDns({ nomad, hostResolvConf: HOST }), { servers: ['1.1.1.1'], searches: ['svc.example'], options: ['edns0'] });
  });

  it("replaces a loopback-only host list with systemd-resolved's upstream servers", () => {
    assert.deepEqual(chooseDns({ hostResolvConf: STUB, systemdResolvConf: UPSTREAM }), {
      servers: ['192.168.1.1', 'fe80::1%eth0'],
      searches: ['lan'],
      options: [],
    });
  });

  it('keeps the host list when some server is reachable, or when no usable upstream list exists', () => {
    const mixed = 'nameserver 127.0.0.1\nnameserver 10.0.0.2\n';
    assert.deepEqual(chooseDns({ hostResolvConf: mixed, systemdResolvConf: UPSTREAM }).servers, ['127.0.0.1', '10.0.0.2']);
    assert.deepEqual(chooseDns({ hostResolvConf: STUB }).servers, ['127.0.0.53']);
    assert.deepEqual(chooseDns({ hostResolvConf: STUB, systemdResolvConf: 'nameserver 127.0.0.1\n' }).servers, ['127.0.0.53']);
  });
});
