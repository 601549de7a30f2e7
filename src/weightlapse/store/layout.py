"""The run format: array paths, chunking, codecs and the format version (see docs/format.md)."""

from __future__ import annotations

import datetime as _dt
import hashlib
import math
from typing import Any
from urllib.parse import quote

import numpy as np
import zarr
from zarr.codecs import BloscCodec

FORMAT_VERSION = 3  # docs/format.md, Changes: what each version added
ROOT_ATTR = "weightlapse"
INDEX_COLUMNS: tuple[str, ...] = ("step", "epoch", "batch", "wall_time")
STAT_NAMES: tuple[str, ...] = (
    "min",
    "max",
    "mean",
    "std",
    "l2",
    "mean_abs",
    "zero_frac",
    "nan_count",
    "inf_count",
)

# Rows of per-step arrays are written a flush at a time; a chunk holds this many steps.
CHUNK_STEPS = 256
CHUNK_STEPS_NARROW = 4096  # index and scalars: a few columns, read whole by every view
# Statistics: every history view reads one tensor's over all steps, and Zarr's cost a
# chunk, not its bytes, bounds that read: over 100,000 steps, 391 chunks of 256 steps
# (zstd 3) took 136-277 ms, 196 of 512 (zstd 1, see compressors) 69-114 ms, and a full
# chunk encodes in about the same time (0.43-0.74 ms against 0.60-0.72), so a flush costs
# about what it did (bench/codecs.py, four runs). Wider tensor chunks (runs of very many
# tensors) get fewer steps, never under CHUNK_STEPS.
CHUNK_STEPS_STATS = 512
# Few tensors a chunk: one tensor's history over 100,000 steps decompresses 29 MB of
# statistics, not 460 (bench/scale.py); a flush writes the same bytes either way.
CHUNK_TENSORS_STATS = 4
CHUNK_TENSORS_HIST = 4
CHUNK_PROBES = 1024
CHUNK_SCALARS = 16

INDEX_PATH = "index"
SCALARS_PATH = "scalars"


def stats_path(kind: str) -> str:
    return f"{kind}/stats"


def hist_path(kind: str) -> str:
    return f"{kind}/hist"


def probes_path(kind: str) -> str:
    return f"{kind}/probes"


def growing_array_spec(path: str, tensors: int = 0) -> tuple[tuple[int, ...], Any, Any]:
    """A per-step array's (chunks of the axes after steps (0: the axis's own size), dtype,
    fill value). Its tensors, probes and scalar columns axes grow as new ones come.
    `tensors`: how many the array starts with (a run of very many tensors gets wider
    chunks, see tensor_chunk)."""
    n_stats = len(STAT_NAMES)
    if path == INDEX_PATH:
        return (len(INDEX_COLUMNS),), np.float64, np.nan
    if path == SCALARS_PATH:
        return (CHUNK_SCALARS,), np.float64, np.nan
    if path.endswith("/stats"):
        return (tensor_chunk(CHUNK_TENSORS_STATS, tensors), n_stats), np.float64, np.nan
    if path.endswith("/hist"):
        return (tensor_chunk(CHUNK_TENSORS_HIST, tensors), 0), np.uint32, 0
    if path.endswith("/probes"):
        return (CHUNK_PROBES,), np.float64, np.nan
    raise ValueError(f"not a per-step array: {path}")


MAX_CHUNKS_A_FLUSH = 256


def tensor_chunk(base: int, tensors: int) -> int:
    """Tensors a chunk: `base`, or more (a power of two) so that a flush of a run of very
    many tensors writes at most MAX_CHUNKS_A_FLUSH chunks an array (10,000 tensors in
    chunks of 8: 1,250 chunks a flush, and close took 5.7 s instead of 2.2)."""
    chunk = base
    while -(-tensors // chunk) > MAX_CHUNKS_A_FLUSH:
        chunk *= 2
    return chunk


def dimension_names(path: str, ndim: int) -> tuple[str, ...]:
    """Named axes (Zarr v3 `dimension_names`), so xarray reads a run without weightlapse.
    Names that share a group share a size: each kind has its own tensor axis."""
    if path == INDEX_PATH:
        return ("step", "index_column")
    if path == SCALARS_PATH:
        return ("step", "scalar")
    kind, _, what = path.partition("/")
    if what == "stats":
        return ("step", f"{kind}_tensor", "stat")
    if what == "hist":
        return ("step", f"{kind}_tensor", "bin")
    if what == "probes":
        return ("step", f"{kind}_probe")
    if what.startswith("snapshots/"):
        leaf = what.split("/", 1)[1]
        return (f"{leaf}:step", *(f"{leaf}:{i}" for i in range(ndim - 1)))
    return tuple(f"dim_{i}" for i in range(ndim))


def snapshot_path(kind: str, tensor: str, taken: set[str] | frozenset[str] = frozenset()) -> str:
    """Where a tensor's snapshots live, named by the tensor so that xarray and a file
    browser show which is which: `param/snapshots/conv1.weight`. Characters other than
    letters, digits and `._-` are percent-encoded ('dense/kernel' -> 'dense%2Fkernel'),
    so a name never nests, escapes or collides; a name too long for a file system keeps
    its start and a hash. `attrs.snapshots` holds each array's path: readers never decode
    names (and runs of format 1 before this used numbers)."""
    leaf = quote(tensor, safe="._-") or "%00"
    if leaf.startswith("."):
        leaf = "%2E" + leaf[1:]
    if len(leaf) > MAX_LEAF:
        leaf = f"{leaf[: MAX_LEAF - 13]}~{hashlib.sha1(tensor.encode()).hexdigest()[:12]}"
    path, n = f"{kind}/snapshots/{leaf}", 1
    while path in taken:  # only after a cut name's hash collided
        path, n = f"{kind}/snapshots/{leaf}~{n}", n + 1
    return path


MAX_LEAF = 120  # bytes of an encoded name; file systems allow 255
# Packed snapshot arrays are named `{kind}/snapshots/%packedN`: an encoded tensor name
# never holds a bare '%' before letters other than hex digits, so they cannot collide.
PACKED = "%packed"


# Every chunk is written, also one that holds only fill values: then a missing chunk file
# is damage, never "nothing was recorded there" (readers check; attrs say `every_chunk`).
EVERY_CHUNK = {"write_empty_chunks": True}


def compressors(path: str = "") -> tuple[Any, ...]:
    # Byte shuffle makes small integer counts and slowly-varying floats compress well.
    # Statistics at zstd level 1: their chunks hold twice the steps (CHUNK_STEPS_STATS)
    # and a flush re-encodes the chunk it adds rows to; level 1 encodes 2-3x faster for
    # about the same bytes (a 256-step chunk of an MLP's statistics: 168 us instead of
    # 553, ratio 2.07 instead of 2.16; bench/codecs.py). Level 3 elsewhere: level 1
    # decodes histograms and probes 1.5-2x slower, and their readers read many chunks.
    level = 1 if path.endswith("/stats") else 3
    return (BloscCodec(cname="zstd", clevel=level, shuffle="shuffle"),)


SNAPSHOT_CHUNK_BYTES = 16 * 2**20
# Snapshots of a tensor up to this size share chunks, as many as fit: Zarr's cost is per
# chunk (~0.5 ms a chunk file here, whatever its size), and a small tensor's snapshot is
# a fraction of a chunk's worth. The MLP of bench/overhead.py (six tensors, ~50 log-spaced
# snapshots in 300 steps): close() 0.32 -> 0.20 s, defaults 2.67x -> 2.35x; the CNN's
# 1.37x -> 1.23x (`python bench/writer_ab.py snapshot-rows --variants defaults`).
# A flush that adds a row to a shared chunk re-encodes the chunk, so this also bounds
# that work per tensor; a reader decodes at most this much for one snapshot. Zarr
# replaces a chunk file whole (written aside, then renamed), so a kill during that
# rewrite leaves the snapshots already committed in it readable.
SNAPSHOT_ROWS_BYTES = 2**18


def snapshot_chunks(shape: tuple[int, ...], itemsize: int) -> tuple[int, ...]:
    """Chunks of an array of snapshots of one tensor of `shape`: a chunk holds as many
    snapshots as fit in SNAPSHOT_ROWS_BYTES (at least one); a snapshot over 16 MiB is cut
    along its leading axes into chunks of at most 16 MiB, so writing or reading a big
    tensor never encodes it whole in memory."""
    row_bytes = math.prod(shape) * itemsize
    if 0 < row_bytes <= SNAPSHOT_ROWS_BYTES:
        return (SNAPSHOT_ROWS_BYTES // row_bytes, *shape)
    chunks = list(shape)
    for axis in range(len(chunks)):
        if math.prod(chunks[axis:]) * itemsize <= SNAPSHOT_CHUNK_BYTES:
            break
        rest = math.prod(chunks[axis + 1 :]) * itemsize
        chunks[axis] = max(1, SNAPSHOT_CHUNK_BYTES // max(rest, 1))
        if rest <= SNAPSHOT_CHUNK_BYTES:
            break
    return (1, *chunks)


def snapshot_compressors() -> tuple[Any, ...]:
    # Trained weights are close to random bits past the exponent: zstd level 3 gained 11%
    # at 8.8 ms per 800 KB snapshot, lz4 with bit shuffle 14% at 4.4 ms (this machine).
    return (BloscCodec(cname="lz4", clevel=5, shuffle="bitshuffle"),)


def chunk_steps(path: str, inner_chunks: tuple[int, ...]) -> int:
    """Steps a chunk of the per-step array at `path` holds."""
    if path in (INDEX_PATH, SCALARS_PATH):
        return CHUNK_STEPS_NARROW
    if path.endswith("/stats"):
        wide = CHUNK_STEPS_STATS * CHUNK_TENSORS_STATS // max(inner_chunks[0], 1)
        return max(CHUNK_STEPS, wide)
    return CHUNK_STEPS


def create_growing_array(
    group: zarr.Group,
    path: str,
    inner_shape: tuple[int, ...],
    inner_chunks: tuple[int, ...],
    dtype: Any,
    fill_value: Any,
    steps: int,
) -> zarr.Array:
    """An array whose first axis is steps, made `steps` long (its first flush's rows:
    a resize rewrites the metadata, 1-1.4 ms of Zarr's a call) and grown at each flush."""
    return group.create_array(
        path,
        shape=(steps, *inner_shape),
        chunks=(chunk_steps(path, inner_chunks), *inner_chunks),
        dtype=dtype,
        fill_value=fill_value,
        compressors=compressors(path),
        config=EVERY_CHUNK,
        dimension_names=dimension_names(path, 1 + len(inner_shape)),
    )


def write_int_rows(
    group: zarr.Group,
    path: str,
    start: int,
    rows: np.ndarray,
    chunk_rows: int,
    names: tuple[str, ...],
) -> None:
    """Writes int64 rows (an index: -1 is its fill, so a lost chunk is seen) at `start`
    of the array at `path`, made on first use (as long as they need), grown to end with
    them."""
    stop = start + len(rows)
    try:
        arr = group[path]
    except KeyError:
        arr = group.create_array(
            path,
            shape=(stop, *rows.shape[1:]),
            chunks=(chunk_rows, *rows.shape[1:]),
            dtype=np.int64,
            fill_value=-1,
            compressors=compressors(),
            config=EVERY_CHUNK,
            dimension_names=names,
        )
    if arr.shape != (stop, *rows.shape[1:]):
        arr.resize((stop, *rows.shape[1:]))
    if len(rows):
        arr[start:stop] = rows


def snapshot_dtype(dtype: np.dtype) -> np.dtype:
    """Snapshots keep their dtype where Zarr has it (floats, integers, bools); bfloat16,
    float8 and other extension types are stored as float32, which holds them exactly."""
    dtype = np.dtype(dtype)
    if dtype.kind in "fiub" and dtype.itemsize <= 8:
        return dtype
    return np.dtype(np.float32)


def snapshot_nbytes(tensor: Any) -> int:
    """The bytes a tensor's snapshot takes in the store (its dtype as stored): what the
    snapshot budget counts and `snapshot_bytes` says."""
    if isinstance(tensor, np.ndarray) and tensor.dtype.kind in "fiub":
        return int(tensor.nbytes)  # stored as it is
    size = int(np.prod(tuple(tensor.shape), dtype=np.int64))
    key = str(tensor.dtype)
    itemsize = _STORED_ITEMSIZE.get(key)
    if itemsize is None:
        try:
            dtype = np.dtype(key.replace("torch.", ""))
        except TypeError:  # bfloat16, float8 and friends are stored as float32
            dtype = np.dtype(np.float32)
        itemsize = _STORED_ITEMSIZE[key] = snapshot_dtype(dtype).itemsize
    return size * itemsize


_STORED_ITEMSIZE: dict[str, int] = {}


def snapshot_fill(dtype: np.dtype) -> Any:
    """NaN where floats can hold it; 0 for integers and bools."""
    return np.nan if np.dtype(dtype).kind == "f" else 0


# A live run's writer rewrites its heartbeat at least this often; readers take a run whose
# heartbeat is older than LIVE_TIMEOUT (or whose writer process is gone) as ended.
HEARTBEAT_SECONDS = 5.0
LIVE_TIMEOUT = 60.0


def new_run_attrs(bins: int, meta: dict[str, Any] | None) -> dict[str, Any]:
    """The root attributes of a new run (docs/format.md says each)."""
    return {
        "format_version": FORMAT_VERSION,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(),
        "bins": bins,
        "stat_names": list(STAT_NAMES),
        "index_columns": list(INDEX_COLUMNS),
        "committed_steps": 0,
        "scalars": [],
        "kinds": {},
        "tensors": {},
        "snapshots": {},
        "snapshot_rows": {},
        "snapshot_bytes": 0,
        "meta": dict(meta or {}),
        "closed": False,
        "every_chunk": True,
    }
