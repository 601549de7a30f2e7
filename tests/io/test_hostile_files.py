"""Hostile checkpoints, built here (never shipped as files): references that leave the
file, memory bombs, slowness as a weapon, and an --overwrite that is not a run. Each is
refused with one line, and no bomb is ever materialised."""

from __future__ import annotations

import subprocess
import sys
import zipfile

import numpy as np
import pytest

from weightlapse.io.formats import CheckpointError, read_checkpoint

h5py = pytest.importorskip("h5py")
SECRET = "top secret: the system's passwords"


@pytest.fixture
def secret(tmp_path):
    path = tmp_path / "outside" / "secret.txt"
    path.parent.mkdir()
    path.write_text(SECRET * 4)
    return path


def cli(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "weightlapse.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )


# ---- 1. references that leave the file ------------------------------------------------
def h5_with_external_storage(path, secret):
    with h5py.File(path, "w") as f:
        f.create_dataset("dense/kernel", data=np.ones((2, 2), "float32"))
        size = secret.stat().st_size
        f.create_dataset("dense/bias", shape=(size,), dtype="u1", external=[(str(secret), 0, size)])


def h5_with_external_link(path, secret_h5):
    with h5py.File(secret_h5, "w") as f:
        f["stolen"] = np.frombuffer(SECRET.encode(), dtype="u1")
    with h5py.File(path, "w") as f:
        f.create_dataset("dense/kernel", data=np.ones((2, 2), "float32"))
        f["dense/bias"] = h5py.ExternalLink(str(secret_h5), "stolen")


def h5_with_virtual_dataset(path, secret_h5):
    with h5py.File(secret_h5, "w") as f:
        f["stolen"] = np.frombuffer(SECRET.encode(), dtype="u1")
    layout = h5py.VirtualLayout(shape=(len(SECRET),), dtype="u1")
    layout[:] = h5py.VirtualSource(str(secret_h5), "stolen", shape=(len(SECRET),))
    with h5py.File(path, "w") as f:
        f.create_dataset("dense/kernel", data=np.ones((2, 2), "float32"))
        f.create_virtual_dataset("dense/bias", layout)


def as_keras_file(path, h5_bytes):
    config = {"class_name": "Sequential", "config": {"name": "m", "layers": []}}
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("config.json", __import__("json").dumps(config))
        z.writestr("metadata.json", "{}")
        z.writestr("model.weights.h5", h5_bytes)


@pytest.mark.parametrize("kind", ["external-storage", "external-link", "virtual"])
@pytest.mark.parametrize("container", ["h5", "keras"])
def test_hdf5_references_that_leave_the_file_are_refused(tmp_path, secret, kind, container):
    h5 = tmp_path / "model.h5"
    if kind == "external-storage":
        h5_with_external_storage(h5, secret)
    elif kind == "external-link":
        h5_with_external_link(h5, secret.with_suffix(".h5"))
    else:
        h5_with_virtual_dataset(h5, secret.with_suffix(".h5"))
    path = h5
    if container == "keras":
        path = tmp_path / "model.keras"
        as_keras_file(path, h5.read_bytes())
    with pytest.raises(CheckpointError, match="refused") as info:
        read_checkpoint(path)
    message = str(info.value)
    assert "dense/bias" in message and "\n" not in message
    assert SECRET not in message


def onnx_with_external_data(folder, location):
    pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    tensor = TensorProto(name="w", data_type=TensorProto.UINT8, dims=[16])
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", "16")):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    node = helper.make_node("Identity", ["w"], ["y"])
    output = helper.make_tensor_value_info("y", TensorProto.UINT8, [16])
    model = helper.make_model(helper.make_graph([node], "g", [], [output], [tensor]))
    path = folder / "model.onnx"
    path.write_bytes(model.SerializeToString())
    return path


def test_onnx_external_data_is_refused_by_default_and_never_read_from_the_cwd(tmp_path, secret):
    models = tmp_path / "models"
    models.mkdir()
    path = onnx_with_external_data(models, "secret/secret.txt")
    (tmp_path / "secret").mkdir()
    (tmp_path / "secret" / "secret.txt").write_text(SECRET)
    proc = cli("inspect", path, cwd=tmp_path)  # the old reader read it relative to the cwd
    assert proc.returncode == 2 and SECRET[:10] not in proc.stdout + proc.stderr
    assert "--allow-external-data" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_onnx_external_data_is_read_only_inside_the_models_folder(tmp_path, secret):
    models = tmp_path / "models"
    models.mkdir()
    (models / "w.bin").write_bytes(bytes(range(16)))
    inside = onnx_with_external_data(models, "w.bin")
    ckpt = read_checkpoint(inside, allow_external_data=True)
    np.testing.assert_array_equal(ckpt.tensors["w"], np.arange(16))
    outside = onnx_with_external_data(models, "../outside/secret.txt")
    with pytest.raises(CheckpointError, match="outside the model's folder"):
        read_checkpoint(outside, allow_external_data=True)


# ---- 2. memory bombs -------------------------------------------------------------------
def peak_rss_mb_of(code: str) -> tuple[subprocess.CompletedProcess, float]:
    """Runs `code` in a fresh interpreter; its peak resident memory in MB. (VmHWM, not
    ru_maxrss: Linux carries ru_maxrss over fork and exec from the parent, which built
    the bomb.)"""
    wrapped = (
        "import sys\n"
        "try:\n" + "".join(f"    {line}\n" for line in code.splitlines()) + "finally:\n"
        "    hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0]\n"
        "    print('PEAK', int(hwm.split()[1]) / 1024, file=sys.stderr)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", wrapped], capture_output=True, text=True, timeout=300
    )
    peak = float(proc.stderr.rsplit("PEAK", 1)[1].split()[0])
    return proc, peak


def h5_bomb(path):
    with h5py.File(path, "w") as f:
        f.create_dataset(
            "dense/kernel", shape=(25000, 25000), dtype="float32"
        )  # no data: 2.5 GB of fill


def npz_bomb(path):
    """1.6 GB of zeros deflated into a couple of MB, streamed (never held whole here)."""
    shape = (20000, 20000)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        with z.open("w.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array_header_1_0(
                f, {"descr": "<f4", "fortran_order": False, "shape": shape}
            )
            chunk = bytes(64 << 20)
            for _ in range(shape[0] * shape[1] * 4 // len(chunk)):
                f.write(chunk)


def npy_liar(path):
    header = {"descr": "<f4", "fortran_order": False, "shape": (10**12,)}
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        f.write(b"\0" * 64)


@pytest.mark.slow
@pytest.mark.parametrize("make, suffix", [(h5_bomb, ".h5"), (npz_bomb, ".npz"), (npy_liar, ".npy")])
def test_a_memory_bomb_is_refused_before_it_is_read(tmp_path, make, suffix):
    path = tmp_path / f"bomb{suffix}"
    make(path)
    assert path.stat().st_size < 20_000_000
    proc, peak = peak_rss_mb_of(f"from weightlapse.cli import app\napp(['inspect', {str(path)!r}])")
    err = proc.stderr.rsplit("PEAK", 1)[0].strip()
    assert proc.returncode == 2, err
    assert len(err.splitlines()) == 1 and ("declares" in err or "expands" in err), err
    assert peak < 500, f"peak RSS {peak:.0f} MB"


def test_a_keras_bomb_is_refused_from_its_zip_entry(tmp_path):
    path = tmp_path / "bomb.keras"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("config.json", "{}")
        z.writestr("model.weights.h5", b"\0" * 200_000_000)  # 200 MB of zeros in 0.2 MB
    assert path.stat().st_size < 1_000_000
    with pytest.raises(CheckpointError, match="expands to 200,000,000 bytes"):
        read_checkpoint(path)


def test_max_bytes_is_a_limit_the_user_sets(tmp_path):
    path = tmp_path / "w.npy"
    np.save(path, np.ones(1000, dtype="float32"))
    assert read_checkpoint(path).tensors["w"].shape == (1000,)
    with pytest.raises(CheckpointError, match="--max-bytes"):
        read_checkpoint(path, max_bytes=100)


# ---- 3. slowness as a weapon ------------------------------------------------------------
def test_many_tiny_tensors_take_time_in_proportion(tmp_path):
    """200,000 tensors in 13 MB took 152 s to inspect: no step may be quadratic."""
    safetensors = pytest.importorskip("safetensors.numpy")
    import time

    from weightlapse.io.inspect import tensor_rows

    def seconds(n):
        path = tmp_path / f"many{n}.safetensors"
        safetensors.save_file({f"t{i}": np.ones(2, "float32") for i in range(n)}, str(path))
        best = float("inf")
        for _ in range(3):  # the best of three: a busy machine adds time, never removes it
            start = time.perf_counter()
            rows = tensor_rows(read_checkpoint(path).tensors)
            best = min(best, time.perf_counter() - start)
        assert len(rows) == n and rows[-1]["l2"] == pytest.approx(2**0.5)
        return best

    small, big = seconds(5_000), seconds(50_000)
    assert big / small < 25  # ten times the tensors, not a hundred times the time


# ---- 4. --overwrite only ever removes a run ---------------------------------------------
def test_import_overwrite_never_deletes_what_is_not_a_run(tmp_path):
    torch = pytest.importorskip("torch")
    ck = tmp_path / "ck"
    ck.mkdir()
    torch.save({"w": torch.ones(2)}, ck / "epoch_1.pt")
    proc = cli("import", ck, ck, "--overwrite")
    assert proc.returncode == 2 and (ck / "epoch_1.pt").exists()
    assert "holds the checkpoints" in proc.stderr
    other = tmp_path / "notes"
    other.mkdir()
    (other / "thesis.tex").write_text("years of work")
    proc = cli("import", ck, other, "--overwrite")
    assert proc.returncode == 2 and (other / "thesis.tex").exists()
    assert "not a weightlapse run" in proc.stderr
    run_path = tmp_path / "run"
    assert cli("import", ck, run_path).returncode == 0
    proc = cli("import", ck, run_path)
    assert proc.returncode == 2 and "--overwrite" in proc.stderr and "--resume" in proc.stderr
    assert cli("import", ck, run_path, "--overwrite").returncode == 0


# ---- 5. one line when piped ---------------------------------------------------------------
def test_errors_are_one_line_when_stderr_is_piped(tmp_path):
    path = tmp_path / "a-rather-long-file-name-that-would-wrap-a-terminal-line-somewhere.npy"
    path.write_text("not numpy at all, but a long enough text to be a file of some size")
    proc = cli("inspect", path)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_explain_refuses_a_keras_file_that_reads_outside_itself(tmp_path, secret):
    h5 = tmp_path / "model.h5"
    h5_with_external_link(h5, secret.with_suffix(".h5"))
    path = tmp_path / "model.keras"
    as_keras_file(path, h5.read_bytes())
    np.save(tmp_path / "x.npy", np.zeros((1, 4), "float32"))
    proc = cli("explain", path, tmp_path / "x.npy", "-o", tmp_path / "e.png")
    assert proc.returncode == 2 and "refused" in proc.stderr and "outside this file" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
