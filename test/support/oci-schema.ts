/**
 * Validates an OCI runtime-spec config.json object against the official runtime-spec JSON schema,
 * as runc's own tests do, so unit tests of the OCI renderer can assert "valid" or "invalid with
 * this error".
 *
 * The schema is not copied into the repository: it is read at test time from Debian's
 * golang-github-opencontainers-specs-dev (installed by scripts/setup.sh), or from the directory
 * named by OCI_RUNTIME_SPEC_SCHEMA_DIR. It is JSON Schema draft-04 (hence ajv-draft-04: plain
 * ajv v8 speaks draft-06 and later only) split over several files that $ref each other by
 * relative name ("defs.json#/definitions/…"); every file is registered under its file:// URL so
 * those refs resolve against it.
 */
import AjvDraft04 from 'ajv-draft-04';
import type { ErrorObject, ValidateFunction } from 'ajv-draft-04';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

/** Where Debian's golang-github-opencontainers-specs-dev puts the runtime-spec schema. */
export const DEFAULT_OCI_SCHEMA_DIR = '/usr/share/gocode/src/github.com/opencontainers/runtime-spec/schema';

export interface OciValidationResult {
  readonly valid: boolean;
  /** One "instancePath message" string per schema violation ("/" is the document root). */
  readonly errors: string[];
}

/** The schema directory in use: OCI_RUNTIME_SPEC_SCHEMA_DIR when set, else Debian's. */
export function ociSchemaDir(): string {
  const fromEnv = process.env['OCI_RUNTIME_SPEC_SCHEMA_DIR'];
  return resolve(fromEnv !== undefined && fromEnv !== '' ? fromEnv : DEFAULT_OCI_SCHEMA_DIR);
}

let compiled: { readonly dir: string; readonly validate: ValidateFunction } | undefined;

function configValidator(): ValidateFunction {
  const dir = ociSchemaDir();
  if (compiled?.dir === dir) return compiled.validate;
  const main = join(dir, 'config-schema.json');
  if (!existsSync(main)) {
    throw new Error(
      `OCI runtime-spec schema not found at ${main}: run scripts/setup.sh (it installs the Debian ` +
        `package golang-github-opencontainers-specs-dev) or set OCI_RUNTIME_SPEC_SCHEMA_DIR`,
    );
  }
  // The package is CommonJS (module.exports = Ajv, Ajv.default = Ajv); under NodeNext the default
  // import is typed as the module object, so take the class from `.default`.
  const ajv = new AjvDraft04.default({
    allErrors: true,
    // Strict mode must be off: config-linux.json (and its siblings) keep their sub-schemas under
    // non-keyword top-level keys ("linux", "solaris", …, reached as "config-linux.json#/linux"),
    // which strict mode rejects as 'unknown keyword: "linux"'. Strict mode is about
    // schema-authoring hygiene, not about the documents being validated.
    strict: false,
  });
  for (const name of readdirSync(dir)
    .filter((n) => n.endsWith('.json'))
    .sort()) {
    const file = join(dir, name);
    ajv.addSchema(JSON.parse(readFileSync(file, 'utf8')) as object, pathToFileURL(file).href);
  }
  const validate = ajv.getSchema(pathToFileURL(main).href);
  if (validate === undefined) throw new Error(`could not compile ${main}`);
  compiled = { dir, validate };
  return validate;
}

function describe(error: ErrorObject): string {
  const path = error.instancePath === '' ? '/' : error.instancePath;
  const params = error.params as Record<string, unknown>;
  let message = error.message ?? error.keyword;
  if (error.keyword === 'enum' && Array.isArray(params['allowedValues'])) {
    message += `: ${params['allowedValues'].map((v) => JSON.stringify(v)).join(', ')}`;
  } else if (error.keyword === 'additionalProperties' && typeof params['additionalProperty'] === 'string') {
    message += `: '${params['additionalProperty']}'`;
  }
  return `${path} ${message}`;
}

/** Validates `config` (a parsed config.json) against the runtime-spec config schema. */
export function validateOciConfig(config: unknown): OciValidationResult {
  const validate = configValidator();
  const valid = validate(config);
  return { valid, errors: valid ? [] : (validate.errors ?? []).map(describe) };
}
