import numpy as np
import pytest

from weightlapse.record.numpy_ops import NumpyOps
from weightlapse.record.stats import STAT_NAMES, Segments, choose_probes, summarize


def reference(a: np.ndarray, bins: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Statistics computed the obvious way, one tensor at a time."""
    flat = a.reshape(-1).astype(np.float64)
    fin = flat[np.isfinite(flat)]
    n_nan = np.isnan(flat).sum()
    n_inf = np.isinf(flat).sum()
    zero_frac = (flat == 0).sum() / flat.size
    if fin.size:
        stats = [
            fin.min(),
            fin.max(),
            fin.mean(),
            fin.std(),
            np.sqrt((fin**2).sum()),
            np.abs(fin).mean(),
            zero_frac,
            n_nan,
            n_inf,
        ]
        lo, hi = fin.min(), fin.max()
        counts = (
            np.histogram(fin, bins=bins, range=(lo, hi))[0]
            if hi > lo
            else np.r_[fin.size, np.zeros(bins - 1, int)]
        )
    else:
        stats = [np.nan] * 6 + [zero_frac, n_nan, n_inf]
        counts = np.zeros(bins, int)
    return np.asarray(stats), counts


def tensors() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    spiky = rng.normal(size=(20, 9)).astype(np.float32)
    spiky[0, 0], spiky[1, 1], spiky[2, 2], spiky[3, 3] = np.nan, np.inf, -np.inf, 0.0
    return [
        rng.normal(size=(64, 33)).astype(np.float32),
        rng.uniform(-1e-3, 1e-3, size=7).astype(np.float32),
        spiky,
        np.full(5, np.nan, np.float32),  # nothing finite
        np.full((2, 3), 0.25, np.float32),  # constant: zero width
        np.zeros(11, np.float32),
        np.array([1e20, -3e20, 1.0, 0.0], np.float32),  # finite, but squares overflow
        np.array([0.0, 1e-38, 3e-39, 7e-39], np.float32),  # bins / spread past float32
    ]


def summarize_numpy(arrays: list[np.ndarray], bins: int = 64):
    segs = Segments.build(
        [a.size for a in arrays], [choose_probes(a.size, 8, i) for i, a in enumerate(arrays)]
    )
    return segs, summarize(NumpyOps(), arrays, segs, (segs.segment_ids, segs.probe_index), bins)


def test_numpy_summary_matches_one_tensor_at_a_time():
    arrays = tensors()
    _, summary = summarize_numpy(arrays)
    for i, a in enumerate(arrays):
        stats, counts = reference(a)
        np.testing.assert_allclose(
            summary.stats[i], stats, rtol=2e-5, atol=1e-7, err_msg=f"tensor {i}"
        )
        np.testing.assert_array_equal(summary.counts[i], counts, err_msg=f"tensor {i}")


def test_nan_and_inf_are_counted_not_hidden():
    _, summary = summarize_numpy(tensors())
    row = dict(zip(STAT_NAMES, summary.stats[2]))
    assert row["nan_count"] == 1 and row["inf_count"] == 2
    assert np.isfinite(row["max"]) and np.isfinite(row["l2"])
    assert summary.counts[2].sum() == 20 * 9 - 3  # every finite element, once
    nothing = dict(zip(STAT_NAMES, summary.stats[3]))
    assert nothing["nan_count"] == 5 and np.isnan(nothing["mean"])


def test_probes_are_the_values_at_their_elements():
    arrays = tensors()
    segs, summary = summarize_numpy(arrays)
    start = 0
    for i, a in enumerate(arrays):
        elements = choose_probes(a.size, 8, i)
        got = summary.probes[start : start + len(elements)]
        np.testing.assert_array_equal(got, a.reshape(-1)[elements].astype(np.float64))
        start += len(elements)


def test_probes_take_every_element_of_a_small_tensor_and_a_seeded_sample_of_a_big_one():
    assert list(choose_probes(5, 32, 1)) == [0, 1, 2, 3, 4]
    big = choose_probes(10_000, 32, 7)
    assert len(big) == 32 and len(set(big)) == 32 and list(big) == sorted(big)
    assert list(big) == list(choose_probes(10_000, 32, 7))


def summarize_on(ops, to_tensor):
    """The segment summary computed with a framework's ops, beside NumPy's."""
    arrays = tensors()
    segs, expected = summarize_numpy(arrays)
    ts = [to_tensor(a) for a in arrays]
    consts = (ops.constant(segs.segment_ids, ts[0]), ops.constant(segs.probe_index, ts[0]))
    return summarize(ops, ts, segs, consts), expected


def test_torch_ops_agree_with_numpy():
    torch = pytest.importorskip("torch")
    from weightlapse.record.torch_ops import TorchOps

    got, expected = summarize_on(TorchOps(), torch.from_numpy)
    np.testing.assert_allclose(got.stats, expected.stats, rtol=2e-5, atol=1e-6)
    np.testing.assert_array_equal(got.counts, expected.counts)
    np.testing.assert_array_equal(got.probes, expected.probes)


def test_keras_ops_agree_with_numpy():
    keras = pytest.importorskip("keras")
    from weightlapse.record.keras_ops import KerasOps

    got, expected = summarize_on(KerasOps(), keras.ops.convert_to_tensor)
    np.testing.assert_allclose(got.stats, expected.stats, rtol=2e-5, atol=1e-6)
    np.testing.assert_array_equal(got.counts, expected.counts)


def test_host_summary_equals_the_segment_summary():
    from weightlapse.record.stats import summarize_host

    arrays = tensors()
    segs, expected = summarize_numpy(arrays)
    flat = np.concatenate([a.reshape(-1) for a in arrays])
    got = summarize_host(flat, segs)
    np.testing.assert_allclose(got.stats, expected.stats, rtol=2e-5, atol=1e-6)
    np.testing.assert_array_equal(got.counts, expected.counts)
    np.testing.assert_array_equal(got.probes, expected.probes)
    for i, a in enumerate(arrays):
        np.testing.assert_array_equal(got.counts[i], reference(a)[1])


def test_many_small_tensors_together_equal_one_at_a_time(monkeypatch):
    """The vectorised path for many small tensors (reduceat) gives the per-tensor path's
    numbers: NaN, Inf, all-zero and constant tensors included."""
    from weightlapse.record import stats

    rng = np.random.default_rng(0)
    sizes = [16] * 40 + [5000] + [3, 1, 7] * 10 + [100]
    arrays = [rng.normal(size=s).astype(np.float32) for s in sizes]
    arrays[3][2] = np.nan
    arrays[5][:] = 0
    arrays[7][:] = 2.5
    arrays[9][1] = np.inf
    arrays[11][:] = np.nan
    flat = np.concatenate(arrays)
    segments = stats.Segments.build(sizes, [np.arange(min(4, s)) for s in sizes])
    together = stats.summarize_host(flat, segments)
    unbinned = stats.summarize_host(flat, segments, histograms=False)
    monkeypatch.setattr(stats, "SMALL", 0)  # every tensor on its own
    alone = stats.summarize_host(flat, segments)
    np.testing.assert_allclose(together.stats, alone.stats, rtol=2e-5, atol=1e-7, equal_nan=True)
    np.testing.assert_array_equal(together.counts, alone.counts)
    np.testing.assert_array_equal(together.probes, alone.probes)
    # a step without histograms: the same statistics, no counts
    np.testing.assert_array_equal(unbinned.stats, together.stats)
    assert not unbinned.counts.any()


@pytest.mark.parametrize("probes", [6, 0])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_summary_in_place_equals_the_one_from_a_copy(dtype, probes):
    """`summarize_in_place` (each big tensor where it lies, the small ones gathered) gives
    the copy's numbers, bit for bit, also for big tensors, empty ones, NaN and Inf, and
    the probes of every tensor in their own order; also with no probes."""
    from weightlapse.record.inplace import summarize_in_place
    from weightlapse.record.stats import summarize_host

    rng = np.random.default_rng(1)
    sizes = [0, 1, 5, 200_017, 4096, 4097, 3, 70_000]
    arrays = [rng.normal(size=s).astype(dtype) for s in sizes]
    arrays[3][65_541] = np.nan
    arrays[5][0] = -np.inf
    arrays[6][:] = 0
    segments = Segments.build(sizes, [choose_probes(s, probes, i) for i, s in enumerate(sizes)])
    flat = np.concatenate(arrays)
    for histograms in (True, False):
        want = summarize_host(flat, segments, histograms=histograms)
        got = summarize_in_place(arrays, segments, 64, histograms)
        np.testing.assert_array_equal(got.stats, want.stats)
        np.testing.assert_array_equal(got.counts, want.counts)
        np.testing.assert_array_equal(got.probes, want.probes)
    for i, a in enumerate(arrays):
        if a.size:
            np.testing.assert_allclose(got.stats[i, :6], reference(a)[0][:6], rtol=1e-5)
    one = Segments.build([70_000], [choose_probes(70_000, probes, 0)])  # a model of one tensor
    want = summarize_host(arrays[7], one)
    got = summarize_in_place([arrays[7]], one, 64)
    for field in ("stats", "counts", "probes"):
        np.testing.assert_array_equal(getattr(got, field), getattr(want, field))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_spread_of_values_far_from_zero_is_exact(dtype):
    """Values near 1000 that differ by 1e-3 (a LayerNorm scale, a bias that drifted): a
    one-pass variance from sums of squares would lose every digit in float32; the sums
    of deviations taken in float64 keep the spread the values have."""
    from weightlapse.record.stats import summarize_host

    rng = np.random.default_rng(3)
    sizes = [100_000, 300]  # one big (NumPy's min/max), one small (compiled)
    arrays = [(1000 + rng.normal(scale=1e-3, size=s)).astype(dtype) for s in sizes]
    got = summarize_host(np.concatenate(arrays), Segments.build(sizes, [np.arange(0)] * 2))
    for i, a in enumerate(arrays):
        exact = a.astype(np.float64)
        np.testing.assert_allclose(got.stats[i, 3], exact.std(), rtol=1e-9)
        np.testing.assert_allclose(got.stats[i, 2], exact.mean(), rtol=1e-12)
        np.testing.assert_array_equal(got.counts[i], reference(a)[1])


def test_a_spread_too_narrow_for_float32_bins_is_binned_in_float64():
    """Values 1e-38 apart: 64 bins over that width need a scale past float32's largest;
    they are binned in float64, where np.histogram puts them, never outside the row."""
    from weightlapse.record.stats import summarize_host

    a = np.array([0.0, 1e-38, 5e-39, 2.5e-39], np.float32)
    got = summarize_host(a, Segments.build([a.size], [np.arange(0)]))
    np.testing.assert_array_equal(got.counts[0], reference(a)[1])
    assert got.counts[0].sum() == a.size


def test_a_sharded_rank_bins_a_spread_too_narrow_for_float32():
    """A rank's histogram on the agreed edges (record/torch_shards.py) takes the same
    float64 way out as the host when bins / spread passes float32's largest."""
    torch = pytest.importorskip("torch")
    from weightlapse.record.torch_shards import _bin

    a = np.array([0.0, 1e-38, 3e-39, 7e-39], np.float32)
    got = _bin(torch.from_numpy(a), 0.0, float(a.max()), 64).numpy()
    np.testing.assert_array_equal(got, reference(a)[1])


@pytest.mark.parametrize(
    "make",
    [
        lambda a: a.astype(">f4"),  # big-endian, as some checkpoint files hold them
        lambda a: a.astype(np.float16),
        lambda a: np.repeat(a, 2)[::2],  # strided
    ],
    ids=["big-endian", "float16", "strided"],
)
def test_values_the_kernels_do_not_compile_for_are_summarised_alike(make):
    """The compiled kernels take float32 and float64 in one contiguous piece; anything
    else is converted first, and gives the statistics the obvious way gives."""
    from weightlapse.record.stats import summarize_host

    a = make(np.random.default_rng(4).normal(size=5000).astype(np.float32))
    got = summarize_host(a, Segments.build([a.size], [np.arange(3)]))
    stats, counts = reference(a)
    np.testing.assert_allclose(got.stats[0], stats, rtol=1e-6, atol=1e-9)
    np.testing.assert_array_equal(got.counts[0], counts)
    np.testing.assert_array_equal(got.probes, a[:3].astype(np.float64))
