// The open_lth experiment reader: against a folder laid out as open_lth writes one
// (tests/fixtures/open-lth/make_open_lth_fixture.py made it with torch and recorded what it wrote
// in expected.json, so no Python is needed here), and against broken copies of it: missing files
// are warnings, malformed ones a ModelFileError naming the file (and line), links out refused.
import { spawnSync } from 'node:child_process';
import { appendFileSync, copyFileSync, cpSync, mkdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULT_READ_LIMITS, type FileTensor, ModelFileError } from '../../../core/formats/model-format';
import { type OpenLthExperiment, readOpenLthExperiment } from '../../../core/formats/open-lth';
import { tensorSums } from '../../../core/formats/registry';
import { untar } from '../../support/tar';
import { useTempFolder } from '../../support/temp-folder';

const FIXTURES = join(__dirname, '..', '..', 'fixtures', 'open-lth');
const temp = useTempFolder('ticket-lab-open-lth-');

interface ExpectedTensor { name: string; shape: number[]; dtype: string; sum: number; absSum: number }
interface ExpectedLevel {
  level: number;
  sparsityReport: { total: number; unpruned: number };
  sparsity: number;
  testAccuracy: { step: number; epoch: number; iteration: number; value: number }[];
  finalTestAccuracy: number;
  metricNames: string[];
  metricLines: number;
  mask: ExpectedTensor[];
  initialWeights: ExpectedTensor[];
  finalWeights: ExpectedTensor[];
  hparams: Record<string, Record<string, string>>;
}
const expected = JSON.parse(readFileSync(join(FIXTURES, 'expected.json'), 'utf8')) as {
  experiment: string;
  replicate: number;
  iterationsPerEpoch: number;
  initialStep: { epoch: number; iteration: number };
  finalStep: { epoch: number; iteration: number };
  levels: ExpectedLevel[];
};

const PRISTINE = join(temp(), 'pristine');
untar(readFileSync(join(FIXTURES, 'open_lth_root.tar.gz')), PRISTINE);

let copies = 0;
/** A fresh copy of the fixture root to break, with paths into it. */
function copy() {
  const root = join(temp(), `copy${copies++}`);
  cpSync(PRISTINE, root, { recursive: true });
  const replicate = join(root, expected.experiment, `replicate_${expected.replicate}`);
  const main = (level: number | string) => join(replicate, `level_${level}`, 'main');
  return { root, replicate, main };
}


function expectTensors(got: FileTensor[] | null, want: ExpectedTensor[], what: string): void {
  expect(got, what).not.toBeNull();
  expect(got!.map((t) => t.name), what).toEqual(want.map((t) => t.name));
  for (const [i, t] of got!.entries()) {
    const w = want[i]!;
    expect(t.shape, `${what} ${w.name}`).toEqual(w.shape);
    expect(t.dtype, `${what} ${w.name}`).toBe(w.dtype);
    const s = tensorSums(t);
    expect(Math.abs(s.sum - w.sum), `${what} ${w.name}`).toBeLessThan(1e-4 * Math.max(1, Math.abs(w.sum)));
    expect(Math.abs(s.absSum - w.absSum), `${what} ${w.name}`).toBeLessThan(1e-4 * Math.max(1, w.absSum));
  }
}

/** Reads `dir` expecting a ModelFileError naming `file` and matching `pattern`. */
function expectRefused(dir: string, file: string, pattern: RegExp): ModelFileError {
  let caught: unknown;
  try {
    readOpenLthExperiment(dir);
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(ModelFileError);
  const error = caught as ModelFileError;
  expect(error.message).toContain(file);
  expect(error.message).toMatch(pattern);
  return error;
}

const levelOf = (result: OpenLthExperiment, level: number) => result.experiments[0]!.replicates[0]!.levels.find((l) => l.level === level)!;

describe('readOpenLthExperiment on a folder open_lth wrote', () => {
  const result = readOpenLthExperiment(PRISTINE);

  it('finds the one experiment, replicate and its three levels in order, without warnings', () => {
    expect(result.warnings).toEqual([]);
    expect(result.experiments.map((e) => e.name)).toEqual([expected.experiment]);
    const replicates = result.experiments[0]!.replicates;
    expect(replicates.map((r) => r.replicate)).toEqual([expected.replicate]);
    expect(replicates[0]!.levels.map((l) => l.level)).toEqual(expected.levels.map((l) => l.level));
    expect(replicates[0]!.pretrain).toBeNull();
  });

  for (const want of expected.levels) {
    it(`reads level ${want.level}: mask, weights, report, logger and hparams as torch and open_lth wrote them`, () => {
      const level = levelOf(result, want.level);
      expect(level.path).toBe(join(result.root, expected.experiment, `replicate_${expected.replicate}`, `level_${want.level}`, 'main'));
      expectTensors(level.mask, want.mask, 'mask');
      expectTensors(level.initialWeights, want.initialWeights, 'initial weights');
      expectTensors(level.finalWeights, want.finalWeights, 'final weights');
      expect(level.initialStep).toEqual(expected.initialStep);
      expect(level.finalStep).toEqual(expected.finalStep);
      expect(level.sparsityReport).toEqual(want.sparsityReport);
      expect(1 - level.sparsityReport!.unpruned / level.sparsityReport!.total).toBeCloseTo(want.sparsity, 12);
      expect(level.iterationsPerEpoch).toBe(expected.iterationsPerEpoch);
      expect(Object.keys(level.metrics).sort()).toEqual(want.metricNames);
      expect(Object.values(level.metrics).reduce((n, points) => n + points.length, 0)).toBe(want.metricLines);
      expect(level.metrics.test_accuracy).toEqual(want.testAccuracy);
      expect(level.metrics.test_accuracy!.at(-1)!.value).toBe(want.finalTestAccuracy);
      expect(level.hparams).toEqual(want.hparams);

      // The mask is what pruned the weights: every masked-out weight is zero at the start and the end.
      const weights = new Map(level.finalWeights!.map((t) => [t.name, t]));
      const start = new Map(level.initialWeights!.map((t) => [t.name, t]));
      for (const m of level.mask!) {
        for (const [i, keep] of m.values.entries()) {
          if (keep === 0) {
            expect(Math.abs(weights.get(m.name)!.values[i]!)).toBe(0);
            expect(Math.abs(start.get(m.name)!.values[i]!)).toBe(0);
          }
        }
      }
    });
  }

  it('gets sparser level by level, and level 0 is dense', () => {
    const sparsities = expected.levels.map((want) => {
      const report = levelOf(result, want.level).sparsityReport!;
      return 1 - report.unpruned / report.total;
    });
    expect(sparsities[0]).toBe(0);
    for (let i = 1; i < sparsities.length; i++) expect(sparsities[i]!).toBeGreaterThan(sparsities[i - 1]!);
  });

  it('reads the same from the lottery_<hash> folder itself', () => {
    const direct = readOpenLthExperiment(join(PRISTINE, expected.experiment));
    expect(direct.warnings).toEqual([]);
    expect(direct.experiments.map((e) => e.name)).toEqual([expected.experiment]);
    expect(direct.experiments[0]!.replicates[0]!.levels.map((l) => l.sparsityReport)).toEqual(expected.levels.map((l) => l.sparsityReport));
  });

  it('ignores branches, other runs and files it does not read', () => {
    const { root, main } = copy();
    mkdirSync(join(root, 'train_0123456789abcdef0123456789abcdef', 'replicate_1', 'main'), { recursive: true });
    mkdirSync(join(dirname(main(1)), 'randomly_prune_0123456789abcdef0123456789abcdef'));
    writeFileSync(join(main(1), 'notes.txt'), 'scratch');
    const again = readOpenLthExperiment(root);
    expect(again.warnings).toEqual([]);
    expect(again.experiments.map((e) => e.name)).toEqual([expected.experiment]);
    expect(levelOf(again, 1).sparsityReport).toEqual(expected.levels[1]!.sparsityReport);
  });

  it('reads level_pretrain when the experiment pretrained', () => {
    const { replicate, main } = copy();
    const pretrain = join(replicate, 'level_pretrain', 'main');
    mkdirSync(pretrain, { recursive: true });
    copyFileSync(join(main(0), 'model_ep0_it0.pth'), join(pretrain, 'model_ep0_it0.pth'));
    copyFileSync(join(main(0), 'model_ep2_it0.pth'), join(pretrain, 'model_ep0_it400.pth'));
    writeFileSync(join(pretrain, 'logger'), 'test_accuracy,0,0.1\ntest_accuracy,400,0.5');
    const again = readOpenLthExperiment(dirname(replicate));
    expect(again.warnings).toEqual([]);
    const run = again.experiments[0]!.replicates[0]!.pretrain!;
    expect(run.path).toBe(pretrain);
    expect(run.initialStep).toEqual({ epoch: 0, iteration: 0 });
    expect(run.finalStep).toEqual({ epoch: 0, iteration: 400 });
    expect(run.mask).toBeNull();
    expect(run.metrics.test_accuracy).toEqual([
      { step: 0, epoch: 0, iteration: 0, value: 0.1 },
      { step: 400, epoch: 0, iteration: 400, value: 0.5 },
    ]);
  });
});

describe('readOpenLthExperiment on missing files', () => {
  it('reads a level without mask.pth with a warning naming it, the mask null', () => {
    const { root, main } = copy();
    rmSync(join(main(1), 'mask.pth'));
    const result = readOpenLthExperiment(root);
    expect(result.warnings).toHaveLength(1);
    expect(result.warnings[0]).toContain(join(main(1), 'mask.pth'));
    const level = levelOf(result, 1);
    expect(level.mask).toBeNull();
    expect(level.sparsityReport).toEqual(expected.levels[1]!.sparsityReport);
    expect(level.finalWeights).not.toBeNull();
  });

  it('says which files are missing: logger, report, hparams.log, weights', () => {
    const { root, main } = copy();
    rmSync(join(main(0), 'hparams.log'));
    rmSync(join(main(2), 'logger'));
    rmSync(join(main(2), 'sparsity_report.json'));
    rmSync(join(main(2), 'model_ep0_it0.pth'));
    const result = readOpenLthExperiment(root);
    expect(result.warnings).toHaveLength(4);
    for (const file of [join(main(0), 'hparams.log'), join(main(2), 'logger'), join(main(2), 'sparsity_report.json'), join(main(2), 'model_ep0_it0.pth')]) {
      expect(result.warnings.some((w) => w.includes(file)), file).toBe(true);
    }
    const level = levelOf(result, 2);
    expect(level.metrics).toEqual({});
    expect(level.sparsityReport).toBeNull();
    expect(level.initialWeights).toBeNull();
    expect(level.finalStep).toEqual(expected.finalStep);
    expect(levelOf(result, 0).hparams).toEqual({});
  });

  it('warns about a level folder that is missing, and keeps the others in order', () => {
    const { root, replicate } = copy();
    rmSync(join(replicate, 'level_1'), { recursive: true });
    const result = readOpenLthExperiment(root);
    expect(result.experiments[0]!.replicates[0]!.levels.map((l) => l.level)).toEqual([0, 2]);
    expect(result.warnings).toEqual([expect.stringContaining('level 1')]);
  });

  it('sorts levels by number, not by name', () => {
    const { root, replicate } = copy();
    for (const n of [3, 10]) cpSync(join(replicate, 'level_2'), join(replicate, `level_${n}`), { recursive: true });
    const result = readOpenLthExperiment(root);
    expect(result.experiments[0]!.replicates[0]!.levels.map((l) => l.level)).toEqual([0, 1, 2, 3, 10]);
    expect(result.warnings).toEqual([expect.stringMatching(/no folder for level 4, 5, 6, 7, 8, 9/)]);
  });

  it('refuses a folder that holds no experiment', () => {
    const empty = join(temp(), 'empty');
    mkdirSync(empty);
    expectRefused(empty, empty, /no open_lth lottery experiment/);
  });
});

describe('readOpenLthExperiment picks the weights by step', () => {
  it('takes the largest (epoch, iteration) as the final weights, skipping the ones between', () => {
    const { root, main } = copy();
    copyFileSync(join(main(1), 'model_ep0_it0.pth'), join(main(1), 'model_ep10_it0.pth'));
    copyFileSync(join(main(1), 'model_ep0_it0.pth'), join(main(1), 'model_ep1_it5.pth'));
    const result = readOpenLthExperiment(root);
    const level = levelOf(result, 1);
    expect(level.finalStep).toEqual({ epoch: 10, iteration: 0 });
    expect(level.initialStep).toEqual({ epoch: 0, iteration: 0 });
    expectTensors(level.finalWeights, expected.levels[1]!.initialWeights, 'final weights');
    // ep2_it0 and ep1_it5 are skipped; the logger's 938 steps are not 10 epochs of whole iterations.
    expect(result.warnings.filter((w) => w.includes('skipped'))).toHaveLength(2);
    expect(result.warnings.some((w) => w.includes(join(main(1), 'logger')) && /epochs/.test(w))).toBe(true);
    expect(level.iterationsPerEpoch).toBeNull();
    expect(level.metrics.test_accuracy!.map((p) => p.epoch)).toEqual([null, null, null]);
  });

  it('takes a lone file other than ep0_it0 as the final weights', () => {
    const { root, main } = copy();
    rmSync(join(main(2), 'model_ep0_it0.pth'));
    const level = levelOf(readOpenLthExperiment(root), 2);
    expect(level.initialWeights).toBeNull();
    expectTensors(level.finalWeights, expected.levels[2]!.finalWeights, 'final weights');
  });

  it('takes a lone ep0_it0 as the start weights', () => {
    const { root, main } = copy();
    rmSync(join(main(2), 'model_ep2_it0.pth'));
    const level = levelOf(readOpenLthExperiment(root), 2);
    expect(level.finalWeights).toBeNull();
    expectTensors(level.initialWeights, expected.levels[2]!.initialWeights, 'initial weights');
  });
});

describe('readOpenLthExperiment on malformed files', () => {
  it('refuses a corrupt logger line, naming the file and the line', () => {
    const { root, main } = copy();
    const logger = join(main(1), 'logger');
    const rows = readFileSync(logger, 'utf8').split('\n');
    rows[3] = 'test_loss;469;0.25';
    writeFileSync(logger, rows.join('\n'));
    expectRefused(root, logger, /line 4 is not `name,iteration,value`/);
  });

  it('refuses logger values and steps that are not numbers, and repeated entries', () => {
    for (const [row, pattern] of [
      ['test_accuracy,938,high', /line 10 has a value that is not a number/],
      ['test_accuracy,-3,0.5', /line 10 has no iteration/],
      ['test_accuracy,2ep0it,0.5', /line 10 writes the step as epochs and iterations/],
      ['test_accuracy,938,0.5', /line 10 repeats "test_accuracy" at iteration 938 \(first on line 8\)/],
      [',938,0.5', /line 10 has no metric name/],
    ] as const) {
      const { root, main } = copy();
      const logger = join(main(0), 'logger');
      appendFileSync(logger, `\n${row}`);
      expectRefused(root, logger, pattern);
    }
  });

  it('reads the values Python writes for diverged training', () => {
    const { root, main } = copy();
    appendFileSync(join(main(0), 'logger'), '\ntrain_loss,938,nan\ntrain_loss,0,inf\nlr,0,1e-05\r\n\n');
    const level = levelOf(readOpenLthExperiment(root), 0);
    expect(level.metrics.train_loss!.map((p) => p.value)).toEqual([Infinity, NaN]);
    expect(level.metrics.lr).toEqual([{ step: 0, epoch: 0, iteration: 0, value: 1e-5 }]);
  });

  it('refuses a malformed hparams.log line, naming the file and the line', () => {
    const { root, main } = copy();
    const hparams = join(main(0), 'hparams.log');
    const rows = readFileSync(hparams, 'utf8').split('\n');
    rows[2] = '    * batch_size = 128';
    writeFileSync(hparams, rows.join('\n'));
    expectRefused(root, hparams, /line 3 is neither a section title nor/);
  });

  it('refuses hparams values before a section and repeated keys', () => {
    for (const [text, pattern] of [
      ['    * lr => 0.1\nTraining Hyperparameters', /line 1 gives a value before any section title/],
      ['Training Hyperparameters\n    * lr => 0.1\n    * lr => 0.2', /line 3 repeats "lr"/],
    ] as const) {
      const { root, main } = copy();
      const hparams = join(main(0), 'hparams.log');
      writeFileSync(hparams, text);
      expectRefused(root, hparams, pattern);
    }
  });

  it('refuses a mask that holds values other than 0 and 1', () => {
    const { root, main } = copy();
    const mask = join(main(1), 'mask.pth');
    copyFileSync(join(main(1), 'model_ep2_it0.pth'), mask);
    expectRefused(root, mask, /a mask holds only 0 and 1/);
  });

  it('refuses a mask for another network', () => {
    const { root, main } = copy();
    // checkpoint.pth holds the PrunedModel's state dict: `model.fc_layers.0.weight`, not the mask's names.
    rmSync(join(main(1), 'model_ep0_it0.pth'));
    copyFileSync(join(main(1), 'checkpoint.pth'), join(main(1), 'model_ep2_it0.pth'));
    expectRefused(root, join(main(1), 'mask.pth'), /names no tensor of the model files beside it/);
  });

  it('refuses a sparsity report that disagrees with the mask, or is not one', () => {
    for (const [text, pattern] of [
      ['{"total": 6344.0, "unpruned": 1.0}', /mask.pth beside it keeps/],
      ['{"total": 6344.0}', /"unpruned" is missing/],
      ['{"total": 10, "unpruned": 20}', /more than "total"/],
      ['{"total": 6344.0, "unpruned": 6344.0, "extra": 1}', /"extra"/],
      ['[1, 2]', /not a JSON object/],
      ['{"total": 6344.0,', /is not JSON/],
    ] as const) {
      const { root, main } = copy();
      const report = join(main(0), 'sparsity_report.json');
      writeFileSync(report, text);
      expectRefused(root, report, pattern);
    }
  });

  it('reads every file within the limits', () => {
    const { root, main } = copy();
    let caught: unknown;
    try {
      readOpenLthExperiment(root, { ...DEFAULT_READ_LIMITS, maxFileBytes: 20_000 });
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(ModelFileError);
    expect((caught as Error).message).toContain(main(0));
    expect((caught as Error).message).toMatch(/more than the 20000/);
  });
});

describe('readOpenLthExperiment on links', () => {
  it('refuses a file linked from outside the folder', () => {
    const { root, main } = copy();
    const outside = join(temp(), `outside${copies}.pth`);
    const mask = join(main(1), 'mask.pth');
    renameSync(mask, outside);
    symlinkSync(outside, mask);
    expectRefused(root, mask, /symbolic link to .*outside.*refused/);
  });

  it('refuses a level folder linked from outside the folder', () => {
    const { root, replicate } = copy();
    const outside = join(temp(), `outside-level${copies}`);
    cpSync(join(replicate, 'level_2'), outside, { recursive: true });
    symlinkSync(outside, join(replicate, 'level_3'));
    expectRefused(root, join(replicate, 'level_3'), /links out of the folder being read are refused/);
  });

  it('refuses a link out reached only through a link that stays inside', () => {
    const { root, replicate, main } = copy();
    // stash/ is not walked itself (not a lottery folder); level_3 links to it, and its logger links out.
    const stash = join(root, 'stash');
    cpSync(dirname(main(2)), stash, { recursive: true });
    const outside = join(temp(), `outside-logger${copies}`);
    writeFileSync(outside, 'test_accuracy,0,0.5');
    rmSync(join(stash, 'main', 'logger'));
    symlinkSync(outside, join(stash, 'main', 'logger'));
    symlinkSync(stash, join(replicate, 'level_3'));
    expectRefused(root, join(replicate, 'level_3', 'main', 'logger'), /links out of the folder being read are refused/);
  });

  it('follows links that stay inside the folder', () => {
    const { root, replicate, main } = copy();
    symlinkSync(join(main(0), 'hparams.log'), join(main(1), 'hparams.log'));
    symlinkSync(join(replicate, 'level_2'), join(replicate, 'level_3'));
    const result = readOpenLthExperiment(root);
    expect(result.warnings).toEqual([]);
    expect(levelOf(result, 1).hparams).toEqual(expected.levels[0]!.hparams);
    expect(levelOf(result, 3).sparsityReport).toEqual(expected.levels[2]!.sparsityReport);
  });

  it('refuses a dangling link and a file that is not a regular file', () => {
    const dangling = copy();
    const mask = join(dangling.main(1), 'mask.pth');
    rmSync(mask);
    symlinkSync(join(dangling.root, 'nowhere'), mask);
    expectRefused(dangling.root, mask, /does not resolve/);

    const fifo = copy();
    const logger = join(fifo.main(1), 'logger');
    rmSync(logger);
    const made = spawnSync('mkfifo', [logger]);
    if (made.status !== 0) return; // no mkfifo on this machine
    expectRefused(fifo.root, logger, /not a regular file/);
  });
});
