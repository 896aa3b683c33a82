// How numbers read on every screen.
export const percent = (value: number | null | undefined, digits = 1): string => (value === null || value === undefined || Number.isNaN(value) ? '—' : `${(value * 100).toFixed(digits)} %`);
export const count = (value: number): string => value.toLocaleString('en-US');
export const shortId = (id: string): string => (id.length > 14 ? `${id.slice(0, 12)}…` : id);
export const dateTime = (iso: string | null): string => (iso ? new Date(iso).toLocaleString() : '—');
export function duration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '—';
  if (seconds < 60) return `${Math.round(seconds)} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(seconds / 3600)} h ${Math.round((seconds % 3600) / 60)} min`;
}
export const bytes = (n: number): string => (n < 1024 ? `${n} B` : n < 1024 ** 2 ? `${(n / 1024).toFixed(1)} KiB` : n < 1024 ** 3 ? `${(n / 1024 ** 2).toFixed(1)} MiB` : `${(n / 1024 ** 3).toFixed(2)} GiB`);
