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
