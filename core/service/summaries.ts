// The ticket as reports show it: the store's record without its blobs and JSON columns.
import type { TicketSummary } from '../api/schemas';
import type { TicketHeader } from '../store/lab-store';

export function toSummary(t: TicketHeader): TicketSummary {
  return {
    id: t.id,
    runId: t.runId,
    parentId: t.parentId,
    level: t.level,
    method: t.method,
    role: t.role,
    model: t.architecture,
    dataset: t.datasetName,
    sparsity: t.sparsity,
    kept: t.kept,
    total: t.total,
    testAccuracy: t.testAccuracy,
    earlyStopIteration: t.earlyStopIteration,
    createdAt: t.createdAt,
  };
}
