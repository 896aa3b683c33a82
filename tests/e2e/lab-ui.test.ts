// The renderer in real headless Chromium against `ticket-lab serve` (its own process) on a database
// seeded by real tiny searches: every screen driven as a researcher would, each checked against what
// the service itself answers, and screenshotted (SCREENS_DIR, default test-results/screens;
// `npm run screens` writes docs/screens/).
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { CompareResult, TicketSummary, TicketMasksReport } from '../../core/api/schemas';
import { runCliProcess } from '../support/cli-process';
import { useTempFolder } from '../support/temp-folder';
import { type ServedLab, launchChromium, serveLab } from './support/lab-browser';
import { type SeededLab, seedLab } from './support/seed-lab';

const SCREENS = process.env.SCREENS_DIR ?? join(__dirname, '..', '..', 'test-results', 'screens');
const temp = useTempFolder('ticket-lab-e2e-');
let seeded: SeededLab;
let lab: ServedLab;
let browser: Browser;
let context: BrowserContext;
let page: Page;
/** Console errors and CSP refusals: a page that logs any fails the suite at the end. */
const pageErrors: string[] = [];

/** The service's own answer, through the same server, to check the screens against. */
async function api<T>(method: string, request: unknown): Promise<T> {
  const response = await fetch(`${lab.origin}/api/${method}`, { method: 'POST', headers: { authorization: `Bearer ${lab.token}`, 'content-type': 'application/json' }, body: JSON.stringify(request) });
  if (!response.ok) throw new Error(`${method}: ${response.status} ${await response.text()}`);
  return (await response.json()) as T;
}

async function shot(name: string): Promise<void> {
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: join(SCREENS, `${name}.png`), fullPage: true });
}

async function open(route: string): Promise<void> {
  await page.goto(`${lab.origin}/#${route}`);
}

beforeAll(async () => {
  mkdirSync(SCREENS, { recursive: true });
  seeded = await seedLab(temp());
  lab = await serveLab(seeded.dbPath, seeded.ownerKeyPath);
  browser = await launchChromium();
  context = await browser.newContext({ viewport: { width: 1280, height: 860 }, colorScheme: 'light' });
  page = await context.newPage();
  page.on('console', (message) => {
    if (message.type() === 'error' && !/favicon/.test(message.text())) pageErrors.push(message.text());
  });
  page.on('pageerror', (error) => pageErrors.push(error.message));
  await page.goto(lab.url); // the printed URL once: the token moves into the cookie
}, 300_000);

afterAll(async () => {
  await browser?.close();
  await lab?.stop();
});

describe('the lab UI in Chromium', () => {
  it('is refused without the token: the page, the API and the events socket', async () => {
    const stranger = await browser.newContext();
    try {
      const answer = await (await stranger.newPage()).goto(lab.origin);
      expect(answer!.status()).toBe(401);
    } finally {
      await stranger.close();
    }
    expect((await fetch(`${lab.origin}/api/listTickets`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })).status).toBe(401);
    expect((await fetch(`${lab.origin}/api/listTickets`, { method: 'POST', headers: { authorization: 'Bearer wrong', 'content-type': 'application/json' }, body: '{}' })).status).toBe(401);
    const refused = await new Promise<number>((resolve) => {
      const socket = new WebSocket(`${lab.origin.replace('http', 'ws')}/api/events`);
      socket.on('unexpected-response', (_request, response) => resolve(response.statusCode ?? 0));
      socket.on('open', () => resolve(101));
      socket.on('error', () => undefined);
    });
    expect(refused).toBe(401);
  });

  it('lists the tickets and filters them as the service does', async () => {
    const all = await api<TicketSummary[]>('listTickets', {});
    await open('/tickets');
    await expect.poll(() => page.getByTestId('ticket-row').count()).toBe(all.length);
    await expect.poll(() => page.getByTestId('tickets-total').textContent()).toContain(String(all.length));
    await shot('tickets');

    const snip = all.filter((t) => t.method === 'snip');
    expect(snip.length).toBeGreaterThan(0);
    await page.getByTestId('filter-method').fill('snip');
    await expect.poll(() => page.getByTestId('ticket-row').count()).toBe(snip.length);
    expect(await page.getByTestId('ticket-row').first().getAttribute('data-ticket-id')).toBe(snip[0]!.id);
    await page.getByTestId('filter-method').fill('');

    const sparse = all.filter((t) => t.sparsity >= 0.5);
    await page.getByTestId('filter-min-sparsity').fill('50');
    await expect.poll(() => page.getByTestId('ticket-row').count()).toBe(sparse.length);
    await page.getByTestId('filter-min-sparsity').fill('');
    await expect.poll(() => page.getByTestId('ticket-row').count()).toBe(all.length);
  });

  it('opens a ticket: its heat-maps draw exactly the kept weights of each layer', async () => {
    const ticket = seeded.impTickets[3]!;
    const masks = await api<TicketMasksReport>('ticketMasks', { ticket });
    await open(`/tickets/${ticket}`);
    await page.locator('[data-testid="mask-heatmaps"][data-rendered="true"]').waitFor({ timeout: 30_000 });
    expect(await page.getByTestId('mask-layer').count()).toBe(masks.layers.length);
    // Count the kept-coloured pixels of each canvas: the picture is the mask.
    const drawn = await page.$$eval('[data-testid="mask-layer"] canvas', (canvases) =>
      (canvases as HTMLCanvasElement[]).map((canvas) => {
        const data = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height).data;
        const [r, g, b] = [data[0]!, data[1]!, data[2]!];
        let same = 0;
        for (let i = 0; i < data.length; i += 4) if (data[i] === r && data[i + 1] === g && data[i + 2] === b) same++;
        return { width: canvas.width, height: canvas.height, firstColourCount: same };
      }),
    );
    for (const [i, layer] of masks.layers.entries()) {
      expect([drawn[i]!.width, drawn[i]!.height]).toEqual([layer.cols, layer.rows]);
      // Pixels share the first pixel's colour: kept ones if the first weight is kept, pruned ones otherwise.
      const firstKept = (Buffer.from(layer.bits, 'base64')[0]! & 0x80) !== 0;
      expect(drawn[i]!.firstColourCount).toBe(firstKept ? layer.kept : layer.total - layer.kept);
    }
    await page.getByTestId('lineage-chart').waitFor();
    await page.getByTestId('sparsity-bars').waitFor();
    await shot('ticket-detail');
    // Dark, as the system asks: the heat-maps redraw in the dark theme's colours.
    await page.emulateMedia({ colorScheme: 'dark' });
    await expect.poll(() => page.evaluate(() => document.documentElement.dataset.theme)).toBe('dark');
    await page.locator('[data-testid="mask-heatmaps"][data-rendered="true"]').waitFor();
    await shot('ticket-detail-dark');
    await page.emulateMedia({ colorScheme: 'light' });
  });

  it('compares two tickets with the service\'s numbers', async () => {
    const [a, b] = [seeded.impTickets[1]!, seeded.impTickets[3]!];
    const expected = await api<CompareResult>('compareTickets', { a, b });
    await open(`/compare?ids=${a},${b}`);
    await expect.poll(() => page.getByTestId('compare-layer-row').count()).toBe(expected.layers.length);
    expect(await page.getByTestId('compare-total-iou').textContent()).toContain((expected.total.iou * 100).toFixed(1));
    await page.getByTestId('compare-chart').waitFor();
    await shot('compare');
  });

  it('verifies the claimed ticket and an innocent one, each verdict with its evidence', async () => {
    await open(`/verify?suspect=${seeded.claimedTicket}`);
    await page.getByTestId('verify-run').click();
    const card = page.getByTestId('verdict-card').first();
    await card.waitFor({ timeout: 60_000 });
    expect(await card.getAttribute('data-verdict')).toBe('verified');
    expect(await card.getByTestId('verdict-score').textContent()).toMatch(/\d+\s*\/\s*\d+/);
    expect(await card.getByTestId('verdict-pvalue').textContent()).toMatch(/e-|×\s*10/);
    await shot('verify');

    await page.getByTestId('verify-suspect-input').fill(seeded.oneShotTicket);
    await page.getByTestId('verify-run').click();
    await expect.poll(() => page.getByTestId('verdict-card').first().getAttribute('data-verdict'), { timeout: 60_000 }).toBe('not verified');
  });

  it('imports a model file dropped onto the window', async () => {
    const file = join(__dirname, '..', 'fixtures', 'interop-torch2', 'mlp.safetensors');
    await open('/tickets');
    const bytes = [...readFileSync(file)];
    await page.evaluate((content) => {
      const transfer = new DataTransfer();
      transfer.items.add(new File([new Uint8Array(content)], 'mlp.safetensors'));
      const target = document.querySelector('.shell')!;
      for (const type of ['dragenter', 'dragover', 'drop']) target.dispatchEvent(new DragEvent(type, { dataTransfer: transfer, bubbles: true, cancelable: true }));
    }, bytes);
    await page.getByTestId('import-inspect').waitFor({ timeout: 30_000 });
    expect(await page.getByTestId('import-inspect').textContent()).toContain('safetensors');
    await page.getByTestId('import-run').click();
    await page.getByTestId('import-result').waitFor({ timeout: 30_000 });
    expect(await page.getByTestId('import-result').textContent()).toMatch(/md_[0-9a-f]{12}/);
    await shot('import');
  });

  it('starts a search, follows its progress to 100 %, and cancels another', async () => {
    await open('/search');
    await page.getByTestId('search-method').selectOption('searchImp');
    const fields: Record<string, string> = { model: 'lenet-300-100', dataset: 'mnist', levels: '2', iterations: '60' };
    for (const [name, value] of Object.entries(fields)) await page.getByTestId(`search-field-${name}`).fill(value);
    await page.getByTestId('search-start').click();
    const card = page.getByTestId('job-card').first();
    await expect.poll(() => card.getAttribute('data-state'), { timeout: 120_000 }).toBe('completed');
    expect(await card.getByTestId('job-progress').textContent()).toContain('100.0 %');
    await shot('search');

    await page.getByTestId('search-field-levels').fill('20');
    await page.getByTestId('search-field-iterations').fill('2000');
    await page.getByTestId('search-start').click();
    const long = page.getByTestId('job-card').first();
    await expect.poll(() => long.getAttribute('data-state'), { timeout: 60_000 }).toBe('running');
    await long.getByTestId('job-cancel').click();
    await expect.poll(() => long.getAttribute('data-state'), { timeout: 60_000 }).toBe('cancelled');
    await open('/jobs');
    await expect.poll(() => page.getByTestId('job-card').count()).toBeGreaterThanOrEqual(2);
    await shot('jobs');
  });

  it('shows a sweep\'s tasks and results, and merges the finished ones into the lab', async () => {
    // A two-task sweep planned by the CLI; one task run as a Slurm array task would run it, one not yet.
    const dir = join(temp(), 'sweep');
    const budget = ['--iterations', '20', '--eval-every', '10', '--validation-size', '500', '--backend', 'wasm'];
    for (const args of [['sweep', 'plan', '--methods', 'oneshot', '--sparsities', '0.9', '--seeds', '0,1', '--model', 'lenet-300-100', '--dataset', 'mnist', ...budget, '-o', dir], ['sweep', 'run-task', dir, '0']]) {
      const result = await runCliProcess(args);
      expect(result.code, result.stderr).toBe(0);
    }
    const before = (await api<TicketSummary[]>('listTickets', {})).length;
    await open(`/sweeps?dir=${encodeURIComponent(dir)}`);
    await expect.poll(() => page.getByTestId('sweep-task').count()).toBe(2);
    expect(await page.getByTestId('sweep-task').evaluateAll((rows) => rows.map((row) => row.getAttribute('data-state')))).toEqual(['done', 'unsubmitted']);
    await page.getByTestId('sweep-chart').waitFor();
    await page.getByTestId('sweep-merge').click();
    await expect.poll(() => page.getByTestId('job-card').getAttribute('data-state'), { timeout: 60_000 }).toBe('completed');
    // The finished task's dense ticket and its one-shot ticket are now in the lab, under their task ids.
    expect((await api<TicketSummary[]>('listTickets', {})).length).toBe(before + 2);
    await shot('sweeps');
  });

  it('logged no error and no CSP refusal on any screen', () => {
    expect(pageErrors).toEqual([]);
  });
});
