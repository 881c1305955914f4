/**
 * Wraps a rebuild so that calls never overlap: a call made while a build runs resolves after
 * one more build that starts when the running one ends, shared by every call made meanwhile.
 * So a caller always sees a build that started after it asked, and a burst of events costs
 * two builds, not one each.
 */
export function coalesced(build: () => Promise<void>): () => Promise<void> {
  let running: Promise<void> | undefined;
  let queued: Promise<void> | undefined;
  const run = (): Promise<void> => {
    if (!running) {
      running = build().finally(() => {
        running = undefined;
      });
      return running;
    }
    queued ??= running
      .catch(() => undefined)
      .then(() => {
        queued = undefined;
        return run();
      });
    return queued;
  };
  return run;
}
