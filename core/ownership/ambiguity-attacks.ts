// Ambiguity attacks (ALGORITHMS.md §9.6.3–9.6.4): instead of erasing the owner's signature, the
// attacker muddies the claim, by reviving pruned entries at random or by writing a signature of their
// own into the stolen ticket. A third, the random-key claim, is the control: a stranger with a key of
// their own and no access to the training cannot claim an untouched ticket.
import { InvalidRequestError } from '../api/errors';
import { Rng } from '../compute/rng';
import { ceilFraction } from '../pruning/budget';
import { cloneMasks } from '../pruning/mask';
import { type AttackInput, type AttackedNetwork, maskedWeights } from './attacks';
import { type SignatureEdits, type SignatureMessage, type SignaturePlan, embedSignature, planSignature } from './graph-signature';
import { entryIndex, pairGeometry } from './mask-graph';

/** §9.6.3 and §9.6.4: revived and forged weights are drawn from N(0, 0.1²). */
const DEFAULT_STD = 0.1;

export interface RandomRevivalOptions {
  /** The fraction of the pruned entries to switch on: ceil(fraction · pruned), drawn uniformly over them. */
  fraction: number;
  /** Default: the input's. */
  seed?: number;
  /** Where to revive; default every masked tensor (one pool). The signature's layer alone is the sharper attack. */
  layers?: readonly string[];
  std?: number;
}

/** Random revival (`add_qrcode_res20s_cifar10.py`): switches on pruned entries, with N(0, std²) weights. */
export function randomRevivalAttack(input: AttackInput, options: RandomRevivalOptions): AttackedNetwork {
  const { fraction } = options;
  const seed = options.seed ?? input.seed;
  const std = options.std ?? DEFAULT_STD;
  if (!(fraction >= 0 && fraction <= 1)) throw new InvalidRequestError(`Random revival switches on a fraction in [0, 1] of the pruned entries, got ${fraction}.`);
  if (!(std > 0)) throw new InvalidRequestError(`The revived weights' standard deviation must be positive, got ${std}.`);
  const layers = options.layers ?? input.masks.map((m) => m.name);
  const masks = cloneMasks(input.masks);
  const weights = maskedWeights(input.weights, input.masks);
  const targets = layers.map((name) => {
    const mask = masks.find((m) => m.name === name);
    const tensor = weights.find((t) => t.name === name);
    if (!mask || !tensor) throw new InvalidRequestError(`Random revival was asked to revive layer '${name}', which the claimed network does not mask.`);
    return { mask, tensor };
  });

  // One pool of (layer, entry) over the chosen layers, so the fraction is of all their pruned entries.
  const layerOf: number[] = [];
  const entryOf: number[] = [];
  targets.forEach(({ mask }, l) => {
    for (let e = 0; e < mask.bits.length; e++) {
      if (mask.bits[e]) continue;
      layerOf.push(l);
      entryOf.push(e);
    }
  });
  const pruned = entryOf.length;
  const count = ceilFraction(fraction, pruned);
  const pick = Rng.stream(seed, 'random-revival');
  const draw = Rng.stream(seed, 'random-revival-weights');
  const perLayer: Record<string, number> = Object.fromEntries(layers.map((name) => [name, 0]));
  // Partial Fisher-Yates: the first `count` of a uniform permutation of the pool.
  const order = Uint32Array.from({ length: pruned }, (_, j) => j);
  for (let j = 0; j < count; j++) {
    const k = j + pick.int(pruned - j);
    const chosen = order[k]!;
    order[k] = order[j]!;
    order[j] = chosen;
    const { mask, tensor } = targets[layerOf[chosen]!]!;
    const e = entryOf[chosen]!;
    mask.bits[e] = 1;
    // A drawn exact zero would read as pruned to a maskless verifier; N(0, 0.01) makes it vanishingly rare.
    tensor.values[e] = draw.normal() * std;
    perLayer[mask.name]!++;
  }
  return { weights, masks, description: { attack: 'random-revival', fraction, seed, std, layers: [...layers], prunedBefore: pruned, revived: count, perLayer } };
}

/** Secret and message of a key the attacker makes up: 32 seeded bytes, not derived from anyone's key. */
function attackerKey(seed: number, purpose: string): { secret: Uint8Array; message: SignatureMessage } {
  const rng = Rng.stream(seed, purpose, 'secret');
  const secret = Uint8Array.from({ length: 32 }, () => rng.int(256));
  return { secret, message: { fingerprint: `attacker-${seed}`, ticketId: purpose, nonce: `${purpose}-${seed}` } };
}

export interface ForgedSignatureOptions {
  /** Default: the input's. Draws the attacker's key, the embedding's random choices and the new weights. */
  seed?: number;
  /** The attacker's own key and message; default made up from the seed. */
  secret?: Uint8Array;
  message?: SignatureMessage;
  /** Re-initialise the kept weights of the forged window's pairs (§9.6.4); default true. */
  reinitialize?: boolean;
  std?: number;
}

export interface ForgedNetwork extends AttackedNetwork {
  /** The forger's plan: it verifies on the forged network, as the owner's does. */
  plan: SignaturePlan;
  edits: SignatureEdits;
}

/**
 * A forged signature over the owner's (`add2_qrcode_res20s_cifar10.py`): the attacker plans a
 * signature with a key of their own and embeds it into the claimed mask exactly as an owner would,
 * keeping every kept count. Entries switched off get weight 0, entries switched on and (by default)
 * every kept entry of the forged window's pairs get N(0, std²). Both signatures then verify: the mask
 * alone cannot tell owner from forger; the commitments' times do.
 */
export function forgedSignatureAttack(input: AttackInput, options: ForgedSignatureOptions = {}): ForgedNetwork {
  const seed = options.seed ?? input.seed;
  const std = options.std ?? DEFAULT_STD;
  if (!(std > 0)) throw new InvalidRequestError(`The forged weights' standard deviation must be positive, got ${std}.`);
  const made = attackerKey(seed, 'forged-signature');
  const secret = options.secret ?? made.secret;
  const message = options.message ?? made.message;
  const plan = planSignature(input.specs, secret, message);
  const weights = maskedWeights(input.weights, input.masks);
  const { masks, edits } = embedSignature(input.masks, plan, { seed, weights });

  const values = weights.find((t) => t.name === plan.layer)!.values;
  const bits = masks.find((m) => m.name === plan.layer)!.bits;
  const draw = Rng.stream(seed, 'forged-signature-weights');
  for (const e of edits.switchedOff) values[e] = 0;
  for (const e of edits.switchedOn) values[e] = draw.normal() * std;
  let reinitialized = 0;
  if (options.reinitialize ?? true) {
    const g = pairGeometry(plan.shape);
    for (let o = plan.row; o < plan.row + plan.size; o++) {
      for (let i = plan.col; i < plan.col + plan.size; i++) {
        for (let p = 0; p < g.positions; p++) {
          const e = entryIndex(g, p, i, o);
          if (!bits[e]) continue;
          values[e] = draw.normal() * std;
          reinitialized++;
        }
      }
    }
  }
  return {
    weights, masks, plan, edits,
    description: {
      attack: 'forged-signature', seed, layer: plan.layer, row: plan.row, col: plan.col, size: plan.size, bitsDigest: plan.bitsDigest,
      changed: edits.changed, switchedOn: edits.switchedOn.length, switchedOff: edits.switchedOff.length, reinitialized, std,
    },
  };
}

export interface RandomKeyClaimOptions {
  /** Default: the input's. */
  seed?: number;
}

export interface RandomKeyClaim extends AttackedNetwork {
  /** A plan from a key unrelated to the ticket: verifying it on the untouched ticket must fail. */
  plan: SignaturePlan;
}

/**
 * The control (§9.3's null): a claim with a made-up key on the owner's ticket, with nothing embedded.
 * The network is returned unchanged; the plan's bits match it only by chance (each with probability 1/2).
 */
export function randomKeyClaim(input: AttackInput, options: RandomKeyClaimOptions = {}): RandomKeyClaim {
  const seed = options.seed ?? input.seed;
  const { secret, message } = attackerKey(seed, 'random-key-claim');
  const plan = planSignature(input.specs, secret, message);
  return {
    weights: maskedWeights(input.weights, input.masks), masks: cloneMasks(input.masks), plan,
    description: { attack: 'random-key-claim', seed, layer: plan.layer, row: plan.row, col: plan.col, size: plan.size, bitsDigest: plan.bitsDigest, embedded: false },
  };
}
