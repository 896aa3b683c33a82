// The one LabClient of this window: the desktop app's preload bridge when there is one (window.lab),
// otherwise the local server's HTTP transport.
import type { LabBridge } from '../../../preload/lab-bridge';
import { createHttpClient } from './http-client';
import { createIpcClient } from './ipc-client';
import type { LabClient } from './lab-client';

let client: LabClient | undefined;

/** The preload's bridge (window.lab): only in the desktop app. */
export function labBridge(): LabBridge | undefined {
  return (window as unknown as { lab?: LabBridge }).lab;
}

export function useLab(): LabClient {
  if (!client) {
    const bridge = labBridge();
    client = bridge ? createIpcClient(bridge) : createHttpClient();
  }
  return client;
}
