// LabService: the one implementation of LabApi. Every front end (CLI, IPC, local server) calls it.
// Order in every command: validate, load what is needed, and only then open the database for
// writing, so a bad request or missing dataset writes nothing.
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import type { z } from 'zod';
import { CancelledError, InvalidRequestError, NotFoundError } from '../api/errors';
import type { CallOptions, LabApi } from '../api/lab-api';
import {
  CompareTicketsRequest,
  DbInfoRequest,
  DoctorRequest,
  ExportMaskRequest,
  ExportBundleRequest,
  ResumeRunRequest,
  SubmitJobRequest,
  ListJobsRequest,
  CancelJobRequest,
  ResumeJobRequest,
  type JobReport,
  type JobEvent,
  VerifyBundleRequest,
  ImportBundleRequest,
  ImportModelRequest,
  ImportRunsRequest,
  KeysRequest,
  ClaimRequest,
  VerifyRequest,
  AttackRequest,
  ExportTriggersRequest,
  InspectModelFileRequest,
  ListRunsRequest,
  PredictRequest,
  ListTicketsRequest,
  BrowseTicketsRequest,
  type TicketPageReport,
  CriteriaOverlapRequest,
  type CriteriaOverlapReport,
  EssentialSparsityRequest,
  EvaluateRequest,
  type EssentialSparsityReport,
  type EvaluateReport,
  InstabilityRequest,
  type InstabilityReport,
  PRUNE_AT_INIT_OPTIONS,
  SearchAtInitRequest,
  SearchGradualRequest,
  SearchImpRequest,
  SearchOneShotRequest,
  ShowRunRequest,
  ListClaimsRequest,
  CatalogRequest,
  type CatalogReport,
  type ClaimSummary,
  TicketMasksRequest,
  type TicketMasksReport,
  ShowTicketRequest,
  type CompareResult,
  type CurvePointReport,
  type DbInfo,
  type DoctorReport,
  type ExportMaskReport,
  type ExportBundleReport,
  type VerifyBundleReport,
  type ImportBundleReport,
  type ImportModelReport,
  type ImportRunsReport,
  type KeysReport,
  type ClaimReport,
  type VerifyReport,
  type AttackReport,
  type ExportTriggersReport,
  type MatchedArchitecture,
  type ModelFileReport,
  type PredictReport,
  type RunReport,
  type SearchAtInitParams,
  type SearchGradualParams,
  type SearchImpParams,
  type SearchOneShotParams,
  type SearchProgress,
  type SearchSummary,
  type TicketDetail,
  type TicketSummary,
} from '../api/schemas';
import { criteriaOverlap } from '../compare/criteria-overlap';
import { DEFAULT_READ_LIMITS, ModelFileError } from '../formats/model-format';
import { detectFormat, readModelFile, tensorSums } from '../formats/registry';
import { readOnnxModel } from '../formats/onnx';
import { networkFromOnnxGraph } from '../formats/onnx-network';
import { readOpenLthExperiment } from '../formats/open-lth';
import { modelInput, predictLogits } from '../formats/predict';
import { type KernelLayout, type WeightLayout, type ZooMatch, layoutOf, matchZooArchitecture, toPytorchTensors } from '../formats/zoo-match';
import type { ModelFileContents } from '../formats/model-format';
import { npyBytes, npzBytes, safetensorsBytes, writeFileAtomically } from '../formats/writers';
import { ptStateDictBytes } from '../formats/pt-writer';
import { essentialSparsity } from '../compare/essential-sparsity';
import { instability } from '../compare/instability';
import { compareMasks } from '../compare/mask-metrics';
import { type BackendInfo, probeBackends, selectBackend } from '../compute/backend';
import { softwareVersions } from '../compute/versions';
import { CIFAR_AUGMENTATION } from '../data/augment';
import { type LoadedDataset, loadDataset, normalizationTable } from '../data/datasets';
import { type Architecture, MODEL_IDS, type ParamSpec, architecture, hasConv, paramSpecs } from '../models/architectures';
import { type WeightSet, initWeights } from '../models/weights';
import { type ImpOutcome, type ImpPlan, denseMasks, runImp } from '../pruning/imp';
import { type MaskSet, countKept, summarizeMasks } from '../pruning/mask';
import { packedPicture } from './mask-picture';
import { catalog } from './catalog';
import { mergeTaskDatabases } from './merge';
import { SweepStatusRequest, type SweepStatusReport } from '../api/sweep-schemas';
import { sweepStatus } from '../sweep/status';
import { MergeDatabasesRequest, type MergeReport } from '../api/merge-schemas';
import { type GradualOptions, gradualSchedule, parseGradualOptions, runGradual } from '../pruning/gradual';
import { type OneShotOutcome, type OneShotPlan, runOneShot } from '../pruning/oneshot';
import { pruningStrategy } from '../pruning/registry';
import { closeStackWorkers } from '../train/stack-workers';
import { type TrainProgress, type TrainResult, type TrainSchedule, evaluateWeights, trainMasked } from '../train/train';
import { type ClaimRecord, type ModelRecord, type NewTicket, LabStore, type RunRecord, type TicketFilter, type TicketRecord } from '../store/lab-store';
import { SCHEMA_VERSION } from '../store/migrations';
import { type SignatureEdits, type SignaturePlan, embedSignature, planSignature } from '../ownership/graph-signature';
import { loadOrCreateOwnerKey, loadOwnerKey, ownershipSecret } from '../ownership/keys';
import { masksFromWeights } from '../ownership/mask-graph';
import { makeTriggerSet, withTriggers } from '../ownership/trigger-set';
import { type Suspect, checkClaim, checkLogits, claimTriggers, runAttacks } from './ownership';
import { defaultOwnerKeyPath } from '../store/default-path';
import { planOpenLthRuns } from './open-lth-runs';
import { exportBundle, importBundle, verifyBundle } from './bundles';
import { parseRequest } from '../api/parse-request';
import { isProcessAlive } from '../store/liveness';
import { JobRunner } from '../jobs/job-runner';
import { followJob, toJobReport } from './jobs';
import { toSummary } from './summaries';
import { ProgressTracker } from './progress';

export interface LabServiceOptions {
  dbPath: string;
  /** The owner's private key file (default: owner-key.pem in the data folder, or TICKET_LAB_KEY). */
  ownerKeyPath?: string;
}


interface Prepared {
  arch: Architecture;
  dataset: LoadedDataset;
  specs: ParamSpec[];
  schedule: TrainSchedule;
  backend: BackendInfo;
  /** A model imported from a file (`ticket-lab import`): its id and weights, which stand for θ0 or the trained weights. */
  imported?: { id: string; weights: WeightSet } | undefined;
}

/** Imported models' ids (`md_` and 12 hex digits of the file's SHA-256); anything else names a zoo architecture. */
const isImportedModel = (model: string) => model.startsWith('md_');

export class LabService implements LabApi {
  private store: LabStore | undefined;
  private runner: JobRunner | undefined;

  constructor(private readonly options: LabServiceOptions) {}

  get dbPath(): string {
    return this.options.dbPath;
  }

  /** The store, opened once; with `create` false, undefined while no database file exists. */
  private openStore(create: boolean): LabStore | undefined {
    if (!this.store) {
      this.store = LabStore.open(this.options.dbPath, { create });
      this.store?.markInterruptedRuns(isProcessAlive);
    }
    return this.store;
  }

  close(): void {
    // A running job is cancelled at its next safe point; its finished levels stay.
    void this.runner?.close();
    this.runner = undefined;
    this.store?.close();
    this.store = undefined;
    // Idle training threads would not keep the process alive (they are unref'd), but they hold their heaps.
    void closeStackWorkers();
  }

  // ---- searches ----

  /** Resolves model, dataset, schedule and backend: everything that can fail before a write. */
  private async prepare(params: SearchImpParams | SearchOneShotParams | SearchAtInitParams | SearchGradualParams, model: string, datasetName: string, options: CallOptions): Promise<Prepared> {
    const imported = isImportedModel(model) ? this.importedModel(model) : undefined;
    const arch = imported?.arch ?? architecture(model);
    const dataset = loadDataset(datasetName, {
      dataDir: params.dataDir,
      validationSize: params.validationSize,
      // Decoding CIFAR-10's images the first time takes seconds: show it; later loads read the cache.
      onProgress: (done, total) => options.onProgress?.(measureProgress('', 0, `decoding ${datasetName}`, done, total)),
      onWarning: options.onWarning,
    });
    const specs = paramSpecs(arch, dataset.imageShape, dataset.numClasses);
    if (imported) expectDatasetFits(imported, datasetName, dataset);
    const schedule = resolveSchedule(params, arch, dataset.train.count);
    const backend = await selectBackend(params.backend, { trainsConv: hasConv(arch) });
    for (const warning of backend.warnings) options.onWarning?.(warning);
    return { arch, dataset, specs, schedule, backend, imported: imported && { id: imported.record.id, weights: imported.weights } };
  }

  /** A model `ticket-lab import` stored: its record, the shape it takes and its weights. */
  private importedModel(idOrPrefix: string) {
    const store = this.openStore(false);
    if (!store) throw new NotFoundError('model', idOrPrefix);
    const record = store.getModel(store.resolveModelId(idOrPrefix));
    const spec = record.spec as { inputShape: number[]; numClasses: number; weights?: string };
    // A model that came with a bundle brings its tickets, not its own weights.
    if (record.source !== 'file' || spec.weights === undefined) {
      throw new InvalidRequestError(`Model ${record.id} has no weights of its own here (it came with a ticket bundle, or is a zoo network): search from it with --from a ticket, or import its model file.`);
    }
    return { record, spec, arch: modelArchitecture(record), weights: store.getWeights(spec.weights) };
  }

  /** An imported model with the dataset it is measured on, refused when the dataset is missing or of another shape. */
  private importedOnDataset(id: string, datasetName: string | undefined, options: { dataDir: string | undefined; validationSize: number }) {
    if (!datasetName) throw new InvalidRequestError('dataset: an imported model is measured on a dataset; give --dataset.');
    const imported = this.importedModel(id);
    const dataset = loadDataset(datasetName, options);
    expectDatasetFits(imported, datasetName, dataset);
    return { imported, arch: imported.arch, dataset, specs: paramSpecs(imported.arch, dataset.imageShape, dataset.numClasses) };
  }

  private registerRun(store: LabStore, method: string, prepared: Prepared, hparams: Record<string, unknown>, defaults: Record<string, unknown>, seed: number, initial?: WeightSet): string {
    const { arch, dataset, specs, backend } = prepared;
    const shape = dataset.imageShape.join('x');
    const modelId = prepared.imported?.id ?? `zoo/${arch.id}/${shape}-${dataset.numClasses}`;
    const datasetId = `${dataset.id}@${dataset.digest.slice(0, 16)}`;
    if (!prepared.imported) {
      store.ensureModel({ id: modelId, architecture: arch.id, source: 'zoo', sourceDigest: null, spec: { title: arch.title, inputShape: dataset.imageShape, numClasses: dataset.numClasses, params: specs } });
    }
    store.ensureDataset({
      id: datasetId,
      name: dataset.id,
      source: dataset.source,
      digest: dataset.digest,
      spec: { imageShape: dataset.imageShape, numClasses: dataset.numClasses, train: dataset.train.count, validation: dataset.validation.count, test: dataset.test.count, normalization: dataset.normalization, split: dataset.split },
    });
    return store.createRun({
      method,
      modelId,
      datasetId,
      // An imported model's runs are keyed by the model: two files of one architecture are different starts.
      runKey: runKey(method, prepared.imported?.id ?? arch.id, dataset.id, hparams, defaults),
      seed,
      // Recorded, not keyed: measured from the data rather than chosen.
      hparams: { ...hparams, splitSeed: dataset.split.seed, normalization: dataset.normalization },
      backend: { ...backend },
      versions: softwareVersions(backend.versions),
      ...(initial ? { initWeights: initial } : {}),
    });
  }

  /**
   * Runs a search body with its runs' bookkeeping: cancelled and failed runs are marked as such,
   * finished levels stay, and the caller gets the error. Several runs: the seeds of one search.
   */
  private async runSearch(store: LabStore, runIds: readonly string[], body: () => Promise<void>): Promise<SearchSummary> {
    try {
      await body();
    } catch (error) {
      if (error instanceof CancelledError) {
        for (const runId of runIds) store.finishRun(runId, 'cancelled', 'cancelled by the user');
        const kept = runIds.reduce((n, runId) => n + store.listTickets({ runId }).length, 0);
        const which = runIds.length === 1 ? `Run ${runIds[0]} keeps` : `Runs ${runIds.join(', ')} keep`;
        throw new CancelledError(`Cancelled at a safe point. ${which} ${kept} finished ticket${kept === 1 ? '' : 's'} (\`ticket-lab tickets --run ${runIds[0]}\`).`);
      }
      try {
        for (const runId of runIds) store.finishRun(runId, 'failed', error instanceof Error ? error.message : String(error));
      } catch {
        // The database itself may be what failed (a full disk): the next start marks the run interrupted.
      }
      throw error;
    }
    for (const runId of runIds) store.finishRun(runId, 'completed');
    const [first, ...others] = runIds.map((runId) => this.summary(store, runId));
    return others.length > 0 ? { ...first!, seedRuns: [first!, ...others].map(({ runId, status, tickets }) => ({ runId, status, seed: store.getRun(runId).seed, tickets })) } : first!;
  }

  private summary(store: LabStore, runId: string): SearchSummary {
    const run = store.getRun(runId);
    const backend = run.backend as unknown as BackendInfo;
    return {
      runId,
      status: run.status,
      backend: backend.tfBackend,
      backendInfo: backend,
      tickets: store.listTickets({ runId }).map(toSummary),
    };
  }

  async searchImp(request: SearchImpRequest, options: CallOptions = {}): Promise<SearchSummary> {
    const params = parseRequest(SearchImpRequest, request);
    const beyond = params.control ? params.controlLevels?.find((l) => l > params.levels) : undefined;
    if (beyond !== undefined) throw new InvalidRequestError(`controlLevels: level ${beyond} is beyond the ${params.levels} levels of this run.`);
    const seeds = params.seeds ?? [params.seed];
    if (new Set(seeds).size !== seeds.length) throw new InvalidRequestError(`seeds: ${seeds.join(',')} repeats a seed; each seed is its own run.`);
    const prepared = await this.prepare(params, params.model, params.dataset, options);
    const plan = impPlan(params, prepared, prepared.schedule);
    const base = defaultSchedule(SearchImpRequest, { model: params.model, dataset: params.dataset }, prepared);
    const defaults = impHparams(impPlan(base.params, prepared, base.schedule), base.params.validationSize);
    const store = this.openStore(true)!;
    // One run per seed, each keyed as if searched alone; they train together, level by level.
    const chains = seeds.map((seed) => ({ seed, initialWeights: initWeights(prepared.specs, seed) }));
    const runIds = chains.map((chain) => this.registerRun(store, 'imp', prepared, impHparams({ ...plan, seed: chain.seed }, params.validationSize), defaults, chain.seed, chain.initialWeights));

    const T = plan.schedule.iterations;
    const k = plan.rewindIteration;
    // Controls and seeds train in one stack with the tickets of their level: a level is T − k steps either way.
    const pieces = [T, ...Array.from({ length: plan.levels }, () => T - k)];
    const tracker = new ProgressTracker(runIds[0]!, pieces.reduce((a, b) => a + b, 0), plan.levels, options.onProgress);
    const ticketAt = chains.map(() => new Map<number, string>());
    const stacked = (control: string | null) => `${seeds.length > 1 ? `${seeds.length} seeds` : 'ticket'}${control ? ` + ${control} control` : ''}`;

    return this.runSearch(store, runIds, () =>
      runImp({
        arch: prepared.arch,
        specs: prepared.specs,
        dataset: prepared.dataset,
        plan,
        chains,
        signal: options.signal,
        onProgress: (p) => tracker.update(p.level, stacked(p.control), p),
        onOutcome: saveImpOutcome(store, runIds, plan, ticketAt, () => tracker.finishPiece()),
      }),
    );
  }

  /**
   * Continues an IMP run that stopped (killed, cancelled, failed) after its last stored level. Each
   * level is stored whole (ticket and control in one transaction), and every step after it is a
   * function of what is stored and the seeds: on the run's backend the resumed run ends where the
   * uninterrupted one would.
   */
  async resumeRun(request: z.input<typeof ResumeRunRequest>, options: CallOptions = {}): Promise<SearchSummary> {
    const params = parseRequest(ResumeRunRequest, request);
    const store = this.openStore(false);
    if (!store) throw new NotFoundError('run', params.run);
    const run = store.getRun(store.resolveRunId(params.run));
    if (run.method !== 'imp') {
      throw new InvalidRequestError(`Run ${run.id} is a ${run.method} search; resuming continues IMP runs level by level. Run the search again (its tickets are stored when it finishes).`);
    }
    if (run.status === 'completed') throw new InvalidRequestError(`Run ${run.id} is complete; there is nothing to resume.`);
    if (run.status === 'running') throw new InvalidRequestError(`Run ${run.id} is running in another process; stop it first (a killed one is marked interrupted when the lab next opens).`);
    const h = run.hparams as { levels: number; scope: 'layer' | 'global'; rates: Record<string, number>; rewindIteration: number; rewindTo: ImpPlan['rewindTo']; control: ImpPlan['control']; controlLevels: number[]; validationSize: number };
    const model = store.getModel(run.modelId);
    const imported = model.source === 'file' ? this.importedModel(model.id) : undefined;
    const arch = imported?.arch ?? architecture(run.architecture);
    const dataset = loadDataset(run.datasetName, { dataDir: params.dataDir, validationSize: h.validationSize, onWarning: options.onWarning });
    if (run.datasetId !== `${dataset.id}@${dataset.digest.slice(0, 16)}`) {
      throw new InvalidRequestError(`Run ${run.id} trained on ${run.datasetId}; the ${run.datasetName} found here has digest ${dataset.digest.slice(0, 16)}. Give --data-dir with the run's data.`);
    }
    const specs = paramSpecs(arch, dataset.imageShape, dataset.numClasses);
    const backend = await selectBackend(params.backend, { trainsConv: hasConv(arch) });
    for (const warning of backend.warnings) options.onWarning?.(warning);
    const recorded = (run.backend as { tfBackend?: string }).tfBackend;
    if (recorded && recorded !== backend.tfBackend) options.onWarning?.(`Run ${run.id} trained its first levels on ${recorded}; the rest trains on ${backend.tfBackend}, so it will not match an uninterrupted run bit for bit.`);
    const prunable = specs.filter((s) => s.prunable).map((s) => s.name);
    const plan: ImpPlan = {
      levels: h.levels, scope: h.scope, rates: h.scope === 'layer' ? h.rates : {}, globalRate: h.scope === 'global' ? h.rates.global! : 0, globalTensors: prunable,
      rewindIteration: h.rewindIteration, rewindTo: h.rewindTo, control: h.control, controlLevels: h.controlLevels, seed: run.seed, schedule: storedSchedule(run),
    };
    const stored = store.listTickets({ runId: run.id }).filter((t) => t.role === 'ticket');
    const last = stored.reduce<TicketRecord | undefined>((a, t) => (a === undefined || t.level > a.level ? t : a), undefined);
    const initial = run.initWeights ? store.getWeights(run.initWeights) : initWeights(specs, run.seed);
    const resume = last && {
      level: last.level,
      chains: [{ masks: store.getMasks(last.id), trained: store.getWeights(last.finalWeights!), rewind: store.getWeights(run.rewindWeights!) }],
    };
    const ticketAt = [new Map(stored.map((t) => [t.level, t.id]))];
    const T = plan.schedule.iterations;
    const k = plan.rewindIteration;
    const steps = resume ? (plan.levels - resume.level) * (T - k) : T + plan.levels * (T - k);
    const tracker = new ProgressTracker(run.id, steps, plan.levels, options.onProgress);
    store.reopenRun(run.id);
    return this.runSearch(store, [run.id], () =>
      runImp({
        arch, specs, dataset, plan, chains: [{ seed: run.seed, initialWeights: initial }], resume, signal: options.signal,
        onProgress: (p) => tracker.update(p.level, p.control ? `ticket + ${p.control} control` : 'ticket', p),
        onOutcome: saveImpOutcome(store, [run.id], plan, ticketAt, () => tracker.finishPiece()),
      }),
    );
  }

  async searchOneShot(request: SearchOneShotRequest, options: CallOptions = {}): Promise<SearchSummary> {
    const params = parseRequest(SearchOneShotRequest, request);
    // Starting from a ticket: its run fixes model, dataset and rewind point.
    let from: { ticket: TicketRecord; run: RunRecord } | undefined;
    if (params.fromTicket) {
      const existing = this.openStore(false);
      if (!existing) throw new NotFoundError('ticket', params.fromTicket);
      const ticket = existing.getTicket(existing.resolveTicketId(params.fromTicket));
      const run = existing.getRun(ticket.runId);
      if (!ticket.finalWeights || !run.rewindWeights) throw new InvalidRequestError(`Ticket ${ticket.id} has no stored trained weights to prune.`);
      for (const [field, value, own] of [['model', params.model, ticket.architecture], ['dataset', params.dataset, ticket.datasetName]] as const) {
        if (value && value !== own) throw new InvalidRequestError(`${field}: ticket ${ticket.id} is a ${own} ticket; leave --${field} out or give ${own}.`);
      }
      from = { ticket, run };
    }
    const model = from?.ticket.architecture ?? params.model!;
    const datasetName = from?.ticket.datasetName ?? params.dataset!;
    // Keep the source run's validation split, so no image it trained on is used for early stopping here.
    const validationSize = from ? Number(from.run.hparams.validationSize ?? params.validationSize) : params.validationSize;
    const prepared = await this.prepare({ ...params, validationSize }, model, datasetName, options);
    const rewindIteration = from ? Number(from.run.hparams.rewindIteration ?? 0) : params.rewindIteration;
    const prunable = prepared.specs.filter((s) => s.prunable).map((s) => s.name);
    if (params.retrain && rewindIteration >= prepared.schedule.iterations) {
      throw new InvalidRequestError(`iterations: ticket ${from!.ticket.id} rewinds to iteration ${rewindIteration}; retraining needs more than ${rewindIteration} iterations.`);
    }
    // A source ticket fixes the rewind point; otherwise the request does.
    const planFor = (p: SearchOneShotParams, schedule: TrainSchedule): OneShotPlan => ({
      method: p.criterion,
      methodParams: p.criterion === 'jackpot' ? jackpotParams(p) : {},
      sparsity: p.sparsity, scope: p.scope ?? (p.criterion === 'jackpot' ? 'global' : 'layer'), tensors: prunable, rewindIteration: from ? rewindIteration : p.rewindIteration, retrain: p.retrain, seed: p.seed, schedule,
    });
    const oneShotHparams = (p: OneShotPlan, validation: number): Record<string, unknown> => ({
      ...(p.method === 'magnitude' ? {} : { criterion: p.method, methodParams: p.methodParams }),
      sparsity: p.sparsity, scope: p.scope, rewindIteration: p.rewindIteration, retrain: p.retrain, seed: p.seed, ...scheduleHparams(p.schedule),
      fromTicket: from?.ticket.id ?? null, validationSize: validation,
    });
    const plan = planFor(params, prepared.schedule);
    const hparams = oneShotHparams(plan, validationSize);
    const base = defaultSchedule(SearchOneShotRequest, { model, dataset: datasetName, sparsity: params.sparsity, criterion: params.criterion }, prepared);
    const defaults = oneShotHparams(planFor(base.params, base.schedule), base.params.validationSize);
    const store = this.openStore(true)!;

    let initial: WeightSet | undefined;
    let source: Parameters<typeof runOneShot>[0]['source'];
    if (from) {
      source = { kind: 'ticket', level: from.ticket.level, masks: store.getMasks(from.ticket.id), trainedWeights: store.getWeights(from.ticket.finalWeights!), rewindWeights: store.getWeights(from.run.rewindWeights!) };
    } else if (prepared.imported) {
      // An imported model is a trained network: pruned as it is, and retraining fine-tunes it from its own weights.
      source = { kind: 'ticket', level: 0, masks: denseMasks(prepared.specs), trainedWeights: prepared.imported.weights, rewindWeights: prepared.imported.weights };
    } else {
      initial = initWeights(prepared.specs, params.seed);
      source = { kind: 'train', initialWeights: initial };
    }
    const runId = this.registerRun(store, 'oneshot', prepared, hparams, defaults, params.seed, initial);
    const T = plan.schedule.iterations;
    const total = (from || prepared.imported ? 0 : T) + (plan.retrain ? T - rewindIteration : 0);
    const tracker = new ProgressTracker(runId, Math.max(total, 1), 1, options.onProgress);
    let parentId: string | null = from?.ticket.id ?? null;

    return this.runSearch(store, [runId], async () => {
      if (prepared.imported) parentId = await saveImportedLevel(store, runId, prepared, prepared.imported);
      await runOneShot({
        arch: prepared.arch,
        specs: prepared.specs,
        dataset: prepared.dataset,
        plan,
        source,
        signal: options.signal,
        // A strategy's own search (the jackpot's score training) has its own bar; training fills the search's.
        onProgress: (p) => (p.phase === 'prune' ? options.onProgress?.(measureProgress(runId, 1, 'prune', p.iteration, p.endIteration, p)) : tracker.update(p.phase === 'dense' ? 0 : 1, p.phase, p)),
        onOutcome: (outcome) => {
          const ticket = oneShotTicket(outcome, parentId);
          if (outcome.kind === 'pruned' && plan.method !== 'magnitude') ticket.method = plan.method;
          const [id] = store.saveLevel(runId, [ticket], outcome.rewindWeights ? { rewindWeights: outcome.rewindWeights } : {});
          parentId = id!;
          tracker.finishPiece();
        },
      });
    });
  }

  async searchAtInit(request: SearchAtInitRequest, options: CallOptions = {}): Promise<SearchSummary> {
    const params = parseRequest(SearchAtInitRequest, request);
    const prepared = await this.prepare(params, params.model, params.dataset, options);
    const prunable = prepared.specs.filter((s) => s.prunable).map((s) => s.name);
    const planFor = (p: SearchAtInitParams, schedule: TrainSchedule): OneShotPlan => ({
      method: p.method,
      methodParams: atInitParams(p),
      sparsity: p.sparsity,
      // Random is uniform per layer (RigL); the scoring methods rank globally, as their papers do; ERK sets its own densities from a global count.
      scope: p.scope ?? (p.method === 'random' ? 'layer' : 'global'),
      tensors: prunable,
      rewindIteration: 0,
      retrain: p.train,
      seed: p.seed,
      schedule,
    });
    const atInitHparams = (p: OneShotPlan, validation: number): Record<string, unknown> => ({
      method: p.method, methodParams: p.methodParams, sparsity: p.sparsity, scope: p.scope, train: p.retrain, seed: p.seed, ...scheduleHparams(p.schedule), validationSize: validation,
    });
    const plan = planFor(params, prepared.schedule);
    const hparams = atInitHparams(plan, params.validationSize);
    const base = defaultSchedule(SearchAtInitRequest, { method: params.method, model: params.model, dataset: params.dataset, sparsity: params.sparsity }, prepared);
    const defaults = atInitHparams(planFor(base.params, base.schedule), base.params.validationSize);
    const store = this.openStore(true)!;
    // θ0: seeded, or an imported model's weights (SNIP, GraSP and SynFlow then score the imported network).
    const initial = prepared.imported?.weights ?? initWeights(prepared.specs, params.seed);
    const runId = this.registerRun(store, params.method, prepared, hparams, defaults, params.seed, initial);
    const tracker = new ProgressTracker(runId, Math.max(plan.retrain ? plan.schedule.iterations : 0, 1), 1, options.onProgress);

    return this.runSearch(store, [runId], async () => {
      const parentId = prepared.imported ? await saveImportedLevel(store, runId, prepared, prepared.imported) : null;
      await runOneShot({
        arch: prepared.arch,
        specs: prepared.specs,
        dataset: prepared.dataset,
        plan,
        source: { kind: 'init', initialWeights: initial },
        signal: options.signal,
        onProgress: (p) => (p.phase === 'prune' ? options.onProgress?.(measureProgress(runId, 1, 'prune', p.iteration, p.endIteration, p)) : tracker.update(1, p.phase, p)),
        onOutcome: (outcome) => {
          store.saveLevel(runId, [{ ...oneShotTicket(outcome, parentId), method: params.method }]);
          tracker.finishPiece();
        },
      });
    });
  }

  async searchGradual(request: SearchGradualRequest, options: CallOptions = {}): Promise<SearchSummary> {
    const params = parseRequest(SearchGradualRequest, request);
    const prepared = await this.prepare(params, params.model, params.dataset, options);
    const gradualFor = (p: SearchGradualParams, schedule: TrainSchedule): GradualOptions =>
      parseGradualOptions({
        finalDensity: 1 - p.sparsity,
        initialDensity: p.initialDensity,
        regrow: p.regrow,
        // GraNet's CIFAR run updates every 1,000 of 62,560 iterations: keep about that many updates in a shorter run.
        updateEvery: p.updateEvery ?? Math.max(1, Math.min(1000, Math.round(schedule.iterations / 64))),
        ...Object.fromEntries(Object.entries({ regrowthRate: p.regrowthRate, finalRegrowthRate: p.finalRegrowthRate, pruneStart: p.pruneStart, pruneEnd: p.pruneEnd }).filter(([, v]) => v !== undefined)),
      });
    const method = params.regrow ? 'granet' : 'gmp';
    const gradualHparams = (p: SearchGradualParams, schedule: TrainSchedule, validation: number): Record<string, unknown> => ({
      sparsity: p.sparsity, gradual: gradualFor(p, schedule), seed: p.seed, ...scheduleHparams(schedule), validationSize: validation,
    });
    const plan = gradualFor(params, prepared.schedule);
    gradualSchedule(prepared.schedule.iterations, plan); // refuses a window too short for the schedule, before anything is written
    const hparams = gradualHparams(params, prepared.schedule, params.validationSize);
    const base = defaultSchedule(SearchGradualRequest, { model: params.model, dataset: params.dataset, sparsity: params.sparsity, regrow: params.regrow }, prepared);
    const defaults = gradualHparams(base.params, base.schedule, base.params.validationSize);
    const store = this.openStore(true)!;
    const initial = initWeights(prepared.specs, params.seed);
    const runId = this.registerRun(store, method, prepared, hparams, defaults, params.seed, initial);
    const tracker = new ProgressTracker(runId, prepared.schedule.iterations, 1, options.onProgress);

    return this.runSearch(store, [runId], async () => {
      const outcome = await runGradual({
        arch: prepared.arch,
        specs: prepared.specs,
        dataset: prepared.dataset,
        schedule: prepared.schedule,
        options: plan,
        seed: params.seed,
        initialWeights: initial,
        signal: options.signal,
        onProgress: (p) => tracker.update(1, `${method}, ${(100 * p.sparsity).toFixed(1)} % sparse`, p),
      });
      const { result } = outcome;
      store.saveLevel(runId, [
        {
          parentId: null,
          level: 1,
          method,
          role: 'ticket',
          // The mask changes until the window ends: an earlier early-stop point had other weights
          // under a denser mask, so the ticket reports the end of training.
          testAccuracy: result.final.test.accuracy,
          earlyStopIteration: null,
          metrics: { ...trainMetrics(result), reported: 'final', gradual: { history: outcome.history, initialSparsity: summarizeMasks(outcome.initialMasks).sparsity } },
          curve: result.curve,
          masks: outcome.masks,
          startWeights: outcome.initialWeights,
          finalWeights: outcome.finalWeights,
        },
      ]);
      tracker.finishPiece();
    });
  }

  // ---- browsing ----

  async listTickets(request: z.input<typeof ListTicketsRequest>): Promise<TicketSummary[]> {
    const params = parseRequest(ListTicketsRequest, request);
    const store = this.openStore(false);
    return store ? store.listTicketHeaders(ticketFilter(store, params)).map(toSummary) : [];
  }

  async browseTickets(request: z.input<typeof BrowseTicketsRequest>): Promise<TicketPageReport> {
    const { sort, order, limit, offset, ...filter } = parseRequest(BrowseTicketsRequest, request);
    const store = this.openStore(false);
    if (!store) return { total: 0, offset, tickets: [] };
    const page = store.queryTickets(ticketFilter(store, filter), { sort, order, limit, offset });
    return { total: page.total, offset, tickets: page.tickets.map(toSummary) };
  }

  async showTicket(request: z.input<typeof ShowTicketRequest>): Promise<TicketDetail> {
    const params = parseRequest(ShowTicketRequest, request);
    const store = this.openStore(false);
    if (!store) throw new NotFoundError('ticket', params.ticket);
    const ticket = store.getTicket(store.resolveTicketId(params.ticket));
    const masks = summarizeMasks(store.getMasks(ticket.id));
    return {
      ...toSummary(ticket),
      metrics: ticket.metrics,
      layers: masks.layers,
      curve: ticket.curve as CurvePointReport[],
      run: toRunReport(store.getRun(ticket.runId)),
      lineage: { ancestors: store.ancestors(ticket.id).map(toSummary), children: store.children(ticket.id).map(toSummary) },
    };
  }

  async ticketMasks(request: z.input<typeof TicketMasksRequest>): Promise<TicketMasksReport> {
    const params = parseRequest(TicketMasksRequest, request);
    const store = this.openStore(false);
    if (!store) throw new NotFoundError('ticket', params.ticket);
    const id = store.resolveTicketId(params.ticket);
    const masks = store.getMasks(id);
    const unknown = params.layers?.filter((name) => !masks.some((m) => m.name === name)) ?? [];
    if (unknown.length > 0) throw new InvalidRequestError(`layers: ticket ${id} has no mask named ${unknown.join(', ')}; it has ${masks.map((m) => m.name).join(', ')}.`);
    const chosen = params.layers ? masks.filter((m) => params.layers!.includes(m.name)) : masks;
    return {
      ticket: id,
      layers: chosen.map((mask) => {
        const kept = countKept(mask.bits);
        return { name: mask.name, shape: [...mask.shape], kept, total: mask.bits.length, ...packedPicture(mask) };
      }),
    };
  }

  async compareTickets(request: z.input<typeof CompareTicketsRequest>): Promise<CompareResult> {
    const params = parseRequest(CompareTicketsRequest, request);
    const store = this.openStore(false);
    if (!store) throw new NotFoundError('ticket', params.a);
    const a = store.getTicket(store.resolveTicketId(params.a));
    const b = store.getTicket(store.resolveTicketId(params.b));
    const comparison = compareMasks(store.getMasks(a.id), store.getMasks(b.id));
    if (comparison.layers.length === 0) {
      throw new InvalidRequestError(`Tickets ${a.id} (${a.architecture}) and ${b.id} (${b.architecture}) share no tensor of the same name and shape; nothing to compare.`);
    }
    return { a: toSummary(a), b: toSummary(b), ...comparison };
  }

  /** One-shot magnitude sweep of a ticket's trained weights without retraining (ALGORITHMS.md §10). */
  async essentialSparsity(request: EssentialSparsityRequest, options: CallOptions = {}): Promise<EssentialSparsityReport> {
    const params = parseRequest(EssentialSparsityRequest, request);
    if (isImportedModel(params.ticket)) return this.modelEssentialSparsity(params, options);
    if (params.dataset) throw new InvalidRequestError('dataset: a ticket is measured on the dataset it was trained on; leave --dataset out.');
    const { store, ticket, run, arch, specs, dataset } = this.ticketContext(params.ticket, params.dataDir);
    if (!ticket.finalWeights) throw new InvalidRequestError(`Ticket ${ticket.id} has no stored trained weights.`);
    await selectBackend('auto', { trainsConv: hasConv(arch) });
    const result = await essentialSparsity({
      arch, specs, dataset, weights: store.getWeights(ticket.finalWeights), masks: store.getMasks(ticket.id), tolerance: params.tolerance, examples: params.examples, signal: options.signal,
      onProgress: (p) => options.onProgress?.(measureProgress(run.id, ticket.level, 'essential sparsity', p.done, p.total)),
    });
    return { ticket: toSummary(ticket), model: null, ...result };
  }

  /** Essential sparsity of an imported (pretrained) model: its own weights swept on a dataset of its shape. */
  private async modelEssentialSparsity(params: z.output<typeof EssentialSparsityRequest>, options: CallOptions): Promise<EssentialSparsityReport> {
    const { imported, arch, dataset, specs } = this.importedOnDataset(params.ticket, params.dataset, { dataDir: params.dataDir, validationSize: 0 });
    await selectBackend('auto', { trainsConv: hasConv(arch) });
    const result = await essentialSparsity({
      arch, specs, dataset, weights: imported.weights, masks: denseMasks(specs), tolerance: params.tolerance, examples: params.examples, signal: options.signal,
      onProgress: (p) => options.onProgress?.(measureProgress('', 0, 'essential sparsity', p.done, p.total)),
    });
    return { ticket: null, model: imported.record.id, ...result };
  }

  async evaluate(request: z.input<typeof EvaluateRequest>): Promise<EvaluateReport> {
    const params = parseRequest(EvaluateRequest, request);
    let measuring: { arch: Architecture; specs: ParamSpec[]; dataset: LoadedDataset; weights: WeightSet; masks: MaskSet };
    let ticket: TicketRecord | null = null;
    let model: string | null = null;
    if (isImportedModel(params.target)) {
      const { imported, arch, dataset, specs } = this.importedOnDataset(params.target, params.dataset, { dataDir: params.dataDir, validationSize: params.validationSize });
      measuring = { arch, specs, dataset, weights: imported.weights, masks: denseMasks(specs) };
      model = imported.record.id;
    } else {
      const context = this.ticketContext(params.target, params.dataDir);
      if (params.dataset && params.dataset !== context.ticket.datasetName) {
        throw new InvalidRequestError(`dataset: ticket ${context.ticket.id} is a ${context.ticket.datasetName} ticket; leave --dataset out.`);
      }
      if (!context.ticket.finalWeights) throw new InvalidRequestError(`Ticket ${context.ticket.id} has no stored trained weights.`);
      ticket = context.ticket;
      const { arch, specs, dataset } = context;
      measuring = { arch, specs, dataset, weights: context.store.getWeights(ticket.finalWeights!), masks: context.store.getMasks(ticket.id) };
    }
    const backend = await selectBackend(params.backend, { trainsConv: hasConv(measuring.arch) });
    const { validation, test } = await evaluateWeights(measuring.arch, measuring.specs, measuring.dataset, measuring.weights, measuring.masks);
    const { dataset } = measuring;
    return {
      ticket: ticket && toSummary(ticket), model, dataset: dataset.id, sparsity: summarizeMasks(measuring.masks).sparsity,
      validation: { ...validation, examples: dataset.validation.count }, test: { ...test, examples: dataset.test.count },
      recordedTestAccuracy: ticket?.testAccuracy ?? null, backend,
    };
  }

  /** Linear mode connectivity from the ticket's starting point: two copies, the error barrier between them (ALGORITHMS.md §10). */
  async instability(request: InstabilityRequest, options: CallOptions = {}): Promise<InstabilityReport> {
    const params = parseRequest(InstabilityRequest, request);
    const { store, ticket, run, arch, specs, dataset } = this.ticketContext(params.ticket, params.dataDir);
    if (!ticket.startWeights) throw new InvalidRequestError(`Ticket ${ticket.id} has no stored start weights.`);
    const schedule = storedSchedule(run);
    const startIteration = Number(run.hparams.rewindIteration ?? 0);
    const backend = await selectBackend(params.backend, { trainsConv: hasConv(arch) });
    for (const warning of backend.warnings) options.onWarning?.(warning);
    const result = await instability({
      arch, specs, dataset, masks: store.getMasks(ticket.id), points: params.points, testExamples: params.testExamples, signal: options.signal,
      endpoints: { kind: 'train', weights: store.getWeights(ticket.startWeights), startIteration, schedule, seed: run.seed, sameDataOrder: params.sameDataOrder },
      onProgress: (p) =>
        options.onProgress?.(
          p.phase === 'train'
            ? measureProgress(run.id, ticket.level, 'two copies', p.iteration - p.startIteration, p.endIteration - p.startIteration, p)
            : measureProgress(run.id, ticket.level, 'interpolate', p.done, p.total),
        ),
    });
    return {
      ticket: toSummary(ticket), startIteration, endIteration: schedule.iterations, curve: result.curve, e0: result.e0, e1: result.e1,
      barrier: result.barrier, stable: result.stable, testExamples: result.testExamples, dataSeeds: result.dataSeeds ?? null,
    };
  }

  /** Overlap of a ticket's mask with the masks magnitude, SNIP, GraSP, SynFlow and random keep at its sparsity (the jackpots paper's comparison). */
  async criteriaOverlap(request: CriteriaOverlapRequest, options: CallOptions = {}): Promise<CriteriaOverlapReport> {
    const params = parseRequest(CriteriaOverlapRequest, request);
    const { store, ticket, run, arch, specs, dataset } = this.ticketContext(params.ticket, params.dataDir);
    // SNIP, GraSP and SynFlow score where training started (θk of the run, else the lineage's first
    // start, θ0): a pruned ticket's own start (a jackpot's, say) is already zero where it prunes.
    const root = store.ancestors(ticket.id)[0] ?? ticket;
    const startId = run.rewindWeights ?? root.startWeights ?? ticket.startWeights;
    if (!startId) throw new InvalidRequestError(`Ticket ${ticket.id} has no stored start weights.`);
    // Magnitude ranks the weights the ticket was pruned from: its parent's trained ones.
    const parent = ticket.parentId ? store.getTicket(ticket.parentId) : undefined;
    const trainedId = parent?.finalWeights ?? ticket.finalWeights ?? startId;
    await selectBackend('auto', { trainsConv: hasConv(arch) });
    const result = await criteriaOverlap({
      arch, specs, dataset, masks: store.getMasks(ticket.id), startWeights: store.getWeights(startId), trainedWeights: store.getWeights(trainedId),
      criteria: params.criteria, scope: params.scope, seed: run.seed, params: params.synflowRounds ? { synflow: { rounds: params.synflowRounds } } : undefined, signal: options.signal,
      onProgress: (p) => options.onProgress?.(measureProgress(run.id, ticket.level, `criteria (${p.criterion})`, p.done, p.total)),
    });
    const warnings: string[] = [];
    for (const [kind, zero] of Object.entries(result.weightsZeroWherePruned)) {
      const inflated = result.criteria.filter((c) => c.scored === kind).map((c) => c.criterion);
      if (zero && inflated.length > 0) warnings.push(`the ${kind} weights are zero wherever the ticket prunes: ${inflated.join(', ')} see its mask, their overlap is inflated`);
    }
    return {
      ticket: toSummary(ticket), scope: result.scope, kept: result.kept, sparsity: result.sparsity, trainedFrom: parent?.finalWeights ? 'parent' : 'own',
      criteria: result.criteria.map((c) => ({ criterion: c.criterion, scored: c.scored, total: c.total, layers: c.layers })), warnings,
    };
  }

  /** A stored ticket with its run, network and the very dataset it was trained on (by digest). */
  private ticketContext(ticketId: string, dataDir: string | undefined) {
    const store = this.openStore(false);
    if (!store) throw new NotFoundError('ticket', ticketId);
    const ticket = store.getTicket(store.resolveTicketId(ticketId));
    const run = store.getRun(ticket.runId);
    const arch = modelArchitecture(store.getModel(run.modelId));
    const dataset = loadDataset(ticket.datasetName, { dataDir, validationSize: Number(run.hparams.validationSize ?? 5000) });
    // A run open_lth trained (import-runs) used its own copy of the data: it is measured on this one.
    const trainedHere = store.getDataset(run.datasetId).source !== 'open_lth';
    if (trainedHere && `${dataset.id}@${dataset.digest.slice(0, 16)}` !== run.datasetId) {
      throw new InvalidRequestError(`Ticket ${ticket.id} was trained on ${run.datasetId}; the ${ticket.datasetName} found here is ${dataset.id}@${dataset.digest.slice(0, 16)}. Point --data-dir at the files it used.`);
    }
    const specs = paramSpecs(arch, dataset.imageShape, dataset.numClasses);
    return { store, ticket, run, arch, specs, dataset };
  }

  async listRuns(request: z.input<typeof ListRunsRequest>): Promise<RunReport[]> {
    parseRequest(ListRunsRequest, request);
    const store = this.openStore(false);
    return store ? store.listRuns().map(toRunReport) : [];
  }

  async showRun(request: z.input<typeof ShowRunRequest>): Promise<SearchSummary> {
    const params = parseRequest(ShowRunRequest, request);
    const store = this.openStore(false);
    if (!store) throw new NotFoundError('run', params.run);
    return this.summary(store, store.resolveRunId(params.run));
  }

  async dbInfo(request: z.input<typeof DbInfoRequest>): Promise<DbInfo> {
    parseRequest(DbInfoRequest, request);
    const store = this.openStore(false);
    if (!store) {
      return {
        path: this.options.dbPath,
        exists: false,
        schemaVersion: null,
        latestSchemaVersion: SCHEMA_VERSION,
        bytes: null,
        counts: { models: 0, datasets: 0, runs: 0, tickets: 0, masks: 0, weights: 0 },
      };
    }
    return { ...store.info(), latestSchemaVersion: SCHEMA_VERSION };
  }

  async doctor(request: z.input<typeof DoctorRequest>): Promise<DoctorReport> {
    const params = parseRequest(DoctorRequest, request);
    const providers = await probeBackends();
    let chosen: BackendInfo | null = null;
    let error: string | null = null;
    try {
      chosen = await selectBackend(params.backend);
    } catch (e) {
      error = e instanceof Error ? e.message : String(e);
    }
    return { chosen, error, providers, versions: softwareVersions(chosen?.versions ?? {}) };
  }

  async inspectModelFile(request: z.input<typeof InspectModelFileRequest>): Promise<ModelFileReport> {
    const { path } = parseRequest(InspectModelFileRequest, request);
    const format = detectFormat(path);
    const contents = format.read(path, DEFAULT_READ_LIMITS);
    const tensors = contents.tensors.map((t) => ({ name: t.name, shape: t.shape, dtype: t.dtype, ...tensorSums(t) }));
    let match: ZooMatch | null;
    try {
      match = runnableNetwork(path, contents);
    } catch (error) {
      // An ONNX graph Ticket Lab cannot run can still be inspected.
      if (!(error instanceof ModelFileError)) throw error;
      match = null;
    }
    return {
      path, format: format.id, formatTitle: format.title, bytes: statSync(path).size,
      elements: contents.tensors.reduce((n, t) => n + t.values.length, 0), tensors,
      architecture: match && matchedArchitecture(match),
    };
  }

  async predict(request: z.input<typeof PredictRequest>): Promise<PredictReport> {
    const params = parseRequest(PredictRequest, request);
    const { match, layout } = runnableModelFile(params.path);
    const input = readModelFile(params.input);
    if (input.format !== 'npy' || input.tensors.length !== 1) throw new InvalidRequestError(`${params.input}: the input must be one array in a .npy file.`);
    const x = modelInput(input.tensors[0]!, match.inputShape, layout, params.input);
    const backend = await selectBackend(params.backend, { trainsConv: hasConv(match.arch) });
    const logits = predictLogits(match, x);
    return { path: params.path, architecture: matchedArchitecture(match), logits, backend };
  }

  async importModel(request: z.input<typeof ImportModelRequest>): Promise<ImportModelReport> {
    const params = parseRequest(ImportModelRequest, request);
    const { contents, match } = runnableModelFile(params.path);
    // Read a second time for the digest (the readers take a path): a file that changed in between
    // would be stored under the new bytes' id with the old bytes' tensors.
    const sourceDigest = createHash('sha256').update(readFileSync(params.path)).digest('hex');
    const id = `md_${sourceDigest.slice(0, 12)}`;
    const name = params.name ?? basename(params.path);
    const store = this.openStore(true)!;
    const created = store.saveImportedModel(
      { id, architecture: match.arch.id, sourceDigest, spec: importedModelSpec(name, basename(params.path), contents.format, match) },
      match.weights,
    );
    const parameters = match.specs.filter((s) => s.trainable).reduce((n, s) => n + s.shape.reduce((a, b) => a * b, 1), 0);
    const storedName = created ? name : String((store.getModel(id).spec as { name?: unknown }).name ?? name);
    return { id, name: storedName, created, format: contents.format, sourceDigest, architecture: matchedArchitecture(match), parameters };
  }

  async claim(request: z.input<typeof ClaimRequest>, options: CallOptions = {}): Promise<ClaimReport> {
    const params = parseRequest(ClaimRequest, request);
    const { store, ticket, run, arch, specs, dataset } = this.ticketContext(params.ticket, params.dataDir);
    if (!ticket.finalWeights) throw new InvalidRequestError(`Ticket ${ticket.id} has no stored trained weights to claim.`);
    const keyPath = this.ownerKeyPath();
    const key = this.ownerKey(store);
    const secret = ownershipSecret(key);
    // A fresh nonce per claim: two claims on one ticket carry unrelated bits and triggers.
    const message = { fingerprint: key.fingerprint, ticketId: ticket.id, nonce: randomBytes(16).toString('hex') };
    const trained = store.getWeights(ticket.finalWeights);

    let masks = store.getMasks(ticket.id);
    let plan: SignaturePlan | null = null;
    let edits: SignatureEdits | null = null;
    if (params.graph) {
      plan = planSignature(specs, secret, message);
      ({ masks, edits } = embedSignature(masks, plan, { seed: run.seed, weights: trained }));
    }
    const triggers = params.trigger ? makeTriggerSet(secret, message, { imageShape: dataset.imageShape, numClasses: dataset.numClasses }) : null;

    const backend = await selectBackend(params.backend, { trainsConv: hasConv(arch) });
    for (const warning of backend.warnings) options.onWarning?.(warning);
    let finalWeights = trained;
    let metrics: Record<string, unknown> = {};
    let testAccuracy = ticket.testAccuracy;
    let earlyStopIteration: number | null = null;
    let curve: unknown[] = [];
    if (params.retrain) {
      // From the run's rewind point, as the ticket itself trained: revived entries take their rewind values (§9.2 step 6).
      const start = store.getWeights(run.rewindWeights ?? ticket.startWeights ?? ticket.finalWeights);
      const schedule = { ...storedSchedule(run), ...(params.iterations ? { iterations: params.iterations } : {}) };
      const startIteration = Math.min(Number(run.hparams.rewindIteration ?? 0), schedule.iterations - 1);
      const result = await trainMasked({
        arch, specs, weights: start, masks, schedule, dataSeed: run.seed, startIteration, signal: options.signal,
        dataset: triggers ? withTriggers(dataset, triggers, { batchSize: schedule.batchSize }) : dataset,
        onProgress: (p) => options.onProgress?.(measureProgress(run.id, ticket.level, 'claim: retrain', p.iteration - startIteration, p.endIteration - startIteration, p)),
      });
      finalWeights = result.finalWeights;
      metrics = trainMetrics(result);
      testAccuracy = result.earlyStop.test.accuracy;
      earlyStopIteration = result.earlyStop.iteration;
      curve = result.curve;
    } else {
      // Without retraining, revived entries still take their rewind values (§9.2 step 6): a zero
      // weight would be the first one further magnitude pruning removes, and the bit with it.
      if (edits && run.rewindWeights) finalWeights = revived(trained, store.getWeights(run.rewindWeights), edits);
      const measured = await evaluateWeights(arch, specs, dataset, finalWeights, masks);
      metrics = { reported: 'final', final: { iteration: null, valLoss: measured.validation.loss, valAccuracy: measured.validation.accuracy, testLoss: measured.test.loss, testAccuracy: measured.test.accuracy } };
      testAccuracy = measured.test.accuracy;
    }
    const claims: Array<Omit<ClaimRecord, 'id' | 'ticketId' | 'createdAt'>> = [];
    if (plan && edits) {
      const { switchedOn: _on, switchedOff: _off, ...editSummary } = edits;
      claims.push({ kind: 'graph-signature', keyFingerprint: key.fingerprint, commitment: plan.bitsDigest, params: { plan, message, falsePositiveRate: params.falsePositiveRate, edits: editSummary } });
    }
    if (triggers) {
      const shape = { imageShape: triggers.imageShape, numClasses: triggers.numClasses, count: triggers.count, normalization: dataset.normalization };
      claims.push({ kind: 'trigger-set', keyFingerprint: key.fingerprint, commitment: triggers.commitment, params: { message, ...shape, falsePositiveRate: params.falsePositiveRate } });
    }
    const saved = store.saveClaim(run.id, {
      parentId: ticket.id, level: ticket.level, method: 'claim', role: 'ticket', testAccuracy, earlyStopIteration,
      metrics: { ...metrics, claim: { original: ticket.id, schemes: claims.map((c) => c.kind), retrained: params.retrain } },
      curve, masks, startWeights: null, finalWeights,
    }, claims);
    const claimed = store.getTicket(saved.ticketId);
    const suspect: Suspect = {
      kind: 'ticket', id: claimed.id, digest: null, model: arch.id, arch, specs, weights: finalWeights, masks, inputShape: dataset.imageShape, numClasses: dataset.numClasses,
    };
    const verdicts = [];
    for (const id of saved.claimIds) verdicts.push(await checkClaim(store, store.getClaim(id), suspect, { ownerKeyPath: keyPath }));
    return {
      original: toSummary(ticket), ticket: toSummary(claimed), keyFingerprint: key.fingerprint,
      claims: saved.claimIds.map((id, i) => ({ id, kind: claims[i]!.kind, commitment: claims[i]!.commitment })),
      edits: edits && { layer: edits.layer, changed: edits.changed, bitOn: edits.bitOn, bitOff: edits.bitOff, repair: edits.repair },
      testAccuracy: { before: ticket.testAccuracy, after: testAccuracy }, verdicts, backend,
    };
  }

  async verify(request: z.input<typeof VerifyRequest>): Promise<VerifyReport> {
    const params = parseRequest(VerifyRequest, request);
    const store = this.openStore(false);
    if (!store) throw new NotFoundError('claim', params.claim ?? '(any)');
    const claims = params.claim ? [store.getClaim(store.resolveClaimId(params.claim))] : store.listClaims();
    if (claims.length === 0) throw new InvalidRequestError('There are no claims to verify against: `ticket-lab claim TICKET` makes one.');
    if (params.logits) {
      // A model queried elsewhere with the trigger images (`ticket-lab triggers`): its answers only.
      const file = readModelFile(params.suspect);
      const tensor = file.tensors[0];
      if (file.format !== 'npy' || !tensor || tensor.shape.length !== 2) throw new InvalidRequestError(`${params.suspect}: logits must be one [triggers, classes] array in a .npy file.`);
      const [m, classes] = tensor.shape as [number, number];
      const rows = Array.from({ length: m }, (_, i) => Array.from(tensor.values.subarray(i * classes, (i + 1) * classes)));
      const subject = `sha256:${createHash('sha256').update(readFileSync(params.suspect)).digest('hex')}`;
      const verdicts = claims.map((claim) => checkLogits(store, claim, { rows, subject }, { ownerKeyPath: this.ownerKeyPath(), falsePositiveRate: params.falsePositiveRate }));
      return { suspect: { kind: 'logits', id: params.suspect, digest: subject, model: `logits [${m}, ${classes}]` }, verdicts };
    }
    const suspect = this.suspect(store, params.suspect);
    await selectBackend(params.backend, { trainsConv: hasConv(suspect.arch) });
    const verdicts = [];
    for (const claim of claims) verdicts.push(await checkClaim(store, claim, suspect, { ownerKeyPath: this.ownerKeyPath(), falsePositiveRate: params.falsePositiveRate }));
    return { suspect: { kind: suspect.kind, id: suspect.id, digest: suspect.digest, model: suspect.model }, verdicts };
  }

  async attack(request: z.input<typeof AttackRequest>, options: CallOptions = {}): Promise<AttackReport> {
    const params = parseRequest(AttackRequest, request);
    const existing = this.openStore(false);
    if (!existing) throw new NotFoundError('claim', params.claim);
    const claim = existing.getClaim(existing.resolveClaimId(params.claim));
    const { store, ticket, run, arch, specs, dataset } = this.ticketContext(claim.ticketId, params.dataDir);
    if (!ticket.finalWeights) throw new InvalidRequestError(`Ticket ${ticket.id} has no stored trained weights to attack.`);
    const backend = await selectBackend(params.backend, { trainsConv: hasConv(arch) });
    for (const warning of backend.warnings) options.onWarning?.(warning);
    const claims = store.listClaims(ticket.id);
    const target = {
      input: {
        arch, specs, dataset, weights: store.getWeights(ticket.finalWeights), masks: store.getMasks(ticket.id), schedule: storedSchedule(run), seed: params.seed, signal: options.signal,
        onProgress: (p: TrainProgress) => options.onProgress?.(measureProgress(run.id, ticket.level, `attack: ${params.kind}`, p.iteration - p.startIteration, p.endIteration - p.startIteration, p)),
      },
      claims, ticketId: ticket.id, model: arch.id, inputShape: dataset.imageShape, numClasses: dataset.numClasses, ownerKeyPath: this.ownerKeyPath(),
    };
    const result = await runAttacks(store, target, params.kind, { iterations: params.iterations, fractions: params.fractions, paths: params.paths });
    return { claims: claims.map((c) => c.id), ticket: toSummary(ticket), kind: params.kind, ...result };
  }

  async exportTriggers(request: z.input<typeof ExportTriggersRequest>): Promise<ExportTriggersReport> {
    const params = parseRequest(ExportTriggersRequest, request);
    const store = this.openStore(false);
    if (!store) throw new NotFoundError('claim', params.claim);
    const claim = store.getClaim(store.resolveClaimId(params.claim));
    const triggers = claimTriggers(claim, this.ownerKeyPath());
    const { normalization } = claim.params as { normalization: { mean: number; std: number } };
    const [h, w, c] = triggers.imageShape;
    const size = h * w * c;
    const values = new Float32Array(triggers.count * size);
    const table = normalizationTable(normalization);
    // The network's inputs as the claimed ticket saw them: normalised, in the layout asked for.
    for (let n = 0; n < triggers.count; n++) {
      for (let p = 0; p < h * w; p++) {
        for (let k = 0; k < c; k++) {
          values[n * size + (params.layout === 'nchw' ? k * h * w + p : p * c + k)] = table[triggers.images[n * size + p * c + k]!]!;
        }
      }
    }
    const shape = params.layout === 'nchw' ? [triggers.count, c, h, w] : [triggers.count, h, w, c];
    try {
      writeFileAtomically(params.output, npyBytes({ name: 'triggers', shape, values }));
    } catch (error) {
      throw new InvalidRequestError(`Cannot write ${params.output}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}.`, { cause: error });
    }
    return { claim: claim.id, path: params.output, shape, normalization, commitment: triggers.commitment };
  }

  /** A suspect as a network: a stored ticket (`tk_…`), else a model file, its mask where its weights are non-zero. */
  private suspect(store: LabStore, target: string): Suspect {
    if (/^tk_[0-9a-z]+$/.test(target)) {
      const ticket = store.getTicket(store.resolveTicketId(target));
      if (!ticket.finalWeights) throw new InvalidRequestError(`Ticket ${ticket.id} has no stored trained weights.`);
      const model = store.getModel(store.getRun(ticket.runId).modelId);
      const spec = model.spec as { params: ParamSpec[]; inputShape: number[]; numClasses: number };
      return {
        kind: 'ticket', id: ticket.id, digest: null, model: ticket.architecture, arch: modelArchitecture(model), specs: spec.params,
        weights: store.getWeights(ticket.finalWeights), masks: store.getMasks(ticket.id), inputShape: spec.inputShape, numClasses: spec.numClasses,
      };
    }
    const { match } = runnableModelFile(target);
    const digest = `sha256:${createHash('sha256').update(readFileSync(target)).digest('hex')}`;
    return {
      kind: 'file', id: target, digest, model: match.arch.id, arch: match.arch, specs: match.specs, weights: match.weights,
      masks: masksFromWeights(match.weights, match.specs), inputShape: match.inputShape, numClasses: match.numClasses,
    };
  }

  private ownerKeyPath(): string {
    return this.options.ownerKeyPath ?? defaultOwnerKeyPath();
  }

  /**
   * The owner's key fingerprint, or null before there is a key: it counts as known even before
   * anything was claimed with it. Read from the key file, not stored, so that verifying or importing
   * a bundle writes nothing before the bundle has verified.
   */
  private ownFingerprint(): string | null {
    return existsSync(this.ownerKeyPath()) ? loadOwnerKey(this.ownerKeyPath()).fingerprint : null;
  }

  /** The owner's key, made on first use, its public half recorded in the store (the private half stays in its file). */
  private ownerKey(store: LabStore): ReturnType<typeof loadOrCreateOwnerKey> {
    const key = loadOrCreateOwnerKey(this.ownerKeyPath());
    store.putKey({ fingerprint: key.fingerprint, algorithm: key.algorithm, publicKeyPem: key.publicKeyPem, label: 'owner', own: true, trusted: true });
    return key;
  }

  async catalog(request: z.input<typeof CatalogRequest>): Promise<CatalogReport> {
    parseRequest(CatalogRequest, request);
    return catalog();
  }

  async listClaims(request: z.input<typeof ListClaimsRequest>): Promise<ClaimSummary[]> {
    const params = parseRequest(ListClaimsRequest, request);
    const store = this.openStore(false);
    if (!store) return [];
    const own = this.ownFingerprint();
    const claims = store.listClaims(params.ticket ? store.resolveTicketId(params.ticket) : undefined);
    return claims.map((claim) => ({
      id: claim.id, kind: claim.kind, ticket: toSummary(store.getTicket(claim.ticketId)), keyFingerprint: claim.keyFingerprint,
      own: own !== null && claim.keyFingerprint === own, commitment: claim.commitment, createdAt: claim.createdAt,
      verifications: store
        .listVerifications(claim.id)
        .slice(-20)
        .reverse()
        .map((v) => ({ id: v.id, subject: v.subject, verdict: v.verdict as ClaimSummary['verifications'][number]['verdict'], score: v.score, threshold: v.threshold, pValue: v.pValue, createdAt: v.createdAt })),
    }));
  }

  async keys(request: z.input<typeof KeysRequest>): Promise<KeysReport> {
    const params = parseRequest(KeysRequest, request);
    const path = this.ownerKeyPath();
    let owner: KeysReport['owner'] = null;
    if (params.create || existsSync(path)) {
      const key = this.ownerKey(this.openStore(true)!);
      owner = { fingerprint: key.fingerprint, algorithm: key.algorithm, publicKeyPem: key.publicKeyPem, label: 'owner', own: true, trusted: true, path, created: key.created };
    }
    const store = this.openStore(false);
    return { owner, ownerKeyPath: path, keys: store ? store.listKeys().map(({ createdAt: _, ...key }) => key) : [] };
  }

  async importRuns(request: z.input<typeof ImportRunsRequest>): Promise<ImportRunsReport> {
    const params = parseRequest(ImportRunsRequest, request);
    // Everything is read and converted before the first write.
    const read = readOpenLthExperiment(params.path);
    const { plans, warnings } = planOpenLthRuns(read);
    if (plans.length === 0) throw new InvalidRequestError(`${params.path}: no replicate could be imported. ${warnings.join(' ')}`);
    const store = this.openStore(true)!;
    const runs = plans.map((plan): ImportRunsReport['runs'][number] => {
      const { match } = plan.model;
      const name = `${plan.experiment}/replicate_${plan.replicate}`;
      const { runId, created } = store.saveImportedRun({
        model: {
          id: plan.model.id, architecture: match.arch.id, sourceDigest: plan.model.sourceDigest,
          spec: importedModelSpec(name, plan.model.fileName, 'pytorch', match), weights: match.weights,
        },
        dataset: { id: plan.dataset.id, name: plan.dataset.name, source: 'open_lth', digest: plan.dataset.digest, spec: plan.dataset.spec },
        run: {
          method: 'imp', runKey: plan.runKey, seed: plan.seed, hparams: plan.hparams,
          backend: OPEN_LTH_BACKEND, versions: {},
          ...(plan.initWeights ? { initWeights: plan.initWeights } : {}),
          ...(plan.rewindWeights ? { rewindWeights: plan.rewindWeights } : {}),
        },
        levels: plan.levels,
      });
      return {
        experiment: plan.experiment, replicate: plan.replicate, path: plan.path, created, model: plan.model.id,
        architecture: matchedArchitecture(match), run: this.summary(store, runId),
      };
    });
    return { root: read.root, runs, warnings };
  }

  // ---- jobs ----

  /** The job runner of this service, made on first use (its worker threads run the long calls). */
  private jobRunner(): JobRunner {
    return (this.runner ??= new JobRunner({ dbPath: this.options.dbPath, ownerKeyPath: this.options.ownerKeyPath }));
  }

  onJobEvent(listener: (event: JobEvent) => void): () => void {
    return this.jobRunner().onEvent((event) => listener(event.type === 'state' ? { type: 'state', job: toJobReport(event.job) } : event));
  }

  async submitJob(request: z.input<typeof SubmitJobRequest>, options: CallOptions = {}): Promise<JobReport> {
    const params = parseRequest(SubmitJobRequest, request);
    const runner = this.jobRunner();
    const job = runner.submit(params.method, params.request);
    return toJobReport(params.wait ? await followJob(runner, job.id, options) : job);
  }

  async listJobs(request: z.input<typeof ListJobsRequest>): Promise<JobReport[]> {
    parseRequest(ListJobsRequest, request);
    const store = this.openStore(false);
    if (!store) return [];
    store.jobs.markInterrupted(isProcessAlive);
    return store.jobs.list().map(toJobReport);
  }

  async cancelJob(request: z.input<typeof CancelJobRequest>): Promise<JobReport> {
    const params = parseRequest(CancelJobRequest, request);
    if (this.runner) return toJobReport(this.runner.cancel(params.job));
    const store = this.openStore(false);
    if (!store) throw new NotFoundError('job', params.job);
    // Another process runs it: the flag in the table reaches its runner within a poll.
    return toJobReport(store.jobs.requestCancel(store.resolveJobId(params.job)));
  }

  async resumeJob(request: z.input<typeof ResumeJobRequest>, options: CallOptions = {}): Promise<JobReport> {
    const params = parseRequest(ResumeJobRequest, request);
    if (!this.openStore(false)) throw new NotFoundError('job', params.job);
    const runner = this.jobRunner();
    const job = runner.resume(params.job);
    return toJobReport(params.wait ? await followJob(runner, job.id, options) : job);
  }

  async exportBundle(request: z.input<typeof ExportBundleRequest>): Promise<ExportBundleReport> {
    const params = parseRequest(ExportBundleRequest, request);
    const store = this.openStore(false);
    if (!store) throw new NotFoundError('ticket', params.ticket);
    return exportBundle(store, this.ownerKey(store), params);
  }

  async verifyBundle(request: z.input<typeof VerifyBundleRequest>): Promise<VerifyBundleReport> {
    return verifyBundle(this.openStore(false), parseRequest(VerifyBundleRequest, request), this.ownFingerprint());
  }

  async importBundle(request: z.input<typeof ImportBundleRequest>): Promise<ImportBundleReport> {
    const params = parseRequest(ImportBundleRequest, request);
    const store = this.openStore(true)!;
    return importBundle(store, params, this.ownFingerprint());
  }

  /** Folds task databases into this one (created when missing), each file in its own transaction; refusals are in the report. */
  async mergeDatabases(request: MergeDatabasesRequest): Promise<MergeReport> {
    return mergeTaskDatabases(this.options.dbPath, parseRequest(MergeDatabasesRequest, request));
  }

  /** Reads a sweep folder and asks Slurm (squeue, sacct) about its unfinished tasks; writes nothing. */
  async sweepStatus(request: z.input<typeof SweepStatusRequest>): Promise<SweepStatusReport> {
    const params = parseRequest(SweepStatusRequest, request);
    return sweepStatus(resolve(params.dir));
  }

  async exportMask(request: z.input<typeof ExportMaskRequest>): Promise<ExportMaskReport> {
    const params = parseRequest(ExportMaskRequest, request);
    const store = this.openStore(false);
    if (!store) throw new NotFoundError('ticket', params.ticket);
    const ticket = store.getTicket(store.resolveTicketId(params.ticket));
    const run = store.getRun(ticket.runId);
    // The parameter specs the run trained, as stored with its model, and an imported model's own tensor names and layouts.
    const model = store.getModel(run.modelId).spec as {
      params: ParamSpec[]; inputShape: number[]; sourceNames?: Record<string, string>; kernelLayouts?: Record<string, KernelLayout>;
    };
    const specs = model.params;
    const layout = {
      inputChannels: model.inputShape[2]!,
      ...(model.sourceNames ? { sourceNames: model.sourceNames } : {}),
      ...(model.kernelLayouts ? { kernelLayouts: model.kernelLayouts } : {}),
    };
    const masks = store.getMasks(ticket.id).map((m) => ({ name: m.name, values: Float32Array.from(m.bits) }));
    const tensors = toPytorchTensors(specs, masks, { ...layout, maskSuffix: true });
    if (params.weights && ticket.finalWeights) tensors.push(...toPytorchTensors(specs, store.getWeights(ticket.finalWeights), layout));
    // What a script needs to evaluate the ticket as Ticket Lab did: the input shape and the pixel normalisation.
    const data = store.getDataset(run.datasetId).spec as { imageShape?: number[]; normalization?: { mean: number; std: number } };
    const metadata = {
      writer: 'ticket-lab', ticket: ticket.id, model: ticket.architecture, dataset: run.datasetId, sparsity: String(ticket.sparsity),
      input_shape_hwc: JSON.stringify(data.imageShape ?? null), normalization: JSON.stringify(data.normalization ?? null),
    };
    const bytes = params.format === 'safetensors' ? safetensorsBytes(tensors, metadata) : params.format === 'npz' ? npzBytes(tensors) : ptStateDictBytes(tensors);
    try {
      writeFileAtomically(params.output, bytes);
    } catch (error) {
      throw new InvalidRequestError(`Cannot write ${params.output}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}.`, { cause: error });
    }
    return {
      ticket: toSummary(ticket), path: params.output, format: params.format, bytes: bytes.length,
      tensors: tensors.map((t) => ({ name: t.name, shape: t.shape })), sparsity: ticket.sparsity,
    };
  }
}

/** A model file's tensors and the network they fit; an error saying what the file holds when they fit none. */
function runnableModelFile(path: string): { contents: ModelFileContents; match: ZooMatch; layout: WeightLayout } {
  const contents = readModelFile(path);
  const layout = layoutOf(contents.format);
  const match = runnableNetwork(path, contents);
  if (!match) {
    throw new InvalidRequestError(`${path}: its tensors fit no network Ticket Lab runs (${MODEL_IDS.join(', ')}, lenet-<widths>, by names or order and shapes); \`ticket-lab inspect\` lists what it holds.`);
  }
  return { contents, match, layout };
}

/**
 * The network a file's tensors fit: a zoo network by names or order, else for ONNX the network its
 * graph computes (a ModelFileError names the node it cannot run); null when neither.
 */
function runnableNetwork(path: string, contents: ModelFileContents): ZooMatch | null {
  return matchZooArchitecture(contents.tensors, layoutOf(contents.format)) ?? (contents.format === 'onnx' ? networkFromOnnxGraph(readOnnxModel(path), path) : null);
}

/**
 * Level 0 of a search from an imported model: the network as imported, measured on the run's
 * validation and test splits, so its accuracy-vs-sparsity curve starts at the dense point and its
 * tickets descend from it. Returns the ticket's id.
 */
async function saveImportedLevel(store: LabStore, runId: string, prepared: Prepared, imported: NonNullable<Prepared['imported']>): Promise<string> {
  const masks = denseMasks(prepared.specs);
  const measured = await evaluateWeights(prepared.arch, prepared.specs, prepared.dataset, imported.weights, masks);
  const [id] = store.saveLevel(runId, [
    {
      parentId: null, level: 0, method: 'imported', role: 'ticket', testAccuracy: measured.test.accuracy, earlyStopIteration: null,
      metrics: {
        reported: 'final', model: imported.id,
        final: { iteration: 0, valLoss: measured.validation.loss, valAccuracy: measured.validation.accuracy, testLoss: measured.test.loss, testAccuracy: measured.test.accuracy },
      },
      curve: [], masks, startWeights: null, finalWeights: imported.weights,
    },
  ]);
  return id!;
}

/** Refuses a dataset whose images or classes are not the imported model's. */
function expectDatasetFits(imported: { record: { id: string }; spec: { inputShape: number[]; numClasses: number } }, datasetName: string, dataset: LoadedDataset): void {
  const { inputShape, numClasses } = imported.spec;
  if (inputShape.join('x') !== dataset.imageShape.join('x') || numClasses !== dataset.numClasses) {
    throw new InvalidRequestError(`Model ${imported.record.id} takes ${inputShape.join('×')} inputs and ${numClasses} classes; ${datasetName} has ${dataset.imageShape.join('×')} images and ${dataset.numClasses} classes.`);
  }
}

/** What an imported model's record keeps: enough to rebuild its network and write masks back under the file's names. */
function importedModelSpec(name: string, fileName: string, format: string, match: ZooMatch): Record<string, unknown> {
  return {
    title: `${name} (${match.arch.id}, imported from ${format})`, name, fileName, format,
    inputShape: match.inputShape, numClasses: match.numClasses, params: match.specs, sourceNames: match.sourceNames, matchedBy: match.matchedBy,
    ...(match.kernelLayouts ? { kernelLayouts: match.kernelLayouts } : {}),
    // A network built from a file's graph is no zoo id: its layers are kept with the model.
    ...(match.matchedBy === 'graph' ? { arch: match.arch } : {}),
  };
}

/** `trained` with the entries the signature switched on set to their rewind values. */
function revived(trained: WeightSet, rewind: WeightSet, edits: SignatureEdits): WeightSet {
  const from = rewind.find((w) => w.name === edits.layer)?.values;
  return trained.map((w) => {
    if (w.name !== edits.layer || !from) return w;
    const values = Float32Array.from(w.values);
    for (const entry of edits.switchedOn) values[entry] = from[entry]!;
    return { ...w, values };
  });
}

/** A stored model's network: the zoo's by id, or the one built from its file's graph, kept with it. */
function modelArchitecture(record: ModelRecord): Architecture {
  const stored = (record.spec as { arch?: Architecture }).arch;
  return stored ?? architecture(record.architecture);
}

/** The backend record of runs trained elsewhere, by open_lth in PyTorch. */
const OPEN_LTH_BACKEND: Record<string, unknown> = {
  requested: 'none', provider: 'open_lth', tfBackend: 'open_lth (PyTorch)', versions: {}, features: {}, notes: ['trained by open_lth, imported with ticket-lab import-runs'], warnings: [],
};

function matchedArchitecture(match: ZooMatch): MatchedArchitecture {
  return { model: match.arch.id, inputShape: match.inputShape, numClasses: match.numClasses, matchedBy: match.matchedBy };
}

// ---- mapping ----

/** The training schedule a request asks for, unset fields taking the model's LTH defaults. */
function resolveSchedule(params: SearchImpParams | SearchOneShotParams | SearchAtInitParams | SearchGradualParams, arch: Architecture, trainCount: number): TrainSchedule {
  const batchSize = params.batchSize ?? arch.lthTraining.batchSize;
  if (batchSize > trainCount) throw new InvalidRequestError(`batchSize: ${batchSize} is larger than the training set (${trainCount}).`);
  const batchesPerEpoch = Math.floor(trainCount / batchSize);
  const iterations = params.iterations ?? (params.epochs !== undefined ? Math.max(1, Math.round(params.epochs * batchesPerEpoch)) : arch.lthTraining.iterations);
  if (params.rewindIteration >= iterations) {
    throw new InvalidRequestError(`rewindIteration: ${params.rewindIteration} must be less than the ${iterations} training iterations.`);
  }
  const optimizerName = params.optimizer ?? arch.lthTraining.optimizer;
  // The model's own optimiser settings apply only with its own optimiser.
  const own = optimizerName === arch.lthTraining.optimizer ? modelTraining(arch) : undefined;
  const dropFractions = params.lrDrops ?? own?.lrDropFractions ?? [];
  const drops = [...new Set(dropFractions.map((f) => Math.round(f * iterations)))].filter((at) => at > 0 && at < iterations).sort((a, b) => a - b);
  const augment = params.augment ?? modelTraining(arch).augment;
  return {
    iterations,
    batchSize,
    evalEvery: params.evalEvery,
    optimizer: {
      name: optimizerName,
      learningRate: params.learningRate ?? own?.learningRate ?? 0.1,
      momentum: params.momentum ?? own?.momentum ?? 0,
      weightDecay: params.weightDecay ?? own?.weightDecay ?? 0,
      beta1: 0.9,
      beta2: 0.999,
      epsilon: 1e-8,
    },
    ...(drops.length > 0 ? { learningRateDrops: { at: drops, factor: params.lrDropFactor ?? own?.lrDropFactor ?? 0.1 } } : {}),
    ...(augment ? { augment: { ...(arch.lthTraining.augment ?? CIFAR_AUGMENTATION) } } : {}),
  };
}

/** A model's default training, with the drops as fractions of its length (so a shorter run drops at the same fractions). */
function modelTraining(arch: Architecture): { learningRate: number; momentum: number; weightDecay: number; lrDropFractions: number[]; lrDropFactor: number | undefined; augment: boolean } {
  const t = arch.lthTraining;
  return {
    learningRate: t.learningRate,
    momentum: t.momentum,
    weightDecay: t.weightDecay,
    lrDropFractions: t.learningRateDrops ? t.learningRateDrops.epochs.map((e) => e / t.learningRateDrops!.ofEpochs) : [],
    lrDropFactor: t.learningRateDrops?.factor,
    augment: t.augment !== undefined,
  };
}

/**
 * Resolved hyper-parameters of the same search with every option left at its default, on the same
 * model and data: what runKey leaves out.
 */
function defaultSchedule<S extends z.ZodType>(schema: S, base: Record<string, unknown>, prepared: Prepared): { params: z.output<S>; schedule: TrainSchedule } {
  const params = parseRequest(schema, base) as SearchImpParams | SearchOneShotParams | SearchAtInitParams | SearchGradualParams;
  // Only hashed into the run key: on a dataset too small for the default split, the default batch still resolves.
  const batchSize = params.batchSize ?? prepared.arch.lthTraining.batchSize;
  const trainCount = Math.max(prepared.dataset.train.count + prepared.dataset.validation.count - params.validationSize, batchSize);
  return { params: params as z.output<S>, schedule: resolveSchedule(params, prepared.arch, trainCount) };
}

function impPlan(params: SearchImpParams, { arch, specs }: Prepared, schedule: TrainSchedule): ImpPlan {
  const prunable = specs.filter((s) => s.prunable);
  const rateFor = (role: ParamSpec['role']): number => {
    if (role === 'output') return params.outputRate ?? arch.lthRates.output;
    if (role === 'conv') return params.convRate ?? arch.lthRates.conv;
    return params.rate ?? arch.lthRates.fc;
  };
  const controlLevels = params.controlLevels ?? Array.from({ length: params.levels }, (_, i) => i + 1);
  return {
    levels: params.levels,
    scope: params.scope ?? arch.lthScope,
    rates: Object.fromEntries(prunable.map((s) => [s.name, rateFor(s.role)])),
    globalRate: params.rate ?? arch.lthRates.fc,
    globalTensors: prunable.map((s) => s.name),
    rewindIteration: params.rewindIteration,
    rewindTo: params.rewindTo,
    control: params.control ?? null,
    controlLevels: params.control ? [...new Set(controlLevels)].sort((a, b) => a - b) : [],
    seed: params.seed,
    schedule,
  };
}

/** The training schedule a run recorded (scheduleHparams). */
function storedSchedule(run: RunRecord): TrainSchedule {
  const h = run.hparams as Partial<TrainSchedule>;
  if (!h.iterations || !h.batchSize || !h.evalEvery || !h.optimizer) throw new InvalidRequestError(`Run ${run.id} recorded no training schedule.`);
  return scheduleFields(h as TrainSchedule);
}

/** Progress of a measure on a stored ticket, in the shape the CLI's progress line and the UI take. */
function measureProgress(runId: string, level: number, piece: string, done: number, total: number, train?: { loss: number | null; valAccuracy: number | null }): SearchProgress {
  const fraction = total > 0 ? done / total : 0;
  return { runId, level, levels: level, piece, iteration: done, startIteration: 0, endIteration: total, loss: train?.loss ?? null, valAccuracy: train?.valAccuracy ?? null, fraction, elapsedSeconds: 0, etaSeconds: null };
}

/** A schedule's own fields, and nothing else of what it was read from. */
function scheduleFields(schedule: TrainSchedule): TrainSchedule {
  return {
    iterations: schedule.iterations,
    batchSize: schedule.batchSize,
    evalEvery: schedule.evalEvery,
    optimizer: schedule.optimizer,
    // Present only when used, so the keys of runs without them stay as they were.
    ...(schedule.learningRateDrops ? { learningRateDrops: schedule.learningRateDrops } : {}),
    ...(schedule.augment ? { augment: schedule.augment } : {}),
  };
}

function scheduleHparams(schedule: TrainSchedule): Record<string, unknown> {
  return { ...scheduleFields(schedule) };
}

function impHparams(plan: ImpPlan, validationSize: number): Record<string, unknown> {
  return {
    levels: plan.levels,
    scope: plan.scope,
    rates: plan.scope === 'layer' ? plan.rates : { global: plan.globalRate },
    rewindIteration: plan.rewindIteration,
    rewindTo: plan.rewindTo,
    control: plan.control,
    controlLevels: plan.controlLevels,
    seed: plan.seed,
    ...scheduleHparams(plan.schedule),
    validationSize,
  };
}

/**
 * A run's key: hash of method, model, dataset and the hyper-parameters that differ from the
 * defaults (open_lth's desc hashing), so adding a parameter with a default keeps old keys.
 */
function runKey(method: string, model: string, dataset: string, hparams: Record<string, unknown>, defaults: Record<string, unknown>): string {
  const changed = Object.keys(hparams)
    .sort()
    .filter((key) => JSON.stringify(hparams[key]) !== JSON.stringify(defaults[key]))
    .map((key) => [key, hparams[key]]);
  return createHash('sha256').update(JSON.stringify([method, model, dataset, changed])).digest('hex').slice(0, 16);
}

function trainMetrics(result: TrainResult): Record<string, unknown> {
  return {
    earlyStop: {
      iteration: result.earlyStop.iteration,
      valLoss: result.earlyStop.validation.loss,
      valAccuracy: result.earlyStop.validation.accuracy,
      testLoss: result.earlyStop.test.loss,
      testAccuracy: result.earlyStop.test.accuracy,
    },
    final: {
      iteration: result.final.iteration,
      valLoss: result.final.validation.loss,
      valAccuracy: result.final.validation.accuracy,
      testLoss: result.final.test.loss,
      testAccuracy: result.final.test.accuracy,
    },
    steps: result.steps,
    trainSeconds: result.trainSeconds,
  };
}

/**
 * Stores IMP's outcomes level by level: a ticket with the control of its level in one transaction
 * (the ticket's outcome waits for its control), so a stored level is always whole and a resumed
 * search starts after the last one stored.
 */
function saveImpOutcome(store: LabStore, runIds: readonly string[], plan: ImpPlan, ticketAt: Array<Map<number, string>>, finished: () => void): (outcome: ImpOutcome) => void {
  const method = plan.rewindTo === 'weights' ? 'imp' : 'imp-lr-rewind';
  const waiting = new Map<number, ImpOutcome>();
  return (outcome) => {
    finished();
    const withControl = outcome.level > 0 && plan.control !== null && plan.controlLevels.includes(outcome.level);
    if (outcome.control === null && withControl) {
      waiting.set(outcome.chain, outcome);
      return;
    }
    const ticket = outcome.control === null ? outcome : waiting.get(outcome.chain)!;
    waiting.delete(outcome.chain);
    const tickets = [impTicket(ticket, ticketAt[outcome.chain]!, method)];
    if (outcome.control !== null) tickets.push({ ...impTicket(outcome, ticketAt[outcome.chain]!, method), parentInLevel: 0 });
    const [id] = store.saveLevel(runIds[outcome.chain]!, tickets, ticket.rewindWeights ? { rewindWeights: ticket.rewindWeights } : {});
    ticketAt[outcome.chain]!.set(outcome.level, id!);
  };
}

function impTicket(outcome: ImpOutcome, ticketAt: Map<number, string>, method: string): NewTicket {
  const isControl = outcome.control !== null;
  return {
    // A control hangs off the ticket of its level; a ticket off the previous level's ticket.
    parentId: (isControl ? ticketAt.get(outcome.level) : ticketAt.get(outcome.level - 1)) ?? null,
    level: outcome.level,
    method: isControl ? `${outcome.control}-control` : method,
    role: isControl ? 'control' : 'ticket',
    testAccuracy: outcome.result.earlyStop.test.accuracy,
    earlyStopIteration: outcome.result.earlyStop.iteration,
    metrics: trainMetrics(outcome.result),
    curve: outcome.result.curve,
    masks: outcome.masks,
    startWeights: outcome.startWeights,
    finalWeights: outcome.result.finalWeights,
  };
}

/** The strategy's parameters from a request's method options, validated by the strategy's own schema. */
function atInitParams(p: SearchAtInitParams): unknown {
  const raw = Object.fromEntries(Object.entries(PRUNE_AT_INIT_OPTIONS[p.method]).map(([field, param]) => [param, (p as Record<string, unknown>)[field]]));
  return strategyParams(p.method, raw);
}

/** The jackpot strategy's parameters from a one-shot request, validated by its own schema. */
function jackpotParams(p: SearchOneShotParams): unknown {
  return strategyParams('jackpot', { iterations: p.searchIterations, batchSize: p.searchBatchSize, learningRate: p.searchLearningRate });
}

/** A strategy's options (those given), parsed by its own schema; a refusal names the options. */
function strategyParams(id: string, raw: Record<string, unknown>): unknown {
  const given = Object.fromEntries(Object.entries(raw).filter(([, value]) => value !== undefined));
  const parsed = pruningStrategy(id).params.safeParse(given);
  if (!parsed.success) throw new InvalidRequestError(`${id} options: ${parsed.error.issues.map((i) => `${i.path.join('.') || 'options'}: ${i.message}`).join('; ')}`);
  return parsed.data;
}

function oneShotTicket(outcome: OneShotOutcome, parentId: string | null): NewTicket {
  const metrics: Record<string, unknown> = outcome.result ? trainMetrics(outcome.result) : {};
  if (outcome.strategyReport) metrics.strategy = outcome.strategyReport;
  if (outcome.pruned) {
    metrics.prunedBeforeRetraining = {
      valLoss: outcome.pruned.validation.loss,
      valAccuracy: outcome.pruned.validation.accuracy,
      testLoss: outcome.pruned.test.loss,
      testAccuracy: outcome.pruned.test.accuracy,
    };
  }
  return {
    parentId,
    level: outcome.level,
    method: outcome.kind === 'dense' ? 'dense' : 'oneshot-magnitude',
    role: 'ticket',
    testAccuracy: outcome.result ? outcome.result.earlyStop.test.accuracy : (outcome.pruned?.test.accuracy ?? null),
    earlyStopIteration: outcome.result ? outcome.result.earlyStop.iteration : null,
    metrics,
    curve: outcome.result?.curve ?? [],
    masks: outcome.masks,
    startWeights: outcome.startWeights,
    finalWeights: outcome.finalWeights,
  };
}

/** The store's filter for a request's filter fields. */
function ticketFilter(store: LabStore, p: z.output<typeof ListTicketsRequest>): TicketFilter {
  return {
    runId: p.run ? store.resolveRunId(p.run) : undefined, architecture: p.model, datasetName: p.dataset, method: p.method, minSparsity: p.minSparsity,
    maxSparsity: p.maxSparsity, minAccuracy: p.minAccuracy, maxAccuracy: p.maxAccuracy, role: p.role, claimed: p.claimed, owner: p.owner,
  };
}

function toRunReport(r: RunRecord): RunReport {
  return {
    id: r.id,
    runKey: r.runKey,
    method: r.method,
    model: r.architecture,
    dataset: r.datasetName,
    seed: r.seed,
    status: r.status,
    error: r.error,
    hparams: r.hparams,
    backend: r.backend,
    versions: r.versions,
    tickets: r.ticketCount,
    createdAt: r.createdAt,
    finishedAt: r.finishedAt,
  };
}
