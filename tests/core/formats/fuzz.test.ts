// Hostile model files: each fixture (and a TF.js model's model.json and shard) mutated 1,000 times (bit flips, truncation, length fields set
// huge, duplicated byte ranges) and read as `inspect` reads it. A reader may accept a mutation that
// still makes a valid file; otherwise it must throw the one typed error naming the file, within
// 2 s, without allocating past 1 GB, and never crash or hang.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { Rng } from '../../../core/compute/rng';
import { ModelFileError } from '../../../core/formats/model-format';
import { readModelFile } from '../../../core/formats/registry';
import { DataFormatError } from '../../../core/api/errors';
import { useTempFolder } from '../../support/temp-folder';
import { saveTfjsModel } from '../../support/tfjs-files';

const FIXTURES = join(__dirname, '..', '..', 'fixtures');
const temp = useTempFolder('ticket-lab-fuzz-');
const MUTATIONS = 1000;

function fixtureBytes(name: string): Uint8Array {
  const raw = readFileSync(join(FIXTURES, name));
  return name.endsWith('.gz') ? gunzipSync(raw) : raw;
}

/** One seeded mutation of `bytes`. */
function mutate(bytes: Uint8Array, rng: Rng): Uint8Array {
  const out = Uint8Array.from(bytes);
  const at = (n = out.length) => rng.int(Math.max(1, n));
  switch (rng.int(5)) {
    case 0: // a few bit flips, biased to the start where headers live
      for (let k = 1 + rng.int(4); k > 0; k--) {
        const i = rng.next() < 0.7 ? at(Math.min(out.length, 512)) : at();
        out[i]! ^= 1 << rng.int(8);
      }
      return out;
    case 1: // truncation
      return out.subarray(0, at());
    case 2: { // a length field set huge: 4 or 8 bytes of 0xFF at an aligned offset near the start
      const width = rng.next() < 0.5 ? 4 : 8;
      const i = Math.min(out.length - width, 2 * at(Math.min(out.length, 256) / 2));
      out.fill(0xff, Math.max(0, i), Math.max(0, i) + width);
      return out;
    }
    case 3: { // a byte range duplicated in place (a repeated entry or header)
      const start = at();
      const length = 1 + at(Math.min(4096, out.length - start));
      const insertAt = at();
      const copy = out.slice(start, start + length);
      const grown = new Uint8Array(out.length + copy.length);
      grown.set(out.subarray(0, insertAt));
      grown.set(copy, insertAt);
      grown.set(out.subarray(insertAt), insertAt + copy.length);
      return grown;
    }
    default: // a small number written over a length-like field
      new DataView(out.buffer).setUint32(Math.min(out.length - 4, 4 * at(Math.min(out.length, 256) / 4)), rng.int(1 << 20), true);
      return out;
  }
}

/**
 * Writes 1,000 mutations of `original` to `target` and reads `path` (the same file, or the model.json
 * of a TF.js model whose shard is `target`) after each: success, or the one clear error, each bounded.
 */
function expectMutationsBounded(original: Uint8Array, target: string, path: string, stream: string): void {
  const rng = Rng.stream(7, `fuzz-${stream}`);
  const baseline = process.memoryUsage().arrayBuffers;
  let rejected = 0;
  let slowest = 0;
  let largest = 0;
  for (let m = 0; m < MUTATIONS; m++) {
    writeFileSync(target, mutate(original, rng));
    const began = performance.now();
    try {
      readModelFile(path);
    } catch (error) {
      rejected += 1;
      // The one typed error of the API, naming the file: never a RangeError, SyntaxError or TypeError.
      if (!(error instanceof DataFormatError)) throw new Error(`mutation ${m} escaped as ${(error as Error).name}: ${(error as Error).message}`);
      expect((error as Error).message.startsWith(path) || error instanceof ModelFileError).toBe(true);
      expect((error as Error).message).toContain(path);
    }
    slowest = Math.max(slowest, performance.now() - began);
    largest = Math.max(largest, process.memoryUsage().arrayBuffers - baseline);
  }
  expect(rejected).toBeGreaterThan(MUTATIONS / 4);
  expect(slowest).toBeLessThan(2000);
  expect(largest).toBeLessThan(2 ** 30);
}

describe('hostile model files', () => {
  it.each(['interop/lenet.safetensors.gz', 'interop/lenet.npz.gz', 'interop/input.npy', 'interop/lenet.pt.gz', 'onnx/conv.onnx', 'onnx/mlp_folded.onnx'])('%s mutated 1,000 times: each read succeeds or fails with one clear error, fast and bounded', (fixture) => {
    const path = join(temp(), fixture.replace(/^.*\//, '').replace(/\.gz$/, ''));
    expectMutationsBounded(fixtureBytes(fixture), path, path, fixture);
  }, 180_000);

  // TF.js saves a model.json and weight shards: both are mutated, each 1,000 times, the model read through model.json.
  it.each(['model.json', 'group1-shard2of2.bin'])('a TF.js model saved by TF.js, its %s mutated 1,000 times: the same', async (mutated) => {
    const folder = join(temp(), `tfjs-${mutated}`);
    const layers = tf.sequential({
      layers: [
        tf.layers.conv2d({ inputShape: [6, 6, 1], filters: 3, kernelSize: 3, padding: 'same', activation: 'relu' }),
        tf.layers.flatten(),
        tf.layers.dense({ units: 10 }),
      ],
    });
    const saved = await saveTfjsModel(layers, folder, ['group1-shard1of2.bin', 'group1-shard2of2.bin']);
    layers.dispose();
    const target = join(folder, mutated);
    expectMutationsBounded(readFileSync(target), target, saved.path, `tfjs-${mutated}`);
  }, 180_000);
});
