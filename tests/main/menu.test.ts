// The File menu as data (main/menu.ts builds Electron's template without Electron): every item the
// issue asks for is there and calls its own action.
import { describe, expect, it } from 'vitest';
import { type MenuActions, menuTemplate } from '../../main/menu';

describe('the File menu', () => {
  it.each(['linux', 'darwin', 'win32'] as const)('on %s: Open model…, Import bundle…, Open experiment folder…, Export ticket…, Open data folder, each calling its action', (platform) => {
    const called: string[] = [];
    const actions = Object.fromEntries(['openModel', 'importBundle', 'openExperimentFolder', 'exportTicket', 'openDataFolder'].map((name) => [name, () => called.push(name)])) as unknown as MenuActions;
    const file = menuTemplate(actions, platform).find((menu) => menu.label === '&File')!;
    const items = (file.submenu as Array<{ label?: string; click?: () => void }>).filter((item) => item.label);
    expect(items.map((item) => item.label)).toEqual(['Open model…', 'Import bundle…', 'Open experiment folder…', 'Export ticket…', 'Open data folder']);
    for (const item of items) item.click!();
    expect(called).toEqual(['openModel', 'importBundle', 'openExperimentFolder', 'exportTicket', 'openDataFolder']);
  });
});
