// The row tiles of conv2dInfer: how an image's listed outputs split into tiles of 6, 5 and 4 rows.

// Output rows go in tiles of 6, then at most one of 5, then 4 rows in the relaxed build (6 x 8 tiles;
// the 4-row tile is the least efficient per row), so that only 1, 2, 3 and 7 rows compute a padding row:
// 6a + r rows are a sixes (r 0), a sixes and a four (r 4), a sixes and a five (r 5), a - 1 sixes, a five
// and a four (r 3), a - 1 sixes and two fours (r 2), a - 2 sixes, a five and two fours (r 1, a >= 2).
// The plain SIMD build (4 x 8 tiles) uses fours only.

/** Tiles of 6 rows for `rows` rows. */
@inline export function sixes(rows: i32): i32 {
  if (GEMM_MR != 6 || rows < 6) return 0;
  const q = rows / 6, r = rows - q * 6;
  return r == 1 ? max<i32>(q - 2, 0) : r == 2 || r == 3 ? q - 1 : q;
}

/** Tiles of 5 rows (0 or 1), after the sixes. */
@inline export function fives(rows: i32): i32 {
  if (GEMM_MR != 6) return 0;
  const r = rows % 6;
  return rows == 5 || (rows >= 9 && (r == 1 || r == 3 || r == 5)) ? 1 : 0;
}

@inline export function tileCount(rows: i32): i32 {
  const s = sixes(rows), f = fives(rows);
  return s + f + (rows - s * 6 - f * 5 + 3) / 4;
}

/** The first row of tile t (t may be tileCount(rows): then the rows the tiles cover). */
@inline export function tileStart(rows: i32, t: i32): i32 {
  const s = sixes(rows), f = fives(rows);
  return t <= s ? t * 6 : t <= s + f ? s * 6 + (t - s) * 5 : s * 6 + f * 5 + (t - s - f) * 4;
}
