// Ownership claims and verdicts as the service runs them (`ticket-lab claim`, `ticket-lab verify`):
// what a claim stores, and how a suspect is checked against it. The schemes themselves live in
// core/ownership; this module joins them to the store. Every verdict is stored with its evidence.
import type { VerdictReport } from '../api/schemas';
import { InvalidRequestError } from '../api/errors';
import type { Architecture, ParamSpec } from '../models/architectures';
import type { WeightSet } from '../models/weights';
import { type SignaturePlan, verifySignature } from '../ownership/graph-signature';
import { loadOwnerKey, ownershipSecret } from '../ownership/keys';
import { makeTriggerSet, predictTriggers, type TriggerMessage, verifyTriggerSet } from '../ownership/trigger-set';
import type { MaskSet } from '../pruning/mask';
import type { ClaimRecord, LabStore } from '../store/lab-store';

/** A network checked against claims: a stored ticket, or a model file read as a network. */
export interface Suspect {
  kind: 'ticket' | 'file';
  /** The ticket id, or the file's path. */
  id: string;
  /** `sha256:` of the file, or null for a ticket. */
  digest: string | null;
  /** The network's id (zoo, lenet-<widths>, onnx:…). */
  model: string;
  arch: Architecture;
  specs: readonly ParamSpec[];
  weights: WeightSet;
  /** The ticket's masks; for a file, where its weights are non-zero. */
  masks: MaskSet;
  inputShape: readonly number[];
  numClasses: number;
}

/** What a graph-signature claim keeps: the plan (layer, window, bits: nothing secret) and the message it came from. */
export interface GraphClaimParams {
  plan: SignaturePlan;
  message: TriggerMessage;
  falsePositiveRate: number;
}

/** What a trigger-set claim keeps: the message the set is drawn from (with the owner's key), its shape and the data's normalisation. */
export interface TriggerClaimParams {
  message: TriggerMessage;
  imageShape: [number, number, number];
  numClasses: number;
  count: number;
  normalization: { mean: number; std: number };
  falsePositiveRate: number;
}

/** Checks `suspect` against `claim` and stores the verdict. */
export async function checkClaim(store: LabStore, claim: ClaimRecord, suspect: Suspect, options: { ownerKeyPath: string; falsePositiveRate?: number | undefined }): Promise<VerdictReport> {
  const verdict = claim.kind === 'graph-signature' ? graphVerdict(claim, suspect, options.falsePositiveRate) : await triggerVerdict(claim, suspect, options);
  const subject = suspect.kind === 'ticket' ? suspect.id : (suspect.digest ?? suspect.id);
  const id = store.saveVerification({
    claimId: claim.id, subject, verdict: verdict.verdict, score: verdict.score, threshold: verdict.threshold, pValue: verdict.pValue,
    evidence: { ...verdict.evidence, scheme: verdict.scheme, n: verdict.n, falsePositiveRate: verdict.falsePositiveRate, suspect: { kind: suspect.kind, id: suspect.id, model: suspect.model } },
  });
  return { ...verdict, id };
}

type Unsaved = Omit<VerdictReport, 'id'>;

function notComparable(claim: ClaimRecord, falsePositiveRate: number, reason: string): Unsaved {
  return { claim: claim.id, scheme: claim.kind, verdict: 'not comparable', score: null, n: null, threshold: null, falsePositiveRate, pValue: null, evidence: { reason } };
}

function graphVerdict(claim: ClaimRecord, suspect: Suspect, rate: number | undefined): Unsaved {
  const params = claim.params as unknown as GraphClaimParams;
  const falsePositiveRate = rate ?? params.falsePositiveRate;
  const { plan } = params;
  const layer = suspect.specs.find((s) => s.name === plan.layer);
  if (!layer || layer.shape.join('×') !== plan.shape.join('×')) {
    const found = layer ? `its ${plan.layer} is ${layer.shape.join('×')}` : `it has no layer ${plan.layer}`;
    return notComparable(claim, falsePositiveRate, `the suspect is ${suspect.model} and ${found}; the signature lives in ${plan.layer} (${plan.shape.join('×')}) of the claimed network`);
  }
  const evidence = verifySignature(suspect.masks, plan, falsePositiveRate);
  const { scheme: _, matches, n, threshold, pValue, verified, ...rest } = evidence;
  return { claim: claim.id, scheme: 'graph-signature', verdict: verified ? 'verified' : 'not verified', score: matches, n, threshold, falsePositiveRate, pValue, evidence: { ...rest } };
}

async function triggerVerdict(claim: ClaimRecord, suspect: Suspect, options: { ownerKeyPath: string; falsePositiveRate?: number | undefined }): Promise<Unsaved> {
  const params = claim.params as unknown as TriggerClaimParams;
  const falsePositiveRate = options.falsePositiveRate ?? params.falsePositiveRate;
  if (suspect.inputShape.join('×') !== params.imageShape.join('×') || suspect.numClasses !== params.numClasses) {
    return notComparable(claim, falsePositiveRate, `the suspect takes ${suspect.inputShape.join('×')} inputs and gives ${suspect.numClasses} classes; the trigger set is ${params.imageShape.join('×')} images of ${params.numClasses} classes`);
  }
  // The trigger images are drawn from the owner's key: only its holder can query with them.
  const key = loadOwnerKey(options.ownerKeyPath);
  if (key.fingerprint !== claim.keyFingerprint) {
    throw new InvalidRequestError(`Claim ${claim.id} was made with the key ${claim.keyFingerprint?.slice(0, 16)}…; the owner key here (${options.ownerKeyPath}) is ${key.fingerprint.slice(0, 16)}…. Its trigger set can only be drawn with the claim's key.`);
  }
  const triggers = makeTriggerSet(ownershipSecret(key), params.message, { imageShape: params.imageShape, numClasses: params.numClasses }, params.count);
  if (triggers.commitment !== claim.commitment) throw new InvalidRequestError(`The trigger set drawn now does not match claim ${claim.id}'s commitment: the key or the claim was changed.`);
  const predictions = await predictTriggers({ ...suspect, normalization: params.normalization }, triggers);
  const { scheme: _, matches, m, threshold, pValue, verified, ...rest } = verifyTriggerSet(predictions, triggers, falsePositiveRate);
  return { claim: claim.id, scheme: 'trigger-set', verdict: verified ? 'verified' : 'not verified', score: matches, n: m, threshold, falsePositiveRate, pValue, evidence: { ...rest } };
}
