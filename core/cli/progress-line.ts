// The live progress line of long commands, on stderr. On a terminal it redraws one line in place;
// in a log (not a TTY) it prints a line when a level starts and at most every 30 seconds.
import type { SearchProgress } from '../api/schemas';
import { bar, duration, pct } from './format';

export class ProgressLine {
  private lastPiece = '';
  private lastPrinted = 0;
  private drawn = false;

  constructor(
    private readonly stream: NodeJS.WriteStream,
    private readonly isTty: boolean,
  ) {}

  update = (p: SearchProgress): void => {
    const piece = `${p.level}/${p.piece}`;
    const text =
      `level ${p.level}/${p.levels} ${p.piece.padEnd(11)} ${bar(p.fraction)} ${pct(p.fraction, 1).padStart(6)}  ` +
      `iter ${p.iteration}/${p.endIteration}  loss ${p.loss === null ? '—' : p.loss.toFixed(4)}  val ${pct(p.valAccuracy)}  ` +
      `ETA ${p.etaSeconds === null ? '—' : duration(p.etaSeconds)}`;
    if (this.isTty) {
      this.stream.write(`\r\x1b[2K${text}`);
      this.drawn = true;
      return;
    }
    const now = Date.now();
    if (piece !== this.lastPiece || now - this.lastPrinted >= 30_000 || p.iteration === p.endIteration) {
      this.stream.write(`${text}\n`);
      this.lastPiece = piece;
      this.lastPrinted = now;
    }
  };

  /** Ends the redrawn line so later output starts on a fresh one. */
  done(): void {
    if (this.drawn) this.stream.write('\n');
    this.drawn = false;
  }
}
