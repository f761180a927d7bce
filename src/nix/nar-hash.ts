/**
 * NAR hashes as Nix prints them: `nix-store --query --hash` gives `sha256:<nix base32>`, `nix
 * path-info --json` and narinfo-derived tools give SRI (`sha256-<base64>`). Tasks pin the SRI
 * form; this module converts between them. Pure: no I/O.
 *
 * Nix's base32 (libutil/hash.cc, `printHash32`/`parseHash32`): the alphabet
 * `0123456789abcdfghijklmnpqrsvwxyz` (no e, o, u, t), read from the last character to the
 * first, 5 bits each, least significant bit first into the bytes.
 */

const BASE32 = '0123456789abcdfghijklmnpqrsvwxyz';
const SHA256_BYTES = 32;
/** `sha256-` and the 44-character padded base64 of 32 bytes. */
const SRI_SHA256 = /^sha256-[A-Za-z0-9+/]{43}=$/;

/** The 32 bytes of a 52-character Nix base32 SHA-256, or undefined when it is not one. */
export function decodeNixBase32(text: string): Buffer | undefined {
  const length = Math.ceil((SHA256_BYTES * 8) / 5);
  if (text.length !== length) return undefined;
  const bytes = Buffer.alloc(SHA256_BYTES);
  for (let n = 0; n < text.length; n++) {
    const digit = BASE32.indexOf(text[text.length - n - 1] ?? '');
    if (digit === -1) return undefined;
    const b = n * 5;
    const i = Math.floor(b / 8);
    const j = b % 8;
    bytes[i] = ((bytes[i] ?? 0) | (digit << j)) & 0xff;
    const carry = digit >> (8 - j);
    if (i < SHA256_BYTES - 1) bytes[i + 1] = ((bytes[i + 1] ?? 0) | carry) & 0xff;
    else if (carry !== 0) return undefined;
  }
  return bytes;
}

/**
 * `sha256:<nix base32>` (as `nix-store --query --hash` prints it) or an SRI `sha256-…` → SRI
 * `sha256-<base64>`; undefined for anything else.
 */
export function toSriSha256(text: string): string | undefined {
  const trimmed = text.trim();
  if (SRI_SHA256.test(trimmed)) return trimmed;
  const match = /^sha256:([0-9a-z]+)$/.exec(trimmed);
  const bytes = match === null ? undefined : decodeNixBase32(match[1] ?? '');
  return bytes === undefined ? undefined : `sha256-${bytes.toString('base64')}`;
}

/** Whether `text` is an SRI SHA-256 hash, `sha256-` and 44 base64 characters. */
export function isSriSha256(text: string): boolean {
  return SRI_SHA256.test(text) && Buffer.from(text.slice('sha256-'.length), 'base64').length === SHA256_BYTES;
}
