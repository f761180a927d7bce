import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { TaskConfig__Output } from '../gen/hashicorp/nomad/plugins/drivers/proto/TaskConfig.js';
import { fromProtoTaskConfig } from './codec.js';

/** A TaskConfig as proto-loader decodes it (defaults filled in). */
function taskConfig(fields: Partial<TaskConfig__Output>): TaskConfig__Output {
  return {
    id: 'a1/main/1', name: 'main', alloc_id: 'a1', job_name: 'j', task_group_name: 'g', namespace: 'default', env: {}, device_env: {},
    user: '', alloc_dir: '/opt/nomad/alloc/a1', stdout_path: '/dev/null', stderr_path: '/dev/null', msgpack_driver_config: Buffer.from([0x80]),
    mounts: [], devices: [], resources: null, network_isolation_spec: null, dns: null, node_name: '', node_id: '', parent_job_id: '', job_id: 'j',
    ...fields,
  } as TaskConfig__Output;
}

describe('fromProtoTaskConfig', () => {
  it('carries Nomad\'s mounts (volume_mount) and devices (device plugins) into the task request', () => {
    const request = fromProtoTaskConfig(taskConfig({
      mounts: [{ task_path: '/data', host_path: '/srv/data', readonly: true, propagation_mode: 'private', selinux_label: '', request_name: 'data' }],
      devices: [{ task_path: '/dev/fuse', host_path: '/dev/fuse', cgroup_permissions: 'rw' }],
    }));
    assert.deepEqual(request.mounts, [{ taskPath: '/data', hostPath: '/srv/data', readOnly: true, propagationMode: 'private' }]);
    assert.deepEqual(request.devices, [{ taskPath: '/dev/fuse', hostPath: '/dev/fuse', permissions: 'rw' }]);
    assert.deepEqual(fromProtoTaskConfig(taskConfig({})).mounts, []);
  });

  it('carries the node the task runs on (TaskConfig node_id, node_name): the orphan sweep keeps to its own node', () => {
    const request = fromProtoTaskConfig(taskConfig({ node_id: '0b6c7a1e-1111-4222-8333-444455556666', node_name: 'client-1' }));
    assert.equal(request.nodeId, '0b6c7a1e-1111-4222-8333-444455556666');
    assert.equal(request.nodeName, 'client-1');
  });
});
