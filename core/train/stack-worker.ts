// A training worker thread (started by stack-workers.ts): one TF.js engine on the backend the
// parent trains on, one stack job at a time. Progress goes to the parent as messages; a cancel
// message aborts the job at its next step, like the parent's AbortSignal does in one thread.
import { parentPort } from 'node:worker_threads';
import { selectBackend } from '../compute/backend';
import { type WorkerBackend, type WorkerReply, type WorkerRequest, errorToWire, resultBuffers } from './stack-workers';
import { trainStack } from './train-stack';

const port = parentPort!;
let backend: WorkerBackend | undefined;
let running: AbortController | undefined;

port.on('message', (request: WorkerRequest) => {
  if (request.type === 'cancel') running?.abort();
  else void train(request);
});

async function train({ backend: wanted, job }: WorkerRequest & { type: 'train' }): Promise<void> {
  const controller = new AbortController();
  running = controller;
  const reply = (message: WorkerReply, transfer: ArrayBuffer[] = []): void => port.postMessage(message, transfer);
  try {
    if (backend !== wanted) {
      await selectBackend(wanted);
      backend = wanted;
    }
    const results = await trainStack({ ...job, workers: 1, signal: controller.signal, onProgress: (progress) => reply({ type: 'progress', progress }) });
    reply({ type: 'done', results }, resultBuffers(results));
  } catch (error) {
    reply({ type: 'failed', error: errorToWire(error) });
  } finally {
    running = undefined;
  }
}
