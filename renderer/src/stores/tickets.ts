import { defineStore } from 'pinia';
import { computed, reactive, ref, shallowRef, watch } from 'vue';
import type { BrowseTicketsRequest, TicketPageReport } from '../../../core/api/schemas';
import { useLab } from '../api/lab';

export type TicketSort = NonNullable<BrowseTicketsRequest['sort']>;
export type SortOrder = NonNullable<BrowseTicketsRequest['order']>;
export const PAGE_SIZE = 100;
const DEBOUNCE_MS = 200;

/**
 * The filter inputs as typed. Sparsity and accuracy are in percent (what people read in the table)
 * and sent as fractions; an empty input filters nothing.
 */
export interface TicketFilterInputs {
  model: string;
  dataset: string;
  method: string;
  run: string;
  minSparsity: string;
  maxSparsity: string;
  minAccuracy: string;
  maxAccuracy: string;
  role: '' | 'ticket' | 'control';
  claimed: '' | 'claimed' | 'unclaimed';
  owner: string;
}
type FilterField = keyof TicketFilterInputs;
type FilterRequest = Omit<BrowseTicketsRequest, 'sort' | 'order' | 'limit' | 'offset'>;

const emptyFilters = (): TicketFilterInputs => ({
  model: '',
  dataset: '',
  method: '',
  run: '',
  minSparsity: '',
  maxSparsity: '',
  minAccuracy: '',
  maxAccuracy: '',
  role: '',
  claimed: '',
  owner: '',
});

const TEXT_FIELDS = ['model', 'dataset', 'method', 'run'] as const;
const PERCENT_FIELDS = ['minSparsity', 'maxSparsity', 'minAccuracy', 'maxAccuracy'] as const;

/** The request the inputs make, and the inputs it had to leave out because they do not parse. */
function filterRequest(inputs: TicketFilterInputs): { request: FilterRequest; invalid: FilterField[] } {
  const request: FilterRequest = {};
  const invalid: FilterField[] = [];
  for (const field of TEXT_FIELDS) {
    const text = inputs[field].trim();
    if (text) request[field] = text;
  }
  for (const field of PERCENT_FIELDS) {
    const text = inputs[field].trim().replace(/\s*%$/, '');
    if (!text) continue;
    const value = Number(text);
    if (Number.isFinite(value) && value >= 0 && value <= 100) request[field] = value / 100;
    else invalid.push(field);
  }
  if (inputs.role) request.role = inputs.role;
  if (inputs.claimed) request.claimed = inputs.claimed === 'claimed';
  const owner = inputs.owner.trim().toLowerCase();
  if (owner && /^[0-9a-f]{1,64}$/.test(owner)) request.owner = owner;
  else if (owner) invalid.push('owner');
  return { request, invalid };
}

/**
 * The tickets table: its filters, sort and page, kept here so that a detail and back finds them as
 * left, and the page they select. Filter typing is debounced; only the latest request's answer is shown.
 */
export const useTicketsStore = defineStore('tickets', () => {
  const lab = useLab();
  const filters = reactive<TicketFilterInputs>(emptyFilters());
  const sort = ref<TicketSort>('created');
  const order = ref<SortOrder>('asc');
  const offset = ref(0);
  const page = shallowRef<TicketPageReport | null>(null);
  const state = ref<'idle' | 'loading' | 'error'>('idle');
  const error = shallowRef<unknown>(null);

  const parsed = computed(() => filterRequest(filters));
  const invalid = computed(() => new Set(parsed.value.invalid));
  const filtered = computed(() => Object.keys(parsed.value.request).length > 0);

  let latest = 0;
  async function load(): Promise<void> {
    const call = ++latest;
    state.value = 'loading';
    try {
      const answer = await lab.browseTickets({ ...parsed.value.request, sort: sort.value, order: order.value, limit: PAGE_SIZE, offset: offset.value });
      if (call !== latest) return;
      // Tickets can vanish under a page (another window, a re-seeded store): go to the last page that exists.
      if (answer.tickets.length === 0 && answer.total > 0 && offset.value > 0) {
        offset.value = Math.floor((answer.total - 1) / PAGE_SIZE) * PAGE_SIZE;
        return;
      }
      page.value = answer;
      error.value = null;
      state.value = 'idle';
    } catch (e) {
      if (call !== latest) return;
      error.value = e;
      state.value = 'error';
    }
  }

  let timer: ReturnType<typeof setTimeout> | undefined;
  watch(
    () => JSON.stringify(parsed.value.request),
    () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        if (offset.value === 0) void load();
        else offset.value = 0; // the offset watcher loads
      }, DEBOUNCE_MS);
    },
  );
  watch([sort, order, offset], () => void load());

  function sortBy(column: TicketSort): void {
    if (sort.value === column) order.value = order.value === 'asc' ? 'desc' : 'asc';
    else {
      sort.value = column;
      order.value = 'asc';
    }
    offset.value = 0;
  }
  const total = computed(() => page.value?.total ?? 0);
  const hasPrev = computed(() => offset.value > 0);
  const hasNext = computed(() => offset.value + PAGE_SIZE < total.value);
  const prevPage = () => hasPrev.value && (offset.value = Math.max(0, offset.value - PAGE_SIZE));
  const nextPage = () => hasNext.value && (offset.value += PAGE_SIZE);
  const clearFilters = () => Object.assign(filters, emptyFilters());

  return { filters, sort, order, offset, page, state, error, invalid, filtered, total, hasPrev, hasNext, load, sortBy, prevPage, nextPage, clearFilters };
});
