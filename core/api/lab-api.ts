// The one contract between Ticket Lab's front ends (CLI now; IPC and the local server later) and
// its service. A method takes one request object and returns one promise.
import type { z } from 'zod';
import {
  CompareTicketsRequest,
  DbInfoRequest,
  DoctorRequest,
  InspectModelFileRequest,
  type ModelFileReport,
  PredictRequest,
  type PredictReport,
  ExportMaskRequest,
  type ExportMaskReport,
  ImportModelRequest,
  type ImportModelReport,
  ImportRunsRequest,
  type ImportRunsReport,
  KeysRequest,
  ListClaimsRequest,
  CatalogRequest,
  type CatalogReport,
  type ClaimSummary,
  type KeysReport,
  ClaimRequest,
  type ClaimReport,
  VerifyRequest,
  type VerifyReport,
  AttackRequest,
  type AttackReport,
  ExportTriggersRequest,
  type ExportTriggersReport,
  ExportBundleRequest,
  type ExportBundleReport,
  VerifyBundleRequest,
  type VerifyBundleReport,
  ImportBundleRequest,
  type ImportBundleReport,
  ListRunsRequest,
  ListTicketsRequest,
  BrowseTicketsRequest,
  type TicketPageReport,
  SearchImpRequest,
  SearchOneShotRequest,
  SearchAtInitRequest,
  SearchGradualRequest,
  CriteriaOverlapRequest,
  type CriteriaOverlapReport,
  EssentialSparsityRequest,
  type EssentialSparsityReport,
  EvaluateRequest,
  type EvaluateReport,
  InstabilityRequest,
  type InstabilityReport,
  ShowRunRequest,
  ResumeRunRequest,
  SubmitJobRequest,
  ListJobsRequest,
  CancelJobRequest,
  ResumeJobRequest,
  type JobReport,
  type JobEvent,
  ShowTicketRequest,
  TicketMasksRequest,
  type TicketMasksReport,
  type CompareResult,
  type DbInfo,
  type DoctorReport,
  type RunReport,
  type SearchProgress,
  type SearchSummary,
  type TicketDetail,
  type TicketSummary,
} from './schemas';
import { MergeDatabasesRequest, type MergeReport } from './merge-schemas';
import { SweepStatusRequest, type SweepStatusReport } from './sweep-schemas';

/** In-process extras of a long call: a cancel signal and a progress listener. Over IPC these become jobs and events. */
export interface CallOptions {
  signal?: AbortSignal;
  onProgress?: (progress: SearchProgress) => void;
  /** Things the user must hear before a long call runs (a GPU that is there but unusable, a software GPU). */
  onWarning?: (message: string) => void;
}

export interface LabApi {
  /** Iterative magnitude pruning with rewinding: one ticket per level, optional controls. */
  searchImp(request: SearchImpRequest, options?: CallOptions): Promise<SearchSummary>;
  /** One-shot magnitude pruning to a target sparsity, from a dense training or a stored ticket. */
  searchOneShot(request: SearchOneShotRequest, options?: CallOptions): Promise<SearchSummary>;
  /** Pruning at initialisation (random, ERK, SNIP, GraSP, SynFlow) to a target sparsity, then training from θ0. */
  searchAtInit(request: SearchAtInitRequest, options?: CallOptions): Promise<SearchSummary>;
  /** Gradual magnitude pruning while training, with GraNet's regrowth (or plain GMP), to a target sparsity. */
  searchGradual(request: SearchGradualRequest, options?: CallOptions): Promise<SearchSummary>;
  /** Overlap of a ticket's mask with what magnitude, SNIP, GraSP, SynFlow and random would keep at its sparsity. */
  criteriaOverlap(request: CriteriaOverlapRequest, options?: CallOptions): Promise<CriteriaOverlapReport>;
  /** One-shot magnitude sweep of a ticket's trained weights without retraining: where accuracy starts to fall. */
  essentialSparsity(request: EssentialSparsityRequest, options?: CallOptions): Promise<EssentialSparsityReport>;
  /** Linear mode connectivity: two copies from the ticket's start, the error barrier on the line between them. */
  instability(request: InstabilityRequest, options?: CallOptions): Promise<InstabilityReport>;
  /** A ticket (its trained weights under its mask) or an imported model measured on a dataset's validation and test splits. */
  evaluate(request: EvaluateRequest): Promise<EvaluateReport>;
  listTickets(request: ListTicketsRequest): Promise<TicketSummary[]>;
  /** One sorted page of the tickets a filter selects, and the total (the UI's table). */
  browseTickets(request: BrowseTicketsRequest): Promise<TicketPageReport>;
  showTicket(request: ShowTicketRequest): Promise<TicketDetail>;
  /** A ticket's masks as pictures, one row per output unit (the heat-maps of the detail screen). */
  ticketMasks(request: TicketMasksRequest): Promise<TicketMasksReport>;
  compareTickets(request: CompareTicketsRequest): Promise<CompareResult>;
  listRuns(request: ListRunsRequest): Promise<RunReport[]>;
  /** A stored run as its search returned it: the lineage's tickets and controls, level by level (the accuracy-vs-sparsity curve). */
  showRun(request: ShowRunRequest): Promise<SearchSummary>;
  dbInfo(request: DbInfoRequest): Promise<DbInfo>;
  /** The zoo's models with their paper defaults, the datasets found here, the methods: what a search form offers. */
  catalog(request: CatalogRequest): Promise<CatalogReport>;
  /** Which compute backends run here, which one a search would use, and why. */
  doctor(request: DoctorRequest): Promise<DoctorReport>;
  /** A model file's format and tensors (name, shape, dtype, sums), read without storing anything. */
  inspectModelFile(request: InspectModelFileRequest): Promise<ModelFileReport>;
  /** A model file's logits for a batch of inputs (.npy), to check the import against the framework that wrote the file. */
  predict(request: PredictRequest): Promise<PredictReport>;
  /** A ticket's masks (`<layer>.weight_mask`) and trained weights in PyTorch's names and layouts, as safetensors, .npz or a torch.save state dict. */
  exportMask(request: ExportMaskRequest): Promise<ExportMaskReport>;
  /** A model file into the store, matched to its zoo network and converted to TF.js layouts; the same bytes give the same model. */
  importModel(request: ImportModelRequest): Promise<ImportModelReport>;
  /** An open_lth experiment folder as runs: per replicate, one IMP run whose levels are a lineage of tickets. */
  importRuns(request: ImportRunsRequest): Promise<ImportRunsReport>;
  /** The owner's ECDSA P-256 key (made with `create`, or by a first claim) and the public keys the store knows. */
  keys(request: KeysRequest): Promise<KeysReport>;
  /** The claims the store knows, each with its claimed ticket and its latest stored verdicts. */
  listClaims(request: ListClaimsRequest): Promise<ClaimSummary[]>;
  /** Claims a ticket: the owner's graph signature in its mask and/or a trigger set trained in; the claimed ticket is a child, retrained. */
  claim(request: ClaimRequest, options?: CallOptions): Promise<ClaimReport>;
  /** A suspect (ticket or model file) against one claim or all: a verdict per scheme with score, threshold, p-value and evidence, stored. */
  verify(request: VerifyRequest): Promise<VerifyReport>;
  /** Attacks one's own claim (fine-tuning, pruning, re-training, ambiguity, permutation) and checks every attacked network, verdicts stored. */
  attack(request: AttackRequest, options?: CallOptions): Promise<AttackReport>;
  /** A trigger-set claim's images (owner key needed) as a normalised .npy, to query a suspect in another framework; `verify --logits` scores the answers. */
  exportTriggers(request: ExportTriggersRequest): Promise<ExportTriggersReport>;
  /** A ticket as a signed bundle (.tlb): manifest, masks, optional weights and lineage, OMS v1.0 model.sig by the owner's key. */
  exportBundle(request: ExportBundleRequest): Promise<ExportBundleReport>;
  /** Continues an interrupted or cancelled IMP run after its last stored level; the result is the uninterrupted run's. */
  resumeRun(request: ResumeRunRequest, options?: CallOptions): Promise<SearchSummary>;
  /** Queues a long call as a job run in a worker thread; with wait, follows it to the end (progress to onProgress, cancel through signal). */
  submitJob(request: SubmitJobRequest, options?: CallOptions): Promise<JobReport>;
  /** The jobs, a killed process's marked interrupted. */
  listJobs(request: ListJobsRequest): Promise<JobReport[]>;
  /** Cancels a queued job now, a running one (in any process) at its next safe point. */
  cancelJob(request: CancelJobRequest): Promise<JobReport>;
  /** Puts a stopped job back in the queue (an IMP job continues its run); with wait, follows it to the end. */
  resumeJob(request: ResumeJobRequest, options?: CallOptions): Promise<JobReport>;
  /** Every job's progress, warnings and state changes, as they happen; returns the unsubscribe. An event, not a request: not in LAB_API_METHODS. */
  onJobEvent(listener: (event: JobEvent) => void): () => void;
  /** Checks a bundle (or an OMS-signed folder): signature, digests, no unlisted file; stores nothing. */
  verifyBundle(request: VerifyBundleRequest): Promise<VerifyBundleReport>;
  /** Verifies a bundle, then stores its ticket, lineage, claims and keys in one transaction. */
  importBundle(request: ImportBundleRequest): Promise<ImportBundleReport>;
  /** Folds task databases (a Slurm sweep's) into this one, each file in one transaction; a refused file is reported by name, the others merge. */
  mergeDatabases(request: MergeDatabasesRequest): Promise<MergeReport>;
  /** A Slurm sweep's tasks (done, running, pending, failed with its last error) from its folder, squeue and sacct; writes nothing. */
  sweepStatus(request: SweepStatusRequest): Promise<SweepStatusReport>;
}

/** The LabApi's event subscriptions (onXxx): not requests, so not in LAB_API_METHODS. */
export type LabApiEvent = 'onJobEvent';

/** Every method with the validator of its request: the list transports are built from. */
export const LAB_API_METHODS = {
  searchImp: SearchImpRequest,
  searchOneShot: SearchOneShotRequest,
  searchAtInit: SearchAtInitRequest,
  searchGradual: SearchGradualRequest,
  criteriaOverlap: CriteriaOverlapRequest,
  essentialSparsity: EssentialSparsityRequest,
  instability: InstabilityRequest,
  evaluate: EvaluateRequest,
  listTickets: ListTicketsRequest,
  browseTickets: BrowseTicketsRequest,
  showTicket: ShowTicketRequest,
  ticketMasks: TicketMasksRequest,
  compareTickets: CompareTicketsRequest,
  listRuns: ListRunsRequest,
  showRun: ShowRunRequest,
  dbInfo: DbInfoRequest,
  catalog: CatalogRequest,
  doctor: DoctorRequest,
  inspectModelFile: InspectModelFileRequest,
  predict: PredictRequest,
  exportMask: ExportMaskRequest,
  importModel: ImportModelRequest,
  importRuns: ImportRunsRequest,
  keys: KeysRequest,
  listClaims: ListClaimsRequest,
  claim: ClaimRequest,
  verify: VerifyRequest,
  attack: AttackRequest,
  exportTriggers: ExportTriggersRequest,
  exportBundle: ExportBundleRequest,
  resumeRun: ResumeRunRequest,
  submitJob: SubmitJobRequest,
  listJobs: ListJobsRequest,
  cancelJob: CancelJobRequest,
  resumeJob: ResumeJobRequest,
  verifyBundle: VerifyBundleRequest,
  importBundle: ImportBundleRequest,
  mergeDatabases: MergeDatabasesRequest,
  sweepStatus: SweepStatusRequest,
} satisfies { [K in Exclude<keyof LabApi, LabApiEvent>]: z.ZodType };

export type LabApiMethod = keyof typeof LAB_API_METHODS;
