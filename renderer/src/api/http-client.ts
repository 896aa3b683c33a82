// The LabClient over `ticket-lab serve`: one POST per method (the session cookie carries the token),
// job events over a WebSocket that reconnects, uploads with progress, downloads of exports.
import type { LabApiMethod } from '../../../core/api/lab-api';
import type { JobEvent, ServerSession, UploadReport } from '../../../core/api/schemas';
import { type FileAccess, LabCallError, type LabClient, type PickedFile, type UploadProgress } from './lab-client';

async function errorOf(response: Response): Promise<LabCallError> {
  const text = await response.text();
  try {
    const body = JSON.parse(text) as { code?: string; message?: string; details?: unknown };
    return new LabCallError(body.code ?? `HTTP_${response.status}`, body.message ?? text, response.status, body.details);
  } catch {
    return new LabCallError(`HTTP_${response.status}`, text || response.statusText, response.status);
  }
}

export function createHttpClient(origin: string = window.location.origin): LabClient {
  const call = async (method: LabApiMethod, request: unknown): Promise<unknown> => {
    let response: Response;
    try {
      response = await fetch(`${origin}/api/${method}`, {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(request ?? {}),
      });
    } catch (error) {
      throw new LabCallError('UNREACHABLE', `The Ticket Lab server does not answer (${(error as Error).message}). Is \`ticket-lab serve\` still running?`);
    }
    if (!response.ok) throw await errorOf(response);
    return response.json();
  };

  // One socket for all listeners, opened with the first and reopened (with backoff) when it drops.
  const jobListeners = new Set<(event: JobEvent) => void>();
  const connectionListeners = new Set<(connected: boolean) => void>();
  let socket: WebSocket | undefined;
  let connected = false;
  let retryMs = 500;
  const setConnected = (value: boolean) => {
    connected = value;
    for (const listener of connectionListeners) listener(value);
  };
  const open = () => {
    if (socket) return;
    socket = new WebSocket(`${origin.replace(/^http/, 'ws')}/api/events`);
    socket.onopen = () => {
      retryMs = 500;
      setConnected(true);
    };
    socket.onmessage = (message) => {
      const event = JSON.parse(String(message.data)) as JobEvent;
      for (const listener of jobListeners) listener(event);
    };
    socket.onclose = () => {
      socket = undefined;
      if (connected) setConnected(false);
      if (jobListeners.size > 0) setTimeout(open, (retryMs = Math.min(retryMs * 2, 10_000)));
    };
  };

  let session: Promise<ServerSession> | undefined;
  const sessionInfo = () =>
    (session ??= fetch(`${origin}/api/session`, { credentials: 'same-origin' }).then(async (r) => {
      if (!r.ok) throw await errorOf(r);
      return (await r.json()) as ServerSession;
    }));

  const uploadOne = (item: PickedFile, group: string | undefined, onBytes: (sent: number) => void) =>
    new Promise<UploadReport>((resolve, reject) => {
      const request = new XMLHttpRequest();
      request.open('POST', `${origin}/api/upload`);
      request.setRequestHeader('content-type', 'application/octet-stream');
      request.setRequestHeader('x-file-path', encodeURIComponent(item.relativePath));
      if (group) request.setRequestHeader('x-upload-group', group);
      request.upload.onprogress = (event) => onBytes(event.loaded);
      request.onload = () => {
        if (request.status === 200) return resolve(JSON.parse(request.responseText) as UploadReport);
        void errorOf(new Response(request.responseText, { status: request.status })).then(reject);
      };
      request.onerror = () => reject(new LabCallError('UNREACHABLE', `Uploading ${item.relativePath} failed: the server does not answer.`));
      request.send(item.file);
    });

  const files: FileAccess = {
    uploads: true,
    async receive(items, onProgress) {
      if (items.length === 0) throw new LabCallError('INVALID_REQUEST', 'Nothing was dropped.');
      const { maxUploadBytes, separator } = await sessionInfo();
      const totalBytes = items.reduce((sum, item) => sum + item.file.size, 0);
      const tooBig = items.find((item) => item.file.size > maxUploadBytes);
      if (tooBig) throw new LabCallError('TOO_LARGE', `${tooBig.relativePath} is ${tooBig.file.size} bytes; this server takes files up to ${maxUploadBytes}.`);
      let done = 0;
      let group: string | undefined;
      let first: { path: string; root: string } | undefined;
      for (const item of items) {
        const report = await uploadOne(item, group, (sent) => onProgress?.({ sentBytes: done + sent, totalBytes } satisfies UploadProgress));
        done += item.file.size;
        group = report.group;
        first ??= report;
      }
      // A single file is named by its own path; a dropped folder by the folder it became.
      const top = items[0]!.relativePath.split('/')[0]!;
      const folder = items.length > 1 || items[0]!.relativePath.includes('/');
      return { path: folder ? `${first!.root}${separator}${top}` : first!.path, root: first!.root };
    },
    async exportPath(name) {
      const { exportDir, separator } = await sessionInfo();
      return `${exportDir}${separator}${name.replace(/[^\w.-]/g, '_')}`;
    },
    deliver(path) {
      const link = document.createElement('a');
      link.href = `${origin}/api/download?path=${encodeURIComponent(path)}`;
      link.download = path.split(/[\\/]/).pop() ?? 'export';
      document.body.append(link);
      link.click();
      link.remove();
    },
  };

  const own: Pick<LabClient, 'files' | 'onJobEvent' | 'onConnection'> = {
    files,
    onJobEvent(listener) {
      jobListeners.add(listener);
      open();
      return () => jobListeners.delete(listener);
    },
    onConnection(listener) {
      connectionListeners.add(listener);
      listener(connected);
      return () => connectionListeners.delete(listener);
    },
  };
  // Every other property is a LabApi method: a POST of its name (the server answers 404 for a name it
  // does not serve). A proxy rather than LAB_API_METHODS keeps the validators, and zod, out of the
  // first bundle: the page starts sooner, and the service validates every request anyway.
  // Only method-shaped names: `then` (awaiting the client), `toJSON` and Vue's `__v_*` probes stay undefined.
  const isMethod = (name: string | symbol): name is LabApiMethod => typeof name === 'string' && /^[a-z][A-Za-z]+$/.test(name) && name !== 'then' && name !== 'toJSON';
  return new Proxy(own, {
    get: (target, name) => (name in target ? Reflect.get(target, name) : isMethod(name) ? (request: unknown) => call(name, request) : undefined),
  }) as unknown as LabClient;
}
