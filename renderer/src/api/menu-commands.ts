// The desktop app's File menu, in the window: main sends a MenuCommand (a path in one is already
// granted) and the window acts on it. In the browser there is no bridge, so no menu and nothing to do.
import type { Router } from 'vue-router';
import type { MenuCommand } from '../../../core/api/ipc';
import { useDropStore } from '../stores/drop';
import { labBridge } from './lab';

/** Subscribes to the menu's commands; returns the unsubscribe. `notify` tells the user why a command did nothing. */
export function followMenuCommands(router: Router, notify: (message: string) => void): () => void {
  const bridge = labBridge();
  if (!bridge) return () => undefined;
  const drop = useDropStore();

  const run = async (command: MenuCommand): Promise<void> => {
    switch (command.type) {
      case 'open-file':
        // Open model… and Import bundle…: the import screen reads the file where it is.
        drop.pendingPath = { path: command.path, name: command.name, folder: command.folder === true };
        await router.push('/import');
        return;
      case 'export-ticket': {
        const shown = router.currentRoute.value;
        if (shown.name !== 'ticket') return notify('Open a ticket first: Export ticket… exports the ticket shown.');
        await router.push({ path: shown.path, query: { ...shown.query, export: '1' } });
        return;
      }
      case 'navigate':
        await router.push(command.route);
        return;
    }
  };
  return bridge.onMenuCommand((command) => void run(command));
}
