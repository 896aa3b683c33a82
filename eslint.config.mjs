// Lint keeps the layers of DESIGN.md apart: core/ may not reach Electron, the DOM, Vue/Pinia or the
// app shells (main/, preload/, renderer/), and every random choice in core is seeded (no Math.random).
import tseslint from 'typescript-eslint';

const CORE_FORBIDDEN_PACKAGES = ['electron', 'vue', 'pinia', '@electron/*', 'electron-*'];
const APP_SHELLS = ['main', 'preload', 'renderer'];

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**', 'tests/fixtures/**', 'core/compute/wasm/assembly/**', '**/*.generated.ts', 'scratch/**'] },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-require-imports': 'off',
    },
  },
  {
    files: ['core/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: CORE_FORBIDDEN_PACKAGES.filter((p) => !p.includes('*')).map((name) => ({
            name,
            message: 'core/ runs without Electron or a UI framework (DESIGN.md, Layers): keep this in main/, preload/ or renderer/.',
          })),
          patterns: [
            {
              group: CORE_FORBIDDEN_PACKAGES.filter((p) => p.includes('*')),
              message: 'core/ runs without Electron (DESIGN.md, Layers).',
            },
            {
              group: APP_SHELLS.flatMap((dir) => [`**/${dir}`, `**/${dir}/**`]),
              message: 'core/ must not import the app shells (main/, preload/, renderer/): they depend on core, never the other way.',
            },
          ],
        },
      ],
      'no-restricted-globals': [
        'error',
        ...['window', 'document', 'localStorage', 'sessionStorage', 'HTMLElement', 'HTMLCanvasElement'].map((name) => ({
          name,
          message: 'core/ has no DOM: it runs in Node, in workers and in the CLI.',
        })),
      ],
      'no-restricted-properties': [
        'error',
        { object: 'Math', property: 'random', message: 'Every random choice in core is seeded: use Rng.stream(seed, ...) from core/compute/rng.' },
      ],
    },
  },
  {
    // The renderer is a web page (sandboxed in the app): no Node, and of core only the LabApi's plain
    // data and validators (core/api); everything else it asks the service for.
    files: ['renderer/src/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: ['node:*', 'fs', 'path', 'child_process', 'electron', 'better-sqlite3', '@tensorflow/*'], message: 'The renderer has no Node access: ask the service through useLab().' },
            { regex: '(^|/)core/(?!api/)', message: 'The renderer may import only core/api (the LabApi contract) from core.' },
          ],
        },
      ],
    },
  },
);
