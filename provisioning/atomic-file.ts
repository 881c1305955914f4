// Replacing a file so that a reader sees the old content or the new, never half of either.
// The temporary file is unique to this process and call: nodes or workers sharing a data
// directory may write the same file at once (a CRL, the CA bundle), and with one shared
// temporary name one writer would rename the other's half-written file into place.
import { randomBytes } from 'node:crypto';
import { promises as fs, type WriteFileOptions } from 'node:fs';

export async function writeFileAtomic(path: string, data: string | Uint8Array, options?: WriteFileOptions): Promise<void> {
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    await fs.writeFile(tmp, data, options);
    await fs.rename(tmp, path);
  } catch (error) {
    await fs.rm(tmp, { force: true });
    throw error;
  }
}
