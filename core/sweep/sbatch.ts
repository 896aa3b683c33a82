// sweep.sbatch: the Slurm job array of a sweep. Each array task runs `ticket-lab sweep run-task DIR i`,
// which skips a task whose result exists, so the same script resubmitted or requeued resumes.
import type { SweepFile } from './plan';

/** A word for bash, quoted only when it needs it. */
export function shellQuote(word: string): string {
  return /^[A-Za-z0-9_./:=@%+,-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/** Indices as Slurm's --array takes them, runs folded into ranges (`0-3,7,9-10`), with `%K` when throttled. */
export function arraySpec(indices: readonly number[], parallel: number | null): string {
  const sorted = [...new Set(indices)].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    parts.push(i === j ? `${sorted[i]}` : `${sorted[i]}-${sorted[j]}`);
    i = j + 1;
  }
  return `${parts.join(',')}${parallel !== null ? `%${parallel}` : ''}`;
}

function describe(sweep: SweepFile): string {
  const imp = sweep.imp ? ` (imp: ${sweep.imp.levels} levels, one lineage per seed to ${(100 * sweep.imp.sparsity).toFixed(2)} %)` : '';
  return `${sweep.tasks} tasks: ${sweep.methods.join(', ')} × sparsity ${sweep.sparsities.join(', ')} × seed ${sweep.seeds.join(', ')}${imp}, ${sweep.model} on ${sweep.dataset}`;
}

/** The sbatch script of a planned sweep; `dir` is the sweep folder's absolute path on the cluster. */
export function sbatchScript(sweep: SweepFile, dir: string): string {
  const s = sweep.slurm;
  const directives = [
    `--job-name=${s.jobName}`,
    `--array=${arraySpec(Array.from({ length: sweep.tasks }, (_, i) => i), s.parallel)}`,
    `--chdir=${dir}`,
    '--output=logs/task-%a.out',
    // A requeued task's second attempt appends to the first's log.
    '--open-mode=append',
    '--requeue',
    '--ntasks=1',
    ...(s.time !== null ? [`--time=${s.time}`] : []),
    ...(s.gpus > 0 ? [`--gres=gpu:${s.gpus}`] : []),
    ...(s.cpusPerTask !== null ? [`--cpus-per-task=${s.cpusPerTask}`] : []),
    ...(s.mem !== null ? [`--mem=${s.mem}`] : []),
    ...(s.partition !== null ? [`--partition=${s.partition}`] : []),
    ...(s.account !== null ? [`--account=${s.account}`] : []),
    ...(s.qos !== null ? [`--qos=${s.qos}`] : []),
  ];
  const cli = sweep.cli.map(shellQuote).join(' ');
  return [
    '#!/bin/bash',
    `# Ticket Lab sweep, ${describe(sweep)}.`,
    '# Written by `ticket-lab sweep plan`; `ticket-lab sweep submit DIR` submits it, `ticket-lab sweep status DIR` follows it.',
    '# Array task i runs line i of tasks.jsonl into tasks/task-<i>.db; one whose tasks/task-<i>.done exists exits at once,',
    '# so resubmitting or requeueing the array resumes it. `--chdir` is this folder: plan again after moving it.',
    ...directives.map((d) => `#SBATCH ${d}`),
    '',
    'set -eu',
    '# Training threads: the CPUs Slurm gave the task (one unless --cpus-per-task).',
    'export TICKET_LAB_WORKERS="${TICKET_LAB_WORKERS:-${SLURM_CPUS_PER_TASK:-1}}"',
    `exec ${cli} sweep run-task ${shellQuote(dir)} "$SLURM_ARRAY_TASK_ID"`,
    '',
  ].join('\n');
}
