// Files other programs read while this service rewrites them (a CRL, the CA bundle): written
// beside their final place under a name of this writer's own, synced, then renamed over the
// old one. rename(2) replaces a file atomically within one file system, so a reader sees the
// old file or the new one, never part of either; and two writers at once (two processes of
// one installation) never write into the same temporary file.
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';

export async function writeFileAtomically(path: string, content: string | Buffer, mode = 0o644): Promise<void> {
  const tmp = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    const handle = await fs.open(tmp, 'wx', mode);
    try {
      await handle.writeFile(content);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fs.rename(tmp, path);
  } catch (error) {
    await fs.rm(tmp, { force: true });
    throw error;
  }
}
