import { defineStore } from 'pinia';
import { shallowRef } from 'vue';
import type { PickedFile } from '../api/lab-client';

/** A file main has already granted (the desktop app's File › Open model…, Import bundle…): read where it is. */
export interface GrantedFile {
  path: string;
  name: string;
  /** An open_lth experiment folder (File › Open experiment folder…), not a file. */
  folder?: boolean;
}

/** Files dropped anywhere on the window, or opened from the File menu, waiting for the import screen to take them. */
export const useDropStore = defineStore('drop', () => {
  const pending = shallowRef<PickedFile[] | null>(null);
  const pendingPath = shallowRef<GrantedFile | null>(null);
  const take = () => {
    const files = pending.value;
    pending.value = null;
    return files;
  };
  const takePath = () => {
    const granted = pendingPath.value;
    pendingPath.value = null;
    return granted;
  };
  return { pending, pendingPath, take, takePath };
});
