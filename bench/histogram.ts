// An HDR-style log-linear histogram of integer microseconds: exact below
// 2,048 us, then 1,024 sub-buckets per power of two (relative error under
// 0.1%), up to ~2^31 us. Recording is O(1) and allocation-free.

const SUB_BITS = 10;
const SUB = 1 << SUB_BITS; // 1024
const LINEAR = SUB * 2; // values below this are exact
const MAX_EXP = 31;

export class Histogram {
  readonly counts = new Float64Array(LINEAR + (MAX_EXP - SUB_BITS) * SUB);
  total = 0;
  max = 0;
  min = Number.POSITIVE_INFINITY;
  sum = 0;

  record(us: number): void {
    let v = Math.max(0, Math.round(us));
    if (v >= 2 ** MAX_EXP) v = 2 ** MAX_EXP - 1;
    this.counts[index(v)]++;
    this.total++;
    this.sum += v;
    if (v > this.max) this.max = v;
    if (v < this.min) this.min = v;
  }

  /** The value at percentile p (0..100): the highest value equivalent to the bucket it falls in. */
  percentile(p: number): number {
    if (this.total === 0) return 0;
    const rank = Math.max(1, Math.ceil((p / 100) * this.total));
    let seen = 0;
    for (let i = 0; i < this.counts.length; i++) {
      seen += this.counts[i];
      if (seen >= rank) return Math.min(upper(i), this.max);
    }
    return this.max;
  }

  mean(): number {
    return this.total === 0 ? 0 : this.sum / this.total;
  }
}

function index(v: number): number {
  if (v < LINEAR) return v;
  const e = 31 - Math.clz32(v); // >= 11
  const shift = e - SUB_BITS;
  const sub = v >>> shift; // SUB .. 2*SUB-1
  return LINEAR + (e - SUB_BITS - 1) * SUB + (sub - SUB);
}

function upper(i: number): number {
  if (i < LINEAR) return i;
  const j = i - LINEAR;
  const e = Math.floor(j / SUB) + SUB_BITS + 1;
  const sub = (j % SUB) + SUB;
  const shift = e - SUB_BITS;
  return (sub + 1) * 2 ** shift - 1;
}
