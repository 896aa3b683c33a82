// Fused, masked optimiser updates: one pass over each parameter tensor, in place.
// Pointers are byte offsets into TF.js's WASM heap (this module imports that memory).
// A pruned entry (mask 0) is set to exactly 0 whatever the arithmetic gives, NaN included.

/** Adam, PyTorch's form (1−β given, rounded once from double as the JS side computes it): m = β1·m + (1−β1)·g; v = β2·v + (1−β2)·g²; w −= stepSize·m / (√v·invSqrtBc2 + ε). */
export function adamUpdate(
  w: usize, g: usize, m: usize, v: usize, mask: usize, n: i32,
  beta1: f32, oneMinusBeta1: f32, beta2: f32, oneMinusBeta2: f32, stepSize: f32, invSqrtBc2: f32, eps: f32, weightDecay: f32,
): void {
  const b1 = f32x4.splat(beta1);
  const c1 = f32x4.splat(oneMinusBeta1);
  const b2 = f32x4.splat(beta2);
  const c2 = f32x4.splat(oneMinusBeta2);
  const step = f32x4.splat(stepSize);
  const inv = f32x4.splat(invSqrtBc2);
  const ep = f32x4.splat(eps);
  const wd = f32x4.splat(weightDecay);
  const zero = f32x4.splat(0);
  const masked = mask != 0;
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = (<usize>i) << 2;
    const wi = v128.load(w + o);
    const keep = masked ? f32x4.ne(v128.load(mask + o), zero) : i32x4.splat(-1);
    const gi = v128.and(f32x4.add(v128.load(g + o), f32x4.mul(wd, wi)), keep);
    const mi = f32x4.add(f32x4.mul(b1, v128.load(m + o)), f32x4.mul(c1, gi));
    const vi = f32x4.add(f32x4.mul(b2, v128.load(v + o)), f32x4.mul(c2, f32x4.mul(gi, gi)));
    v128.store(m + o, mi);
    v128.store(v + o, vi);
    const denom = f32x4.add(f32x4.mul(f32x4.sqrt(vi), inv), ep);
    v128.store(w + o, v128.and(f32x4.sub(wi, f32x4.mul(step, f32x4.div(mi, denom))), keep));
  }
  for (; i < n; i++) {
    const o = (<usize>i) << 2;
    const wi = load<f32>(w + o);
    const keep = !masked || load<f32>(mask + o) != 0;
    const gi: f32 = keep ? load<f32>(g + o) + weightDecay * wi : 0;
    const mi = beta1 * load<f32>(m + o) + oneMinusBeta1 * gi;
    const vi = beta2 * load<f32>(v + o) + oneMinusBeta2 * (gi * gi);
    store<f32>(m + o, mi);
    store<f32>(v + o, vi);
    store<f32>(w + o, keep ? wi - stepSize * (mi / (Mathf.sqrt(vi) * invSqrtBc2 + eps)) : 0);
  }
}

/** SGD, PyTorch's form: g += wd·w; buf = μ·buf + g (when μ > 0); w −= lr·buf. */
export function sgdUpdate(w: usize, g: usize, buf: usize, mask: usize, n: i32, lr: f32, momentum: f32, weightDecay: f32): void {
  const rate = f32x4.splat(lr);
  const mu = f32x4.splat(momentum);
  const wd = f32x4.splat(weightDecay);
  const zero = f32x4.splat(0);
  const masked = mask != 0;
  const hasBuffer = buf != 0;
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = (<usize>i) << 2;
    const wi = v128.load(w + o);
    const keep = masked ? f32x4.ne(v128.load(mask + o), zero) : i32x4.splat(-1);
    let gi = v128.and(f32x4.add(v128.load(g + o), f32x4.mul(wd, wi)), keep);
    if (hasBuffer) {
      gi = f32x4.add(f32x4.mul(mu, v128.load(buf + o)), gi);
      v128.store(buf + o, gi);
    }
    v128.store(w + o, v128.and(f32x4.sub(wi, f32x4.mul(rate, gi)), keep));
  }
  for (; i < n; i++) {
    const o = (<usize>i) << 2;
    const wi = load<f32>(w + o);
    const keep = !masked || load<f32>(mask + o) != 0;
    let gi: f32 = keep ? load<f32>(g + o) + weightDecay * wi : 0;
    if (hasBuffer) {
      gi = momentum * load<f32>(buf + o) + gi;
      store<f32>(buf + o, gi);
    }
    store<f32>(w + o, keep ? wi - lr * gi : 0);
  }
}
