// The tickets of a task database with their masks, parents before children, so that a child stored
// under its own id points at its parent's id in the catalogue, whichever id that turned out to be.
import { createHash } from 'node:crypto';
import { DataFormatError } from '../api/errors';
import { canonicalJson } from '../bundle/manifest';
import { COLUMNS, type Row, type TaskMerger, compatible } from './merge-rows';

/** Every ticket with its depth in its lineage; a ticket on a loop of parents is never reached (counted after). */
const TICKETS_BY_DEPTH = `
  WITH RECURSIVE lineage(id, depth) AS (
    SELECT id, 0 FROM tickets WHERE parent_id IS NULL
    UNION ALL SELECT t.id, l.depth + 1 FROM tickets t JOIN lineage l ON t.parent_id = l.id)
  SELECT ${COLUMNS.tickets.map((c) => `t.${c}`).join(', ')} FROM lineage l JOIN tickets t ON t.id = l.id
  ORDER BY l.depth, t.created_at, t.id`;

const MASKS_OF = `SELECT ${COLUMNS.masks.join(', ')} FROM masks WHERE ticket_id = ? ORDER BY position, tensor`;

/** Same layers at the same positions with byte-identical blobs (the encoding is deterministic). */
function sameMasks(a: readonly Row[], b: readonly Row[]): boolean {
  return a.length === b.length && a.every((m, i) => m.tensor === b[i]!.tensor && m.position === b[i]!.position && (m.blob as Buffer).equals(b[i]!.blob as Buffer));
}

export function mergeTickets(merger: TaskMerger): void {
  const { source } = merger;
  const masksOf = source.lookup.prepare(MASKS_OF);
  let reached = 0;
  for (const row of source.rows.prepare(TICKETS_BY_DEPTH).iterate() as IterableIterator<Row>) {
    reached++;
    const id = String(row.id);
    const runId = merger.mapped('runs', String(row.run_id));
    const parentId = merger.mapped('tickets', row.parent_id as string | null);
    // One ticket's masks at a time: a large model's are megabytes.
    const masks = masksOf.all(id) as Row[];
    const same = (candidate: string) => {
      const stored = merger.catalogRow('tickets', candidate)!;
      return (
        stored.run_id === runId && stored.level === row.level && stored.role === row.role && stored.method === row.method &&
        compatible(stored.parent_id, parentId) && compatible(stored.start_weights, row.start_weights) && compatible(stored.final_weights, row.final_weights) &&
        sameMasks(merger.sql(MASKS_OF).all(candidate) as Row[], masks)
      );
    };
    const content = () => {
      const hash = createHash('sha256').update(canonicalJson({ ...row, run_id: runId, parent_id: parentId }));
      for (const m of masks) hash.update(`${String(m.tensor)}\0`).update(m.blob as Buffer);
      return hash.digest('hex');
    };
    const placed = merger.place('tickets', id, same, content);
    if (!placed.write) continue;
    for (const mask of masks) merger.checkMask(id, mask);
    merger.copyWeights(row.start_weights);
    merger.copyWeights(row.final_weights);
    merger.insert('tickets', { ...row, id: placed.id, run_id: runId, parent_id: parentId });
    for (const mask of masks) merger.insert('masks', { ...mask, ticket_id: placed.id });
  }
  const total = (source.lookup.prepare('SELECT count(*) AS n FROM tickets').get() as { n: number }).n;
  if (reached !== total) {
    throw new DataFormatError(`${source.path}: ${total - reached} ticket(s) are their own ancestors (a loop of parents); the file is damaged. Nothing of it was merged.`);
  }
}
