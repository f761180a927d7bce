/**
 * The rules go-plugin's host applies to a plugin's stderr line (hashicorp/go-plugin
 * log_entry.go, as summarised in the project's protocol notes): a JSON object whose `@level`,
 * `@message` and `@timestamp` are strings, the level one hclog knows, the timestamp in Go layout
 * 2006-01-02T15:04:05.000000Z07:00. Returns the problems with one line ([] when it is fine).
 */
export const GO_TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}(Z|[+-]\d{2}:\d{2})$/;
export const HCLOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'off'];

export function hclogLineProblems(line: string): string[] {
  let entry: unknown;
  try {
    entry = JSON.parse(line);
  } catch {
    return ['not JSON'];
  }
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) return ['not a JSON object'];
  const record = entry as Record<string, unknown>;
  const problems: string[] = [];
  for (const [key, value] of Object.entries(record)) {
    if (key.startsWith('@') && typeof value !== 'string') problems.push(`${key} is not a string`);
  }
  if (typeof record['@message'] !== 'string') problems.push('@message missing');
  const level = record['@level'];
  if (typeof level !== 'string' || !HCLOG_LEVELS.includes(level.trim().toLowerCase())) problems.push(`@level ${JSON.stringify(level)} is not an hclog level`);
  const timestamp = record['@timestamp'];
  if (timestamp !== undefined && (typeof timestamp !== 'string' || !GO_TIMESTAMP.test(timestamp))) {
    problems.push(`@timestamp ${JSON.stringify(timestamp)} does not parse with 2006-01-02T15:04:05.000000Z07:00`);
  }
  return problems;
}
