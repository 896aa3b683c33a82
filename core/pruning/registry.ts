// The only list of pruning strategies: a new strategy is one file and one line here.
import { InvalidRequestError } from '../api/errors';
import { erkStrategy } from './erk';
import { granetStrategy } from './granet';
import { graspStrategy } from './grasp';
import { jackpotStrategy } from './jackpot';
import { magnitudeStrategy } from './magnitude';
import { randomStrategy } from './random';
import { snipStrategy } from './snip';
import { synflowStrategy } from './synflow';
import type { PruningStrategy } from './strategy';

const STRATEGIES = new Map<string, PruningStrategy<never>>();

/** Adds a strategy; an id already taken is a programming error and throws. */
export function registerPruningStrategy(strategy: PruningStrategy<never>): void {
  if (STRATEGIES.has(strategy.id)) throw new Error(`pruning strategy '${strategy.id}' registered twice`);
  STRATEGIES.set(strategy.id, strategy);
}

registerPruningStrategy(magnitudeStrategy as PruningStrategy<never>);
registerPruningStrategy(randomStrategy as PruningStrategy<never>);
registerPruningStrategy(erkStrategy as PruningStrategy<never>);
registerPruningStrategy(snipStrategy as PruningStrategy<never>);
registerPruningStrategy(graspStrategy as PruningStrategy<never>);
registerPruningStrategy(synflowStrategy as PruningStrategy<never>);
registerPruningStrategy(jackpotStrategy as PruningStrategy<never>);
registerPruningStrategy(granetStrategy as PruningStrategy<never>);

export function pruningStrategy<P = Record<string, never>>(id: string): PruningStrategy<P> {
  const strategy = STRATEGIES.get(id);
  if (!strategy) throw new InvalidRequestError(`Unknown pruning strategy '${id}'. Known: ${[...STRATEGIES.keys()].join(', ')}.`);
  return strategy as unknown as PruningStrategy<P>;
}

export function pruningStrategyIds(): string[] {
  return [...STRATEGIES.keys()];
}
