/**
 * Markdown option tables for the README, rendered from the schema modules so the docs can
 * never disagree with what Nomad is told. Pure: no I/O.
 */
import { pluginConfigFields } from './plugin-config.js';
import { describeFields, type Fields } from './schema.js';
import { taskConfigFields } from './task-config.js';

function escapeCell(text: string): string {
  return text.replaceAll('|', '\\|').replaceAll('\n', ' ');
}

export function renderOptionsTable(fields: Fields): string {
  const rows = describeFields(fields).map(
    (f) => `| \`${f.name}\` | ${f.type} | \`${escapeCell(f.default)}\` | ${escapeCell(f.doc)} | \`${escapeCell(f.example)}\` |`,
  );
  return ['| option | type | default | meaning | example |', '|---|---|---|---|---|', ...rows].join('\n');
}

function replaceBetween(text: string, name: string, body: string): string {
  const start = `<!-- ${name}:start -->`;
  const end = `<!-- ${name}:end -->`;
  const from = text.indexOf(start);
  const to = text.indexOf(end);
  if (from === -1 || to === -1 || to < from) throw new Error(`failed to render README tables: markers ${start} … ${end} not found`);
  return `${text.slice(0, from + start.length)}\n${body}\n${text.slice(to)}`;
}

/** The README text with both option tables brought up to date. */
export function renderReadmeTables(readme: string): string {
  return replaceBetween(replaceBetween(readme, 'plugin-options', renderOptionsTable(pluginConfigFields)), 'task-options', renderOptionsTable(taskConfigFields));
}
