// Human-readable output of the CLI: aligned tables and small numbers formatted the same way everywhere.
import type { ClaimSummary, CompareResult, CriteriaOverlapReport, DbInfo, DoctorReport, EssentialSparsityReport, AttackReport, ClaimReport, EvaluateReport, ImportRunsReport, KeysReport, JobReport, BundleFileReport, BundleSignerReport, ExportBundleReport, ImportBundleReport, VerifyBundleReport, VerdictReport, VerifyReport, InstabilityReport, MatchedArchitecture, ModelFileReport, PredictReport, RunReport, SearchSummary, TicketDetail, TicketSummary } from '../api/schemas';

export function pct(x: number | null | undefined, digits = 2): string {
  return x === null || x === undefined || Number.isNaN(x) ? '—' : `${(100 * x).toFixed(digits)}%`;
}

/** Remaining weights as the LTH paper labels its x axis: 100, 51.3, 21.1, 3.6 ... */
export function remaining(sparsity: number): string {
  const r = 100 * (1 - sparsity);
  return `${r >= 10 ? r.toFixed(1) : r >= 1 ? r.toFixed(2) : r.toFixed(3)}%`;
}

export function duration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '—';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

export function table(header: string[], rows: string[][], rightAligned: number[] = []): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (rightAligned.includes(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

export function bar(fraction: number, width = 20): string {
  const filled = Math.max(0, Math.min(width, Math.round(fraction * width)));
  return `${'█'.repeat(filled)}${'░'.repeat(width - filled)}`;
}

export function ticketTable(tickets: readonly TicketSummary[]): string {
  return table(
    ['ticket', 'run', 'model', 'dataset', 'method', 'level', 'remaining', 'test acc', 'early stop'],
    tickets.map((t) => [
      t.id,
      t.runId,
      t.model,
      t.dataset,
      t.method,
      String(t.level),
      remaining(t.sparsity),
      pct(t.testAccuracy),
      t.earlyStopIteration === null ? '—' : String(t.earlyStopIteration),
    ]),
    [5, 6, 7, 8],
  );
}

/** The accuracy-vs-remaining-weights table of a search, with each control beside its ticket. */
export function searchTable(summary: SearchSummary): string {
  const tickets = summary.tickets.filter((t) => t.role === 'ticket');
  const controls = summary.tickets.filter((t) => t.role === 'control');
  const controlKinds = [...new Set(controls.map((c) => c.method))];
  const header = ['level', 'remaining', 'test acc', 'early stop', ...controlKinds.map((k) => `${k} acc`), 'ticket'];
  const rows = tickets.map((t) => [
    String(t.level),
    remaining(t.sparsity),
    pct(t.testAccuracy),
    t.earlyStopIteration === null ? '—' : String(t.earlyStopIteration),
    ...controlKinds.map((kind) => {
      const c = controls.find((x) => x.parentId === t.id && x.method === kind);
      return c ? pct(c.testAccuracy) : '';
    }),
    t.id,
  ]);
  return table(header, rows, [0, 1, 2, 3, ...controlKinds.map((_, i) => 4 + i)]);
}

export function importRunsText(report: ImportRunsReport): string {
  const blocks = report.runs.map((r) =>
    [
      `${r.run.runId}  ${r.experiment}/replicate_${r.replicate}: ${architectureText(r.architecture)}; model ${r.model} (${r.created ? 'imported' : 'already imported: nothing written'})`,
      searchTable(r.run),
    ].join('\n'),
  );
  const warnings = report.warnings.map((w) => `warning: ${w}`);
  return [...blocks, ...(warnings.length ? [warnings.join('\n')] : [])].join('\n\n');
}

export function ticketDetail(d: TicketDetail): string {
  const m = d.metrics as {
    earlyStop?: { iteration: number; valLoss: number; valAccuracy: number; testAccuracy: number };
    final?: { iteration: number; testAccuracy: number };
    prunedBeforeRetraining?: { testAccuracy: number };
    trainSeconds?: number;
  };
  const lines = [
    `ticket ${d.id}  (${d.method}, ${d.role}, level ${d.level})`,
    `  model ${d.model} on ${d.dataset}; run ${d.run.id} (${d.run.method}, seed ${d.run.seed}, ${d.run.status}, backend ${String(d.run.backend.tfBackend ?? '?')})`,
    `  remaining ${remaining(d.sparsity)} of prunable weights (${d.kept.toLocaleString('en-US')} of ${d.total.toLocaleString('en-US')}), sparsity ${pct(d.sparsity)}`,
  ];
  if (m.earlyStop) {
    lines.push(`  early stop at iteration ${m.earlyStop.iteration}: test ${pct(m.earlyStop.testAccuracy)}, validation ${pct(m.earlyStop.valAccuracy)} (loss ${m.earlyStop.valLoss.toFixed(4)})`);
  }
  if (m.final) lines.push(`  end of training (iteration ${m.final.iteration}): test ${pct(m.final.testAccuracy)}`);
  if (m.prunedBeforeRetraining) lines.push(`  pruned, before retraining: test ${pct(m.prunedBeforeRetraining.testAccuracy)}`);
  if (m.trainSeconds !== undefined) lines.push(`  training took ${duration(m.trainSeconds)}`);
  lines.push('', 'per-layer sparsity');
  lines.push(
    table(
      ['tensor', 'shape', 'kept', 'total', 'sparsity', ''],
      d.layers.map((l) => [l.name, l.shape.join('×'), String(l.kept), String(l.total), pct(l.sparsity), bar(l.sparsity)]),
      [2, 3, 4],
    ),
  );
  lines.push('', 'lineage');
  if (d.lineage.ancestors.length === 0) lines.push('  (root)');
  for (const a of d.lineage.ancestors) lines.push(`  ${a.id}  level ${a.level}  ${remaining(a.sparsity)} remaining  test ${pct(a.testAccuracy)}`);
  lines.push(`→ ${d.id}  level ${d.level}  ${remaining(d.sparsity)} remaining  test ${pct(d.testAccuracy)}`);
  for (const c of d.lineage.children) lines.push(`  ↳ ${c.id}  ${c.method} level ${c.level}  ${remaining(c.sparsity)} remaining  test ${pct(c.testAccuracy)}`);
  return lines.join('\n');
}

export function compareTable(c: CompareResult): string {
  const rows = [...c.layers, c.total].map((l) => [
    l.name,
    String(l.keptA),
    String(l.keptB),
    String(l.total),
    l.iou.toFixed(4),
    l.chanceIou.toFixed(4),
    l.overlap.toFixed(4),
    l.chanceOverlap.toFixed(4),
    String(l.hamming),
    pct(l.hammingFraction),
  ]);
  const lines = [
    `A ${c.a.id}  ${c.a.method} level ${c.a.level}  ${remaining(c.a.sparsity)} remaining`,
    `B ${c.b.id}  ${c.b.method} level ${c.b.level}  ${remaining(c.b.sparsity)} remaining`,
    '',
    table(['tensor', 'kept A', 'kept B', 'entries', 'IoU', 'chance IoU', 'overlap |A∩B|/|A|', 'chance', 'Hamming', 'Hamming %'], rows, [1, 2, 3, 4, 5, 6, 7, 8, 9]),
  ];
  if (c.unmatched.length) lines.push('', `not compared (in one ticket only, or shapes differ): ${c.unmatched.join(', ')}`);
  return lines.join('\n');
}

export function runsTable(runs: readonly RunReport[]): string {
  return table(
    ['run', 'method', 'model', 'dataset', 'seed', 'status', 'tickets', 'backend', 'started'],
    runs.map((r) => [r.id, r.method, r.model, r.dataset, String(r.seed), r.status, String(r.tickets), String(r.backend.tfBackend ?? '?'), r.createdAt.replace('T', ' ').slice(0, 19)]),
    [4, 6],
  );
}

export function dbInfoText(info: DbInfo): string {
  if (!info.exists) return `database ${info.path}\n  does not exist yet (a search creates it); schema version this Ticket Lab writes: ${info.latestSchemaVersion}`;
  const c = info.counts;
  return [
    `database ${info.path}`,
    `  schema version ${info.schemaVersion} (latest ${info.latestSchemaVersion}), ${((info.bytes ?? 0) / 1024).toFixed(0)} KiB`,
    `  ${c.runs} runs, ${c.tickets} tickets, ${c.masks} masks, ${c.weights} weight checkpoints, ${c.models} models, ${c.datasets} datasets`,
  ].join('\n');
}

function architectureText(a: MatchedArchitecture | null): string {
  if (!a) return 'fits no zoo network (by names or order and shapes): it can be inspected, not run';
  return `fits ${a.model} on ${a.inputShape.join('×')} inputs, ${a.numClasses} classes (${a.matchedBy === 'graph' ? 'built from its ONNX graph' : `matched by ${a.matchedBy === 'names' ? 'tensor names' : 'tensor order'}`})`;
}

export function modelFileText(report: ModelFileReport): string {
  const rows = report.tensors.map((t) => [t.name, `[${t.shape.join(', ')}]`, t.dtype, t.sum.toPrecision(8), t.absSum.toPrecision(8)]);
  return [
    `${report.path}: ${report.formatTitle}, ${report.tensors.length} tensors, ${report.elements.toLocaleString('en-US')} values, ${report.bytes.toLocaleString('en-US')} bytes`,
    `  ${architectureText(report.architecture)}`,
    '',
    table(['tensor', 'shape', 'dtype', 'sum', 'sum |x|'], rows, [3, 4]),
  ].join('\n');
}

export function predictText(report: PredictReport): string {
  const rows = report.logits.map((row, i) => [String(i), String(row.indexOf(Math.max(...row))), row.map((v) => v.toFixed(5)).join(' ')]);
  return [`${report.path}: ${architectureText(report.architecture)}; on ${report.backend.provider}`, '', table(['row', 'argmax', 'logits'], rows, [1])].join('\n');
}

export function doctorText(report: DoctorReport): string {
  const lines = [
    table(
      ['backend', 'usable', 'conv training', 'detail'],
      report.providers.map((p) => [p.provider, p.usable ? 'yes' : 'no', p.trainsConv === null ? '—' : p.trainsConv ? 'yes' : 'no', p.detail]),
    ),
    '',
  ];
  const chosen = report.chosen;
  if (!chosen) {
    lines.push(`no backend: ${report.error ?? 'nothing could run'}`);
    return lines.join('\n');
  }
  lines.push(`a search here runs on: ${chosen.provider}${chosen.requested === 'auto' ? ' (auto: the first usable in the order above)' : ''}`);
  if (chosen.adapter) {
    const a = chosen.adapter;
    lines.push(`  GPU adapter: vendor ${a.vendor || '?'}, device ${a.device || '?'}, architecture ${a.architecture || '?'}${a.description ? ` (${a.description})` : ''}, fallback ${a.isFallbackAdapter ? 'yes' : 'no'}`);
  }
  for (const note of chosen.notes) lines.push(`  passed over: ${note}`);
  for (const warning of chosen.warnings) lines.push(`  warning: ${warning}`);
  lines.push(`  versions: ${Object.entries(report.versions).map(([k, v]) => `${k} ${v}`).join(', ')}`);
  return lines.join('\n');
}

function verdictTable(verdicts: readonly VerdictReport[]): string {
  const rows = verdicts.map((v) => [
    v.claim, v.scheme, v.verdict, v.score === null ? '—' : `${v.score}/${v.n}`, v.threshold === null ? '—' : String(v.threshold),
    v.pValue === null ? '—' : v.pValue.toExponential(2), v.falsePositiveRate.toExponential(0),
    v.verdict === 'not comparable' ? String(v.evidence.reason ?? '') : '',
  ]);
  return table(['claim', 'scheme', 'verdict', 'matched', 'needs', 'p-value', 'FPR', 'why'], rows, [3, 4, 5]);
}

export function claimText(r: ClaimReport): string {
  const e = r.edits;
  return [
    `${r.ticket.id}  claims ${r.original.id} with key ${r.keyFingerprint.slice(0, 16)}…: ${r.claims.map((c) => `${c.id} (${c.kind})`).join(', ')}`,
    e ? `  signature in ${e.layer}: ${e.changed} mask entries changed (${e.bitOn} on, ${e.bitOff} off for the bits; the rest restore the layer's count)` : '',
    `  test accuracy ${pct(r.testAccuracy.before)} before, ${pct(r.testAccuracy.after)} after (${r.backend.tfBackend})`,
    '',
    verdictTable(r.verdicts),
  ].filter((line, i) => line !== '' || i === 3).join('\n');
}

export function attackText(r: AttackReport): string {
  const schemes = [...new Set([...r.baseline.verdicts, ...r.rows.flatMap((row) => row.verdicts)].map((v) => v.scheme))];
  const cell = (verdicts: readonly VerdictReport[], scheme: string) => {
    const v = verdicts.find((x) => x.scheme === scheme);
    return v ? `${v.verdict === 'verified' ? 'yes' : v.verdict === 'not verified' ? 'NO' : 'n/a'} ${v.score ?? '—'}/${v.n ?? '—'} p=${v.pValue === null ? '—' : v.pValue.toExponential(1)}` : '';
  };
  const rows = [
    ['none (the claimed ticket)', pct(r.baseline.testAccuracy), ...schemes.map((s) => cell(r.baseline.verdicts, s)), ''],
    ...r.rows.map((row) => [row.attack, pct(row.testAccuracy), ...schemes.map((s) => cell(row.verdicts, s)), row.succeeded ? 'ATTACK SUCCEEDS' : '']),
  ];
  return [
    `${r.kind} attacks on ${r.ticket.id} (claims ${r.claims.join(', ')}): an attack succeeds where a verdict flips while test accuracy stays within 3 points`,
    '',
    table(['attack', 'test acc', ...schemes, ''], rows, [1]),
  ].join('\n');
}

export function verifyText(r: VerifyReport): string {
  const what = r.suspect.kind === 'ticket' ? `ticket ${r.suspect.id}` : `${r.suspect.id} (${r.suspect.digest})`;
  return [`${what}: ${r.suspect.model}`, '', verdictTable(r.verdicts)].join('\n');
}

export function keysText(r: KeysReport): string {
  const lines = [
    r.owner
      ? `owner key ${r.owner.fingerprint.slice(0, 16)}… (${r.owner.algorithm}), private key in ${r.owner.path}${r.owner.created ? ' (made now)' : ''}`
      : `no owner key yet: \`ticket-lab keys --create\` makes one at ${r.ownerKeyPath} (a first claim makes it too)`,
  ];
  if (r.keys.length > 0) {
    lines.push('', table(['fingerprint', 'algorithm', 'label', 'own', 'signs bundles'], r.keys.map((k) => [k.fingerprint.slice(0, 16), k.algorithm, k.label ?? '', k.own ? 'yes' : '', k.trusted ? 'trusted' : ''])));
  }
  return lines.join('\n');
}

export function jobsTable(jobs: readonly JobReport[]): string {
  const progress = (j: JobReport) => (j.progress ? `${Math.round(100 * j.progress.fraction)} %, level ${j.progress.level}/${j.progress.levels}` : '');
  return table(
    ['job', 'method', 'state', 'progress', 'run', 'error'],
    jobs.map((j) => [j.id, j.method, j.cancelRequested && j.state === 'running' ? 'cancelling' : j.state, progress(j), j.runId ?? '', j.error ?? '']),
  );
}

export function claimsTable(claims: readonly ClaimSummary[]): string {
  const latest = (c: ClaimSummary) => {
    const v = c.verifications[0];
    return v ? `${v.verdict}${v.score !== null ? ` (${v.score}, p ${v.pValue?.toExponential(1) ?? '—'})` : ''} on ${v.subject}` : '';
  };
  return table(
    ['claim', 'kind', 'ticket', 'owner', 'verdicts', 'latest'],
    claims.map((c) => [c.id, c.kind, c.ticket.id, c.own ? 'you' : (c.keyFingerprint?.slice(0, 16) ?? '—'), String(c.verifications.length), latest(c)]),
    [4],
  );
}

function signerText(s: BundleSignerReport): string {
  const who = s.own ? 'your own key' : s.trusted ? `a trusted key${s.label ? ` (${s.label})` : ''}` : s.known ? 'a key this lab knows only from a claim, not trusted to sign bundles' : 'a key this lab does not know';
  return `signed by ${s.fingerprint} (ECDSA ${s.curve}): ${who}`;
}

function bundleFilesTable(files: readonly BundleFileReport[]): string {
  return table(['file', 'bytes', 'sha256'], files.map((f) => [f.name, f.bytes.toLocaleString('en-US'), f.sha256.slice(0, 16)]), [1]);
}

export function exportBundleText(r: ExportBundleReport): string {
  const extra = [r.lineage > 0 ? `${r.lineage} ancestors` : '', r.claims > 0 ? `${r.claims} claims` : ''].filter(Boolean).join(', ');
  return [
    `${r.path}: ticket ${r.ticket.id} (${r.ticket.model}, ${remaining(r.ticket.sparsity)} remaining)${extra ? `, ${extra}` : ''}; ${r.bytes.toLocaleString('en-US')} bytes`,
    `model.sig: OMS v1.0 over ${r.files.length} files, ${signerText({ ...r.signer, known: true, trusted: true, own: true, label: null })}`,
    '',
    bundleFilesTable(r.files),
  ].join('\n');
}

export function verifyBundleText(r: VerifyBundleReport): string {
  const lines = [`${r.path}: verified, every file's digest matches and no file is unlisted (${r.files.length} files)`, signerText(r.signer)];
  if (r.ticket) {
    const t = r.ticket;
    lines.push(`ticket ${t.id}: ${t.model} on ${t.dataset}, ${t.method}, ${remaining(t.sparsity)} remaining, test ${t.testAccuracy === null ? '—' : pct(t.testAccuracy)}; ${t.lineage} ancestors, ${t.claims} claims`);
  }
  lines.push('', bundleFilesTable(r.files));
  return lines.join('\n');
}

export function importBundleText(r: ImportBundleReport): string {
  const what = r.created.length === 0 ? 'already here: nothing written' : `${r.created.length} tickets stored${r.present.length ? ` (${r.present.length} already here)` : ''}${r.claims.length ? `, ${r.claims.length} claims` : ''}`;
  return [`${r.path}: ticket ${r.ticket.id} (${r.ticket.model}, ${remaining(r.ticket.sparsity)} remaining); ${what}`, signerText(r.signer)].join('\n');
}

export function evaluateText(r: EvaluateReport): string {
  const what = r.ticket ? `${r.ticket.id}  ${r.ticket.method} level ${r.ticket.level}, ${remaining(r.sparsity)} remaining` : `model ${r.model}, dense`;
  const row = (split: string, m: EvaluateReport['test']) => [split, pct(m.accuracy), m.loss.toFixed(4), m.examples.toLocaleString('en-US')];
  const lines = [`${what}; on ${r.dataset} (${r.backend.tfBackend})`, '', table(['split', 'accuracy', 'loss', 'examples'], [row('validation', r.validation), row('test', r.test)], [1, 2, 3])];
  if (r.recordedTestAccuracy !== null) lines.push('', `recorded with the ticket: test ${pct(r.recordedTestAccuracy)}`);
  return lines.join('\n');
}

export function essentialSparsityText(r: EssentialSparsityReport): string {
  const rows = r.curve.map((p) => [pct(p.target, 0), pct(p.sparsity), pct(p.accuracy), p.loss.toFixed(4)]);
  return [
    `${r.ticket ? `${r.ticket.id}  ${r.ticket.method} level ${r.ticket.level}  ${remaining(r.ticket.sparsity)} remaining` : `model ${r.model}`}; one-shot global magnitude, no retraining, ${r.examples} test examples`,
    '',
    table(['target', 'sparsity', 'test acc', 'loss'], rows, [0, 1, 2, 3]),
    '',
    `unpruned: ${pct(r.denseAccuracy)}`,
    `essential sparsity (largest within the tolerance of unpruned): ${r.essentialSparsity === null ? 'none' : pct(r.essentialSparsity, 0)}`,
    `knee (most negative second difference): ${r.knee ? pct(r.knee.sparsity, 0) : 'none'}`,
  ].join('\n');
}

export function instabilityText(r: InstabilityReport): string {
  const rows = r.curve.map((p) => [p.alpha.toFixed(3), pct(p.error), p.loss.toFixed(4)]);
  return [
    `${r.ticket.id}  ${r.ticket.method} level ${r.ticket.level}: two copies trained from iteration ${r.startIteration} to ${r.endIteration}${r.dataSeeds ? `, data orders ${r.dataSeeds.join(' and ')}` : ''}; ${r.testExamples} test examples`,
    '',
    table(['α', 'test error', 'loss'], rows, [0, 1, 2]),
    '',
    `error barrier: ${(100 * r.barrier).toFixed(2)} points (e(0) ${pct(r.e0)}, e(1) ${pct(r.e1)}): ${r.stable ? 'stable' : 'unstable'} (threshold 2 points)`,
  ].join('\n');
}

export function criteriaOverlapText(r: CriteriaOverlapReport): string {
  const rows = r.criteria.map((c) => [c.criterion, c.scored, c.total.overlap.toFixed(4), c.total.chanceOverlap.toFixed(4), c.total.iou.toFixed(4), c.total.chanceIou.toFixed(4)]);
  return [
    `${r.ticket.id}  ${r.ticket.method} level ${r.ticket.level}: ${r.kept} kept (${pct(r.sparsity)} sparsity), ${r.scope} scope; magnitude scores ${r.trainedFrom === 'parent' ? 'the parent ticket\'s trained weights' : 'the ticket\'s own weights'}`,
    '',
    table(['criterion', 'scores', 'overlap |A∩B|/|A|', 'chance', 'IoU', 'chance IoU'], rows, [2, 3, 4, 5]),
    ...r.warnings.map((w) => `warning: ${w}`),
  ].join('\n');
}
