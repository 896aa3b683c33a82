// Saving a TF.js layers model as tfjs-node's file:// handler does (model.json and weight shards), for
// the tests of the model.json reader: the files TF.js itself writes, without tfjs-node.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';

/** TF.js weight data, which may come as several buffers, as one byte array. */
export function joinWeightData(data: ArrayBuffer | ArrayBuffer[] | undefined): Uint8Array {
  const parts = data === undefined ? [] : Array.isArray(data) ? data : [data];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const part of parts) {
    out.set(new Uint8Array(part), at);
    at += part.byteLength;
  }
  return out;
}

export interface SavedTfjsModel {
  folder: string;
  /** model.json's path. */
  path: string;
  artifacts: tf.io.ModelArtifacts;
  bytes: Uint8Array;
}

/**
 * Saves `model` as tfjs-node's file:// handler does: model.json and the weights in `shards` files
 * (one weights.bin unless named), the bytes cut into nearly equal parts, not at weight boundaries.
 */
export async function saveTfjsModel(model: tf.LayersModel, folder: string, shards: string[] = ['weights.bin']): Promise<SavedTfjsModel> {
  let artifacts: tf.io.ModelArtifacts | undefined;
  await model.save(tf.io.withSaveHandler(async (a) => {
    artifacts = a;
    return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
  }));
  const saved = artifacts!;
  const bytes = joinWeightData(saved.weightData);
  const step = Math.ceil(bytes.length / shards.length);
  shards.forEach((name, i) => {
    mkdirSync(join(folder, name, '..'), { recursive: true });
    writeFileSync(join(folder, name), bytes.subarray(i * step, Math.min(bytes.length, (i + 1) * step)));
  });
  const json = {
    modelTopology: saved.modelTopology,
    format: saved.format,
    generatedBy: saved.generatedBy,
    convertedBy: saved.convertedBy ?? null,
    weightsManifest: [{ paths: shards, weights: saved.weightSpecs }],
  };
  const path = join(folder, 'model.json');
  writeFileSync(path, JSON.stringify(json));
  return { folder, path, artifacts: saved, bytes };
}

