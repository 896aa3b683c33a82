// Hash routes: the same URLs work from the server's / and from the app's file://.
import { createRouter, createWebHashHistory } from 'vue-router';
// The table and a ticket's detail are where the app opens and where a click goes: in the first bundle,
// so a detail (and its heat-maps) does not wait for another chunk. The other screens load on first visit.
import TicketDetailView from './views/TicketDetailView.vue';
import TicketsView from './views/TicketsView.vue';

export const NAV = [
  { path: '/tickets', name: 'tickets', label: 'Tickets', key: '1' },
  { path: '/compare', name: 'compare', label: 'Compare', key: '2' },
  { path: '/search', name: 'search', label: 'Search', key: '3' },
  { path: '/jobs', name: 'jobs', label: 'Jobs', key: '4' },
  { path: '/verify', name: 'verify', label: 'Verify', key: '5' },
  { path: '/import', name: 'import', label: 'Import & share', key: '6' },
  { path: '/sweeps', name: 'sweeps', label: 'Sweeps', key: '7' },
] as const;

export const router = createRouter({
  history: createWebHashHistory(),
  routes: [
    { path: '/', redirect: '/tickets' },
    { path: '/tickets', name: 'tickets', component: TicketsView },
    { path: '/tickets/:id', name: 'ticket', component: TicketDetailView, props: true },
    { path: '/compare', name: 'compare', component: () => import('./views/CompareView.vue') },
    { path: '/search', name: 'search', component: () => import('./views/SearchView.vue') },
    { path: '/jobs', name: 'jobs', component: () => import('./views/JobsView.vue') },
    { path: '/verify', name: 'verify', component: () => import('./views/VerifyView.vue') },
    { path: '/import', name: 'import', component: () => import('./views/ImportView.vue') },
    { path: '/sweeps', name: 'sweeps', component: () => import('./views/SweepsView.vue') },
    { path: '/:rest(.*)*', redirect: '/tickets' },
  ],
});
