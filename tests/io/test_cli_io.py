"""inspect, diff, import and export from the command line; bad files get one clear line."""

import subprocess
import sys
import zipfile

import numpy as np
import pytest

import weightlapse

torch = pytest.importorskip("torch")


def cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "weightlapse.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def cnn_file(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 5)
    )
    path = tmp_path / "cnn.pt"
    torch.save(model.state_dict(), path)
    return path, model


@pytest.mark.slow
def test_inspect_prints_every_tensor_and_writes_a_filter_grid(tmp_path, cnn_file):
    path, model = cnn_file
    proc = cli("inspect", path, "-o", tmp_path / "views")
    assert proc.returncode == 0, proc.stderr
    for name in ("0.weight", "0.bias", "3.weight", "3.bias"):
        assert name in proc.stdout
    assert "4x3x3x3" in proc.stdout and "pytorch" in proc.stdout
    grid = tmp_path / "views" / "0_weight-filters.png"
    from matplotlib.image import imread

    pixels = imread(grid)
    assert pixels.shape[0] > 100
    # three input channels: an RGB filter grid, so the picture has colour in it
    rgb = pixels[..., :3]
    assert (np.ptp(rgb, axis=2) > 0.2).sum() > 50


@pytest.mark.slow
def test_diff_shows_which_layer_moved(tmp_path, cnn_file):
    path, model = cnn_file
    with torch.no_grad():
        model[3].weight += 0.5
    torch.save(model.state_dict(), tmp_path / "later.pt")
    proc = cli("diff", path, tmp_path / "later.pt", "-o", tmp_path / "d.png")
    assert proc.returncode == 0, proc.stderr
    rows = [line for line in proc.stdout.splitlines() if "weight" in line or "bias" in line]
    assert "3.weight" in rows[0]  # most moved first
    assert (tmp_path / "d.png").stat().st_size > 5000


@pytest.mark.slow
def test_import_then_export_to_tensorboard_and_npz(tmp_path, cnn_file):
    _, model = cnn_file
    folder = tmp_path / "ckpts"
    folder.mkdir()
    for epoch in range(1, 4):
        with torch.no_grad():
            model[0].weight.mul_(1.1)
        torch.save(model.state_dict(), folder / f"epoch_{epoch}.pt")
    proc = cli("import", folder, tmp_path / "run")
    assert proc.returncode == 0, proc.stderr
    assert "3 steps (1, 2, 3)" in proc.stdout
    proc = cli(
        "export", tmp_path / "run", "--tensorboard", tmp_path / "tb", "--npz", tmp_path / "snap.npz"
    )
    assert proc.returncode == 0, proc.stderr

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "tb"), size_guidance={"histograms": 0, "images": 0})
    events.Reload()
    tags = events.Tags()
    assert sorted(tags["histograms"]) == [
        f"param/{n}" for n in ("0.bias", "0.weight", "3.bias", "3.weight")
    ]
    for tag in tags["histograms"]:
        histos = events.Histograms(tag)
        assert [h.step for h in histos] == [1, 2, 3]
        size = int(np.prod(weightlapse.open(tmp_path / "run")[tag[6:]].shape))
        assert histos[0].histogram_value.num == size
    images = events.Images("filters/0.weight")
    assert [i.step for i in images] == [1, 2, 3] and images[0].width > 100

    with np.load(tmp_path / "snap.npz") as snap:
        assert "0.weight@3" in snap.files
        np.testing.assert_array_equal(snap["0.weight@3"], model[0].weight.detach().numpy())


def make_bad_files(tmp_path, good):
    bad = {}
    bad["empty.pt"] = tmp_path / "empty.pt"
    bad["empty.pt"].write_bytes(b"")
    data = good.read_bytes()
    bad["truncated.pt"] = tmp_path / "truncated.pt"
    bad["truncated.pt"].write_bytes(data[: len(data) // 2])
    bad["text.safetensors"] = tmp_path / "text.safetensors"
    bad["text.safetensors"].write_text("this is not a model\n" * 10)
    bad["image.onnx"] = tmp_path / "image.onnx"
    bad["image.onnx"].write_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * 100)
    bad["slip.keras"] = tmp_path / "slip.keras"
    with zipfile.ZipFile(bad["slip.keras"], "w") as z:
        z.writestr("config.json", "{}")
        z.writestr("model.weights.h5", b"")
        z.writestr("../../escape.txt", "x")
    from tests.io.test_checkpoints import Exploit

    bad["bomb.pt"] = tmp_path / "bomb.pt"
    torch.save({"w": torch.ones(1), "x": Exploit(tmp_path / "pwned")}, bad["bomb.pt"])
    truncated_h5 = tmp_path / "truncated.h5"
    import h5py

    with h5py.File(truncated_h5, "w") as f:
        f["model_weights/dense/kernel"] = np.ones((50, 50))
    truncated_h5.write_bytes(truncated_h5.read_bytes()[:1000])
    bad["truncated.h5"] = truncated_h5
    return bad


@pytest.mark.slow
def test_bad_files_each_give_one_clear_line_and_exit_code_2(tmp_path, cnn_file):
    path, _ = cnn_file
    for label, bad in make_bad_files(tmp_path, path).items():
        proc = cli("inspect", bad)
        assert proc.returncode == 2, (label, proc.stderr)
        assert "Traceback" not in proc.stderr, label
        lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
        assert lines[0].startswith("error:"), (label, proc.stderr)
        assert str(bad.name) in proc.stderr.replace("\n", ""), label
    assert not (tmp_path / "pwned").exists()
