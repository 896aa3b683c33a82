// The only SQL in Ticket Lab: rows in, domain records out. Every write that belongs together is
// one short synchronous transaction, so a killed process leaves either all of a level or none of it.
import { statSync } from 'node:fs';
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import type { Database } from 'better-sqlite3';
import { AmbiguousIdError, DataFormatError, InvalidRequestError, NotFoundError } from '../api/errors';
import { type WeightSet, decodeWeights, digestWeights, encodeWeights } from '../models/weights';
import { type MaskSet, countKept, summarizeMasks } from '../pruning/mask';
import { decodeMask, encodeMask } from '../pruning/mask-encoding';
import { asWriteError, openDatabase, schemaVersion } from './database';
import { newId } from './ids';
import { JobTable } from './job-table';
import { isOrphaned } from './liveness';

export type RunStatus = 'running' | 'completed' | 'cancelled' | 'failed' | 'interrupted';
export type TicketRole = 'ticket' | 'control';

export interface ModelRecord {
  id: string;
  architecture: string;
  source: 'zoo' | 'file';
  sourceDigest: string | null;
  spec: unknown;
}

export interface DatasetRecord {
  id: string;
  name: string;
  source: string;
  digest: string;
  spec: unknown;
}

export interface RunRecord {
  id: string;
  method: string;
  modelId: string;
  architecture: string;
  datasetId: string;
  datasetName: string;
  runKey: string;
  seed: number;
  hparams: Record<string, unknown>;
  backend: Record<string, unknown>;
  versions: Record<string, string>;
  status: RunStatus;
  error: string | null;
  initWeights: string | null;
  rewindWeights: string | null;
  createdAt: string;
  finishedAt: string | null;
  ticketCount: number;
}

export interface TicketRecord {
  id: string;
  runId: string;
  parentId: string | null;
  level: number;
  method: string;
  role: TicketRole;
  kept: number;
  total: number;
  sparsity: number;
  testAccuracy: number | null;
  earlyStopIteration: number | null;
  metrics: Record<string, unknown>;
  curve: unknown[];
  startWeights: string | null;
  finalWeights: string | null;
  createdAt: string;
  architecture: string;
  datasetName: string;
}

/** A ticket without its metrics, curve and weight digests: what a list of thousands needs. */
export type TicketHeader = Omit<TicketRecord, 'metrics' | 'curve' | 'startWeights' | 'finalWeights'>;

export interface NewTicket {
  parentId: string | null;
  /** Instead of parentId: the ticket at this index of the same saveLevel call (a control and its level's ticket, saved together). */
  parentInLevel?: number;
  level: number;
  method: string;
  role: TicketRole;
  testAccuracy: number | null;
  earlyStopIteration: number | null;
  metrics: Record<string, unknown>;
  curve: unknown[];
  masks: MaskSet;
  startWeights: WeightSet | null;
  finalWeights: WeightSet | null;
}

export interface ClaimRecord {
  id: string;
  /** The claimed ticket: the signed (and trigger-trained) one. */
  ticketId: string;
  kind: 'graph-signature' | 'trigger-set';
  keyFingerprint: string | null;
  /** Hex SHA-256 of what the claim fixes before release (the signature bits, the trigger set). */
  commitment: string;
  params: Record<string, unknown>;
  createdAt: string;
}

interface ClaimRow {
  id: string;
  ticket_id: string;
  kind: ClaimRecord['kind'];
  key_fingerprint: string | null;
  commitment: string;
  params_json: string;
  created_at: string;
}

function toClaim(row: ClaimRow): ClaimRecord {
  return {
    id: row.id, ticketId: row.ticket_id, kind: row.kind, keyFingerprint: row.key_fingerprint, commitment: row.commitment,
    params: JSON.parse(row.params_json) as Record<string, unknown>, createdAt: row.created_at,
  };
}

export interface VerificationRecord {
  id: string;
  claimId: string | null;
  /** What was checked: a ticket id, or a file's SHA-256 (`sha256:…`). */
  subject: string;
  verdict: string;
  score: number | null;
  threshold: number | null;
  pValue: number | null;
  evidence: Record<string, unknown>;
  createdAt: string;
}

export interface KeyRecord {
  fingerprint: string;
  algorithm: string;
  publicKeyPem: string;
  label: string | null;
  /** This user's own key (its private half is in the owner key file), not one imported with a bundle. */
  own: boolean;
  /**
   * Bundles signed by this key are imported without asking: the owner's own, and a signer the user
   * named (--key) or accepted (--trust). A key that only came named in a bundle's claims is not.
   */
  trusted: boolean;
}

export interface TicketFilter {
  runId?: string | undefined;
  architecture?: string | undefined;
  datasetName?: string | undefined;
  method?: string | undefined;
  minSparsity?: number | undefined;
  maxSparsity?: number | undefined;
  minAccuracy?: number | undefined;
  maxAccuracy?: number | undefined;
  role?: TicketRole | undefined;
  /** Only tickets with (true) or without (false) an ownership claim. */
  claimed?: boolean | undefined;
  /** Only tickets claimed with a key whose fingerprint starts so. */
  owner?: string | undefined;
}

/** A page of a ticket list: sorted by one column, then by creation. */
export interface TicketPage {
  sort: 'created' | 'sparsity' | 'accuracy' | 'level' | 'method' | 'model';
  order: 'asc' | 'desc';
  limit: number;
  offset: number;
}

const SORT_COLUMNS: Record<TicketPage['sort'], string> = {
  created: 't.created_at', sparsity: 't.sparsity', accuracy: 't.test_accuracy', level: 't.level', method: 't.method', model: 'm.architecture',
};

export interface StoreInfo {
  path: string;
  exists: boolean;
  schemaVersion: number | null;
  bytes: number | null;
  counts: Record<'models' | 'datasets' | 'runs' | 'tickets' | 'masks' | 'weights', number>;
}

/** Weight checkpoints: encodeWeights() bytes, raw deflate. */
const WEIGHTS_ENCODING = 'f32le+deflate';
/**
 * Dense float32 barely compresses (7% at level 6, for 40 ms a LeNet checkpoint), but the zeros of
 * pruned weights do, and level 1 gets those cheaply.
 */
export const WEIGHTS_DEFLATE_LEVEL = 1;

/** The WHERE clause of a ticket filter and its arguments (values always bound, never spliced). */
function ticketConditions(filter: TicketFilter): { where: string; args: unknown[] } {
  const conditions: Array<[string, unknown[]]> = [];
  if (filter.runId) conditions.push(['t.run_id = ?', [filter.runId]]);
  if (filter.architecture) conditions.push(['m.architecture = ?', [filter.architecture]]);
  if (filter.datasetName) conditions.push(['d.name = ?', [filter.datasetName]]);
  if (filter.method) conditions.push(['t.method = ?', [filter.method]]);
  if (filter.minSparsity !== undefined) conditions.push(['t.sparsity >= ?', [filter.minSparsity]]);
  if (filter.maxSparsity !== undefined) conditions.push(['t.sparsity <= ?', [filter.maxSparsity]]);
  if (filter.minAccuracy !== undefined) conditions.push(['t.test_accuracy >= ?', [filter.minAccuracy]]);
  if (filter.maxAccuracy !== undefined) conditions.push(['t.test_accuracy <= ?', [filter.maxAccuracy]]);
  if (filter.role) conditions.push(['t.role = ?', [filter.role]]);
  if (filter.claimed !== undefined) conditions.push([`${filter.claimed ? '' : 'NOT '}EXISTS (SELECT 1 FROM claims c WHERE c.ticket_id = t.id)`, []]);
  if (filter.owner) conditions.push(["EXISTS (SELECT 1 FROM claims c WHERE c.ticket_id = t.id AND substr(c.key_fingerprint, 1, ?) = ?)", [filter.owner.length, filter.owner]]);
  return { where: conditions.length ? `WHERE ${conditions.map(([sql]) => sql).join(' AND ')}` : '', args: conditions.flatMap(([, values]) => values) };
}

/** Same layers in the same order, same shapes, same bits. */
function masksEqual(a: MaskSet, b: MaskSet): boolean {
  return (
    a.length === b.length &&
    a.every((m, i) => {
      const o = b[i]!;
      return m.name === o.name && m.shape.join(',') === o.shape.join(',') && Buffer.from(m.bits).equals(Buffer.from(o.bits));
    })
  );
}

const now = (): string => new Date().toISOString();

interface TicketRow {
  id: string;
  run_id: string;
  parent_id: string | null;
  level: number;
  method: string;
  role: TicketRole;
  kept: number;
  total: number;
  sparsity: number;
  test_accuracy: number | null;
  early_stop_iteration: number | null;
  metrics_json: string;
  curve_json: string;
  start_weights: string | null;
  final_weights: string | null;
  created_at: string;
  architecture: string;
  dataset_name: string;
}

interface RunRow {
  id: string;
  method: string;
  model_id: string;
  architecture: string;
  dataset_id: string;
  dataset_name: string;
  run_key: string;
  seed: number;
  hparams_json: string;
  backend_json: string;
  versions_json: string;
  status: RunStatus;
  error: string | null;
  init_weights: string | null;
  rewind_weights: string | null;
  created_at: string;
  finished_at: string | null;
  ticket_count: number;
}

const TICKET_SELECT = `
  SELECT t.*, m.architecture AS architecture, d.name AS dataset_name
  FROM tickets t JOIN runs r ON r.id = t.run_id JOIN models m ON m.id = r.model_id JOIN datasets d ON d.id = r.dataset_id`;

/** Lists come in the order they were made, a level's ticket before its controls. */
const TICKET_LIST_ORDER = 'ORDER BY t.created_at, t.run_id, t.level, t.role DESC';

/** TICKET_SELECT without the JSON columns: parsing every curve made a list of 10,000 about 95 ms. */
const TICKET_HEADER_SELECT = `
  SELECT t.id, t.run_id, t.parent_id, t.level, t.method, t.role, t.kept, t.total, t.sparsity, t.test_accuracy, t.early_stop_iteration, t.created_at,
         m.architecture AS architecture, d.name AS dataset_name
  FROM tickets t JOIN runs r ON r.id = t.run_id JOIN models m ON m.id = r.model_id JOIN datasets d ON d.id = r.dataset_id`;

function toTicketHeader(row: Omit<TicketRow, 'metrics_json' | 'curve_json' | 'start_weights' | 'final_weights'>): TicketHeader {
  return {
    id: row.id, runId: row.run_id, parentId: row.parent_id, level: row.level, method: row.method, role: row.role, kept: row.kept, total: row.total,
    sparsity: row.sparsity, testAccuracy: row.test_accuracy, earlyStopIteration: row.early_stop_iteration, createdAt: row.created_at,
    architecture: row.architecture, datasetName: row.dataset_name,
  };
}

const RUN_SELECT = `
  SELECT r.*, m.architecture AS architecture, d.name AS dataset_name,
         (SELECT count(*) FROM tickets t WHERE t.run_id = r.id) AS ticket_count
  FROM runs r JOIN models m ON m.id = r.model_id JOIN datasets d ON d.id = r.dataset_id`;

function toTicket(row: TicketRow): TicketRecord {
  return {
    id: row.id,
    runId: row.run_id,
    parentId: row.parent_id,
    level: row.level,
    method: row.method,
    role: row.role,
    kept: row.kept,
    total: row.total,
    sparsity: row.sparsity,
    testAccuracy: row.test_accuracy,
    earlyStopIteration: row.early_stop_iteration,
    metrics: JSON.parse(row.metrics_json) as Record<string, unknown>,
    curve: JSON.parse(row.curve_json) as unknown[],
    startWeights: row.start_weights,
    finalWeights: row.final_weights,
    createdAt: row.created_at,
    architecture: row.architecture,
    datasetName: row.dataset_name,
  };
}

function toRun(row: RunRow): RunRecord {
  return {
    id: row.id,
    method: row.method,
    modelId: row.model_id,
    architecture: row.architecture,
    datasetId: row.dataset_id,
    datasetName: row.dataset_name,
    runKey: row.run_key,
    seed: row.seed,
    hparams: JSON.parse(row.hparams_json) as Record<string, unknown>,
    backend: JSON.parse(row.backend_json) as Record<string, unknown>,
    versions: JSON.parse(row.versions_json) as Record<string, string>,
    status: row.status,
    error: row.error,
    initWeights: row.init_weights,
    rewindWeights: row.rewind_weights,
    createdAt: row.created_at,
    finishedAt: row.finished_at,
    ticketCount: row.ticket_count,
  };
}

export class LabStore {
  /** The job queue (core/jobs): its rows live in this database, beside the runs they make. */
  readonly jobs: JobTable;

  private constructor(
    readonly path: string,
    private readonly db: Database,
  ) {
    this.jobs = new JobTable(db, (fn) => this.write(fn));
  }

  /** Opens (and creates, when `create`) the store; undefined when it does not exist and may not be created. */
  static open(path: string, options: { create: boolean }): LabStore | undefined {
    const db = openDatabase(path, options);
    return db ? new LabStore(path, db) : undefined;
  }

  close(): void {
    if (this.db.open) this.db.close();
  }

  /** Runs `fn` in one transaction; SQLite failures become a DatabaseWriteError that says what to do. */
  private write<T>(fn: () => T): T {
    try {
      return this.db.transaction(fn)();
    } catch (error) {
      throw asWriteError(this.path, error);
    }
  }

  ensureModel(model: ModelRecord): void {
    this.write(() => {
      this.db
        .prepare('INSERT OR IGNORE INTO models (id, architecture, source, source_digest, spec_json, created_at) VALUES (?, ?, ?, ?, ?, ?)')
        .run(model.id, model.architecture, model.source, model.sourceDigest, JSON.stringify(model.spec), now());
    });
  }

  /**
   * Stores a model imported from a file with its weights, once per id (the caller derives the id
   * from the file's bytes, so importing the same file again finds the first). Returns whether it was new.
   */
  saveImportedModel(model: Omit<ModelRecord, 'source' | 'spec'> & { spec: Record<string, unknown> }, weights: WeightSet): boolean {
    return this.write(() => {
      if (this.db.prepare('SELECT 1 FROM models WHERE id = ?').get(model.id)) return false;
      const digest = this.putWeights(weights);
      this.db
        .prepare('INSERT INTO models (id, architecture, source, source_digest, spec_json, created_at) VALUES (?, ?, ?, ?, ?, ?)')
        .run(model.id, model.architecture, 'file', model.sourceDigest, JSON.stringify({ ...model.spec, weights: digest }), now());
      return true;
    });
  }

  ensureDataset(dataset: DatasetRecord): void {
    this.write(() => {
      this.db
        .prepare('INSERT OR IGNORE INTO datasets (id, name, source, digest, spec_json, created_at) VALUES (?, ?, ?, ?, ?, ?)')
        .run(dataset.id, dataset.name, dataset.source, dataset.digest, JSON.stringify(dataset.spec), now());
    });
  }

  /** Stores a weight set once per content digest; call inside a transaction. */
  private putWeights(weights: WeightSet): string {
    const digest = digestWeights(weights);
    const exists = this.db.prepare('SELECT 1 FROM weights WHERE digest = ?').get(digest);
    if (!exists) {
      const raw = encodeWeights(weights);
      this.db
        .prepare('INSERT INTO weights (digest, encoding, byte_length, blob, created_at) VALUES (?, ?, ?, ?, ?)')
        .run(digest, WEIGHTS_ENCODING, raw.length, deflateRawSync(raw, { level: WEIGHTS_DEFLATE_LEVEL }), now());
    }
    return digest;
  }

  getWeights(digest: string): WeightSet {
    const row = this.db.prepare('SELECT encoding, blob FROM weights WHERE digest = ?').get(digest) as { encoding: string; blob: Buffer } | undefined;
    if (!row) throw new NotFoundError('weights checkpoint', digest);
    if (row.encoding !== WEIGHTS_ENCODING) {
      throw new DataFormatError(`Weights checkpoint ${digest.slice(0, 12)} uses encoding '${row.encoding}', which this Ticket Lab cannot read. Upgrade Ticket Lab.`);
    }
    return decodeWeights(inflateRawSync(row.blob));
  }

  createRun(run: {
    method: string;
    modelId: string;
    datasetId: string;
    runKey: string;
    seed: number;
    hparams: Record<string, unknown>;
    backend: Record<string, unknown>;
    versions: Record<string, string>;
    initWeights?: WeightSet;
  }): string {
    const id = newId('run');
    this.write(() => {
      const init = run.initWeights ? this.putWeights(run.initWeights) : null;
      this.db
        .prepare(
          `INSERT INTO runs (id, method, model_id, dataset_id, run_key, seed, hparams_json, backend_json, versions_json, status, init_weights, pid, created_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'running', ?, ?, ?)`,
        )
        .run(id, run.method, run.modelId, run.datasetId, run.runKey, run.seed, JSON.stringify(run.hparams), JSON.stringify(run.backend), JSON.stringify(run.versions), init, process.pid, now());
    });
    return id;
  }

  /** Marks a stopped run as running again, in this process (a resumed search). */
  reopenRun(id: string): void {
    this.write(() => {
      this.db.prepare("UPDATE runs SET status = 'running', error = NULL, finished_at = NULL, pid = ? WHERE id = ?").run(process.pid, id);
    });
  }

  finishRun(id: string, status: Exclude<RunStatus, 'running'>, error?: string): void {
    this.write(() => {
      this.db.prepare('UPDATE runs SET status = ?, error = ?, finished_at = ? WHERE id = ?').run(status, error ?? null, now(), id);
    });
  }

  /**
   * Marks runs left 'running' by a process that no longer exists as 'interrupted' (killed, crashed,
   * power cut). Their finished levels stay; the level in flight was never committed.
   */
  markInterruptedRuns(isAlive: (pid: number) => boolean): number {
    const stale = (this.db.prepare("SELECT id, pid FROM runs WHERE status = 'running'").all() as Array<{ id: string; pid: number | null }>).filter(
      (r) => isOrphaned(r.pid, isAlive),
    );
    if (stale.length === 0) return 0;
    this.write(() => {
      const update = this.db.prepare("UPDATE runs SET status = 'interrupted', error = 'the process running it stopped before it finished', finished_at = ? WHERE id = ?");
      for (const r of stale) update.run(now(), r.id);
    });
    return stale.length;
  }

  /**
   * Writes the tickets of one level (a ticket and its controls) with their masks and weights, and
   * the run's rewind point when it is first known, in one transaction.
   */
  saveLevel(runId: string, tickets: readonly NewTicket[], runUpdate: { rewindWeights?: WeightSet } = {}): string[] {
    const ids = tickets.map(() => newId('tk'));
    this.write(() => {
      if (runUpdate.rewindWeights) {
        this.db.prepare('UPDATE runs SET rewind_weights = ? WHERE id = ?').run(this.putWeights(runUpdate.rewindWeights), runId);
      }
      this.insertTickets(runId, tickets.map((t, i) => ({ ...t, parentId: t.parentInLevel !== undefined ? ids[t.parentInLevel]! : t.parentId, id: ids[i]!, createdAt: now() })));
    });
    return ids;
  }

  /** Inserts tickets with their masks and weights under the ids given; call inside a transaction. */
  private insertTickets(runId: string, tickets: ReadonlyArray<NewTicket & { id: string; createdAt: string }>): void {
    const insertTicket = this.db.prepare(
      `INSERT INTO tickets (id, run_id, parent_id, level, method, role, kept, total, sparsity, test_accuracy, early_stop_iteration,
                            metrics_json, curve_json, start_weights, final_weights, created_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    const insertMask = this.db.prepare('INSERT INTO masks (ticket_id, tensor, position, shape_json, kept, total, blob) VALUES (?, ?, ?, ?, ?, ?, ?)');
    for (const ticket of tickets) {
      const summary = summarizeMasks(ticket.masks);
      const start = ticket.startWeights ? this.putWeights(ticket.startWeights) : null;
      const final = ticket.finalWeights ? this.putWeights(ticket.finalWeights) : null;
      insertTicket.run(
        ticket.id, runId, ticket.parentId, ticket.level, ticket.method, ticket.role, summary.kept, summary.total, summary.sparsity,
        ticket.testAccuracy, ticket.earlyStopIteration, JSON.stringify(ticket.metrics), JSON.stringify(ticket.curve), start, final, ticket.createdAt,
      );
      ticket.masks.forEach((m, position) => {
        insertMask.run(ticket.id, m.name, position, JSON.stringify(m.shape), countKept(m.bits), m.bits.length, encodeMask(m));
      });
    }
  }

  /**
   * Stores a ticket from a verified bundle (core/bundle) in one transaction, under the ids it had
   * where it was made: the public keys its claims name, its model and dataset and run when new, its
   * lineage root first, and its claims. What is already here is kept, not written again, so
   * importing twice is a no-op; an id that is here with other contents is refused, never overwritten.
   * A parent that is neither here nor in the bundle is recorded in the ticket's metrics instead.
   */
  saveImportedBundle(bundle: {
    keys: readonly KeyRecord[];
    model: ModelRecord;
    dataset: DatasetRecord;
    run: Pick<RunRecord, 'id' | 'method' | 'runKey' | 'seed' | 'hparams' | 'backend' | 'versions' | 'status' | 'createdAt' | 'finishedAt'>;
    /** Root first: a parent comes before its children. */
    tickets: ReadonlyArray<NewTicket & { id: string; createdAt: string }>;
    claims: readonly ClaimRecord[];
  }): { ticketsCreated: string[]; ticketsPresent: string[]; claimsCreated: string[] } {
    return this.write(() => {
      const conflict = (what: string) => {
        throw new InvalidRequestError(`The bundle's ${what} is already in this database with other contents; nothing was imported.`);
      };
      for (const key of bundle.keys) this.putKey(key);
      const model = this.db.prepare('SELECT architecture FROM models WHERE id = ?').get(bundle.model.id) as { architecture: string } | undefined;
      if (model && model.architecture !== bundle.model.architecture) conflict(`model ${bundle.model.id}`);
      if (!model) {
        this.db
          .prepare('INSERT INTO models (id, architecture, source, source_digest, spec_json, created_at) VALUES (?, ?, ?, ?, ?, ?)')
          .run(bundle.model.id, bundle.model.architecture, bundle.model.source, bundle.model.sourceDigest, JSON.stringify(bundle.model.spec), now());
      }
      const dataset = this.db.prepare('SELECT digest FROM datasets WHERE id = ?').get(bundle.dataset.id) as { digest: string } | undefined;
      if (dataset && dataset.digest !== bundle.dataset.digest) conflict(`dataset ${bundle.dataset.id}`);
      if (!dataset) this.ensureDataset(bundle.dataset);
      const { run } = bundle;
      const storedRun = this.db.prepare('SELECT model_id, seed FROM runs WHERE id = ?').get(run.id) as { model_id: string; seed: number } | undefined;
      if (storedRun && (storedRun.model_id !== bundle.model.id || storedRun.seed !== run.seed)) conflict(`run ${run.id}`);
      if (!storedRun) {
        // A run still going where it was exported is not going here: it is stored as interrupted.
        this.db
          .prepare(
            `INSERT INTO runs (id, method, model_id, dataset_id, run_key, seed, hparams_json, backend_json, versions_json, status, created_at, finished_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
          )
          .run(run.id, run.method, bundle.model.id, bundle.dataset.id, run.runKey, run.seed, JSON.stringify(run.hparams), JSON.stringify(run.backend), JSON.stringify(run.versions), run.status === 'running' ? 'interrupted' : run.status, run.createdAt, run.finishedAt);
      }
      const ticketsCreated: string[] = [];
      const ticketsPresent: string[] = [];
      for (const ticket of bundle.tickets) {
        const stored = this.db.prepare('SELECT run_id, kept, total FROM tickets WHERE id = ?').get(ticket.id) as { run_id: string; kept: number; total: number } | undefined;
        if (stored) {
          const summary = summarizeMasks(ticket.masks);
          const same = stored.run_id === run.id && stored.kept === summary.kept && stored.total === summary.total && masksEqual(this.getMasks(ticket.id), ticket.masks);
          if (!same) conflict(`ticket ${ticket.id}`);
          ticketsPresent.push(ticket.id);
          continue;
        }
        const parentHere = ticket.parentId !== null && this.db.prepare('SELECT 1 FROM tickets WHERE id = ?').get(ticket.parentId) !== undefined;
        const metrics = ticket.parentId !== null && !parentHere ? { ...ticket.metrics, parentNotImported: ticket.parentId } : ticket.metrics;
        this.insertTickets(run.id, [{ ...ticket, parentId: parentHere ? ticket.parentId : null, metrics }]);
        ticketsCreated.push(ticket.id);
      }
      const claimsCreated: string[] = [];
      const insertClaim = this.db.prepare('INSERT INTO claims (id, ticket_id, kind, key_fingerprint, commitment, params_json, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)');
      for (const claim of bundle.claims) {
        const stored = this.db.prepare('SELECT commitment FROM claims WHERE id = ?').get(claim.id) as { commitment: string } | undefined;
        if (stored && stored.commitment !== claim.commitment) conflict(`claim ${claim.id}`);
        if (stored) continue;
        insertClaim.run(claim.id, claim.ticketId, claim.kind, claim.keyFingerprint, claim.commitment, JSON.stringify(claim.params), claim.createdAt);
        claimsCreated.push(claim.id);
      }
      return { ticketsCreated, ticketsPresent, claimsCreated };
    });
  }

  /**
   * Stores a run made elsewhere (an open_lth experiment) whole, in one transaction: its model and
   * dataset when new, the run, finished, and its levels as a lineage, each ticket the parent of the
   * next. An import that fails or is killed halfway stores nothing. A run of the same key is not
   * stored twice: its id comes back with `created` false.
   */
  saveImportedRun(run: {
    model: Omit<ModelRecord, 'source' | 'spec'> & { spec: Record<string, unknown>; weights: WeightSet };
    dataset: DatasetRecord;
    run: Omit<Parameters<LabStore['createRun']>[0], 'modelId' | 'datasetId'> & { rewindWeights?: WeightSet };
    levels: ReadonlyArray<Omit<NewTicket, 'parentId'>>;
  }): { runId: string; created: boolean } {
    return this.write(() => {
      const existing = this.db.prepare('SELECT id FROM runs WHERE run_key = ? ORDER BY created_at LIMIT 1').get(run.run.runKey) as { id: string } | undefined;
      if (existing) return { runId: existing.id, created: false };
      const { weights, ...model } = run.model;
      this.saveImportedModel(model, weights);
      this.ensureDataset(run.dataset);
      const { rewindWeights, ...fields } = run.run;
      const runId = this.createRun({ ...fields, modelId: model.id, datasetId: run.dataset.id });
      let parentId: string | null = null;
      for (const [i, level] of run.levels.entries()) {
        [parentId] = this.saveLevel(runId, [{ ...level, parentId }], i === 0 && rewindWeights ? { rewindWeights } : {}) as [string];
      }
      this.finishRun(runId, 'completed');
      return { runId, created: true };
    });
  }

  /**
   * Stores an ownership claim: the claimed ticket (the original with the signature in its mask,
   * retrained, a child of it in the same run) and one claim row per scheme, in one transaction.
   */
  saveClaim(runId: string, ticket: NewTicket, claims: ReadonlyArray<Omit<ClaimRecord, 'id' | 'ticketId' | 'createdAt'>>): { ticketId: string; claimIds: string[] } {
    return this.write(() => {
      const [ticketId] = this.saveLevel(runId, [ticket]) as [string];
      const insert = this.db.prepare('INSERT INTO claims (id, ticket_id, kind, key_fingerprint, commitment, params_json, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)');
      const claimIds = claims.map((claim) => {
        const id = newId('cl');
        insert.run(id, ticketId, claim.kind, claim.keyFingerprint, claim.commitment, JSON.stringify(claim.params), now());
        return id;
      });
      return { ticketId, claimIds };
    });
  }

  getClaim(id: string): ClaimRecord {
    const row = this.db.prepare('SELECT * FROM claims WHERE id = ?').get(id) as ClaimRow | undefined;
    if (!row) throw new NotFoundError('claim', id);
    return toClaim(row);
  }

  listClaims(ticketId?: string): ClaimRecord[] {
    const rows = (ticketId ? this.db.prepare('SELECT * FROM claims WHERE ticket_id = ? ORDER BY created_at').all(ticketId) : this.db.prepare('SELECT * FROM claims ORDER BY created_at').all()) as ClaimRow[];
    return rows.map(toClaim);
  }

  resolveClaimId(idOrPrefix: string): string {
    return this.resolveId('claims', 'claim', idOrPrefix);
  }

  /** Stores a verdict with its evidence; returns its id. */
  saveVerification(verification: Omit<VerificationRecord, 'id' | 'createdAt'>): string {
    const id = newId('vf');
    this.write(() => {
      this.db
        .prepare('INSERT INTO verifications (id, claim_id, subject, verdict, score, threshold, p_value, evidence_json, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)')
        .run(id, verification.claimId, verification.subject, verification.verdict, verification.score, verification.threshold, verification.pValue, JSON.stringify(verification.evidence), now());
    });
    return id;
  }

  listVerifications(claimId: string): VerificationRecord[] {
    const rows = this.db.prepare('SELECT * FROM verifications WHERE claim_id = ? ORDER BY created_at').all(claimId) as Array<{
      id: string; claim_id: string | null; subject: string; verdict: string; score: number | null; threshold: number | null; p_value: number | null; evidence_json: string; created_at: string;
    }>;
    return rows.map((r) => ({
      id: r.id, claimId: r.claim_id, subject: r.subject, verdict: r.verdict, score: r.score, threshold: r.threshold, pValue: r.p_value,
      evidence: JSON.parse(r.evidence_json) as Record<string, unknown>, createdAt: r.created_at,
    }));
  }

  /** Records a public key (never a private one: the table has no column for it); once per fingerprint. */
  putKey(key: KeyRecord): void {
    this.write(() => {
      this.db
        .prepare(
          `INSERT INTO keys (fingerprint, algorithm, public_key_pem, label, own, trusted, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (fingerprint) DO UPDATE SET own = max(own, excluded.own), trusted = max(trusted, excluded.trusted),
             label = CASE WHEN excluded.trusted > trusted THEN excluded.label ELSE label END`,
        )
        .run(key.fingerprint, key.algorithm, key.publicKeyPem, key.label, key.own ? 1 : 0, key.trusted ? 1 : 0, now());
    });
  }

  listKeys(): Array<KeyRecord & { createdAt: string }> {
    const rows = this.db.prepare('SELECT fingerprint, algorithm, public_key_pem, label, own, trusted, created_at FROM keys ORDER BY created_at').all() as Array<{
      fingerprint: string; algorithm: string; public_key_pem: string; label: string | null; own: number; trusted: number; created_at: string;
    }>;
    return rows.map((r) => ({
      fingerprint: r.fingerprint, algorithm: r.algorithm, publicKeyPem: r.public_key_pem, label: r.label, own: r.own === 1, trusted: r.trusted === 1, createdAt: r.created_at,
    }));
  }

  /** A full id, or a unique prefix of one (like git). */
  resolveTicketId(idOrPrefix: string): string {
    return this.resolveId('tickets', 'ticket', idOrPrefix);
  }

  resolveModelId(idOrPrefix: string): string {
    return this.resolveId('models', 'model', idOrPrefix);
  }

  resolveRunId(idOrPrefix: string): string {
    return this.resolveId('runs', 'run', idOrPrefix);
  }

  resolveJobId(idOrPrefix: string): string {
    return this.resolveId('jobs', 'job', idOrPrefix);
  }

  private resolveId(table: 'tickets' | 'runs' | 'models' | 'claims' | 'jobs', kind: string, idOrPrefix: string): string {
    const looks = { tickets: 'tk_3f9k2m...', runs: 'run_3f9k2m...', models: 'md_6e3ae5...', claims: 'cl_3f9k2m...', jobs: 'jb_3f9k2m...' }[table];
    if (!/^[a-z0-9_]{1,40}$/.test(idOrPrefix)) throw new InvalidRequestError(`'${idOrPrefix}' is not a ${kind} id (ids look like ${looks}).`);
    const matches = (this.db.prepare(`SELECT id FROM ${table} WHERE id >= ? AND id < ? ORDER BY id LIMIT 5`).all(idOrPrefix, `${idOrPrefix}\uffff`) as Array<{ id: string }>).map((r) => r.id);
    if (matches.includes(idOrPrefix)) return idOrPrefix;
    if (matches.length === 0) throw new NotFoundError(kind, idOrPrefix);
    if (matches.length > 1) throw new AmbiguousIdError(kind, idOrPrefix, matches);
    return matches[0]!;
  }

  getTicket(id: string): TicketRecord {
    const row = this.db.prepare(`${TICKET_SELECT} WHERE t.id = ?`).get(id) as TicketRow | undefined;
    if (!row) throw new NotFoundError('ticket', id);
    return toTicket(row);
  }

  listTickets(filter: TicketFilter = {}): TicketRecord[] {
    const { where, args } = ticketConditions(filter);
    return (this.db.prepare(`${TICKET_SELECT} ${where} ${TICKET_LIST_ORDER}`).all(...args) as TicketRow[]).map(toTicket);
  }

  /** The tickets a filter selects, without their JSON columns, in listTickets' order. */
  listTicketHeaders(filter: TicketFilter = {}): TicketHeader[] {
    const { where, args } = ticketConditions(filter);
    return (this.db.prepare(`${TICKET_HEADER_SELECT} ${where} ${TICKET_LIST_ORDER}`).all(...args) as TicketRow[]).map(toTicketHeader);
  }

  /** One page of the tickets a filter selects, and how many it selects in all (the UI's table). */
  queryTickets(filter: TicketFilter, page: TicketPage): { total: number; tickets: TicketHeader[] } {
    const { where, args } = ticketConditions(filter);
    const total = (this.db.prepare(`SELECT count(*) AS n FROM (${TICKET_HEADER_SELECT} ${where})`).get(...args) as { n: number }).n;
    // NULL accuracies last whichever the order; ties broken by creation so pages never overlap.
    const column = SORT_COLUMNS[page.sort];
    const direction = page.order === 'desc' ? 'DESC' : 'ASC';
    const sql = `${TICKET_HEADER_SELECT} ${where} ORDER BY ${column} IS NULL, ${column} ${direction}, t.created_at, t.id LIMIT ? OFFSET ?`;
    return { total, tickets: (this.db.prepare(sql).all(...args, page.limit, page.offset) as TicketRow[]).map(toTicketHeader) };
  }

  getMasks(ticketId: string): MaskSet {
    const rows = this.db.prepare('SELECT tensor, blob FROM masks WHERE ticket_id = ? ORDER BY position').all(ticketId) as Array<{ tensor: string; blob: Buffer }>;
    return rows.map((r) => decodeMask(r.tensor, new Uint8Array(r.blob.buffer, r.blob.byteOffset, r.blob.byteLength)));
  }

  /** Ancestors from the root down to the ticket's parent. */
  ancestors(ticketId: string): TicketRecord[] {
    const rows = this.db
      .prepare(
        `WITH RECURSIVE chain(id, parent_id, depth) AS (
           SELECT id, parent_id, 0 FROM tickets WHERE id = ?
           UNION ALL SELECT t.id, t.parent_id, c.depth + 1 FROM tickets t JOIN chain c ON t.id = c.parent_id)
         SELECT id FROM chain WHERE depth > 0 ORDER BY depth DESC`,
      )
      .all(ticketId) as Array<{ id: string }>;
    return rows.map((r) => this.getTicket(r.id));
  }

  children(ticketId: string): TicketRecord[] {
    return (this.db.prepare(`${TICKET_SELECT} WHERE t.parent_id = ? ORDER BY t.role DESC, t.created_at`).all(ticketId) as TicketRow[]).map(toTicket);
  }

  getRun(id: string): RunRecord {
    const row = this.db.prepare(`${RUN_SELECT} WHERE r.id = ?`).get(id) as RunRow | undefined;
    if (!row) throw new NotFoundError('run', id);
    return toRun(row);
  }

  getModel(id: string): ModelRecord {
    const row = this.db.prepare('SELECT id, architecture, source, source_digest, spec_json FROM models WHERE id = ?').get(id) as
      | { id: string; architecture: string; source: 'zoo' | 'file'; source_digest: string | null; spec_json: string }
      | undefined;
    if (!row) throw new NotFoundError('model', id);
    return { id: row.id, architecture: row.architecture, source: row.source, sourceDigest: row.source_digest, spec: JSON.parse(row.spec_json) as unknown };
  }

  getDataset(id: string): DatasetRecord {
    const row = this.db.prepare('SELECT id, name, source, digest, spec_json FROM datasets WHERE id = ?').get(id) as
      | { id: string; name: string; source: string; digest: string; spec_json: string }
      | undefined;
    if (!row) throw new NotFoundError('dataset', id);
    return { id: row.id, name: row.name, source: row.source, digest: row.digest, spec: JSON.parse(row.spec_json) as unknown };
  }

  listRuns(): RunRecord[] {
    return (this.db.prepare(`${RUN_SELECT} ORDER BY r.created_at`).all() as RunRow[]).map(toRun);
  }

  info(): StoreInfo {
    const count = (table: string): number => (this.db.prepare(`SELECT count(*) AS n FROM ${table}`).get() as { n: number }).n;
    return {
      path: this.path,
      exists: true,
      schemaVersion: schemaVersion(this.db),
      bytes: statSync(this.path).size,
      counts: {
        models: count('models'),
        datasets: count('datasets'),
        runs: count('runs'),
        tickets: count('tickets'),
        masks: count('masks'),
        weights: count('weights'),
      },
    };
  }

  integrityCheck(): string {
    return this.db.pragma('integrity_check', { simple: true }) as string;
  }
}
