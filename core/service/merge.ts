// The service side of `ticket-lab merge`: the request's paths made absolute, then the store's merge
// (core/store/merge.ts), which decides what is the same row and what is refused.
import { resolve } from 'node:path';
import type { MergeDatabasesParams, MergeReport } from '../api/merge-schemas';
import { mergeDatabases } from '../store/merge';

/** Folds the task databases into the catalogue at `catalogPath` (created when missing), each file in its own transaction. */
export function mergeTaskDatabases(catalogPath: string, params: MergeDatabasesParams): MergeReport {
  // Absolute paths: the report is read later, perhaps by a process in another folder.
  return mergeDatabases(resolve(catalogPath), params.files.map((f) => resolve(f)), { dryRun: params.dryRun });
}
