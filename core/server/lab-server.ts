// The local server (`ticket-lab serve`, DESIGN.md "Runs without Electron"): the LabApi over HTTP
// (one POST per method, the request as JSON) and the jobs' events over a WebSocket, from the same
// LabService the CLI and the app use. It listens on loopback unless told otherwise and answers only
// requests that carry the session's token (a bearer header, or the cookie set by opening the printed
// URL once). Every request is validated with the LabApi validators; bodies have a size limit. Long
// calls (searches, attacks) are jobs: they run in the job runner's worker threads, never on the
// thread that serves requests, so a direct call to one is refused with the way to submit it.
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, realpath, rm, stat, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, extname, join, resolve, sep } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { WebSocketServer } from 'ws';
import { type ErrorCode, InvalidRequestError, LabError, RunsAsJobError, toErrorPayload } from '../api/errors';
import { LAB_API_METHODS, type LabApi, type LabApiMethod } from '../api/lab-api';
import { JOB_METHOD_NAMES, type JobEvent, type ServerSession, type UploadReport } from '../api/schemas';

export type { ServerSession, UploadReport };

export interface LabServerOptions {
  /** The service (a LabService): requests are its methods, events its job events. */
  service: LabApi;
  /** Default 127.0.0.1: nothing off this machine reaches it unless asked. */
  host?: string;
  /** Default 0: any free port. */
  port?: number;
  /** Default: 32 random bytes, hex. */
  token?: string;
  /** Largest request body accepted, in bytes (default 1 MiB). */
  maxBodyBytes?: number;
  /** The built renderer, served at / (index.html) and below; without it / describes the API. */
  staticDir?: string;
  /** Largest uploaded file (a dropped model or bundle), in bytes (default 4 GiB). */
  maxUploadBytes?: number;
}

export interface RunningLabServer {
  /** The address to open once: it carries the token, which the server then keeps in a cookie. */
  url: string;
  host: string;
  port: number;
  token: string;
  close(): Promise<void>;
}

const COOKIE = 'ticket_lab_token';
const GROUP = /^[0-9a-f]{16}$/;
const STATUS: Partial<Record<ErrorCode, number>> = {
  INVALID_REQUEST: 400, NOT_FOUND: 404, AMBIGUOUS_ID: 400, BUNDLE_REJECTED: 422, DATA_FORMAT: 422, MASK_FORMAT: 422, DATASET_UNAVAILABLE: 422, CANCELLED: 409, RUNS_AS_JOB: 409,
};
const JOB_METHODS = new Set<string>(JOB_METHOD_NAMES);

/** An HTTP error that is not the service's: 400 (paths), 401, 404, 405, 409 (an upload twice), 413, 415. */
class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

function sameToken(given: string | undefined, token: string): boolean {
  if (!given) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

function tokenOf(request: IncomingMessage): string | undefined {
  const header = request.headers.authorization;
  if (header?.startsWith('Bearer ')) return header.slice('Bearer '.length).trim();
  for (const part of (request.headers.cookie ?? '').split(';')) {
    const [name, ...value] = part.trim().split('=');
    if (name === COOKIE) return value.join('=');
  }
  return undefined;
}

async function readBody(request: IncomingMessage, limit: number): Promise<unknown> {
  const type = request.headers['content-type'] ?? '';
  if (!type.startsWith('application/json')) throw new HttpError(415, 'UNSUPPORTED_MEDIA_TYPE', 'Send the request as application/json.');
  const declared = Number(request.headers['content-length'] ?? NaN);
  if (declared > limit) throw new HttpError(413, 'TOO_LARGE', `The request is ${declared} bytes; the limit is ${limit}.`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new HttpError(413, 'TOO_LARGE', `The request is over the limit of ${limit} bytes.`);
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') return {};
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new InvalidRequestError(`The request body is not JSON: ${(error as Error).message}.`);
  }
}

function send(response: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  response.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store', ...headers });
  response.end(text);
}

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8', '.json': 'application/json',
  '.svg': 'image/svg+xml', '.png': 'image/png', '.woff2': 'font/woff2', '.wasm': 'application/wasm',
};

/**
 * The renderer's CSP, as the desktop app's: its own scripts and styles only, API calls and the
 * events socket to this origin, images from data: and blob: (mask heat-maps), nothing else.
 */
export const RENDERER_CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; font-src 'self'; connect-src 'self' ws: wss:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/** A file of the built renderer: only regular files under `root`, index.html for / and for client-side routes. */
async function serveStatic(root: string, pathname: string, response: ServerResponse): Promise<void> {
  const base = resolve(root);
  let decoded: string;
  try {
    decoded = decodeURIComponent(pathname);
  } catch {
    throw new HttpError(400, 'BAD_PATH', 'The path is not valid percent-encoding.');
  }
  if (decoded.includes('\0')) throw new HttpError(400, 'BAD_PATH', 'The path holds a NUL byte.');
  let file = resolve(base, `.${decoded}`);
  if (file !== base && !file.startsWith(`${base}${sep}`)) throw new HttpError(404, 'NOT_FOUND', 'Nothing there.');
  const info = await stat(file).catch(() => undefined);
  // A route of the single-page app (no extension) gets index.html; a missing asset is a 404.
  if (!info?.isFile()) {
    if (extname(decoded) !== '' && decoded !== '/') throw new HttpError(404, 'NOT_FOUND', `No file ${decoded}.`);
    file = join(base, 'index.html');
  }
  const real = await realpath(file).catch(() => undefined);
  if (!real || (real !== base && !real.startsWith(`${await realpath(base)}${sep}`))) throw new HttpError(404, 'NOT_FOUND', 'Nothing there.');
  const body = await readFile(real);
  response.writeHead(200, {
    'content-type': CONTENT_TYPES[extname(real)] ?? 'application/octet-stream', 'content-length': body.length,
    'content-security-policy': RENDERER_CSP, 'x-content-type-options': 'nosniff', 'referrer-policy': 'no-referrer',
    'cache-control': extname(real) === '.html' ? 'no-store' : 'no-cache',
  });
  response.end(body);
}

/** A dropped file's path inside its folder: plain names only, never `..`, absolute, or special. */
function uploadPath(header: string | string[] | undefined): string[] {
  let decoded: string;
  try {
    decoded = decodeURIComponent(typeof header === 'string' ? header : '');
  } catch {
    throw new HttpError(400, 'BAD_PATH', 'x-file-path is not valid percent-encoding.');
  }
  const parts = decoded.split('/');
  const bad = parts.find((part) => part === '' || part === '.' || part === '..' || part.length > 255 || /[\\\0:]/.test(part));
  if (decoded === '' || parts.length > 16 || bad !== undefined) {
    throw new HttpError(400, 'BAD_PATH', `x-file-path must be a relative path of plain names (got ${JSON.stringify(decoded.slice(0, 300))}).`);
  }
  return parts;
}

/** Streams an upload into a new file; past the limit the file is removed and the answer is 413. */
async function receiveUpload(request: IncomingMessage, uploads: string, limit: number): Promise<UploadReport> {
  if ((request.headers['content-type'] ?? '') !== 'application/octet-stream') throw new HttpError(415, 'UNSUPPORTED_MEDIA_TYPE', 'Send the file as application/octet-stream.');
  const declared = Number(request.headers['content-length'] ?? NaN);
  if (declared > limit) throw new HttpError(413, 'TOO_LARGE', `The file is ${declared} bytes; the limit is ${limit}.`);
  const parts = uploadPath(request.headers['x-file-path']);
  const given = request.headers['x-upload-group'];
  if (given !== undefined && (typeof given !== 'string' || !GROUP.test(given))) throw new HttpError(400, 'BAD_GROUP', 'x-upload-group must be the group an earlier upload returned.');
  const group = given ?? randomBytes(8).toString('hex');
  const root = join(uploads, group);
  const file = join(root, ...parts);
  await mkdir(dirname(file), { recursive: true });
  let bytes = 0;
  try {
    await pipeline(
      request,
      async function* (chunks: AsyncIterable<Buffer>) {
        for await (const chunk of chunks) {
          bytes += chunk.length;
          if (bytes > limit) throw new HttpError(413, 'TOO_LARGE', `The file is over the limit of ${limit} bytes.`);
          yield chunk;
        }
      },
      // 'wx': an upload never replaces a file, a second file of one name in a group is refused.
      createWriteStream(file, { flags: 'wx' }),
    );
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') throw new HttpError(409, 'EXISTS', `${parts.join('/')} was already uploaded to this group.`);
    await unlink(file).catch(() => undefined);
    throw error;
  }
  return { path: file, root, group, bytes };
}

/** A file the service exported for this browser: only regular files inside the export folder. */
async function sendExport(exportDir: string, wanted: string | null, response: ServerResponse): Promise<void> {
  const real = wanted ? await realpath(wanted).catch(() => undefined) : undefined;
  const base = await realpath(exportDir);
  const info = real ? await stat(real) : undefined;
  if (!real || !real.startsWith(`${base}${sep}`) || !info?.isFile()) throw new HttpError(404, 'NOT_FOUND', 'Only files this session exported can be downloaded.');
  response.writeHead(200, {
    'content-type': 'application/octet-stream', 'content-length': info.size, 'cache-control': 'no-store',
    'content-disposition': `attachment; filename="${basename(real).replace(/[^\w.-]/g, '_')}"`,
  });
  await pipeline(createReadStream(real), response);
}

export async function startLabServer(options: LabServerOptions): Promise<RunningLabServer> {
  const { service } = options;
  const host = options.host ?? '127.0.0.1';
  const token = options.token ?? randomBytes(32).toString('hex');
  const maxBodyBytes = options.maxBodyBytes ?? 1024 * 1024;
  const maxUploadBytes = options.maxUploadBytes ?? 4 * 1024 ** 3;
  // Uploads and exports of this session live in a private temporary folder, removed on close.
  const filesDir = await mkdtemp(join(tmpdir(), 'ticket-lab-serve-'));
  const uploads = join(filesDir, 'uploads');
  const exportDir = join(filesDir, 'exports');
  await mkdir(uploads);
  await mkdir(exportDir);
  const session: ServerSession = { exportDir, separator: sep, maxBodyBytes, maxUploadBytes };

  const handle = async (request: IncomingMessage, response: ServerResponse): Promise<void> => {
    const url = new URL(request.url ?? '/', 'http://localhost');
    // Opening the printed URL once: the token moves into a cookie and out of the address bar.
    if (request.method === 'GET' && url.pathname === '/' && url.searchParams.has('token')) {
      if (!sameToken(url.searchParams.get('token') ?? undefined, token)) throw new HttpError(401, 'UNAUTHORIZED', 'That token is not this session\'s.');
      response.writeHead(303, { location: '/', 'set-cookie': `${COOKIE}=${token}; HttpOnly; SameSite=Strict; Path=/` });
      response.end();
      return;
    }
    if (!sameToken(tokenOf(request), token)) throw new HttpError(401, 'UNAUTHORIZED', 'This server needs its session token: open the URL it printed, or send Authorization: Bearer <token>.');
    if (request.method === 'GET' && !url.pathname.startsWith('/api/')) {
      if (options.staticDir) return serveStatic(options.staticDir, url.pathname, response);
      if (url.pathname === '/') return send(response, 200, { service: 'ticket-lab', api: 'POST /api/<method> with the request as JSON', events: 'WebSocket /api/events', methods: Object.keys(LAB_API_METHODS) });
    }
    if (url.pathname === '/api/session' && request.method === 'GET') return send(response, 200, session);
    if (url.pathname === '/api/download' && request.method === 'GET') return sendExport(exportDir, url.searchParams.get('path'), response);
    if (url.pathname === '/api/upload') {
      if (request.method !== 'POST') throw new HttpError(405, 'METHOD_NOT_ALLOWED', 'Upload with POST.');
      return send(response, 200, await receiveUpload(request, uploads, maxUploadBytes));
    }
    const match = /^\/api\/([A-Za-z]+)$/.exec(url.pathname);
    if (!match) throw new HttpError(404, 'NOT_FOUND', `Nothing at ${url.pathname}; the API is POST /api/<method>.`);
    const method = match[1]!;
    if (!Object.hasOwn(LAB_API_METHODS, method)) throw new HttpError(404, 'NOT_FOUND', `There is no LabApi method '${method}'.`);
    if (request.method !== 'POST') throw new HttpError(405, 'METHOD_NOT_ALLOWED', `Call ${method} with POST.`);
    if (JOB_METHODS.has(method)) {
      throw new RunsAsJobError(`${method} runs as a job: POST /api/submitJob with {"method": "${method}", "request": {...}}, then follow it on /api/events.`);
    }
    const body = await readBody(request, maxBodyBytes);
    // The service validates every request with its LabApi validator before it does anything.
    if ((method === 'submitJob' || method === 'resumeJob') && (body as { wait?: unknown } | null)?.wait === true) {
      throw new InvalidRequestError('wait: over HTTP, follow the job on /api/events instead of waiting for it.');
    }
    const call = service[method as LabApiMethod] as (request: unknown) => Promise<unknown>;
    send(response, 200, await call.call(service, body));
  };

  const server: Server = createServer((request, response) => {
    handle(request, response).catch((error: unknown) => {
      if (response.headersSent) return response.destroy();
      if (error instanceof HttpError) return send(response, error.status, { code: error.code, message: error.message });
      const payload = toErrorPayload(error);
      send(response, error instanceof LabError ? (STATUS[error.code] ?? 500) : 500, payload);
    });
  });
  // Uploads of large models take longer than a request: the body has no overall deadline, only headers do.
  server.requestTimeout = 0;
  server.headersTimeout = 10_000;

  // Job events for every authorised socket on /api/events.
  const sockets = new WebSocketServer({ noServer: true, maxPayload: 4096 });
  server.on('upgrade', (request, socket, head) => {
    const url = new URL(request.url ?? '/', 'http://localhost');
    if (url.pathname !== '/api/events' || !sameToken(tokenOf(request) ?? url.searchParams.get('token') ?? undefined, token)) {
      socket.end('HTTP/1.1 401 Unauthorized\r\n\r\n');
      return;
    }
    sockets.handleUpgrade(request, socket, head, (ws) => sockets.emit('connection', ws));
  });
  const unsubscribe = service.onJobEvent((event: JobEvent) => {
    const text = JSON.stringify(event);
    for (const client of sockets.clients) if (client.readyState === client.OPEN) client.send(text);
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => resolve());
  });
  const address = server.address() as AddressInfo;
  const shown = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    url: `http://${shown}:${address.port}/?token=${token}`,
    host: address.address,
    port: address.port,
    token,
    close: async () => {
      unsubscribe();
      for (const client of sockets.clients) client.terminate();
      sockets.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await rm(filesDir, { recursive: true, force: true });
    },
  };
}
