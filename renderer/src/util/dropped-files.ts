// The files of a drop, folders walked (an open_lth experiment is a folder), each with its path inside
// what was dropped, and the dropped item it came from.
import type { PickedFile } from '../api/lab-client';

const MAX_FILES = 10_000;

async function readAll(reader: FileSystemDirectoryReader): Promise<FileSystemEntry[]> {
  const entries: FileSystemEntry[] = [];
  // readEntries answers in batches until it answers an empty one.
  for (;;) {
    const batch = await new Promise<FileSystemEntry[]>((resolve, reject) => reader.readEntries(resolve, reject));
    if (batch.length === 0) return entries;
    entries.push(...batch);
  }
}

async function walk(entry: FileSystemEntry, prefix: string, out: PickedFile[]): Promise<void> {
  if (out.length >= MAX_FILES) throw new Error(`The drop holds more than ${MAX_FILES} files.`);
  const path = prefix ? `${prefix}/${entry.name}` : entry.name;
  if (entry.isFile) {
    const file = await new Promise<File>((resolve, reject) => (entry as FileSystemFileEntry).file(resolve, reject));
    out.push({ file, relativePath: path });
  } else if (entry.isDirectory) {
    for (const child of await readAll((entry as FileSystemDirectoryEntry).createReader())) await walk(child, path, out);
  }
}

export async function droppedFiles(transfer: DataTransfer): Promise<PickedFile[]> {
  // Read before the first await: the DataTransfer is emptied once the drop handler yields. A dropped
  // folder's own File (getAsFile) is the one whose path is the folder's.
  const items = [...transfer.items].map((item) => ({ entry: item.webkitGetAsEntry?.(), dropped: item.getAsFile() ?? undefined }));
  const entries = items.filter((item): item is { entry: FileSystemEntry; dropped: File | undefined } => !!item.entry);
  if (entries.length === 0) return [...transfer.files].map((file) => ({ file, relativePath: file.name, dropped: file }));
  const out: PickedFile[] = [];
  for (const { entry, dropped } of entries) {
    const first = out.length;
    await walk(entry, '', out);
    for (const file of out.slice(first)) file.dropped = dropped;
  }
  return out;
}

export const pickedFiles = (list: FileList | null): PickedFile[] => [...(list ?? [])].map((file) => ({ file, relativePath: file.webkitRelativePath || file.name }));
