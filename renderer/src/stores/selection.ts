import { defineStore } from 'pinia';
import { ref } from 'vue';

/** The tickets picked for comparison (from the table or a detail), in the order picked. */
export const useSelectionStore = defineStore('selection', () => {
  const ids = ref<string[]>([]);
  const has = (id: string) => ids.value.includes(id);
  const toggle = (id: string) => (ids.value = has(id) ? ids.value.filter((x) => x !== id) : [...ids.value, id]);
  const clear = () => (ids.value = []);
  return { ids, has, toggle, clear };
});
