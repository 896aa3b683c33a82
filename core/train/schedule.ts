// Schedule rules shared by the training paths (train-autodiff.ts, train-stack.ts).
import type { TrainSchedule } from './train';

/** The learning rate in effect at an iteration under the schedule's drops. */
export function learningRateAt(schedule: TrainSchedule, iteration: number): number {
  const drops = schedule.learningRateDrops;
  const base = schedule.optimizer.learningRate;
  if (!drops) return base;
  return base * drops.factor ** drops.at.filter((at) => at <= iteration).length;
}

/** What the step engine does not do: augmentation and learning-rate drops train on autodiff. */
export function needsAutodiff(schedule: TrainSchedule): boolean {
  return schedule.augment !== undefined || (schedule.learningRateDrops?.at.length ?? 0) > 0;
}
