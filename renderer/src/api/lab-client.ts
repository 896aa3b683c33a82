// What the renderer talks to: the LabApi's methods (requests in, plain data out) and its job events,
// plus file access, which differs between the browser (uploads to `ticket-lab serve`, downloads back)
// and the desktop app (paths the user picked). Two transports implement it: http-client.ts here, and
// the preload's IPC bridge in the app. Views reach main only through this.
import type { LabApi, LabApiMethod } from '../../../core/api/lab-api';
import type { JobEvent } from '../../../core/api/schemas';

export type LabRequest<M extends LabApiMethod> = Parameters<LabApi[M]>[0];
export type LabResponse<M extends LabApiMethod> = Awaited<ReturnType<LabApi[M]>>;

/** A dropped or picked file, with its path inside a dropped folder ("run/replicate_1/mask.pth"). */
export interface PickedFile {
  file: File;
  relativePath: string;
  /**
   * What the user dropped: the file itself, or the folder it was walked out of (util/dropped-files.ts).
   * The desktop app grants that one path rather than each file; the browser's transport uploads the files.
   */
  dropped?: File;
}

export interface UploadProgress {
  sentBytes: number;
  totalBytes: number;
}

export interface FileAccess {
  /** True when receive sends the bytes (the browser's upload to the server); false when the service reads the files where they are (the app). */
  readonly uploads: boolean;
  /** Makes picked files readable by the service: returns the path to name in requests (a folder's root for a folder). */
  receive(files: PickedFile[], onProgress?: (progress: UploadProgress) => void): Promise<{ path: string; root: string }>;
  /** Where an export named `name` is written. */
  exportPath(name: string): Promise<string>;
  /** Hands a finished export to the user (a download in the browser). */
  deliver(path: string): void;
}

export type LabMethods = { [M in LabApiMethod]: (request: LabRequest<M>) => Promise<LabResponse<M>> };

export interface LabClient extends LabMethods {
  /** Every job's progress, warnings and state changes; returns the unsubscribe. */
  onJobEvent(listener: (event: JobEvent) => void): () => void;
  /** Whether job events are arriving (the server's socket is open). */
  onConnection(listener: (connected: boolean) => void): () => void;
  files: FileAccess;
}

/** An error the service (or the transport) answered with: its stable code, and a sentence for people. */
export class LabCallError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status?: number,
    readonly details?: unknown,
  ) {
    super(message);
    this.name = 'LabCallError';
  }
}
