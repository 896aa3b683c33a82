// One job in a worker thread: its own LabService (and so its own TF.js engine and SQLite
// connection) on the runner's database, one LabApi call, its progress posted back as it comes, a
// cancel message turned into the call's AbortSignal. The thread that serves requests never trains.
import { parentPort, workerData } from 'node:worker_threads';
import type { CallOptions } from '../api/lab-api';
import { toErrorPayload } from '../api/errors';
import { LabService } from '../service/lab-service';
import type { JobReply, JobWork } from './job-messages';

const work = workerData as JobWork & { entry: string };
const controller = new AbortController();
parentPort!.on('message', (message: { type: 'cancel' }) => {
  if (message.type === 'cancel') controller.abort();
});
const post = (reply: JobReply) => parentPort!.postMessage(reply);

async function run(): Promise<void> {
  const service = new LabService({ dbPath: work.dbPath, ...(work.ownerKeyPath ? { ownerKeyPath: work.ownerKeyPath } : {}) });
  try {
    const options: CallOptions = {
      signal: controller.signal,
      onProgress: (progress) => post({ type: 'progress', progress }),
      onWarning: (message) => post({ type: 'warning', message }),
    };
    const method = service[work.method] as (request: unknown, options: CallOptions) => Promise<unknown>;
    const result = await method.call(service, work.request, options);
    post({ type: 'done', result });
  } catch (error) {
    post({ type: 'error', error: toErrorPayload(error) });
  } finally {
    service.close();
  }
}

void run();
