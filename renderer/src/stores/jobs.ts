import { defineStore } from 'pinia';
import { computed, ref } from 'vue';
import type { JobEvent, JobReport, SubmitJobRequest } from '../../../core/api/schemas';
import { useLab } from '../api/lab';

const LIVE: JobReport['state'][] = ['queued', 'running'];

/** Every job, kept current by the service's job events; the nav shows the live ones. */
export const useJobsStore = defineStore('jobs', () => {
  const lab = useLab();
  const byId = ref(new Map<string, JobReport>());
  const warnings = ref(new Map<string, string[]>());
  const connected = ref(false);
  const loaded = ref(false);
  const error = ref<string | null>(null);

  const put = (job: JobReport) => {
    const next = new Map(byId.value);
    next.set(job.id, job);
    byId.value = next;
  };
  const onEvent = (event: JobEvent) => {
    if (event.type === 'state') return put(event.job);
    const job = byId.value.get(event.job);
    if (event.type === 'progress') {
      if (job) put({ ...job, state: 'running', progress: event.progress, runId: job.runId ?? event.progress.runId });
      else void refresh();
    } else if (event.type === 'warning') {
      const next = new Map(warnings.value);
      next.set(event.job, [...(next.get(event.job) ?? []), event.message]);
      warnings.value = next;
    }
  };

  async function refresh(): Promise<void> {
    try {
      const jobs = await lab.listJobs({});
      byId.value = new Map(jobs.map((job) => [job.id, job]));
      error.value = null;
    } catch (e) {
      error.value = (e as Error).message;
    } finally {
      loaded.value = true;
    }
  }

  let started = false;
  /** Subscribes once (the first screen that needs jobs); a reconnect reloads what was missed. */
  function start(): void {
    if (started) return;
    started = true;
    lab.onJobEvent(onEvent);
    lab.onConnection((up) => {
      connected.value = up;
      if (up) void refresh();
    });
    void refresh();
  }

  async function submit(method: SubmitJobRequest['method'], request: Record<string, unknown>): Promise<JobReport> {
    const job = await lab.submitJob({ method, request });
    put(job);
    return job;
  }
  const cancel = async (id: string) => put(await lab.cancelJob({ job: id }));
  const resume = async (id: string) => put(await lab.resumeJob({ job: id }));

  const jobs = computed(() => [...byId.value.values()].sort((a, b) => b.createdAt.localeCompare(a.createdAt) || b.id.localeCompare(a.id)));
  const live = computed(() => jobs.value.filter((job) => LIVE.includes(job.state)));
  return { jobs, live, warnings, connected, loaded, error, start, refresh, submit, cancel, resume, byId };
});
