"""Bounds on the RoPE base for a target context: pure functions over numbers and frequency arrays.

Notation: L target context (positions 0 … L−1), b base, d rotary dimension, N layers, ω_i the angular frequency
of pair i (plain RoPE: ω_i = b^(−2i/d)), b_eff = 1/min ω_i, ε a coherence threshold in (0, 1), ε_mach the machine
epsilon of the dtype in which the angles m·ω_i are computed.

1. Liu 2026, "Rotary Positional Embeddings as Phase Modulation: Theoretical Bounds on the RoPE Base for
   Long-Context Transformers" (arXiv 2602.10959), as published (b stands for the slowest frequency 1/b):
   aliasing L < 2π·b; DC stability b ≥ L/arccos ε; depth-compounded stability b ≥ L/arccos(ε^(1/N));
   precision wall b < 1/ε_mach. The exact forms put b_eff in place of b; for plain RoPE b_eff = b^((d−2)/d),
   so a lower bound β on b_eff is the bound β^(d/(d−2)) on b (:func:`plain_base_for_effective`). The kernel
   form of the precision wall simulates the angle computation in the dtype (:func:`first_collapsed_positions`).
2. Men et al. 2024, "Base of RoPE Bounds Context Length" (arXiv 2405.14591): B(m) = Σ_i cos(m·ω_i) ≥ 0 for all
   0 ≤ m < L (:func:`men_b_min`), and the smallest plain-RoPE base meeting it (:func:`men_min_base`).
3. Liu et al. 2023, "Scaling Laws of RoPE-based Extrapolation" (arXiv 2310.05209), eq. 13 and 16b: critical
   dimension d_extra = 2⌈(d/2)·log_b(T_train/2π)⌉ and extrapolation limit T_extra = 2π·b^(d_extra/d).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from ropescope.errors import RopescopeInputError

MANTISSA_BITS = {"fp64": 52, "fp32": 23, "fp16": 10, "bf16": 7}
"""Explicit significand bits of each dtype the angles may be computed in."""

MAX_CONTEXT = 1 << 27
"""Largest context accepted (134,217,728 = 128M tokens, 13× the longest advertised today, Llama 4 Scout's 10M)."""
MAX_ROTARY_DIM = 1 << 12  # ~10× the widest real heads: the O(L·d) checks stay bounded
MAX_LAYERS = 100_000  # beyond this ε^(1/N) rounds to 1 for ε near 1 and the depth bound is not a number
"""Widest rotary dimension accepted."""

_NUMPY_DTYPES = {"fp64": np.float64, "fp32": np.float32, "fp16": np.float16}
_POSITION_BLOCK = 1 << 16
_SMALL_PRODUCT = 1 << 15


# ---------------------------------------------------------------- argument checks


def check_context(context: object, what: str = "context") -> int:
    """``context`` as a positive int up to :data:`MAX_CONTEXT`, else a RopescopeInputError."""
    if isinstance(context, bool) or not isinstance(context, int | np.integer) or context <= 0:
        raise RopescopeInputError(what, f"must be a positive whole number of tokens, got {context!r}", "e.g. 8192")
    if context > MAX_CONTEXT:
        raise RopescopeInputError(
            what, f"is {int(context):,}, beyond the largest supported ({MAX_CONTEXT:,})", f"use at most {MAX_CONTEXT:,}"
        )
    return int(context)


def check_eps(eps: object) -> float:
    """ε as a float strictly between 0 and 1, else a RopescopeInputError."""
    if isinstance(eps, bool) or not isinstance(eps, int | float) or not 0.0 < float(eps) < 1.0:
        raise RopescopeInputError("eps", f"must lie strictly between 0 and 1, got {eps!r}", "e.g. --eps 0.5")
    return float(eps)


def check_dtype(dtype: object) -> str:
    """A dtype name among fp64, fp32, fp16, bf16, else a RopescopeInputError."""
    if not isinstance(dtype, str) or dtype not in MANTISSA_BITS:
        raise RopescopeInputError("dtype", f"unknown dtype {dtype!r}", f"use one of {', '.join(MANTISSA_BITS)}")
    return str(dtype)


def _check_layers(layers: object) -> int:
    if isinstance(layers, bool) or not isinstance(layers, int | np.integer) or not 0 < layers <= MAX_LAYERS:
        raise RopescopeInputError(
            "layers", f"must be a whole number from 1 to {MAX_LAYERS:,}, got {layers!r}", "e.g. --layers 32"
        )
    return int(layers)


def _check_rotary_dim(rotary_dim: object) -> int:
    if isinstance(rotary_dim, bool) or not isinstance(rotary_dim, int | np.integer) or rotary_dim < 4:
        raise RopescopeInputError(
            "rotary_dim", f"must be an even whole number of at least 4, got {rotary_dim!r}", "e.g. 128"
        )
    if rotary_dim % 2:
        raise RopescopeInputError("rotary_dim", f"must be even, got {rotary_dim}", "RoPE rotates pairs; e.g. 128")
    if rotary_dim > MAX_ROTARY_DIM:
        raise RopescopeInputError(
            "rotary_dim", f"is {rotary_dim}, wider than any model's", f"use at most {MAX_ROTARY_DIM}"
        )
    return int(rotary_dim)


# ---------------------------------------------------------------- Liu 2026


def stability_multiplier(eps: float, layers: int = 1) -> float:
    """k in b ≥ k·L for the stability bounds: k = 1/arccos(ε^(1/N)) (N = 1 is the DC bound)."""
    angle = math.acos(check_eps(eps) ** (1.0 / _check_layers(layers)))
    if angle == 0:
        raise RopescopeInputError("eps", f"{eps!r} is too close to 1 for {layers} layers", "use e.g. --eps 0.9")
    return 1.0 / angle


def aliasing_min_base(context: int) -> float:
    """Aliasing (Nyquist) bound L < 2π·b, as the base limit L/(2π) that b must exceed."""
    return check_context(context) / (2 * math.pi)


def dc_stability_min_base(context: int, eps: float) -> float:
    """DC-component stability bound b ≥ L/arccos(ε)."""
    return check_context(context) * stability_multiplier(eps)


def depth_stability_min_base(context: int, eps: float, layers: int) -> float:
    """Depth-compounded stability bound b ≥ L/arccos(ε^(1/N))."""
    return check_context(context) * stability_multiplier(eps, layers)


def machine_epsilon(dtype: str) -> float:
    """2^−p for p explicit significand bits: fp64 2^−52, fp32 2^−23, fp16 2^−10, bf16 2^−7."""
    return 2.0 ** -MANTISSA_BITS[check_dtype(dtype)]


def precision_wall_max_base(dtype: str) -> float:
    """Precision wall b < 1/ε_mach, as the base limit 1/ε_mach that b must stay below."""
    return 1.0 / machine_epsilon(dtype)


def largest_exact_integer(dtype: str) -> int:
    """2^(p+1): every integer position up to it is exact in the dtype (bf16 256, fp16 2048, fp32 2^24)."""
    return 2 ** (MANTISSA_BITS[check_dtype(dtype)] + 1)


def plain_base_for_effective(effective_base: float, rotary_dim: int) -> float:
    """The plain-RoPE base whose slowest pair has ω = 1/b_eff: b = b_eff^(d/(d−2))."""
    d = _check_rotary_dim(rotary_dim)
    return float(effective_base) ** (d / (d - 2))


def round_to_dtype(values: np.ndarray, dtype: str) -> np.ndarray:
    """``values`` rounded to the dtype (round to nearest, ties to even), returned as float64.

    bf16 is emulated on float32 bits: add 0x7FFF plus the lowest kept bit, then clear the low 16 bits. Values
    pass through float32 first, as in kernels that build inv_freq in float32 and cast it to bf16.
    """
    values = np.asarray(values, dtype=np.float64)
    if check_dtype(dtype) != "bf16":
        with np.errstate(over="ignore"):
            return values.astype(_NUMPY_DTYPES[dtype]).astype(np.float64)
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000).astype(np.uint32)
    return rounded.view(np.float32).astype(np.float64)


def _product_in_dtype(positions: np.ndarray, inv_freq: np.ndarray, dtype: str) -> np.ndarray:
    """fl(fl(m)·fl(ω)) for every (m, ω): operands and result rounded to the dtype, as kernels compute angles."""
    m, w = round_to_dtype(positions, dtype), round_to_dtype(inv_freq, dtype)
    if dtype == "fp64":
        return np.outer(m, w)
    # fp16/bf16 operands carry ≤ 11 significant bits and fp32 ones 24, so their float64 product is exact and one
    # rounding to the dtype gives the correctly rounded product.
    with np.errstate(over="ignore", invalid="ignore"):
        return round_to_dtype(np.outer(m, w), dtype)


def _first_collision(inv_freq: np.ndarray, start: int, context: int, dtype: str) -> int:
    """The first m ≥ ``start`` with m + 1 < L whose angle equals that of m + 1, for one pair; −1 if none."""
    size = 1 << 10
    while start < context - 1:
        angles = _product_in_dtype(np.arange(start, min(start + size + 1, context), dtype=np.float64), inv_freq, dtype)
        same = np.flatnonzero(angles[1:, 0] == angles[:-1, 0])
        if same.size:
            return start + int(same[0])
        start, size = start + size, min(2 * size, _POSITION_BLOCK * 16)
    return -1


def first_collapsed_positions(inv_freq: np.ndarray, context: int, dtype: str) -> np.ndarray:
    """Per pair, the first position m with m+1 < L whose angle equals that of m+1 in the dtype; −1 if none.

    Angles are formed the way rotary kernels form them: position and frequency cast to the dtype, their product
    rounded to the dtype. Pairs with ω = 0 (not rotating) carry no position and report −1.

    Shortcut (exact): with p explicit significand bits, if every rounded ω > 0 and every product m·ω is a
    normal number and L − 1 < 2^p − 1, no two consecutive angles can round together (rounding merges x < y only
    when y − x = ω is within one spacing ≤ 2^−p·y, i.e. m + 1 ≥ 2^p − 1), so nothing is simulated; for longer
    contexts the simulation starts at m = 2^p − 2.
    """
    inv_freq = np.asarray(inv_freq, dtype=np.float64)
    context, dtype = check_context(context), check_dtype(dtype)
    first = np.full(inv_freq.shape, -1, dtype=np.int64)
    pending = inv_freq > 0
    rounded = round_to_dtype(inv_freq[pending], dtype)
    info = np.finfo(_NUMPY_DTYPES.get(dtype, np.float32))  # bf16 has float32's exponent range
    largest = float(info.max) if dtype != "bf16" else (2 - 2**-7) * 2.0**127
    normal = (rounded >= float(info.smallest_normal)).all() and (context - 1) * float(
        rounded.max(initial=0.0)
    ) < largest
    if normal and context < 2 ** MANTISSA_BITS[dtype] - 1:
        return first
    if normal:
        # By the same argument, pair ω (rounded w, 2^f ≤ w < 2^(f+1)) can merge only once its angles reach the
        # binade whose spacing exceeds w, m·w ≥ 2^(f+p+1): each pair is simulated from just below there.
        bits = MANTISSA_BITS[dtype]
        for j, w in zip(np.flatnonzero(pending), rounded, strict=True):
            start = max(0, math.floor(2.0 ** (math.floor(math.log2(w)) + bits + 1) / w) - 2)
            first[j] = _first_collision(inv_freq[j : j + 1], start, context, dtype)
        return first
    start, size = 0, 1 << 10  # blocks grow to _POSITION_BLOCK: low-precision dtypes collapse early
    while start < context - 1 and pending.any():
        positions = np.arange(start, min(start + size + 1, context), dtype=np.float64)
        angles = _product_in_dtype(positions, inv_freq[pending], dtype)
        same = angles[1:] == angles[:-1]
        hit = same.any(axis=0)
        index = np.flatnonzero(pending)
        first[index[hit]] = start + same.argmax(axis=0)[hit]
        pending[index[hit]] = False
        start, size = start + size, min(2 * size, _POSITION_BLOCK)
    return first


# ---------------------------------------------------------------- Liu 2023


def critical_dimension(rotary_dim: int, base: float, train_context: int) -> int:
    """d_extra = 2⌈(d/2)·log_b(T_train/2π)⌉, clamped to [0, d]: dimensions whose period fits in training."""
    d, train_context = _check_rotary_dim(rotary_dim), check_context(train_context, "train_context")
    if not base > 1:
        raise RopescopeInputError("base", f"must exceed 1, got {base!r}", "RoPE bases are e.g. 10000 or 5e5")
    raw = 2 * math.ceil((d / 2) * math.log(train_context / (2 * math.pi)) / math.log(base))
    return min(max(raw, 0), d)


def extrapolation_limit(rotary_dim: int, base: float, critical_dim: int) -> float:
    """T_extra = 2π·b^(d_extra/d): the period of the critical pair, beyond which extrapolation breaks."""
    return 2 * math.pi * float(base) ** (critical_dim / _check_rotary_dim(rotary_dim))


# ---------------------------------------------------------------- Men 2024


@dataclass(frozen=True)
class MenMinimum:
    """min over 0 ≤ m < L of B(m) = Σ_i cos(m·ω_i), and the first m where it occurs."""

    min_value: float
    argmin: int

    @property
    def satisfied(self) -> bool:
        return self.min_value >= 0.0


def _men_blocks(
    inv_freq: np.ndarray,
    context: int,
    values_per_block: int = 1 << 21,
    from_end: bool = False,
    offset: int = 0,
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (first j, B(offset + j) over a block of consecutive j) covering j = 0 … L−1, last block first when
    ``from_end`` (B dips below zero mostly at large m, so a search for a negative value ends sooner).

    Angle addition turns the sum into a matrix product: with m = r·C + k (0 ≤ k < C),
    B(m) = Σ_i cos(rC·ω_i)cos(k·ω_i) − sin(rC·ω_i)sin(k·ω_i), so a block of R rows costs one R×2p by 2p×C
    product instead of R·C·p cosines. Small products skip BLAS, whose thread start-up costs more than they do.
    """
    width = max(1, math.isqrt(context))
    offsets = np.arange(width, dtype=np.float64)[:, None] * inv_freq
    table = np.hstack([np.cos(offsets), -np.sin(offsets)])
    rows_total = -(-context // width)
    rows_per_block = max(1, values_per_block // width)
    order = range(0, rows_total, rows_per_block)
    for row in reversed(order) if from_end else order:
        starts = offset + np.arange(row, min(row + rows_per_block, rows_total), dtype=np.float64)[:, None] * width
        left = np.hstack([np.cos(starts * inv_freq), np.sin(starts * inv_freq)])
        small = left.shape[0] * width <= _SMALL_PRODUCT
        values = (np.einsum("rk,ck->rc", left, table) if small else left @ table.T).ravel()
        first = row * width
        yield first, values[: context - first]


def men_b_min(inv_freq: np.ndarray, context: int) -> MenMinimum:
    """min_m B(m) over 0 ≤ m < L for the given frequencies, streamed in blocks (L = 10^6 needs a few MB)."""
    inv_freq = np.asarray(inv_freq, dtype=np.float64)
    best, where = math.inf, 0
    for first, values in _men_blocks(inv_freq, check_context(context)):
        at = int(values.argmin())
        if values[at] < best:
            best, where = float(values[at]), first + at
    return MenMinimum(best, where)


@dataclass(frozen=True)
class MenSearch:
    """Smallest plain-RoPE base b with B(m) ≥ 0 for all m < L, for rotary dimension d.

    ``grid_base`` is the first admissible point of the grid b = exp(k·``resolution``), k = 0, 1, …: exactly what
    a plain scan of that grid finds. ``base`` is the edge of its window, refined down to relative ``tolerance``:
    it was checked on every m < L (``min_value`` is min B there) and ``below`` was shown to fail (``nan`` when
    ``base`` is 1). ``base`` is ``inf`` when no grid base up to the ceiling works. A window lying between two
    grid points is not seen.
    """

    rotary_dim: int
    context: int
    base: float
    below: float
    grid_base: float
    min_value: float
    resolution: float
    full_checks: int


def _witness_values(witnesses: np.ndarray, log_bases: np.ndarray, exponents: np.ndarray) -> np.ndarray:
    """B(m) for every (base, witness m): shape (bases, witnesses)."""
    inv_freq = np.exp(-np.outer(log_bases, exponents))
    return np.cos(witnesses[None, :, None] * inv_freq[:, None, :]).sum(axis=2)


def _sampled_negatives(log_base: float, exponents: np.ndarray, probe: tuple[int, int, int]) -> np.ndarray:
    """Up to 4 positions m = start + stride·j (j < count, ``probe = (start, stride, count)``) with the most
    negative B(m) in the first block, scanning from the end, that has any; empty if B ≥ 0 at all of them."""
    start, stride, count = probe
    inv_freq = stride * np.exp(-log_base * exponents)
    for first, values in _men_blocks(inv_freq, count, _SAMPLE_BLOCK, from_end=True, offset=start // stride):
        negative = np.flatnonzero(values < 0)
        if negative.size:
            worst = negative[np.argsort(values[negative])[:4]]
            return start + stride * (first + worst).astype(np.float64)
    return np.empty(0)


def _safe_skip(values: np.ndarray, witnesses: np.ndarray, log_base: float, exponents: np.ndarray) -> float:
    """A step in ln b over which some witness stays negative: |∂B(m)/∂ln b| ≤ m·Σ_i (2i/d)·ω_i(b)."""
    slope = witnesses * float((exponents * np.exp(-log_base * exponents)).sum())
    with np.errstate(divide="ignore", invalid="ignore"):
        reach = np.where(values < 0, -values / slope, 0.0)
    return float(reach.max(initial=0.0))


class _MenScan:
    """State of one search: the witness positions and the count of checks on every m."""

    def __init__(self, rotary_dim: int, context: int) -> None:
        self.context = context
        self.exponents = np.arange(0, rotary_dim, 2, dtype=np.float64) / rotary_dim
        self.witnesses = np.array([float(context - 1)])
        # (start, stride, count) of each sample, cheapest first; each costs a bounded number of positions, whatever
        # L: every stride-th position, every position of the last stretch (where B dips below zero most often),
        # then every fine-stride-th position; each is scanned from its end
        # (a probe is kept only while it covers at most an eighth of the positions: else the full check is cheaper)
        stride, fine = max(1, context // _SAMPLE_SIZE), max(1, context // _FINE_SAMPLE_SIZE)
        candidates = [
            (0, stride, -(-context // stride)),
            (context - _TAIL_SIZE, 1, _TAIL_SIZE),
            (0, fine, -(-context // fine)),
        ]
        self.probes = [probe for probe in candidates if 8 * probe[2] <= context]
        self.full_checks = 0

    def _remember(self, positions: np.ndarray) -> None:
        merged = np.concatenate([positions, self.witnesses])
        _, first = np.unique(merged, return_index=True)
        self.witnesses = merged[np.sort(first)][:_WITNESSES]

    def rejected_by_witnesses(self, log_bases: np.ndarray) -> np.ndarray:
        return (_witness_values(self.witnesses, log_bases, self.exponents) < 0).any(axis=1)

    def rejected_by_sample(self, log_bases: np.ndarray) -> np.ndarray:
        """Bases rejected by B at every stride-th position, for each stride (coarse first) in turn."""
        rejected = np.zeros(len(log_bases), dtype=bool)
        for row, log_base in enumerate(log_bases):
            for probe in self.probes:
                negatives = _sampled_negatives(float(log_base), self.exponents, probe)
                if negatives.size:
                    if rejected.sum() < 4:  # a few per block: witnesses from full checks skip further
                        self._remember(negatives)
                    rejected[row] = True
                    break
        return rejected

    def full_min(self, log_base: float) -> float:
        """min B over every m < L if it is ≥ 0; else some negative B(m), from the first block (scanning from the
        end) that has one, whose lowest positions, and those whose negative value is largest for their m (they
        prove the widest span of bases inadmissible), become witnesses."""
        self.full_checks += 1
        lowest = math.inf
        for first, values in _men_blocks(np.exp(-log_base * self.exponents), self.context, from_end=True):
            negative = np.flatnonzero(values < 0)
            if negative.size:
                positions = (first + negative).astype(np.float64)
                reach = -values[negative] / (positions + 1.0)
                order = np.argsort(values[negative])
                self._remember(np.concatenate([positions[order[:8]], positions[np.argsort(-reach)[:4]]]))
                return float(values[negative[order[0]]])
            lowest = min(lowest, float(values.min()))
        return lowest

    def admissible(self, log_base: float) -> tuple[bool, float]:
        """Whether B(m) ≥ 0 for all m < L at this base (cheap rejections first), and min B when checked."""
        point = np.array([log_base])
        if self.rejected_by_witnesses(point)[0] or self.rejected_by_sample(point)[0]:
            return False, -math.inf
        lowest = self.full_min(log_base)
        return lowest >= 0, lowest


_WITNESSES = 64
_SAMPLE_SIZE = 1 << 14
_TAIL_SIZE = 1 << 19
_FINE_SAMPLE_SIZE = 1 << 20
_SAMPLE_BLOCK = 1 << 12
_SCAN_BLOCK = 64


MenProgress = Callable[[float, int], None]
"""Called as ``progress(base, full_checks)`` while a Men search runs: every base below ``base`` is proved
inadmissible so far, and ``full_checks`` checks over every m < L have been made."""

_MEN_CACHE: dict[tuple[int, int, float, float, float], MenSearch] = {}
_MEN_CACHE_SIZE = 256


def men_min_base(
    rotary_dim: int,
    context: int,
    *,
    resolution: float = 2e-4,
    tolerance: float = 1e-6,
    ceiling: float = 1e30,
    progress: MenProgress | None = None,
) -> MenSearch:
    """Smallest base b with Σ_i cos(m·b^(−2i/d)) ≥ 0 for every 0 ≤ m < L (Men et al. 2024).

    The admissible bases are not an interval (narrow windows open and close), so bisection over b is wrong.
    The search walks up a log grid of step ``resolution`` from b = 1, testing each grid base with ever costlier
    checks, each able only to reject:

    1. witnesses: B at ≤ 64 positions where earlier bases failed (a block of grid bases at once); a witness
       negative by v stays negative for v/(m·Σ_i (2i/d)ω_i) in ln b (a bound on |∂B/∂ln b|), so the walk
       jumps that far, which makes the stretch far below the answer cheap;
    2. samples of a size that does not grow with L, each scanned from its end and stopped at the first negative
       value: every ⌈L/2^14⌉-th position, every one of the last 2^19 positions (where B dips below zero most
       often), every ⌈L/2^20⌉-th position;
    3. every m < L, by the blocked matrix product of :func:`men_b_min`, from the end, stopped at the first
       negative block.

    Each check is exact where it rejects, so the first grid base to pass all three (:attr:`MenSearch.grid_base`)
    is exactly the one a plain scan of the grid would find: the checks change the cost, never the result. It is
    refined by bisection against the grid point below it (proved inadmissible) to relative ``tolerance``, each
    accepted midpoint checked on every m. The grid is the only approximation: a window narrower than
    ``resolution`` in ln b can fall between two grid points. For d = 128 the first windows are ≈ 7e-4 wide up to
    L = 128K, but narrow with L (at 256K one is ≈ 4e-5 wide); pass a smaller ``resolution`` to look closer, at
    proportional cost. ``progress`` (see :data:`MenProgress`) is called after each block of grid bases and each
    bisection step. Results are cached per (d, L, resolution, tolerance, ceiling).
    """
    d, context = _check_rotary_dim(rotary_dim), check_context(context)
    key = (d, context, float(resolution), float(tolerance), float(ceiling))
    if key not in _MEN_CACHE:
        if len(_MEN_CACHE) >= _MEN_CACHE_SIZE:
            del _MEN_CACHE[next(iter(_MEN_CACHE))]
        _MEN_CACHE[key] = _men_search(d, context, resolution, tolerance, ceiling, progress or _no_progress)
    return _MEN_CACHE[key]


def _no_progress(base: float, full_checks: int) -> None:
    """The default :data:`MenProgress`: report nothing."""


def _men_search(
    d: int, context: int, resolution: float, tolerance: float, ceiling: float, progress: MenProgress
) -> MenSearch:
    scan = _MenScan(d, context)
    step, last = 0, math.ceil(math.log(ceiling) / resolution)  # grid point k is ln b = k·resolution
    while step <= last:
        grid = resolution * np.arange(step, step + _SCAN_BLOCK, dtype=np.float64)
        alive = ~scan.rejected_by_witnesses(grid)
        if alive.any():
            alive[alive] = ~scan.rejected_by_sample(grid[alive])
        for index in np.flatnonzero(alive):
            lowest = scan.full_min(float(grid[index]))
            if lowest >= 0:
                # grid point step+index−1 was rejected, or lies in a span a witness proved inadmissible
                below = None if step + index == 0 else float(grid[index]) - resolution
                return _refine(scan, below, float(grid[index]), lowest, resolution, tolerance, progress)
        values = _witness_values(scan.witnesses, grid[-1:], scan.exponents)[0]
        reach = _safe_skip(values, scan.witnesses, grid[-1], scan.exponents)
        # every grid point short of ln b + reach is proved inadmissible: resume at the first one beyond
        step = max(step + _SCAN_BLOCK, math.ceil((grid[-1] + reach) / resolution))
        progress(math.exp(min(step, last) * resolution), scan.full_checks)
    return MenSearch(d, context, math.inf, ceiling, math.inf, -math.inf, resolution, scan.full_checks)


def _refine(
    scan: _MenScan,
    below: float | None,
    found: float,
    lowest: float,
    resolution: float,
    tolerance: float,
    progress: MenProgress,
) -> MenSearch:
    """Bisect between a proved-inadmissible ``below`` and an admissible ``found`` (both ln b)."""
    d, context = 2 * len(scan.exponents), scan.context
    if below is None:  # b = 1 itself is admissible: nothing lies below it
        return MenSearch(d, context, 1.0, math.nan, 1.0, lowest, resolution, scan.full_checks)
    low, high, grid_base = below, found, math.exp(found)
    while high - low > tolerance:
        middle = 0.5 * (low + high)
        ok, value = scan.admissible(middle)
        if ok:
            high, lowest = middle, value
        else:
            low = middle
        progress(math.exp(low), scan.full_checks)
    return MenSearch(d, context, math.exp(high), math.exp(low), grid_base, lowest, resolution, scan.full_checks)


# ---------------------------------------------------------------- the zone


@dataclass(frozen=True)
class Zone:
    """The Goldilocks zone of plain-RoPE bases for (d, N, L, dtype, ε), exact forms.

    ``lower`` maps each lower bound's name to the base it requires; ``min_base`` is their maximum and
    ``max_base`` the precision wall's b_eff < 1/ε_mach as a base.
    """

    rotary_dim: int
    layers: int
    context: int
    dtype: str
    eps: float
    lower: dict[str, float]
    max_base: float

    @property
    def min_base(self) -> float:
        return max(self.lower.values())

    @property
    def empty(self) -> bool:
        return self.min_base >= self.max_base

    def to_dict(self) -> dict[str, object]:
        return {"min_base": self.min_base, "max_base": self.max_base, "empty": self.empty, "lower": self.lower}


def exact_lower_effective_bases(context: int, eps: float, layers: int) -> dict[str, float]:
    """The Liu 2026 lower bounds on b_eff (exact form): aliasing, DC and depth stability."""
    return {
        "aliasing": aliasing_min_base(context),
        "dc_stability": dc_stability_min_base(context, eps),
        "depth_stability": depth_stability_min_base(context, eps, layers),
    }


def goldilocks_zone(
    rotary_dim: int,
    layers: int,
    context: int,
    dtype: str = "fp32",
    eps: float = 0.5,
    *,
    search_men_base: bool = True,
    progress: MenProgress | None = None,
) -> Zone:
    """Bases a plain RoPE of rotary dimension d may use for N layers at context L: exact forms of every bound.

    Without ``search_men_base`` the Men bound (the costliest) is left out of ``lower``; ``progress`` is passed to
    :func:`men_min_base`.
    """
    d = _check_rotary_dim(rotary_dim)
    lower = {
        name: plain_base_for_effective(limit, d)
        for name, limit in exact_lower_effective_bases(context, eps, layers).items()
    }
    if search_men_base:
        lower["men2024"] = men_min_base(d, context, progress=progress).base
    max_base = plain_base_for_effective(precision_wall_max_base(dtype), d)
    return Zone(d, _check_layers(layers), context, dtype, float(eps), lower, max_base)
