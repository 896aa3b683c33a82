import { defineStore } from 'pinia';
import { shallowRef } from 'vue';
import type { PickedFile } from '../api/lab-client';

/** Files dropped anywhere on the window, waiting for the import screen to take them. */
export const useDropStore = defineStore('drop', () => {
  const pending = shallowRef<PickedFile[] | null>(null);
  const take = () => {
    const files = pending.value;
    pending.value = null;
    return files;
  };
  return { pending, take };
});
