// The layer rules of eslint.config.mjs, checked on code that breaks them: a rule that never fires
// would let core/ grow a dependency on Electron or the DOM unnoticed.
import { join } from 'node:path';
import { ESLint } from 'eslint';
import { describe, expect, it } from 'vitest';

const eslint = new ESLint({ cwd: join(__dirname, '..', '..') });

async function ruleIds(code: string, filePath: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath });
  return result!.messages.map((m) => m.ruleId ?? m.message);
}

describe('layering lint rules', () => {
  it.each([
    ["import { app } from 'electron';\nexport const a = app;", 'no-restricted-imports'],
    ["import { ref } from 'vue';\nexport const a = ref;", 'no-restricted-imports'],
    ["import { defineStore } from 'pinia';\nexport const a = defineStore;", 'no-restricted-imports'],
    ["import { x } from '../../main/window';\nexport const a = x;", 'no-restricted-imports'],
    ["import { x } from '../../preload';\nexport const a = x;", 'no-restricted-imports'],
    ["import { x } from '../../renderer/stores/tickets';\nexport const a = x;", 'no-restricted-imports'],
    ['export const w = window.innerWidth;', 'no-restricted-globals'],
    ["export const d = document.createElement('canvas');", 'no-restricted-globals'],
    ['export const r = Math.random();', 'no-restricted-properties'],
  ])('fails core/ code that reaches outside its layer: %s', async (code, rule) => {
    expect(await ruleIds(code, 'core/service/example.ts')).toContain(rule);
  });

  it('passes core/ code that stays inside it', async () => {
    const code = "import { Rng } from '../compute/rng';\nimport { readFileSync } from 'node:fs';\nexport const r = Rng.stream(1, 'x').next() + readFileSync.length;";
    expect(await ruleIds(code, 'core/service/example.ts')).toEqual([]);
  });
});
