// `ticket-lab merge`: folds task databases (one per Slurm array task, DESIGN.md "Beyond one machine")
// into the catalogue, each file in one transaction, with tickets, runs, lineage and checkpoints
// keeping their identity.
//
// A row whose id the catalogue holds is compared with it ("the same row"):
//   models         same architecture, source, source digest, input shape, classes and parameter specs
//                  (a zoo model's title may differ between versions: it is no part of it)
//   datasets       same name and content digest (the split lives in each run's hparams)
//   runs           same method, run key, seed, hparams, model and dataset (after remapping), and
//                  initial weights where both record them; status is progress, not identity
//   tickets        same run and parent (after remapping; a parent either side lacks is no conflict),
//                  level, role, method, byte-identical mask blobs, and weights where both record them
//   claims         same ticket (after remapping), kind, key and commitment
//   verifications  every column the same (claim and subject after remapping)
//   keys, weights  named by their contents (fingerprint, digest): present means the same; copied when missing
// The same row is skipped; another row under that id is stored under an id derived from it (its
// kind's prefix, or a model's or dataset's name, then a digest), never over the catalogue's, and
// every reference to it in that file follows. Derived, not random: merging the same file again finds
// what it stored the first time, so a second merge is a no-op even for conflicting rows.
//
// A run that was still running in its task is stored as interrupted; merged again after its task
// finished, its status, end and rewind point are filled in. Jobs are not copied: they are the task's.
// Public keys are stored to check claims but never trusted to sign bundles: a task file is unsigned.
//
// A file that cannot be merged (missing, damaged, another application's, newer, inconsistent) is
// refused: its transaction is rolled back, the catalogue keeps nothing of it, the report says why,
// and the next file is merged. A failure to write the catalogue itself (disk full) stops the merge.
import { realpathSync } from 'node:fs';
import { resolve } from 'node:path';
import Sqlite, { type Database } from 'better-sqlite3';
import { CorruptDatabaseError, DataFormatError, InvalidRequestError, LabError, toErrorPayload } from '../api/errors';
import type { MergeFileReport, MergeReport } from '../api/merge-schemas';
import { asWriteError, migrate, openDatabase } from './database';
import { TaskMerger, emptyMergeCounts } from './merge-rows';
import { type TaskDatabase, isCorruption, openTaskDatabase } from './merge-source';
import { mergeTickets } from './merge-tickets';

export interface MergeOptions {
  /** Merge each file in a transaction that is rolled back: the report says what a merge would do. */
  dryRun: boolean;
}

/** Thrown at the end of a dry run's transaction so that better-sqlite3 rolls it back. */
class DryRunRollback extends Error {}

export function mergeDatabases(catalogPath: string, files: readonly string[], options: MergeOptions): MergeReport {
  const catalog = openCatalog(catalogPath, options.dryRun);
  const reports: MergeFileReport[] = [];
  try {
    for (const file of files) reports.push(mergeFile(catalog, catalogPath, file, options, reports));
  } finally {
    catalog.close();
  }
  return { catalog: catalogPath, dryRun: options.dryRun, files: reports };
}

/** The catalogue, created when missing; a dry run on a missing one merges into an empty one in memory. */
function openCatalog(path: string, dryRun: boolean): Database {
  const existing = openDatabase(path, { create: !dryRun });
  if (existing) return existing;
  const empty = new Sqlite(':memory:');
  empty.pragma('foreign_keys = ON');
  migrate(empty);
  return empty;
}

function sameFile(a: string, b: string): boolean {
  try {
    return realpathSync(a) === realpathSync(b);
  } catch {
    return resolve(a) === resolve(b);
  }
}

function mergeFile(catalog: Database, catalogPath: string, file: string, options: MergeOptions, before: readonly MergeFileReport[]): MergeFileReport {
  let source: TaskDatabase | undefined;
  try {
    if (sameFile(file, catalogPath)) throw new InvalidRequestError(`${file} is the catalogue itself; give the task databases.`);
    source = openTaskDatabase(file);
    const merger = new TaskMerger(catalog, source);
    const merge = catalog.transaction(() => {
      merger.mergeKeys();
      merger.mergeModels();
      merger.mergeDatasets();
      merger.mergeRuns();
      mergeTickets(merger);
      merger.mergeClaims();
      merger.mergeVerifications();
      if (options.dryRun) throw new DryRunRollback();
    });
    try {
      merge();
    } catch (error) {
      if (!(error instanceof DryRunRollback)) throw error;
    }
    return { file, merged: true, schemaVersion: source.schemaVersion, counts: merger.counts, runsUpdated: merger.runsUpdated, remapped: merger.remapped, refused: null };
  } catch (error) {
    const refusal = asRefusal(file, error);
    if (!refusal) {
      if (!String((error as { code?: unknown }).code ?? '').startsWith('SQLITE_')) throw error;
      const merged = before.filter((r) => r.merged).map((r) => r.file);
      const stopped = asWriteError(catalogPath, error);
      stopped.message = `${stopped.message} Merging ${file} was rolled back${merged.length ? `; merged before it: ${merged.join(', ')}` : ''}.`;
      throw stopped;
    }
    return { file, merged: false, schemaVersion: source?.schemaVersion ?? null, counts: emptyMergeCounts(), runsUpdated: 0, remapped: [], refused: toErrorPayload(refusal) };
  } finally {
    source?.close();
  }
}

/** The task file's fault, as a LabError naming it; undefined for the catalogue's (which stops the merge). */
function asRefusal(file: string, error: unknown): LabError | undefined {
  const code = (error as { code?: string }).code ?? '';
  let refusal: LabError | undefined;
  if (error instanceof LabError) refusal = error;
  else if (isCorruption(error)) refusal = new CorruptDatabaseError(`${file} is damaged (${code}). Nothing of it was merged; run its task again.`, { cause: error });
  else if (code.startsWith('SQLITE_CONSTRAINT')) refusal = new DataFormatError(`${file} holds rows the catalogue cannot take (${(error as Error).message}). Nothing of it was merged.`, { cause: error });
  if (refusal && !refusal.message.includes(file)) refusal.message = `${file}: ${refusal.message}`;
  return refusal;
}
