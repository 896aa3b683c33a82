// The one LabClient of this window: the desktop app's preload bridge when there is one (window.lab),
// otherwise the local server's HTTP transport.
import { createHttpClient } from './http-client';
import type { LabClient } from './lab-client';

let client: LabClient | undefined;

export function useLab(): LabClient {
  client ??= (window as unknown as { lab?: LabClient }).lab ?? createHttpClient();
  return client;
}
