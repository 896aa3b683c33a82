// The LabApi contract of `merge`: folding task databases (one per Slurm array task, DESIGN.md
// "Beyond one machine") into the catalogue. Plain data, like schemas.ts: the renderer may use it.
import { z } from 'zod';
import type { ErrorPayload } from './errors';

/** Folds task databases into this lab's database, each file in its own transaction (again: a no-op). */
export const MergeDatabasesRequest = z
  .object({
    /** The task databases, merged in this order. */
    files: z.array(z.string().min(1)).min(1, 'give at least one task database'),
    /** Check and count everything, write nothing. */
    dryRun: z.boolean().default(false),
  })
  .strict();
export type MergeDatabasesRequest = z.input<typeof MergeDatabasesRequest>;
export type MergeDatabasesParams = z.output<typeof MergeDatabasesRequest>;

/** The tables a merge copies; jobs stay with the task that ran them. */
export const MERGED_TABLES = ['models', 'datasets', 'weights', 'runs', 'tickets', 'claims', 'verifications', 'keys'] as const;
export type MergedTable = (typeof MERGED_TABLES)[number];

export interface MergeCounts {
  /** Rows the catalogue did not have, stored under their own ids. */
  new: number;
  /** Rows already there with the same contents: nothing written. */
  skipped: number;
  /** Rows whose id the catalogue holds with other contents: stored under another id (see `remapped`). */
  remapped: number;
}

export interface MergeRemap {
  table: MergedTable;
  from: string;
  to: string;
}

export interface MergeFileReport {
  file: string;
  /** False when the file was refused: nothing of it was written. */
  merged: boolean;
  /** The file's schema version; null when it could not be read. */
  schemaVersion: number | null;
  counts: Record<MergedTable, MergeCounts>;
  /** Runs already here that the task took further (stopped here, finished there): status and rewind point filled in. */
  runsUpdated: number;
  remapped: MergeRemap[];
  /** Why the file was refused (its name is in the message); null when merged. */
  refused: ErrorPayload | null;
}

export interface MergeReport {
  /** The catalogue merged into. */
  catalog: string;
  dryRun: boolean;
  /** In the order given; a refused file does not stop the files after it. */
  files: MergeFileReport[];
}
