// Whether the process that marked a row as its own (a run, a job) still exists: a killed one's rows
// are marked interrupted on the next start.

/** True while a process with this pid exists (EPERM: it exists, owned by another user). */
export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * A 'running' row whose process is gone: no pid recorded, or another process's pid that no longer
 * exists (this process's own rows are never orphaned).
 */
export function isOrphaned(pid: number | null, isAlive: (pid: number) => boolean): boolean {
  return pid === null || (pid !== process.pid && !isAlive(pid));
}
