// Copying one task database's rows into the catalogue, inside the caller's transaction, with their
// identity kept: a row is stored under its own id, skipped when that id holds the same row, or
// stored under an id derived from the row when that id holds another (and every reference follows).
// The rules for "the same row" are merge.ts's header; the tickets are merge-tickets.ts's.
import { createHash, createPublicKey } from 'node:crypto';
import { inflateRawSync } from 'node:zlib';
import type { Database, Statement } from 'better-sqlite3';
import { CorruptDatabaseError, DataFormatError, InternalError } from '../api/errors';
import { MERGED_TABLES, type MergeCounts, type MergeRemap, type MergedTable } from '../api/merge-schemas';
import { canonicalJson } from '../bundle/manifest';
import { decodeWeights, digestWeights } from '../models/weights';
import { keyFingerprint } from '../ownership/keys';
import { decodeMask } from '../pruning/mask-encoding';
import type { TaskDatabase } from './merge-source';

/** LabStore's weights encoding (f32 little-endian, raw deflate): the only one this build reads. */
const WEIGHTS_ENCODING = 'f32le+deflate';
/** Tries at a derived id before giving up: each one taken by yet another row is a 2^-40 chance. */
const MAX_DERIVED_TRIES = 16;

export type Row = Record<string, unknown>;

/** Columns read from a task file: those of schema version 1, which every later version keeps. */
export const COLUMNS = {
  models: ['id', 'architecture', 'source', 'source_digest', 'spec_json', 'created_at'],
  datasets: ['id', 'name', 'source', 'digest', 'spec_json', 'created_at'],
  runs: ['id', 'method', 'model_id', 'dataset_id', 'run_key', 'seed', 'hparams_json', 'backend_json', 'versions_json', 'status', 'error', 'init_weights', 'rewind_weights', 'created_at', 'finished_at'],
  tickets: ['id', 'run_id', 'parent_id', 'level', 'method', 'role', 'kept', 'total', 'sparsity', 'test_accuracy', 'early_stop_iteration', 'metrics_json', 'curve_json', 'start_weights', 'final_weights', 'created_at'],
  masks: ['ticket_id', 'tensor', 'position', 'shape_json', 'kept', 'total', 'blob'],
  claims: ['id', 'ticket_id', 'kind', 'key_fingerprint', 'commitment', 'params_json', 'created_at'],
  verifications: ['id', 'claim_id', 'subject', 'verdict', 'score', 'threshold', 'p_value', 'evidence_json', 'created_at'],
} as const;
type RowTable = keyof typeof COLUMNS;

/** Where a row goes: its id in the catalogue (its own or a derived one), and whether to write it (false: the same row is there). */
export type Placement = { id: string; write: boolean };

export class TaskMerger {
  readonly counts = emptyMergeCounts();
  readonly remapped: MergeRemap[] = [];
  runsUpdated = 0;
  /** Old id → new id, for the rows stored under another id only (the rest keep theirs). */
  private readonly moved: Record<'models' | 'datasets' | 'runs' | 'tickets' | 'claims', Map<string, string>> = {
    models: new Map(), datasets: new Map(), runs: new Map(), tickets: new Map(), claims: new Map(),
  };
  private readonly weightsSeen = new Set<string>();
  private readonly statements = new Map<string, Statement>();

  constructor(
    readonly catalog: Database,
    readonly source: TaskDatabase,
  ) {}

  /** The id a row of the file now has in the catalogue. */
  mapped(table: keyof TaskMerger['moved'], id: string): string;
  mapped(table: keyof TaskMerger['moved'], id: string | null): string | null;
  mapped(table: keyof TaskMerger['moved'], id: string | null): string | null {
    return id === null ? null : (this.moved[table].get(id) ?? id);
  }

  /** A statement on the catalogue, prepared once per merge. */
  sql(text: string): Statement {
    let statement = this.statements.get(text);
    if (!statement) this.statements.set(text, (statement = this.catalog.prepare(text)));
    return statement;
  }

  /** A table of the task file, row by row (never all of it in memory), in creation order. */
  walk(table: RowTable): IterableIterator<Row> {
    return this.source.rows.prepare(`SELECT ${COLUMNS[table].join(', ')} FROM ${table} ORDER BY created_at, id`).iterate() as IterableIterator<Row>;
  }

  catalogRow(table: RowTable, id: string): Row | undefined {
    return this.sql(`SELECT ${COLUMNS[table].join(', ')} FROM ${table} WHERE id = ?`).get(id) as Row | undefined;
  }

  insert(table: RowTable, row: Row): void {
    const columns = Object.keys(row);
    this.sql(`INSERT INTO ${table} (${columns.join(', ')}) VALUES (${columns.map((c) => `@${c}`).join(', ')})`).run(row);
  }

  /** A JSON column of the task file; a value that is not JSON refuses the file. */
  json(text: unknown, where: string): unknown {
    try {
      return JSON.parse(String(text)) as unknown;
    } catch (error) {
      throw new DataFormatError(`${this.source.path}: ${where} is not JSON; the file is damaged. Nothing of it was merged.`, { cause: error });
    }
  }

  /**
   * Decides where a row goes. `same(id)` says whether the catalogue's row `id` is this one; `content`
   * is what derives the other id, so merging the same file again finds the row it stored before.
   */
  place(table: Exclude<MergedTable, 'weights' | 'keys'>, id: string, same: (id: string) => boolean, content: () => string): Placement {
    const exists = (candidate: string) => this.sql(`SELECT 1 FROM ${table} WHERE id = ?`).get(candidate) !== undefined;
    const count = this.counts[table];
    if (!exists(id)) {
      count.new++;
      return { id, write: true };
    }
    if (same(id)) {
      count.skipped++;
      return { id, write: false };
    }
    const key = content();
    for (let salt = 0; salt < MAX_DERIVED_TRIES; salt++) {
      const candidate = derivedId(table, id, key, salt);
      if (table !== 'verifications') this.moved[table].set(id, candidate);
      if (!exists(candidate)) {
        count.remapped++;
        this.remapped.push({ table, from: id, to: candidate });
        return { id: candidate, write: true };
      }
      if (same(candidate)) {
        count.skipped++;
        return { id: candidate, write: false };
      }
    }
    throw new InternalError(`${this.source.path}: no free id for ${table} row ${id} after ${MAX_DERIVED_TRIES} tries.`);
  }

  /** Copies a weights checkpoint the catalogue lacks, after checking its bytes against its digest. */
  copyWeights(digest: unknown): void {
    if (typeof digest !== 'string' || this.weightsSeen.has(digest)) return;
    this.weightsSeen.add(digest);
    if (this.sql('SELECT 1 FROM weights WHERE digest = ?').get(digest)) {
      this.counts.weights.skipped++;
      return;
    }
    const row = this.source.lookup.prepare('SELECT digest, encoding, byte_length, blob, created_at FROM weights WHERE digest = ?').get(digest) as
      | { digest: string; encoding: string; byte_length: number; blob: Buffer; created_at: string }
      | undefined;
    const where = `${this.source.path}: weights checkpoint ${digest.slice(0, 12)}`;
    if (!row) throw new CorruptDatabaseError(`${where} is referred to but not stored. Nothing of the file was merged.`);
    if (row.encoding !== WEIGHTS_ENCODING) throw new DataFormatError(`${where} uses encoding '${row.encoding}', which this Ticket Lab cannot read. Upgrade Ticket Lab.`);
    let actual: string;
    try {
      const raw = inflateRawSync(row.blob);
      actual = raw.length === row.byte_length ? digestWeights(decodeWeights(raw)) : 'wrong length';
    } catch (error) {
      throw new CorruptDatabaseError(`${where} cannot be decoded: the file is damaged. Nothing of it was merged.`, { cause: error });
    }
    if (actual !== digest) throw new CorruptDatabaseError(`${where} does not match its digest: the file is damaged. Nothing of it was merged.`);
    this.sql('INSERT INTO weights (digest, encoding, byte_length, blob, created_at) VALUES (?, ?, ?, ?, ?)').run(row.digest, row.encoding, row.byte_length, row.blob, row.created_at);
    this.counts.weights.new++;
  }

  /** A mask blob of the file, decoded (its checksum checked) and matched against its row's counts. */
  checkMask(ticketId: string, mask: Row): void {
    const decoded = decodeMask(String(mask.tensor), new Uint8Array(mask.blob as Buffer));
    const kept = decoded.bits.reduce((n, b) => n + b, 0);
    if (kept !== mask.kept || decoded.bits.length !== mask.total) {
      throw new CorruptDatabaseError(`${this.source.path}: the mask ${String(mask.tensor)} of ticket ${ticketId} keeps ${kept} of ${decoded.bits.length}, its row says ${String(mask.kept)} of ${String(mask.total)}. Nothing of the file was merged.`);
    }
  }

  /** Public keys by fingerprint (a key's own digest): new ones are stored to check claims, never trusted to sign. */
  mergeKeys(): void {
    for (const key of this.source.rows.prepare('SELECT fingerprint, algorithm, public_key_pem, created_at FROM keys ORDER BY created_at, fingerprint').iterate() as IterableIterator<Row>) {
      if (this.sql('SELECT 1 FROM keys WHERE fingerprint = ?').get(key.fingerprint)) {
        this.counts.keys.skipped++;
        continue;
      }
      let actual: string | undefined;
      try {
        actual = keyFingerprint(createPublicKey(String(key.public_key_pem)));
      } catch {
        actual = undefined;
      }
      if (actual !== key.fingerprint) throw new DataFormatError(`${this.source.path}: key ${String(key.fingerprint).slice(0, 16)}… is not the public key its fingerprint names. Nothing of the file was merged.`);
      this.sql('INSERT INTO keys (fingerprint, algorithm, public_key_pem, label, own, trusted, created_at) VALUES (?, ?, ?, ?, 0, 0, ?)').run(
        key.fingerprint, key.algorithm, key.public_key_pem, 'named in a merged task database', key.created_at,
      );
      this.counts.keys.new++;
    }
  }

  mergeModels(): void {
    const identity = (row: Row) => {
      const spec = this.json(row.spec_json, `model ${String(row.id)}'s spec`) as Record<string, unknown>;
      return canonicalJson([row.architecture, row.source, row.source_digest, spec.inputShape, spec.numClasses, spec.params]);
    };
    for (const row of this.walk('models')) {
      const mine = identity(row);
      const placed = this.place('models', String(row.id), (id) => identity(this.catalogRow('models', id)!) === mine, () => mine);
      if (!placed.write) continue;
      // An imported model's own weights are named in its spec.
      this.copyWeights((this.json(row.spec_json, `model ${String(row.id)}'s spec`) as { weights?: unknown }).weights);
      this.insert('models', { ...row, id: placed.id });
    }
  }

  mergeDatasets(): void {
    for (const row of this.walk('datasets')) {
      const same = (id: string) => {
        const stored = this.catalogRow('datasets', id)!;
        return stored.name === row.name && stored.digest === row.digest;
      };
      const placed = this.place('datasets', String(row.id), same, () => canonicalJson([row.name, row.digest, row.source, row.spec_json]));
      if (placed.write) this.insert('datasets', { ...row, id: placed.id });
    }
  }

  mergeRuns(): void {
    for (const row of this.walk('runs')) {
      const modelId = this.mapped('models', String(row.model_id));
      const datasetId = this.mapped('datasets', String(row.dataset_id));
      const hparams = canonicalJson(this.json(row.hparams_json, `run ${String(row.id)}'s hparams`));
      const same = (id: string) => {
        const stored = this.catalogRow('runs', id)!;
        return (
          stored.method === row.method && stored.run_key === row.run_key && stored.seed === row.seed && stored.model_id === modelId && stored.dataset_id === datasetId &&
          canonicalJson(this.json(stored.hparams_json, `the catalogue's run ${id}`)) === hparams && compatible(stored.init_weights, row.init_weights)
        );
      };
      const placed = this.place('runs', String(row.id), same, () => canonicalJson([row.method, row.run_key, row.seed, modelId, datasetId, hparams, row.init_weights, row.created_at]));
      // A run still going in its task is not going here (and its pid is another machine's).
      const stopped = row.status === 'running';
      const status = stopped ? 'interrupted' : row.status;
      const error = stopped ? (row.error ?? 'still running in its task database when merged') : row.error;
      if (placed.write) {
        this.copyWeights(row.init_weights);
        this.copyWeights(row.rewind_weights);
        this.insert('runs', { ...row, id: placed.id, model_id: modelId, dataset_id: datasetId, status, error });
        continue;
      }
      // Merged while its task ran, merged again once it finished: the run's progress, never its identity.
      const stored = this.catalogRow('runs', placed.id)!;
      const finished = stored.status === 'interrupted' && status !== 'interrupted';
      const rewound = stored.rewind_weights === null && row.rewind_weights !== null;
      if (!finished && !rewound) continue;
      this.copyWeights(row.rewind_weights);
      this.sql('UPDATE runs SET status = ?, error = ?, finished_at = ?, rewind_weights = coalesce(rewind_weights, ?) WHERE id = ?').run(
        finished ? status : stored.status, finished ? error : stored.error, finished ? row.finished_at : stored.finished_at, row.rewind_weights, placed.id,
      );
      this.runsUpdated++;
    }
  }

  mergeClaims(): void {
    for (const row of this.walk('claims')) {
      const ticketId = this.mapped('tickets', String(row.ticket_id));
      const same = (id: string) => {
        const stored = this.catalogRow('claims', id)!;
        return stored.ticket_id === ticketId && stored.kind === row.kind && stored.key_fingerprint === row.key_fingerprint && stored.commitment === row.commitment;
      };
      const placed = this.place('claims', String(row.id), same, () => canonicalJson([ticketId, row.kind, row.key_fingerprint, row.commitment, row.params_json, row.created_at]));
      if (placed.write) this.insert('claims', { ...row, id: placed.id, ticket_id: ticketId });
    }
  }

  mergeVerifications(): void {
    for (const row of this.walk('verifications')) {
      // The subject is a ticket id (or a file's digest): it follows its ticket.
      const remapped: Row = { ...row, claim_id: this.mapped('claims', row.claim_id as string | null), subject: this.mapped('tickets', String(row.subject)) };
      const { id: _id, ...content } = remapped;
      const key = canonicalJson(content);
      const same = (id: string) => {
        const { id: _stored, ...stored } = this.catalogRow('verifications', id)!;
        return canonicalJson(stored) === key;
      };
      const placed = this.place('verifications', String(row.id), same, () => key);
      if (placed.write) this.insert('verifications', { ...remapped, id: placed.id });
    }
  }
}

export function emptyMergeCounts(): Record<MergedTable, MergeCounts> {
  return Object.fromEntries(MERGED_TABLES.map((t) => [t, { new: 0, skipped: 0, remapped: 0 }])) as Record<MergedTable, MergeCounts>;
}

/** Two references to content (weights digests, parents) agree when either is unknown or both are equal. */
export function compatible(a: unknown, b: unknown): boolean {
  return a === null || b === null || a === b;
}

/**
 * The id a conflicting row gets: the prefix of its kind (`tk_`, `run_`, ...), or for the models and
 * datasets named after their contents that name, then 10 hex digits of a digest of the original id
 * and the row. Derived rather than random, so merging the same file twice stores the row once.
 */
function derivedId(table: Exclude<MergedTable, 'weights' | 'keys'>, id: string, content: string, salt: number): string {
  const digest = createHash('sha256').update(`ticket-lab/merge\0${table}\0${id}\0${content}\0${salt}`).digest('hex').slice(0, 10);
  const prefix = { runs: 'run', tickets: 'tk', claims: 'cl', verifications: 'vf' }[table as string];
  return prefix ? `${prefix}_${digest}` : `${id}_${digest}`;
}
