// A reader for the experiment folders of facebookresearch/open_lth (lottery ticket runs), as its
// source writes them (foundations/paths.py, lottery/desc.py, lottery/runner.py, pruning/mask.py,
// training/metric_logger.py, foundations/hparams.py):
//   <root>/lottery_<md5>/replicate_<k>/level_<n>/main/     n = 0 is the dense network
//     mask.pth              torch.save({name: 0/1 int32 tensor}) for every prunable weight
//     model_ep<E>_it<I>.pth torch.save(model.state_dict()): the start weights of the level (the mask
//                           applied; ep0_it0 unless rewinding) and the final weights
//     sparsity_report.json  {"total": N, "unpruned": M} (floats)
//     logger                lines `name,iteration,value`, the iteration being the overall step
//                           (Step.iteration, an integer: `test_accuracy,938,0.9716`)
//     hparams.log           level 0 only: sections (`Training Hyperparameters`) of `    * lr => 0.1` lines
//     checkpoint.pth        the resume checkpoint (optimizer state): not read
//   <root>/lottery_<md5>/replicate_<k>/level_pretrain/main/  with --pretrain or --rewinding_steps
// Branches (`level_<n>/<branch>_<md5>/`) and other runs (`train_<md5>/`) are not read.
// The folder comes from users and the internet: links out of it are refused, every file is read
// through the format readers within ReadLimits, and a malformed file is a ModelFileError naming the
// file (and the line, for the text files). A missing file is tolerated and listed in `warnings`.
import { lstatSync, readdirSync, realpathSync, statSync, type Stats } from 'node:fs';
import { basename, join, sep } from 'node:path';
import { errorText, quote, readFileBytes } from './file-bytes';
import { DEFAULT_READ_LIMITS, ModelFileError, type FileTensor, type ReadLimits } from './model-format';
import { pytorchFormat } from './pytorch';

/** A point of training, as open_lth's model file names write it: epoch, and iteration within the epoch. */
export interface OpenLthStep {
  epoch: number;
  iteration: number;
}

/** One logger value. */
export interface OpenLthMetricPoint {
  /** The overall training iteration, as the logger writes it (open_lth's Step.iteration). */
  step: number;
  /** `step` split into epoch and iteration within it, when the level's iterations per epoch are known; else null. */
  epoch: number | null;
  iteration: number | null;
  value: number;
}

/** What one run folder (`level_<n>/main` or `level_pretrain/main`) holds. */
export interface OpenLthRun {
  /** The `main` folder. */
  path: string;
  /** mask.pth: 0/1 per prunable weight, in the model's names; null when absent (a warning says so). */
  mask: FileTensor[] | null;
  /** The earliest model_ep*_it*.pth (ep0_it0, or the rewinding step): the start weights, this level's mask applied. */
  initialWeights: FileTensor[] | null;
  initialStep: OpenLthStep | null;
  /** The model_ep*_it*.pth of the largest (epoch, iteration) other than ep0_it0: the trained weights. */
  finalWeights: FileTensor[] | null;
  finalStep: OpenLthStep | null;
  /** The file `finalWeights` came from. */
  finalWeightsFile: string | null;
  sparsityReport: { total: number; unpruned: number } | null;
  /** Derived from the final step and the logger's last step; null when they cannot tell. */
  iterationsPerEpoch: number | null;
  /** Logger values by name (`test_accuracy`, `test_loss`, `test_examples`), sorted by step. */
  metrics: Record<string, OpenLthMetricPoint[]>;
  /** hparams.log: section title → key → value as written; {} where absent (open_lth writes it at level 0 only). */
  hparams: Record<string, Record<string, string>>;
}

export interface OpenLthLevel extends OpenLthRun {
  level: number;
}

export interface OpenLthReplicate {
  replicate: number;
  path: string;
  /** Sorted by level number; level 0 is the dense network. */
  levels: OpenLthLevel[];
  /** level_pretrain/main, when the experiment pretrained (or rewound). */
  pretrain: OpenLthRun | null;
}

export interface OpenLthExperimentFolder {
  /** `lottery_<md5 of the hyperparameters>`. */
  name: string;
  path: string;
  /** Sorted by replicate number. */
  replicates: OpenLthReplicate[];
}

export interface OpenLthExperiment {
  /** The folder read, links resolved. */
  root: string;
  /** Sorted by name. */
  experiments: OpenLthExperimentFolder[];
  /** Files and folders that were missing or skipped, each naming its path. */
  warnings: string[];
}

const EXPERIMENT = /^lottery_[0-9a-f]{32}$/;
const REPLICATE = /^replicate_([1-9][0-9]*)$/;
const LEVEL = /^level_(0|[1-9][0-9]*)$/;
const MODEL_FILE = /^model_ep(0|[1-9][0-9]*)_it(0|[1-9][0-9]*)\.pth$/;
const NATURAL = /^(0|[1-9][0-9]*)$/;
/** Python's repr of a float: what MetricLogger writes (`0.9716`, `10000.0`, `1e-05`, `nan`, `inf`). */
const PY_FLOAT = /^[+-]?(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|nan|inf|infinity)$/i;
const HPARAM_LINE = /^\s+\* ([A-Za-z_][A-Za-z0-9_]*) =>(?: (.*))?$/;
const SECTION_TITLE = /^[A-Za-z0-9][^=*]*$/;

/** Reads an open_lth root (a folder of lottery_<md5> experiments) or one lottery_<md5> folder. */
export function readOpenLthExperiment(dir: string, limits: ReadLimits = DEFAULT_READ_LIMITS): OpenLthExperiment {
  let root: string;
  try {
    root = realpathSync(dir);
  } catch (error) {
    throw new ModelFileError(dir, `cannot be read (${errorText(error)}).`, { cause: error });
  }
  const reader = new FolderReader(root, limits);
  if (!reader.stat(root).isDirectory()) throw new ModelFileError(dir, 'is not a folder; give the open_lth root or one of its lottery_<hash> folders.');

  const experiments: OpenLthExperimentFolder[] = [];
  if (EXPERIMENT.test(basename(root)) && reader.list(root).some((name) => REPLICATE.test(name))) {
    experiments.push(reader.experiment(root));
  } else {
    for (const name of reader.list(root)) {
      const path = join(root, name);
      if (!EXPERIMENT.test(name)) {
        if (name.startsWith('lottery_')) reader.warn(`${path}: skipped, not named lottery_<32 hex digits> as open_lth names experiments.`);
        continue;
      }
      const stats = reader.entry(path);
      if (!stats?.isDirectory()) {
        reader.warn(`${path}: skipped, not a folder.`);
        continue;
      }
      experiments.push(reader.experiment(path));
    }
  }
  if (experiments.length === 0) throw new ModelFileError(dir, 'holds no open_lth lottery experiment (no lottery_<hash>/replicate_<k> folders).');
  return { root, experiments, warnings: reader.warnings };
}

class FolderReader {
  readonly warnings: string[] = [];
  /** Text files (logger, hparams.log, sparsity_report.json) are metadata: bounded like a header. */
  private readonly textLimits: ReadLimits;

  constructor(
    private readonly root: string,
    private readonly limits: ReadLimits,
  ) {
    this.textLimits = { ...limits, maxFileBytes: Math.min(limits.maxFileBytes, limits.maxHeaderBytes) };
  }

  warn(message: string): void {
    this.warnings.push(message);
  }

  stat(path: string): Stats {
    try {
      return statSync(path);
    } catch (error) {
      throw new ModelFileError(path, `cannot be read (${errorText(error)}).`, { cause: error });
    }
  }

  /** The entry at `path` (a link followed only when it stays inside the root), or null when there is none. */
  entry(path: string): Stats | null {
    let stats: Stats;
    try {
      stats = lstatSync(path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw new ModelFileError(path, `cannot be read (${errorText(error)}).`, { cause: error });
    }
    if (!stats.isSymbolicLink()) return stats;
    let target: string;
    try {
      target = realpathSync(path);
    } catch (error) {
      throw new ModelFileError(path, `is a symbolic link that does not resolve (${errorText(error)}).`, { cause: error });
    }
    const inside = target === this.root || target.startsWith(this.root.endsWith(sep) ? this.root : this.root + sep);
    if (!inside) throw new ModelFileError(path, `is a symbolic link to ${quote(target)}, outside ${quote(this.root)}; links out of the folder being read are refused.`);
    return this.stat(target);
  }

  /** A file that must be a regular file when present (a FIFO or device would block or never end). */
  file(path: string): boolean {
    const stats = this.entry(path);
    if (stats === null) return false;
    if (!stats.isFile()) throw new ModelFileError(path, 'is not a regular file.');
    return true;
  }

  list(path: string): string[] {
    try {
      return readdirSync(path).sort();
    } catch (error) {
      throw new ModelFileError(path, `cannot be listed (${errorText(error)}).`, { cause: error });
    }
  }

  text(path: string): string {
    const bytes = readFileBytes(path, this.textLimits);
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    } catch (error) {
      throw new ModelFileError(path, 'is not UTF-8 text.', { cause: error });
    }
  }

  experiment(path: string): OpenLthExperimentFolder {
    const replicates: OpenLthReplicate[] = [];
    for (const name of this.list(path)) {
      const match = REPLICATE.exec(name);
      if (!match) continue;
      const folder = join(path, name);
      if (!this.entry(folder)?.isDirectory()) {
        this.warn(`${folder}: skipped, not a folder.`);
        continue;
      }
      replicates.push(this.replicate(folder, Number(match[1])));
    }
    replicates.sort((a, b) => a.replicate - b.replicate);
    if (replicates.length === 0) this.warn(`${path}: no replicate_<k> folders.`);
    return { name: basename(path), path, replicates };
  }

  replicate(path: string, replicate: number): OpenLthReplicate {
    const levels: OpenLthLevel[] = [];
    let pretrain: OpenLthRun | null = null;
    for (const name of this.list(path)) {
      const match = LEVEL.exec(name);
      if (!match && name !== 'level_pretrain') {
        if (name.startsWith('level_')) this.warn(`${join(path, name)}: skipped, not level_<n> or level_pretrain.`);
        continue;
      }
      const folder = join(path, name);
      if (!this.entry(folder)?.isDirectory()) {
        this.warn(`${folder}: skipped, not a folder.`);
        continue;
      }
      const main = join(folder, 'main');
      if (!this.entry(main)?.isDirectory()) {
        this.warn(`${main}: missing; ${name} skipped.`);
        continue;
      }
      if (match) levels.push({ level: Number(match[1]), ...this.run(main, Number(match[1])) });
      else pretrain = this.run(main, null);
    }
    levels.sort((a, b) => a.level - b.level);
    if (levels.length === 0) this.warn(`${path}: no level_<n>/main folders.`);
    const numbers = new Set(levels.map((l) => l.level));
    const last = levels.length === 0 ? -1 : levels[levels.length - 1]!.level;
    const gaps = Array.from({ length: last + 1 }, (_, i) => i).filter((n) => !numbers.has(n));
    if (gaps.length > 0) this.warn(`${path}: no folder for level ${gaps.slice(0, 8).join(', ')}${gaps.length > 8 ? ', …' : ''}.`);
    return { replicate, path, levels, pretrain };
  }

  /** One `main` folder; `level` null for level_pretrain (which has no mask, report or hparams). */
  run(path: string, level: number | null): OpenLthRun {
    const missing = (file: string, what: string) => this.warn(`${join(path, file)}: missing (${what}).`);

    // Model files: the earliest is the start, the latest (other than ep0_it0) the trained weights.
    const models: { name: string; step: OpenLthStep }[] = [];
    for (const name of this.list(path)) {
      const match = MODEL_FILE.exec(name);
      if (match) models.push({ name, step: { epoch: Number(match[1]), iteration: Number(match[2]) } });
      else if (name.startsWith('model_') && name.endsWith('.pth')) this.warn(`${join(path, name)}: skipped, not model_ep<E>_it<I>.pth.`);
    }
    models.sort((a, b) => a.step.epoch - b.step.epoch || a.step.iteration - b.step.iteration);
    const isZero = (s: OpenLthStep) => s.epoch === 0 && s.iteration === 0;
    let initial: (typeof models)[number] | null = null;
    let final: (typeof models)[number] | null = null;
    if (models.length >= 2) {
      initial = models[0]!;
      final = models[models.length - 1]!;
      for (const skipped of models.slice(1, -1)) this.warn(`${join(path, skipped.name)}: skipped, neither the start nor the final weights.`);
    } else if (models.length === 1) {
      if (isZero(models[0]!.step)) initial = models[0]!;
      else final = models[0]!;
    }
    if (initial === null) missing('model_ep0_it0.pth', 'the start weights');
    if (final === null) missing('model_ep<E>_it<I>.pth', 'the final weights');
    const readModel = (entry: (typeof models)[number] | null) => {
      if (entry === null) return null;
      const file = join(path, entry.name);
      if (!this.file(file)) return null;
      return pytorchFormat.read(file, this.limits).tensors;
    };
    const initialWeights = readModel(initial);
    const finalWeights = readModel(final);

    let mask: FileTensor[] | null = null;
    const maskPath = join(path, 'mask.pth');
    if (this.file(maskPath)) mask = checkMask(maskPath, pytorchFormat.read(maskPath, this.limits).tensors, finalWeights ?? initialWeights);
    else if (level !== null) missing('mask.pth', level === 0 ? 'level 0 is dense' : 'the pruning mask of this level');

    let sparsityReport: OpenLthRun['sparsityReport'] = null;
    const reportPath = join(path, 'sparsity_report.json');
    if (this.file(reportPath)) sparsityReport = parseSparsityReport(reportPath, this.text(reportPath), mask);
    else if (level !== null) missing('sparsity_report.json', 'the sparsity report');

    const loggerPath = join(path, 'logger');
    const logged = this.file(loggerPath) ? parseLogger(loggerPath, this.text(loggerPath)) : null;
    if (logged === null) missing('logger', 'the metrics');

    const hparamsPath = join(path, 'hparams.log');
    let hparams: OpenLthRun['hparams'] = {};
    if (this.file(hparamsPath)) hparams = parseHparamsLog(hparamsPath, this.text(hparamsPath));
    else if (level === 0) missing('hparams.log', 'the hyperparameters');

    // The logger's last step is the final weights' step (open_lth evaluates at the end of training).
    let iterationsPerEpoch: number | null = null;
    let lastStep = -1;
    for (const points of logged?.values() ?? []) for (const p of points) lastStep = Math.max(lastStep, p.step);
    const finalStep = final?.step ?? null;
    if (finalStep && lastStep >= 0 && finalStep.epoch > 0) {
      const perEpoch = (lastStep - finalStep.iteration) / finalStep.epoch;
      if (Number.isSafeInteger(perEpoch) && perEpoch > finalStep.iteration) iterationsPerEpoch = perEpoch;
    }
    const withinFirstEpoch = finalStep !== null && finalStep.epoch === 0 && lastStep <= finalStep.iteration;
    if (lastStep >= 0 && iterationsPerEpoch === null && !withinFirstEpoch) {
      this.warn(`${loggerPath}: its steps cannot be split into epochs (the final weights' step ${finalStep ? `ep${finalStep.epoch}_it${finalStep.iteration}` : 'is unknown'}, the last logged step ${lastStep}).`);
    }
    const metrics: OpenLthRun['metrics'] = Object.fromEntries(
      [...(logged ?? new Map<string, { step: number; value: number }[]>())].map(([name, points]) => [
        name,
        points.map(({ step, value }) => {
          if (iterationsPerEpoch !== null) return { step, epoch: Math.floor(step / iterationsPerEpoch), iteration: step % iterationsPerEpoch, value };
          if (withinFirstEpoch) return { step, epoch: 0, iteration: step, value };
          return { step, epoch: null, iteration: null, value };
        }),
      ]),
    );

    return {
      path,
      mask,
      initialWeights,
      initialStep: initialWeights ? initial!.step : null,
      finalWeights,
      finalStep: finalWeights ? final!.step : null,
      finalWeightsFile: finalWeights ? join(path, final!.name) : null,
      sparsityReport,
      iterationsPerEpoch,
      metrics,
      hparams,
    };
  }
}

/** A mask holds only 0 and 1 (pruning/mask.py refuses anything else), for tensors of the model with their shapes. */
function checkMask(path: string, tensors: FileTensor[], weights: FileTensor[] | null): FileTensor[] {
  if (tensors.length === 0) throw new ModelFileError(path, 'holds no tensors; open_lth writes one 0/1 tensor per prunable weight.');
  const byName = new Map(weights?.map((t) => [t.name, t]));
  for (const t of tensors) {
    const bad = t.values.findIndex((v) => v !== 0 && v !== 1);
    if (bad >= 0) throw new ModelFileError(path, `mask ${quote(t.name)} holds ${t.values[bad]} at index ${bad}; a mask holds only 0 and 1.`);
    if (weights === null) continue;
    const w = byName.get(t.name);
    if (!w) throw new ModelFileError(path, `mask ${quote(t.name)} names no tensor of the model files beside it.`);
    if (w.shape.length !== t.shape.length || w.shape.some((d, i) => d !== t.shape[i])) {
      throw new ModelFileError(path, `mask ${quote(t.name)} has the shape [${t.shape.join(', ')}], the weight [${w.shape.join(', ')}].`);
    }
  }
  return tensors;
}

function parseSparsityReport(path: string, text: string, mask: FileTensor[] | null): { total: number; unpruned: number } {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new ModelFileError(path, `is not JSON (${errorText(error)}).`, { cause: error });
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new ModelFileError(path, 'is not a JSON object {"total": N, "unpruned": M}.');
  const record = json as Record<string, unknown>;
  const extra = Object.keys(record).filter((k) => k !== 'total' && k !== 'unpruned');
  if (extra.length > 0) throw new ModelFileError(path, `holds ${extra.map(quote).join(', ')}; open_lth writes only "total" and "unpruned".`);
  const count = (key: string): number => {
    const value = record[key];
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) throw new ModelFileError(path, `"${key}" is ${JSON.stringify(value) ?? 'missing'}, not a count of weights.`);
    return value;
  };
  const total = count('total');
  const unpruned = count('unpruned');
  if (unpruned > total) throw new ModelFileError(path, `"unpruned" (${unpruned}) is more than "total" (${total}).`);
  if (mask !== null) {
    let size = 0;
    let kept = 0;
    for (const t of mask) {
      size += t.values.length;
      for (const v of t.values) kept += v;
    }
    if (size !== total || kept !== unpruned) {
      throw new ModelFileError(path, `says ${unpruned} of ${total} weights are unpruned, but mask.pth beside it keeps ${kept} of ${size}.`);
    }
  }
  return { total, unpruned };
}

/** The lines of a text file with their 1-based numbers, `\r\n` accepted, blank lines at either end dropped. */
function lines(text: string): { n: number; line: string }[] {
  const all = text.split('\n').map((line, i) => ({ n: i + 1, line: line.endsWith('\r') ? line.slice(0, -1) : line }));
  const blank = (l: { line: string }) => l.line.trim() === '';
  let start = 0;
  let end = all.length;
  while (start < end && blank(all[start]!)) start++;
  while (end > start && blank(all[end - 1]!)) end--;
  return all.slice(start, end);
}

/** training/metric_logger.py: `name,iteration,value` per line, the iteration an integer, the value Python's float repr. */
function parseLogger(path: string, text: string): Map<string, { step: number; value: number }[]> {
  const metrics = new Map<string, { step: number; value: number }[]>();
  const seen = new Map<string, number>();
  for (const { n, line } of lines(text)) {
    const fields = line.split(',');
    const fail = (why: string): never => {
      throw new ModelFileError(path, `line ${n} ${why}: ${quote(line)}.`);
    };
    if (fields.length !== 3) fail('is not `name,iteration,value`');
    const [name, stepText, valueText] = fields as [string, string, string];
    if (name === '' || name.trim() !== name) fail('has no metric name');
    if (!NATURAL.test(stepText)) {
      fail(/^[0-9]+ep[0-9]+it$/.test(stepText) ? 'writes the step as epochs and iterations; open_lth writes the overall iteration, an integer' : 'has no iteration (a non-negative integer)');
    }
    const step = Number(stepText);
    if (!Number.isSafeInteger(step)) fail('has an iteration too large to be real');
    if (!PY_FLOAT.test(valueText)) fail('has a value that is not a number');
    const lower = valueText.toLowerCase().replace(/^\+/, '');
    const value = lower === 'nan' || lower === '-nan' ? NaN : lower.endsWith('inf') || lower.endsWith('infinity') ? (lower.startsWith('-') ? -Infinity : Infinity) : Number(valueText);
    const key = `${name}\u0000${step}`;
    const first = seen.get(key);
    if (first !== undefined) fail(`repeats ${quote(name)} at iteration ${step} (first on line ${first})`);
    seen.set(key, n);
    let points = metrics.get(name);
    if (!points) metrics.set(name, (points = []));
    points.push({ step, value });
  }
  for (const points of metrics.values()) points.sort((a, b) => a.step - b.step);
  return metrics;
}

/** foundations/hparams.py display, joined by foundations/desc.py: a title line, then `    * key => value` lines. */
function parseHparamsLog(path: string, text: string): Record<string, Record<string, string>> {
  const sections = new Map<string, Map<string, string>>();
  let current: Map<string, string> | null = null;
  for (const { n, line } of lines(text)) {
    if (line.trim() === '') continue; // a section without values leaves a blank line
    const fail = (why: string): never => {
      throw new ModelFileError(path, `line ${n} ${why}: ${quote(line)}.`);
    };
    const entry = HPARAM_LINE.exec(line);
    if (entry) {
      if (current === null) fail('gives a value before any section title');
      const [, key, value = ''] = entry;
      if (current!.has(key!)) fail(`repeats ${quote(key!)} in its section`);
      current!.set(key!, value);
    } else if (SECTION_TITLE.test(line) && line.trimEnd() === line) {
      if (sections.has(line)) fail('repeats a section title');
      sections.set(line, (current = new Map()));
    } else {
      fail('is neither a section title nor a `    * name => value` line');
    }
  }
  return Object.fromEntries([...sections].map(([title, values]) => [title, Object.fromEntries(values)]));
}
