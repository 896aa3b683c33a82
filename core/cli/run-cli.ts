// Argument parsing, dispatch, exit codes and error lines of `ticket-lab` (DESIGN.md, CLI conventions):
// 0 success, 1 error, 2 usage error, 130 cancelled by Ctrl-C. Errors are one line `error: ...`.
import { parseArgs } from 'node:util';
import { CancelledError, InvalidRequestError, LabError } from '../api/errors';
import type { SearchProgress } from '../api/schemas';
import { BACKEND_CHOICES } from '../compute/backend';
import { softwareVersions } from '../compute/versions';
import { LabService } from '../service/lab-service';
import { defaultDbPath, defaultOwnerKeyPath } from '../store/default-path';
import { COMMANDS, type CommandDef, type OptionDef } from './commands';
import { ProgressLine } from './progress-line';

export const EXIT = { ok: 0, error: 1, usage: 2, cancelled: 130 } as const;

class UsageError extends Error {}

export interface CliIo {
  stdout: NodeJS.WriteStream;
  stderr: NodeJS.WriteStream;
  env: NodeJS.ProcessEnv;
}

const GLOBAL_OPTIONS = {
  db: { type: 'string' },
  json: { type: 'boolean' },
  backend: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

const GLOBAL_HELP = [
  ['--db PATH', 'the database file (or env TICKET_LAB_DB; default ~/.local/share/ticket-lab/lab.db)'],
  ['--json', 'machine-readable result on stdout; progress and logs stay on stderr'],
  ['--backend B', `TensorFlow.js backend: ${BACKEND_CHOICES.join(' | ')} (default auto: the best available)`],
];

function camel(flag: string): string {
  return flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

/** Splits `ticket-lab [globals] search imp [options]` into the command and the remaining arguments. */
function findCommand(argv: string[]): { command: CommandDef | undefined; rest: string[]; words: string[] } {
  const words: Array<{ word: string; index: number }> = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--db' || a === '--backend') {
      i++;
      continue;
    }
    if (a.startsWith('-')) continue;
    words.push({ word: a, index: i });
    if (words.length === 2) break;
  }
  for (const n of [2, 1]) {
    const name = words.slice(0, n).map((w) => w.word).join(' ');
    const command = COMMANDS.find((c) => c.name === name);
    if (command && words.length >= n) {
      const drop = new Set(words.slice(0, n).map((w) => w.index));
      return { command, rest: argv.filter((_, i) => !drop.has(i)), words: words.map((w) => w.word) };
    }
  }
  return { command: undefined, rest: argv, words: words.map((w) => w.word) };
}

function parseValue(def: OptionDef, raw: string | boolean): unknown {
  const flag = `--${def.flag}`;
  switch (def.kind) {
    case 'boolean':
      return def.sets ?? raw === true;
    case 'string':
      return raw;
    case 'int': {
      const s = String(raw);
      if (!/^-?\d+$/.test(s)) throw new UsageError(`${flag} expects a whole number, got '${s}'`);
      return Number(s);
    }
    case 'number': {
      const s = String(raw);
      const x = Number(s);
      if (s.trim() === '' || !Number.isFinite(x)) throw new UsageError(`${flag} expects a number, got '${s}'`);
      return x;
    }
    case 'string-list': {
      const parts = String(raw).split(',').map((p) => p.trim());
      if (parts.some((p) => p === '')) throw new UsageError(`${flag} expects names separated by commas, got '${String(raw)}'`);
      return parts;
    }
    case 'number-list': {
      const parts = String(raw).split(',').map((p) => p.trim());
      if (!parts.every((p) => p !== '' && Number.isFinite(Number(p)))) throw new UsageError(`${flag} expects numbers separated by commas, got '${String(raw)}'`);
      return parts.map(Number);
    }
    case 'int-list': {
      const parts = String(raw).split(',');
      if (!parts.every((p) => /^\d+$/.test(p.trim()))) throw new UsageError(`${flag} expects whole numbers separated by commas, got '${String(raw)}'`);
      return parts.map((p) => Number(p.trim()));
    }
  }
}

function commandHelp(c: CommandDef): string {
  const lines = [`usage: ticket-lab ${c.name}${c.positionals.map((p) => ` ${p}`).join('')} [options]`, '', c.summary, ''];
  const rows = [...c.options.map((o) => [`${o.short ? `-${o.short}, ` : ''}--${o.flag}${o.kind === 'boolean' ? '' : ' X'}`, o.help]), ...GLOBAL_HELP.filter(([f]) => c.usesBackend || !f!.startsWith('--backend'))];
  const width = Math.max(...rows.map((r) => r[0]!.length));
  for (const [flag, help] of rows) lines.push(`  ${flag!.padEnd(width)}  ${help}`);
  return lines.join('\n');
}

function mainHelp(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    'usage: ticket-lab <command> [options]',
    '',
    'Find, keep and compare lottery tickets (sparse sub-networks) with TensorFlow.js and SQLite.',
    '',
    'commands:',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    'global options:',
    ...GLOBAL_HELP.map(([f, h]) => `  ${f!.padEnd(12)}  ${h}`),
    '',
    'Run `ticket-lab <command> --help` for its options.',
  ].join('\n');
}

export async function runCli(argv: string[], io: CliIo): Promise<number> {
  const out = (text: string) => io.stdout.write(`${text}\n`);
  const err = (text: string) => io.stderr.write(`${text}\n`);
  const { command, rest, words } = findCommand(argv);

  if (!command) {
    if (words.length === 0 && (argv.includes('--help') || argv.includes('-h') || argv.length === 0)) {
      out(mainHelp());
      return argv.length === 0 ? EXIT.usage : EXIT.ok;
    }
    if (argv.includes('--version')) {
      out(softwareVersions()['ticket-lab']!);
      return EXIT.ok;
    }
    err(`error: unknown command '${words.join(' ')}'. Commands: ${COMMANDS.map((c) => c.name).join(', ')}. Run \`ticket-lab --help\`.`);
    return EXIT.usage;
  }

  let service: LabService | undefined;
  let progressLine: ProgressLine | undefined;
  const controller = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    if (controller.signal.aborted) process.exit(EXIT.cancelled); // second Ctrl-C: leave now
    progressLine?.done();
    err(`${signal === 'SIGINT' ? 'Ctrl-C' : signal}: ${command.stopping ?? 'stopping at the next safe point; finished levels are kept'} (Ctrl-C again to quit at once).`);
    controller.abort();
  };

  try {
    const options: Record<string, { type: 'string' | 'boolean' }> = { ...GLOBAL_OPTIONS };
    for (const o of command.options) options[o.flag] = { type: o.kind === 'boolean' ? 'boolean' : 'string', ...(o.short ? { short: o.short } : {}) };
    let parsed: ReturnType<typeof parseArgs>;
    try {
      parsed = parseArgs({ args: rest, options, allowPositionals: true, strict: true });
    } catch (error) {
      throw new UsageError((error as Error).message.split('\n')[0]!.replace(/\. To specify a positional.*$/, ''));
    }
    const values = parsed.values as Record<string, string | boolean | undefined>;
    if (values.help) {
      out(commandHelp(command));
      return EXIT.ok;
    }
    // A last positional named `X...` takes one or more (merge FILE.db...).
    const variadic = command.positionals.at(-1)?.endsWith('...') === true;
    if (variadic ? parsed.positionals.length < command.positionals.length : parsed.positionals.length !== command.positionals.length) {
      throw new UsageError(
        command.positionals.length
          ? `${command.name} takes ${command.positionals.join(' ')}, got ${parsed.positionals.length ? parsed.positionals.join(' ') : 'nothing'}`
          : `${command.name} takes no arguments, got '${parsed.positionals.join(' ')}'`,
      );
    }
    const request: Record<string, unknown> = {};
    for (const def of command.options) {
      const raw = values[def.flag];
      if (raw !== undefined) request[def.field ?? camel(def.flag)] = parseValue(def, raw);
    }
    if (values.backend !== undefined) {
      if (!command.usesBackend) throw new UsageError(`--backend applies to commands that train; ${command.name} does not`);
      request.backend = values.backend;
    }

    const json = values.json === true;
    service = new LabService({ dbPath: (values.db as string | undefined) ?? defaultDbPath(io.env), ownerKeyPath: defaultOwnerKeyPath(io.env) });
    if (command.long) {
      progressLine = new ProgressLine(io.stderr, io.stderr.isTTY === true);
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
    }
    await command.run(
      {
        api: service,
        json,
        out,
        err,
        signal: controller.signal,
        progress: progressLine ? (p: SearchProgress) => progressLine!.update(p) : undefined,
      },
      request,
      parsed.positionals,
    );
    progressLine?.done();
    return EXIT.ok;
  } catch (error) {
    progressLine?.done();
    if (error instanceof UsageError) {
      err(`error: ${error.message}. Run \`ticket-lab ${command.name} --help\`.`);
      return EXIT.usage;
    }
    if (error instanceof InvalidRequestError) {
      err(`error: ${error.message}`);
      return EXIT.usage;
    }
    if (error instanceof CancelledError) {
      err(`cancelled: ${error.message}`);
      return EXIT.cancelled;
    }
    if (error instanceof LabError) {
      err(`error: ${error.message}`);
      return EXIT.error;
    }
    err(`error: unexpected failure: ${error instanceof Error ? error.message : String(error)}. Please report it with the command you ran.`);
    if (io.env.TICKET_LAB_DEBUG && error instanceof Error) err(error.stack ?? '');
    return EXIT.error;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    service?.close();
  }
}
