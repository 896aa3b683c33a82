// Plain-text tables for the benchmark report: aligned columns, no colour or box drawing, so the
// output pastes unchanged into issues, commit messages and docs.

export interface Column {
  header: string;
  /** Numbers read best right-aligned; names left-aligned. */
  align?: 'left' | 'right';
}

export interface Table {
  title: string;
  /** What the numbers measure, said once under the title: the honest part of a benchmark. */
  measures?: string[];
  columns: Column[];
  rows: string[][];
  notes?: string[];
}

export function renderTable(table: Table): string {
  const widths = table.columns.map((c, i) => Math.max(c.header.length, ...table.rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    table.columns
      .map((c, i) => {
        const cell = cells[i] ?? '';
        const width = widths[i]!;
        return c.align === 'right' ? cell.padStart(width) : cell.padEnd(width);
      })
      .join('  ')
      .trimEnd();
  const out = [table.title, ...(table.measures ?? []).map((m) => `  ${m}`), ''];
  out.push(line(table.columns.map((c) => c.header)));
  out.push(line(widths.map((w) => '-'.repeat(w))));
  for (const row of table.rows) out.push(line(row));
  if (table.notes && table.notes.length > 0) {
    out.push('');
    for (const note of table.notes) out.push(`  ${note}`);
  }
  return out.join('\n');
}

/** A number with a fixed count of decimals and thousands separators: 12,345.6. */
export function fixed(value: number, decimals: number): string {
  if (!Number.isFinite(value)) return '—';
  return value.toLocaleString('en-US', { minimumFractionDigits: decimals, maximumFractionDigits: decimals });
}

/** About three significant figures, without switching to exponent notation: 0.0123, 4.56, 789, 12,345. */
export function approx(value: number): string {
  if (!Number.isFinite(value)) return '—';
  const magnitude = Math.abs(value);
  const decimals = magnitude >= 100 ? 0 : magnitude >= 10 ? 1 : magnitude >= 1 ? 2 : magnitude >= 0.1 ? 3 : 4;
  return fixed(value, decimals);
}

export function percent(fraction: number, decimals = 1): string {
  return `${fixed(fraction * 100, decimals)} %`;
}

/** The columns every step-timing table shares (TF.js backends and PyTorch), in one order. */
export const STEP_TIMING_COLUMNS: Column[] = [
  { header: 'warm-up', align: 'right' },
  { header: 'timed steps', align: 'right' },
  { header: 'seconds', align: 'right' },
  { header: 'ms/step', align: 'right' },
  { header: 'steps/s', align: 'right' },
  { header: 'samples/s', align: 'right' },
];

export interface StepTiming {
  warmupSteps: number;
  timedSteps: number;
  seconds: number;
  stepsPerSecond: number;
  samplesPerSecond: number;
}

/** The cells of STEP_TIMING_COLUMNS, formatted the same way in every table. */
export function stepTimingCells(t: StepTiming): string[] {
  return [String(t.warmupSteps), String(t.timedSteps), fixed(t.seconds, 2), fixed(1000 / t.stepsPerSecond, 2), approx(t.stepsPerSecond), fixed(t.samplesPerSecond, 0)];
}
