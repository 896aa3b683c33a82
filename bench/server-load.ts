// Section 9: the local server (`ticket-lab serve`) under load. A temp database of 10,000 tickets
// (lenet-8-4 on MNIST's shape: 6,344 weights, so masks stay small), the LabApi served on 127.0.0.1
// with a session token, and the ticket calls made through HTTP: listTickets (the whole selection) and
// browseTickets (the UI table's sorted page with its total). One client for a filter and for all
// 10,000, then 50 concurrent clients cycling through filters of both (issue 9).
//
// The clients run in a worker thread of this process (global fetch, keep-alive): the server's thread
// does only the serving, as it would for a browser, and a client's JSON parsing never delays another
// client's answer on the server's side. Loopback only; every phase ends on a deadline or a count.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker, isMainThread, workerData, parentPort } from 'node:worker_threads';
import type { BrowseTicketsRequest, ListTicketsRequest } from '../core/api/schemas';
import { Rng } from '../core/compute/rng';
import { architecture, paramSpecs } from '../core/models/architectures';
import { initWeights } from '../core/models/weights';
import { matchingBudget } from '../core/pruning/budget';
import { denseMasks } from '../core/pruning/imp';
import { type MaskSet, summarizeMasks } from '../core/pruning/mask';
import { randomStrategy } from '../core/pruning/random';
import { startLabServer } from '../core/server/lab-server';
import { LabService } from '../core/service/lab-service';
import { LabStore, type NewTicket } from '../core/store/lab-store';
import { seconds } from './stopwatch';
import { type Table, fixed } from './text-table';

export interface ServerLoadPlan {
  /** Timed single-client requests: the filter row and the whole-list row, after a few untimed. */
  filterRequests: number;
  allRequests: number;
  clients: number;
  /** How long the concurrent clients keep calling. */
  loadSeconds: number;
}

const ARCH_ID = 'lenet-8-4';
const INPUT_SHAPE = [28, 28, 1] as const;
const NUM_CLASSES = 10;
const METHODS = ['imp', 'snip', 'grasp', 'synflow', 'gradual'] as const;
const DATASETS = ['mnist', 'fashion-mnist'] as const;
const RUNS_PER_METHOD = 10;
/** Per run: levels 1..100, a ticket and its random control each, saved in one transaction. */
const LEVELS = 100;
/** IMP at 1 − 0.8^(1/5) ≈ 4.4 % a level: level 100 is 98.8 % sparse. */
const sparsityAt = (level: number) => 1 - 0.8 ** (level / 5);
const TARGET_P99_MS = 100;
const UNTIMED = 5;
const REQUEST_TIMEOUT_MS = 10_000;
const CLIENT_ROLE = 'server-load-clients';


interface SeededTicket {
  runId: string;
  method: string;
  dataset: string;
  role: 'ticket' | 'control';
  sparsity: number;
  testAccuracy: number;
}

type TicketCall = { method: 'listTickets'; body: ListTicketsRequest } | { method: 'browseTickets'; body: BrowseTicketsRequest };

interface ClientRequest {
  method: TicketCall['method'];
  body: ListTicketsRequest | BrowseTicketsRequest;
  label: string;
  /** Tickets the filter selects in the seeded database, and those the answer carries (a page of them, for browseTickets). */
  expected: { total: number; returned: number };
}

interface ClientJob {
  role: typeof CLIENT_ROLE;
  origin: string;
  token: string;
  requests: ClientRequest[];
  clients: number;
  /** Timed requests per client; absent: until `seconds` have passed. */
  count?: number;
  seconds?: number;
  untimed: number;
}

interface ClientReport {
  /** Timed requests sent; those that failed before an answer have no latency. */
  requests: number;
  latenciesMs: number[];
  errors: number;
  errorSamples: string[];
  seconds: number;
  /** Tickets per answer, smallest and largest; and the selections' totals. */
  returned: [number, number];
  totals: [number, number];
}

export interface ServerLoadRow {
  row: string;
  /** listTickets, browseTickets, or both. */
  call: string;
  /** The requests, as sent, in turn. */
  calls: TicketCall[];
  requests: number;
  ticketsPerAnswer: [number, number];
  /** What the filters select, smallest and largest (above the answer's count where it is a page). */
  ticketsSelected: [number, number];
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  errors: number;
  requestsPerSecond: number;
  errorSamples: string[];
}

export interface ServerLoadResult {
  tickets: number;
  runs: number;
  seedSeconds: number;
  clients: number;
  loadSeconds: number;
  targetP99Ms: number;
  /** Every 1-client filter row without errors and its p99 under the target. */
  targetMet: boolean;
  rows: ServerLoadRow[];
}

/** Nearest rank: the smallest latency at or above the fraction q of all. */
function percentile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

/** The tickets a filter selects, by the store's rules (inclusive bounds, exact names); every ticket here is unclaimed. */
function selects(f: ListTicketsRequest, t: SeededTicket): boolean {
  return (
    (f.model === undefined || f.model === ARCH_ID) &&
    (f.method === undefined || t.method === f.method) &&
    (f.dataset === undefined || t.dataset === f.dataset) &&
    (f.run === undefined || t.runId === f.run) &&
    (f.role === undefined || t.role === f.role) &&
    (f.minSparsity === undefined || t.sparsity >= f.minSparsity) &&
    (f.maxSparsity === undefined || t.sparsity <= f.maxSparsity) &&
    (f.minAccuracy === undefined || t.testAccuracy >= f.minAccuracy) &&
    (f.maxAccuracy === undefined || t.testAccuracy <= f.maxAccuracy) &&
    f.claimed !== true &&
    f.owner === undefined
  );
}

/** The seeded database: 50 runs (5 methods × 10, half on each dataset) of 100 levels × (ticket + control). */
async function seedStore(path: string, seed: number): Promise<SeededTicket[]> {
  const store = LabStore.open(path, { create: true })!;
  try {
    const arch = architecture(ARCH_ID);
    const specs = paramSpecs(arch, INPUT_SHAPE, NUM_CLASSES);
    const weights = initWeights(specs, seed);
    const dense = denseMasks(specs);
    const tensors = dense.map((m) => m.name);
    const total = dense.reduce((n, m) => n + m.bits.length, 0);
    // One random mask per level, and a control with the same per-layer counts; runs share them.
    const levels: Array<{ ticket: MaskSet; control: MaskSet; sparsity: number }> = [];
    for (let level = 1; level <= LEVELS; level++) {
      const keep = Math.round((1 - sparsityAt(level)) * total);
      const ticket = await randomStrategy.prune({ weights, masks: dense, budget: { scope: 'global', keep, tensors }, params: {}, seed: seed + level });
      const control = await randomStrategy.prune({ weights, masks: dense, budget: matchingBudget(ticket), params: {}, seed: seed + LEVELS + level });
      levels.push({ ticket, control, sparsity: summarizeMasks(ticket).sparsity });
    }
    const modelId = `zoo/${ARCH_ID}/${INPUT_SHAPE.join('x')}-${NUM_CLASSES}`;
    store.ensureModel({ id: modelId, architecture: ARCH_ID, source: 'zoo', sourceDigest: null, spec: { title: arch.title, inputShape: [...INPUT_SHAPE], numClasses: NUM_CLASSES, params: specs } });
    for (const name of DATASETS) {
      store.ensureDataset({ id: `${name}@bench`, name, source: 'bench', digest: 'bench', spec: { imageShape: [...INPUT_SHAPE], numClasses: NUM_CLASSES } });
    }
    const seeded: SeededTicket[] = [];
    const rng = Rng.stream(seed, 'bench-server-accuracy');
    METHODS.forEach((method, m) => {
      for (let r = 0; r < RUNS_PER_METHOD; r++) {
        const dataset = DATASETS[r % DATASETS.length]!;
        const runId = store.createRun({ method, modelId, datasetId: `${dataset}@bench`, runKey: `bench-server-${method}-${r}`, seed: r, hparams: {}, backend: {}, versions: {} });
        const tickets: NewTicket[] = [];
        const rows: SeededTicket[] = [];
        levels.forEach(({ ticket, control, sparsity }, i) => {
          for (const role of ['ticket', 'control'] as const) {
            // Tickets hold their accuracy to about 85 % sparsity, random controls fall from 60 %.
            const drop = role === 'ticket' ? 0.6 * Math.max(0, sparsity - 0.85) : 0.5 * Math.max(0, sparsity - 0.6);
            const base = dataset === 'mnist' ? 0.98 : 0.895;
            const testAccuracy = Math.round((base + 0.002 * (m - 2) - drop + 0.006 * (rng.next() - 0.5)) * 1e4) / 1e4;
            tickets.push({
              parentId: null, parentInLevel: role === 'ticket' ? (i > 0 ? 2 * (i - 1) : undefined) : 2 * i, level: i + 1, method, role,
              testAccuracy, earlyStopIteration: null, metrics: {}, curve: [], masks: role === 'ticket' ? ticket : control, startWeights: null, finalWeights: null,
            });
            rows.push({ runId, method, dataset, role, sparsity, testAccuracy });
          }
        });
        store.saveLevel(runId, tickets);
        store.finishRun(runId, 'completed');
        seeded.push(...rows);
      }
    });
    return seeded;
  } finally {
    store.close();
  }
}

/** The filter the 1-client rows time: a few hundred of the 10,000. */
const FILTER: ListTicketsRequest = { method: 'snip', minSparsity: 0.95, role: 'ticket' };
/** The UI table's first page: 100 rows (browseTickets' default), best accuracy first. */
const PAGE = { sort: 'accuracy', order: 'desc', limit: 100 } as const;

/** The load test's calls, in turn: whole selections and table pages, filtered on every field the seeded data varies. */
function loadCalls(runId: string): TicketCall[] {
  return [
    { method: 'listTickets', body: FILTER },
    { method: 'browseTickets', body: { ...PAGE } },
    { method: 'listTickets', body: { dataset: 'fashion-mnist', method: 'imp', role: 'control' } },
    { method: 'browseTickets', body: { method: 'grasp', minSparsity: 0.9, sort: 'sparsity', order: 'desc', limit: 100, offset: 100 } },
    { method: 'listTickets', body: { minSparsity: 0.98 } },
    { method: 'browseTickets', body: { minAccuracy: 0.9, maxAccuracy: 0.95, sort: 'level', limit: 50, offset: 50 } },
    { method: 'listTickets', body: { run: runId } },
    { method: 'listTickets', body: { minSparsity: 0.5, maxSparsity: 0.8, minAccuracy: 0.975 } },
  ];
}

function request(seeded: readonly SeededTicket[], call: TicketCall): ClientRequest {
  const total = seeded.filter((t) => selects(call.body, t)).length;
  const returned = call.method === 'browseTickets' ? Math.max(0, Math.min(call.body.limit ?? 100, total - (call.body.offset ?? 0))) : total;
  return { method: call.method, body: call.body, label: `${call.method} ${JSON.stringify(call.body)}`, expected: { total, returned } };
}

/** Runs one phase of clients in a worker thread and waits for its report. */
function runClients(job: Omit<ClientJob, 'role'>): Promise<ClientReport> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(__filename, { workerData: { ...job, role: CLIENT_ROLE } satisfies ClientJob });
    let report: ClientReport | undefined;
    // Idle keep-alive sockets could hold the thread open; its report is all that is wanted.
    worker.once('message', (message: ClientReport) => {
      report = message;
      void worker.terminate();
    });
    worker.once('error', reject);
    worker.once('exit', (code) => (report ? resolve(report) : reject(new Error(`bench: the server-load client thread exited with ${code} before reporting`))));
  });
}

export async function measureServerLoad(plan: ServerLoadPlan, seed: number, log: (line: string) => void): Promise<ServerLoadResult> {
  const dir = mkdtempSync(join(tmpdir(), 'ticket-lab-bench-server-'));
  try {
    const dbPath = join(dir, 'lab.db');
    log(`server: seeding ${METHODS.length * RUNS_PER_METHOD * LEVELS * 2} tickets`);
    const began = performance.now();
    const seeded = await seedStore(dbPath, seed);
    const seedSeconds = seconds(began);
    const runIds = [...new Set(seeded.map((t) => t.runId))];

    const service = new LabService({ dbPath });
    const server = await startLabServer({ service, host: '127.0.0.1', port: 0 });
    try {
      const base = { origin: `http://127.0.0.1:${server.port}`, token: server.token, untimed: UNTIMED };
      const row = (name: string, requests: ClientRequest[], r: ClientReport): ServerLoadRow => {
        const sorted = [...r.latenciesMs].sort((a, b) => a - b);
        const methods = [...new Set(requests.map((q) => q.method))];
        return {
          row: name, call: methods.join(' + '), calls: requests.map((q) => ({ method: q.method, body: q.body }) as TicketCall), requests: r.requests,
          ticketsPerAnswer: r.returned, ticketsSelected: r.totals, p50Ms: percentile(sorted, 0.5), p99Ms: percentile(sorted, 0.99), maxMs: sorted.at(-1) ?? Number.NaN,
          errors: r.errors, requestsPerSecond: sorted.length / r.seconds, errorSamples: r.errorSamples,
        };
      };
      const oneClient = async (name: string, call: TicketCall, count: number): Promise<ServerLoadRow> => {
        const q = request(seeded, call);
        log(`server: 1 client, ${count} × ${q.label} (${q.expected.returned} of ${q.expected.total} tickets)`);
        return row(name, [q], await runClients({ ...base, requests: [q], clients: 1, count }));
      };

      const rows = [
        await oneClient('filter, 1 client', { method: 'listTickets', body: FILTER }, plan.filterRequests),
        await oneClient('filter, table page, 1 client', { method: 'browseTickets', body: { ...FILTER, ...PAGE } }, plan.filterRequests),
        await oneClient(`all ${fixed(seeded.length, 0)}, 1 client`, { method: 'listTickets', body: {} }, plan.allRequests),
        await oneClient(`all ${fixed(seeded.length, 0)}, table page, 1 client`, { method: 'browseTickets', body: { ...PAGE } }, plan.filterRequests),
      ];
      const mixed = loadCalls(runIds[7]!).map((call) => request(seeded, call));
      log(`server: ${plan.clients} clients for ${plan.loadSeconds} s, ${mixed.length} calls in turn`);
      rows.push(row(`${plan.clients} clients × ${plan.loadSeconds} s, mixed filters`, mixed, await runClients({ ...base, requests: mixed, clients: plan.clients, seconds: plan.loadSeconds, untimed: 0 })));
      const filterRows = rows.filter((r) => r.row.startsWith('filter'));
      return {
        tickets: seeded.length, runs: runIds.length, seedSeconds, clients: plan.clients, loadSeconds: plan.loadSeconds, targetP99Ms: TARGET_P99_MS,
        targetMet: filterRows.every((r) => r.errors === 0 && r.p99Ms < TARGET_P99_MS), rows,
      };
    } finally {
      await server.close();
      service.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---- the client thread ----

/** The tickets an answer carries and the total it reports: listTickets answers a list, browseTickets a page. */
function countAnswer(method: ClientRequest['method'], value: unknown): { returned: number; total: number } | undefined {
  if (method === 'listTickets') return Array.isArray(value) ? { returned: value.length, total: value.length } : undefined;
  const page = value as { tickets?: unknown; total?: unknown } | null;
  return page && Array.isArray(page.tickets) && typeof page.total === 'number' ? { returned: page.tickets.length, total: page.total } : undefined;
}

async function clientThread(job: ClientJob): Promise<ClientReport> {
  const latenciesMs: number[] = [];
  const errorSamples = new Set<string>();
  let errors = 0;
  let requests = 0;
  const returned: [number, number] = [Infinity, -Infinity];
  const totals: [number, number] = [Infinity, -Infinity];
  const fail = (message: string) => {
    errors++;
    if (errorSamples.size < 5) errorSamples.add(message);
  };
  const call = async (index: number, timed: boolean): Promise<void> => {
    const q = job.requests[index % job.requests.length]!;
    if (timed) requests++;
    const began = performance.now();
    try {
      const response = await fetch(`${job.origin}/api/${q.method}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${job.token}`, 'content-type': 'application/json' },
        body: JSON.stringify(q.body),
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
      // Latency to the last byte of the answer; parsing it is the client's work, not the server's.
      const text = await response.text();
      const ms = performance.now() - began;
      if (!timed) return;
      latenciesMs.push(ms);
      if (response.status !== 200) return fail(`${q.label}: HTTP ${response.status} ${text.slice(0, 200)}`);
      const count = countAnswer(q.method, JSON.parse(text));
      if (!count || count.total !== q.expected.total || count.returned !== q.expected.returned) {
        return fail(`${q.label}: answered ${count ? `${count.returned} of ${count.total}` : 'something else'}, expected ${q.expected.returned} of ${q.expected.total} tickets`);
      }
      returned[0] = Math.min(returned[0], count.returned);
      returned[1] = Math.max(returned[1], count.returned);
      totals[0] = Math.min(totals[0], count.total);
      totals[1] = Math.max(totals[1], count.total);
    } catch (error) {
      if (timed) fail(`${q.label}: ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}`);
    }
  };
  const began = performance.now();
  const deadline = began + 1000 * (job.seconds ?? 0);
  await Promise.all(
    Array.from({ length: job.clients }, async (_, client) => {
      // Clients start at different calls, so every filter is in flight at once.
      let index = client;
      for (let i = 0; i < job.untimed; i++) await call(index++, false);
      for (let done = 0; job.count !== undefined ? done < job.count : performance.now() < deadline; done++) await call(index++, true);
    }),
  );
  return { requests, latenciesMs, errors, errorSamples: [...errorSamples], seconds: seconds(began), returned, totals };
}

if (!isMainThread && (workerData as Partial<ClientJob> | null)?.role === CLIENT_ROLE) {
  void clientThread(workerData as ClientJob).then((report) => parentPort!.postMessage(report));
}

function range([low, high]: [number, number]): string {
  if (low > high) return '—';
  return low === high ? fixed(low, 0) : `${fixed(low, 0)}–${fixed(high, 0)}`;
}

export function serverTable(result: ServerLoadResult): Table {
  const filterRows = result.rows.filter((r) => r.row.startsWith('filter'));
  const load = result.rows.at(-1)!;
  const target = TARGET_P99_MS;
  return {
    title: `9. Server: ticket lists through \`ticket-lab serve\` over loopback HTTP, ${fixed(result.tickets, 0)} tickets in a temp SQLite file (no PyTorch equivalent: PyTorch has no ticket store or server to compare with)`,
    measures: [
      `Seeded: ${result.runs} runs (${METHODS.join(', ')}; ${DATASETS.join(', ')}) × ${LEVELS} levels × (ticket + random control), ${ARCH_ID} masks, one saveLevel transaction per run: ${fixed(result.seedSeconds, 1)} s.`,
      `latency = POST /api/<call> with the bearer token → the answer's last byte, global fetch (keep-alive) in a worker thread; the server and its LabService on the main thread, 127.0.0.1, port 0.`,
      `listTickets answers every ticket the filter selects; browseTickets one sorted page and the total (the UI's table). table page = ${JSON.stringify(PAGE)}.`,
      `1-client rows: ${UNTIMED} untimed requests, then the timed ones one after another. Load row: ${result.clients} clients at once, each cycling through the calls below for ${result.loadSeconds} s, no pause`,
      `(a closed loop: latency ≈ clients ÷ req/s once the server is saturated). errors = an answer not 200, a fetch failure, a ${REQUEST_TIMEOUT_MS / 1000} s timeout, or a count other than the seeded data's.`,
      `p50/p99 by nearest rank over the answered requests; max = the slowest.`,
    ],
    columns: [
      { header: 'clients and filter' },
      { header: 'call' },
      { header: 'tickets/answer', align: 'right' },
      { header: 'selected', align: 'right' },
      { header: 'requests', align: 'right' },
      { header: 'p50 ms', align: 'right' },
      { header: 'p99 ms', align: 'right' },
      { header: 'max ms', align: 'right' },
      { header: 'errors', align: 'right' },
      { header: 'req/s', align: 'right' },
    ],
    rows: result.rows.map((r) => [
      r.row, r.call, range(r.ticketsPerAnswer), range(r.ticketsSelected), fixed(r.requests, 0), fixed(r.p50Ms, 1), fixed(r.p99Ms, 1), fixed(r.maxMs, 1), fixed(r.errors, 0), fixed(r.requestsPerSecond, 0),
    ]),
    notes: [
      `Target (issue 9): a ticket-table filter on 10,000 tickets answers in under ${target} ms (p99) through the server, one client: ` +
        `${filterRows.map((r) => `${r.call} ${fixed(r.p99Ms, 1)} ms${r.errors ? ` (${r.errors} errors)` : ''}`).join(', ')}: ${result.targetMet ? 'met' : 'NOT met'}. ` +
        `Under load (${result.clients} clients): p99 ${fixed(load.p99Ms, 1)} ms, ${load.p99Ms < target ? 'under' : 'over'} ${target} ms; ${load.errors === 0 ? 'no errors' : `${load.errors} errors`}.`,
      `filter = ${JSON.stringify(FILTER)}.`,
      `mixed, in turn: ${load.calls.map((c) => `${c.method} ${JSON.stringify(c.body)}`).join('; ')}.`,
      ...result.rows.flatMap((r) => r.errorSamples.map((s) => `${r.row}: ${s}`)),
    ],
  };
}
