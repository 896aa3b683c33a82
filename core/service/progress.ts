// Turns per-iteration training progress into whole-search progress with an ETA.
import type { SearchProgress } from '../api/schemas';

export interface PieceProgress {
  iteration: number;
  startIteration: number;
  endIteration: number;
  loss: number | null;
  valAccuracy: number | null;
}

export class ProgressTracker {
  private finished = 0;
  private current = 0;
  private readonly began = performance.now();

  constructor(
    private readonly runId: string,
    /** Training iterations of the whole search, all levels and controls. */
    private readonly totalIterations: number,
    private readonly levels: number,
    private readonly listener: ((p: SearchProgress) => void) | undefined,
  ) {}

  update(level: number, piece: string, p: PieceProgress): void {
    this.current = p.iteration - p.startIteration;
    if (!this.listener) return;
    const done = Math.min(this.totalIterations, this.finished + this.current);
    const fraction = this.totalIterations > 0 ? done / this.totalIterations : 0;
    const elapsedSeconds = (performance.now() - this.began) / 1000;
    this.listener({
      runId: this.runId,
      level,
      levels: this.levels,
      piece,
      iteration: p.iteration,
      startIteration: p.startIteration,
      endIteration: p.endIteration,
      loss: p.loss,
      valAccuracy: p.valAccuracy,
      fraction,
      elapsedSeconds,
      // Needs some progress to mean anything.
      etaSeconds: fraction > 0.002 ? (elapsedSeconds / fraction) * (1 - fraction) : null,
    });
  }

  /** A level or control finished and was stored. */
  finishPiece(): void {
    this.finished += this.current;
    this.current = 0;
  }
}
