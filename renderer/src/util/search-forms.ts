// The search form's fields per method, how its text becomes a request, and the request checked by
// the very schema the service parses it with (core/api/schemas.ts), so the form and the service
// never disagree about what is valid.
import { z } from 'zod';
import { BackendChoice, type CatalogReport, PRUNE_AT_INIT_METHODS, PRUNE_AT_INIT_OPTIONS, SearchAtInitRequest, SearchGradualRequest, SearchImpRequest, SearchOneShotRequest } from '../../../core/api/schemas';

export type SearchMethod = 'searchImp' | 'searchOneShot' | 'searchAtInit' | 'searchGradual';
export type FormValues = Record<string, string | boolean>;

export interface SearchField {
  /** The request's field; `seeds` on IMP writes `seed` for one seed and `seeds` for several. */
  name: string;
  label: string;
  kind: 'text' | 'number' | 'integer' | 'select' | 'checkbox' | 'integer-list';
  group: 'network' | 'pruning' | 'training' | 'more';
  hint?: string;
  /** Select: what leaving it unset means ("model default"); without it the select has no empty choice. */
  unset?: string;
  /** Text: the datalist of suggestions. */
  suggest?: 'models' | 'datasets';
  /** Shown (and sent) only when this holds of the form. */
  when?: (values: FormValues) => boolean;
}

const network: SearchField[] = [
  { name: 'model', label: 'Model', kind: 'text', group: 'network', suggest: 'models', hint: 'A zoo network, lenet-<widths>, or an imported model (md_…)' },
  { name: 'dataset', label: 'Dataset', kind: 'text', group: 'network', suggest: 'datasets' },
];
const sparsity: SearchField = { name: 'sparsity', label: 'Sparsity', kind: 'number', group: 'pruning', hint: 'Fraction pruned, 0–1 (0.9 keeps 10 %)' };
const scope: SearchField = { name: 'scope', label: 'Scope', kind: 'select', group: 'pruning', unset: 'default' };
const rewind: SearchField = { name: 'rewindIteration', label: 'Rewind iteration', kind: 'integer', group: 'pruning', hint: 'θk the kept weights rewind to' };

const training: SearchField[] = [
  { name: 'iterations', label: 'Iterations', kind: 'integer', group: 'training', hint: 'Per training; or give epochs' },
  { name: 'epochs', label: 'Epochs', kind: 'number', group: 'training' },
  { name: 'batchSize', label: 'Batch size', kind: 'integer', group: 'training' },
  { name: 'learningRate', label: 'Learning rate', kind: 'number', group: 'training' },
  { name: 'optimizer', label: 'Optimizer', kind: 'select', group: 'training', unset: 'model default' },
  { name: 'backend', label: 'Backend', kind: 'select', group: 'training' },
  { name: 'momentum', label: 'Momentum', kind: 'number', group: 'more' },
  { name: 'weightDecay', label: 'Weight decay', kind: 'number', group: 'more' },
  { name: 'lrDropFactor', label: 'LR drop factor', kind: 'number', group: 'more' },
  { name: 'evalEvery', label: 'Evaluate every (iterations)', kind: 'integer', group: 'more' },
  { name: 'validationSize', label: 'Validation hold-out', kind: 'integer', group: 'more' },
];
const seed: SearchField = { name: 'seed', label: 'Seed', kind: 'integer', group: 'training' };

const atInit = (values: FormValues, ...methods: string[]) => methods.includes(String(values.method));
const jackpot = (values: FormValues) => values.criterion === 'jackpot';

export const SEARCH_METHODS: Record<SearchMethod, { title: string; schema: z.ZodObject; fields: SearchField[]; initial: FormValues }> = {
  searchImp: {
    title: 'IMP with rewinding',
    schema: SearchImpRequest,
    fields: [
      ...network,
      { name: 'levels', label: 'Levels', kind: 'integer', group: 'pruning', hint: 'Prune–retrain rounds' },
      { name: 'rate', label: 'Rate per level', kind: 'number', group: 'pruning', hint: 'Fully connected layers (LTH: 0.2)' },
      { name: 'convRate', label: 'Conv rate', kind: 'number', group: 'pruning' },
      { name: 'outputRate', label: 'Output rate', kind: 'number', group: 'pruning' },
      scope,
      { name: 'control', label: 'Control', kind: 'select', group: 'pruning', unset: 'none' },
      { name: 'rewindTo', label: 'Rewind', kind: 'select', group: 'pruning' },
      rewind,
      { name: 'seeds', label: 'Seeds', kind: 'integer-list', group: 'training', hint: 'One, or several: 0, 1, 2' },
      ...training,
    ],
    initial: { model: 'lenet-300-100', dataset: 'mnist', levels: '3', backend: 'auto', rewindTo: 'weights', seeds: '0' },
  },
  searchOneShot: {
    title: 'One-shot magnitude',
    schema: SearchOneShotRequest,
    fields: [
      ...network,
      { name: 'fromTicket', label: 'From ticket', kind: 'text', group: 'network', hint: 'Prune a stored ticket instead of training dense first' },
      sparsity,
      { name: 'criterion', label: 'Criterion', kind: 'select', group: 'pruning' },
      { ...scope, when: (values) => !jackpot(values) },
      { name: 'retrain', label: 'Retrain after pruning', kind: 'checkbox', group: 'pruning' },
      rewind,
      { name: 'searchIterations', label: 'Jackpot search iterations', kind: 'integer', group: 'pruning', when: jackpot },
      { name: 'searchBatchSize', label: 'Jackpot batch size', kind: 'integer', group: 'pruning', when: jackpot },
      { name: 'searchLearningRate', label: 'Jackpot learning rate', kind: 'number', group: 'pruning', when: jackpot },
      seed,
      ...training,
    ],
    initial: { model: 'lenet-300-100', dataset: 'mnist', sparsity: '0.9', criterion: 'magnitude', retrain: true, backend: 'auto' },
  },
  searchAtInit: {
    title: 'Pruning at initialisation',
    schema: SearchAtInitRequest,
    fields: [
      { name: 'method', label: 'Criterion', kind: 'select', group: 'network', hint: PRUNE_AT_INIT_METHODS.join(', ') },
      ...network,
      sparsity,
      { ...scope, when: (values) => !atInit(values, 'erk') },
      { name: 'train', label: 'Train from θ0 (else only evaluate)', kind: 'checkbox', group: 'pruning' },
      { name: 'kernelAware', label: 'Kernel-aware (ERK)', kind: 'checkbox', group: 'pruning', when: (values) => atInit(values, 'erk') },
      { name: 'examplesPerClass', label: 'Examples per class', kind: 'integer', group: 'pruning', when: (values) => atInit(values, ...methodsWith('examplesPerClass')) },
      { name: 'temperature', label: 'Temperature', kind: 'number', group: 'pruning', when: (values) => atInit(values, ...methodsWith('temperature')) },
      { name: 'hessian', label: 'Hessian', kind: 'select', group: 'pruning', unset: 'auto', when: (values) => atInit(values, ...methodsWith('hessian')) },
      { name: 'rounds', label: 'Rounds', kind: 'integer', group: 'pruning', when: (values) => atInit(values, ...methodsWith('rounds')) },
      { name: 'roundSchedule', label: 'Round schedule', kind: 'select', group: 'pruning', unset: 'default', when: (values) => atInit(values, ...methodsWith('roundSchedule')) },
      seed,
      ...training,
    ],
    initial: { method: 'snip', model: 'lenet-300-100', dataset: 'mnist', sparsity: '0.9', train: true, kernelAware: false, backend: 'auto' },
  },
  searchGradual: {
    title: 'Gradual pruning (GraNet / GMP)',
    schema: SearchGradualRequest,
    fields: [
      ...network,
      sparsity,
      { name: 'initialDensity', label: 'Initial density', kind: 'number', group: 'pruning', hint: '1 = dense to sparse; below 1 = sparse to sparse' },
      { name: 'regrow', label: 'Regrow (GraNet; off = plain GMP)', kind: 'checkbox', group: 'pruning' },
      { name: 'regrowthRate', label: 'Regrowth rate', kind: 'number', group: 'pruning', when: (values) => values.regrow === true },
      { name: 'finalRegrowthRate', label: 'Final regrowth rate', kind: 'number', group: 'pruning', when: (values) => values.regrow === true },
      { name: 'updateEvery', label: 'Update mask every', kind: 'integer', group: 'pruning' },
      { name: 'pruneStart', label: 'Prune from (fraction)', kind: 'number', group: 'pruning' },
      { name: 'pruneEnd', label: 'Prune until (fraction)', kind: 'number', group: 'pruning' },
      seed,
      ...training,
    ],
    initial: { model: 'lenet-300-100', dataset: 'mnist', sparsity: '0.9', regrow: true, backend: 'auto' },
  },
};

function methodsWith(option: string): string[] {
  return PRUNE_AT_INIT_METHODS.filter((method) => option in PRUNE_AT_INIT_OPTIONS[method]);
}

/** A field's schema without its optional/default wrappers. */
function bare(schema: z.ZodObject, name: string): z.ZodType | undefined {
  let field = schema.shape[name] as z.ZodType | undefined;
  while (field instanceof z.ZodOptional || field instanceof z.ZodDefault) field = field.unwrap() as z.ZodType;
  return field;
}

/** A select's choices, read from the schema's enum (BackendChoice for the backend). */
export function choicesOf(method: SearchMethod, name: string): string[] {
  const field = name === 'backend' ? BackendChoice : bare(SEARCH_METHODS[method].schema, name);
  return field instanceof z.ZodEnum ? (field.options as string[]) : [];
}

/** The schema's default of a field, shown as the placeholder of an empty input. */
export function defaultOf(method: SearchMethod, name: string): string | undefined {
  const field = SEARCH_METHODS[method].schema.shape[name === 'seeds' ? 'seed' : name];
  if (!(field instanceof z.ZodDefault)) return undefined;
  const value: unknown = field.def.defaultValue;
  return value === undefined ? undefined : String(value);
}

type ModelDefaults = CatalogReport['models'][number]['defaults'];

/**
 * What an empty field means for the chosen zoo model (the catalog's paper defaults), shown in the
 * field: IMP takes scope and per-layer rates from the model; the other methods choose their own scope.
 */
export function modelDefaultOf(method: SearchMethod, name: string, defaults: ModelDefaults | undefined): string | undefined {
  if (!defaults) return undefined;
  const shared: Record<string, string | number> = { iterations: defaults.iterations, batchSize: defaults.batchSize, learningRate: defaults.learningRate, optimizer: defaults.optimizer };
  const imp: Record<string, string | number> = { scope: defaults.scope, rate: defaults.rates.fc, convRate: defaults.rates.conv, outputRate: defaults.rates.output };
  const value = shared[name] ?? (method === 'searchImp' ? imp[name] : undefined);
  return value === undefined ? undefined : String(value);
}

export const visibleFields = (method: SearchMethod, values: FormValues) => SEARCH_METHODS[method].fields.filter((field) => field.when?.(values) ?? true);

const NOT_A_NUMBER = 'must be a number';

/** The form's text as a request: empty inputs left out (the schema's defaults apply), numbers parsed. */
function requestOf(method: SearchMethod, values: FormValues): { request: Record<string, unknown>; unparsed: Record<string, string> } {
  const request: Record<string, unknown> = {};
  const unparsed: Record<string, string> = {};
  for (const field of visibleFields(method, values)) {
    const value = values[field.name];
    if (field.kind === 'checkbox') {
      request[field.name] = value === true;
      continue;
    }
    const text = typeof value === 'string' ? value.trim() : '';
    if (text === '') continue;
    if (field.kind === 'integer-list') {
      const numbers = text.split(/[\s,]+/).filter(Boolean).map(Number);
      if (numbers.some(Number.isNaN)) unparsed[field.name] = 'give whole numbers separated by commas';
      else if (numbers.length === 1) request.seed = numbers[0];
      else request.seeds = numbers;
    } else if (field.kind === 'number' || field.kind === 'integer') {
      const number = Number(text);
      if (Number.isNaN(number)) unparsed[field.name] = NOT_A_NUMBER;
      else request[field.name] = number;
    } else {
      request[field.name] = text;
    }
  }
  return { request, unparsed };
}

export interface SearchCheck {
  /** What Start sends; only meaningful when `valid`. */
  request: Record<string, unknown>;
  /** Messages by form field. */
  issues: Record<string, string[]>;
  /** Messages that belong to no field shown. */
  general: string[];
  valid: boolean;
}

/** The form checked by the method's own request schema, each issue placed next to its field. */
export function checkSearch(method: SearchMethod, values: FormValues): SearchCheck {
  const { request, unparsed } = requestOf(method, values);
  const issues: Record<string, string[]> = Object.fromEntries(Object.entries(unparsed).map(([name, message]) => [name, [message]]));
  const general: string[] = [];
  const shown = new Set(visibleFields(method, values).map((field) => field.name));
  const parsed = SEARCH_METHODS[method].schema.safeParse(request);
  for (const issue of parsed.success ? [] : parsed.error.issues) {
    const path = String(issue.path[0] ?? '');
    const name = (path === 'seed' || path === 'seeds') && shown.has('seeds') ? 'seeds' : path;
    if (unparsed[name]) continue;
    const message = issue.code === 'invalid_type' && request[path] === undefined ? 'required' : issue.message;
    if (shown.has(name)) (issues[name] ??= []).push(message);
    else general.push(path ? `${path}: ${message}` : message);
  }
  return { request, issues, general, valid: parsed.success && Object.keys(unparsed).length === 0 };
}
