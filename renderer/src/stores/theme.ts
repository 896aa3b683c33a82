import { defineStore } from 'pinia';
import { computed, ref, watchEffect } from 'vue';

export type ThemeChoice = 'system' | 'light' | 'dark';
const KEY = 'ticket-lab.theme';

/** Light, dark or the system's; the choice is kept in localStorage, the result set on <html data-theme>. */
export const useThemeStore = defineStore('theme', () => {
  const stored = localStorage.getItem(KEY);
  const choice = ref<ThemeChoice>(stored === 'light' || stored === 'dark' ? stored : 'system');
  const query = window.matchMedia('(prefers-color-scheme: dark)');
  const systemDark = ref(query.matches);
  query.addEventListener('change', (event) => (systemDark.value = event.matches));
  const dark = computed(() => choice.value === 'dark' || (choice.value === 'system' && systemDark.value));
  watchEffect(() => {
    document.documentElement.dataset.theme = dark.value ? 'dark' : 'light';
    localStorage.setItem(KEY, choice.value);
  });
  const cycle = () => (choice.value = choice.value === 'system' ? 'light' : choice.value === 'light' ? 'dark' : 'system');
  return { choice, dark, cycle };
});
