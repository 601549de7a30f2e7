"""Checkpoints written by the real libraries read back exactly, with the right names."""

import zipfile

import numpy as np
import pytest

import weightlapse
from weightlapse.io.formats import CheckpointError, read_checkpoint
from weightlapse.io.importing import import_checkpoints, load_weights

torch = pytest.importorskip("torch")


def torch_models():
    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(16, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    cnn = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 3)
    )
    return {"mlp": mlp, "cnn": cnn}


def state(model):
    return {k: v.detach().numpy() for k, v in model.state_dict().items()}


def assert_same(got: dict, want: dict):
    assert sorted(got) == sorted(want)
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)


@pytest.mark.parametrize("which", ["mlp", "cnn"])
def test_torch_state_dict_and_training_checkpoint(tmp_path, which):
    model = torch_models()[which]
    torch.save(model.state_dict(), tmp_path / "m.pt")
    c = read_checkpoint(tmp_path / "m.pt")
    assert c.format == "pytorch"
    assert_same(c.tensors, state(model))
    torch.save(
        {"epoch": 3, "model_state_dict": model.state_dict(), "optimizer_state_dict": {"lr": 0.1}},
        tmp_path / "ckpt.pth",
    )
    c = read_checkpoint(tmp_path / "ckpt.pth")
    assert_same(c.tensors, state(model))
    assert c.meta["epoch"] == 3


@pytest.mark.parametrize("which", ["mlp", "cnn"])
def test_safetensors_npz_and_onnx(tmp_path, which):
    from safetensors.torch import save_file

    model = torch_models()[which]
    want = state(model)
    save_file(model.state_dict(), tmp_path / "m.safetensors")
    assert_same(read_checkpoint(tmp_path / "m.safetensors").tensors, want)
    np.savez(tmp_path / "m.npz", **want)
    assert_same(read_checkpoint(tmp_path / "m.npz").tensors, want)
    np.save(tmp_path / "kernel.npy", want["0.weight"])
    assert_same(read_checkpoint(tmp_path / "kernel.npy").tensors, {"kernel": want["0.weight"]})
    x = torch.randn(1, 16) if which == "mlp" else torch.randn(1, 1, 8, 8)
    torch.onnx.export(
        model, (x,), str(tmp_path / "m.onnx"), dynamo=False, do_constant_folding=False
    )
    c = read_checkpoint(tmp_path / "m.onnx")
    assert c.format == "onnx"
    assert_same({k: c.tensors[k] for k in want}, want)
    if which == "cnn":
        assert c.layouts["0.weight"] == "out,in,h,w"


def keras_models():
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(0)
    mlp = keras.Sequential(
        [
            keras.Input((16,)),
            keras.layers.Dense(8, name="hidden"),
            keras.layers.Dense(3, name="out"),
        ]
    )
    cnn = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(4, 3, name="conv"),
            keras.layers.Flatten(name="flat"),
            keras.layers.Dense(3, name="out"),
        ]
    )
    return {"mlp": mlp, "cnn": cnn}


@pytest.mark.parametrize("which", ["mlp", "cnn"])
@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_keras_files_in_both_formats(tmp_path, which, suffix):
    model = keras_models()[which]
    model.compile(optimizer="adam", loss="mse")
    path = tmp_path / f"m{suffix}"
    model.save(path)
    c = read_checkpoint(path)
    assert c.format == ("keras" if suffix == ".keras" else "keras-h5")
    want = {}
    for layer in model.layers:
        for var in layer.weights:
            want[f"{layer.name}/{var.name}"] = np.asarray(var.numpy())
    assert sorted(c.tensors) == sorted(want)
    for name in want:
        np.testing.assert_array_equal(c.tensors[name], want[name], err_msg=name)
    if which == "cnn":
        assert c.layouts["conv/kernel"] == "h,w,in,out"


def test_the_shared_real_models_all_read(tmp_path):
    from tests.conftest import SHARED_DATA

    folder = SHARED_DATA / "models"
    if not folder.exists():
        pytest.skip("no shared models")
    expected = {
        "mnist_lenet5_state_dict.pth": ("conv1.weight", (6, 1, 5, 5)),
        "mnist_lenet5.onnx": ("body.conv1.weight", (6, 1, 5, 5)),
        "mnist_cnn_32_64.onnx": ("fc1.weight", (128, 3136)),
        "mnist_mlp_64_64.h5": ("dense/kernel", (784, 64)),
        "mnist_cnn_3x64.keras": ("conv2d_1/kernel", (3, 3, 64, 64)),
        "mnist_tinycnn_bn.safetensors": ("bn1.num_batches_tracked", ()),
    }
    for file, (name, shape) in expected.items():
        assert read_checkpoint(folder / file).tensors[name].shape == shape, file
    run = load_weights(folder / "mnist_mlp_64_64.h5")
    fig = weightlapse.weight_images(run, "dense/kernel", step=0)  # 784 inputs: 28x28
    assert fig.axes[0].images[0].get_array().shape == (28, 28)


def test_load_weights_gives_a_run_every_view_works_on(tmp_path):
    model = torch_models()["cnn"]
    torch.save(model.state_dict(), tmp_path / "m.pt")
    run = load_weights(tmp_path / "m.pt")
    assert list(run.steps) == [0]
    assert run["0.weight"].layout == "out,in,h,w"
    np.testing.assert_array_equal(run["0.weight"].at(0), state(model)["0.weight"])
    assert run["3.weight"].stats["l2"][0] == pytest.approx(
        float(model[3].weight.detach().norm()), rel=1e-5
    )
    weightlapse.filter_grid(run, "0.weight")
    weightlapse.heatmap(run, "3.weight")


class Exploit:
    """Unpickling this writes a file: what a malicious checkpoint would do."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (open, (str(self.target), "w"))


def test_a_malicious_pickle_is_refused_and_never_runs(tmp_path):
    target = tmp_path / "pwned.txt"
    torch.save({"weight": torch.ones(2), "payload": Exploit(target)}, tmp_path / "evil.pt")
    assert not target.exists()
    with pytest.raises(CheckpointError, match="--trust-pickle"):
        read_checkpoint(tmp_path / "evil.pt")
    assert not target.exists()
    np.save(tmp_path / "evil.npy", np.array([Exploit(target)], dtype=object), allow_pickle=True)
    with pytest.raises(CheckpointError, match="--trust-pickle"):
        read_checkpoint(tmp_path / "evil.npy")
    assert not target.exists()


def test_a_whole_pickled_model_needs_trust(tmp_path):
    model = torch_models()["mlp"]
    torch.save(model, tmp_path / "model.pt")
    with pytest.raises(CheckpointError, match="--trust-pickle"):
        read_checkpoint(tmp_path / "model.pt")
    c = read_checkpoint(tmp_path / "model.pt", trust_pickle=True)
    assert_same(c.tensors, state(model))


def test_a_folder_of_checkpoints_becomes_a_run(tmp_path):
    model = torch_models()["mlp"]
    folder = tmp_path / "ckpts"
    folder.mkdir()
    saved = {}
    for epoch in (1, 2, 10):
        with torch.no_grad():
            model[0].weight += epoch
        torch.save(model.state_dict(), folder / f"epoch_{epoch}.pt")
        saved[epoch] = model[0].weight.detach().numpy().copy()
    (folder / "notes.txt").write_text("not a checkpoint")
    run = import_checkpoints(folder, tmp_path / "run")
    assert list(run.steps) == [1, 2, 10]
    for epoch, w in saved.items():
        np.testing.assert_array_equal(run["0.weight"].at(epoch), w)
    assert (
        len(
            weightlapse.animate(
                run, "weights", "0.weight", tmp_path / "a.gif", image_shape=(4, 4), progress=False
            ).read_bytes()
        )
        > 1000
    )


def test_zip_entries_pointing_outside_are_refused(tmp_path):
    path = tmp_path / "evil.keras"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("config.json", "{}")
        z.writestr("model.weights.h5", b"")
        z.writestr("../../outside.txt", "x")
    with pytest.raises(CheckpointError, match="outside"):
        read_checkpoint(path)


def test_a_tensorflow_checkpoint(tmp_path):
    tf = pytest.importorskip("tensorflow")
    kernel = np.arange(12, dtype=np.float32).reshape(3, 4)
    checkpoint = tf.train.Checkpoint(kernel=tf.Variable(kernel), bias=tf.Variable(np.ones(4)))
    prefix = checkpoint.save(str(tmp_path / "ckpt"))
    c = read_checkpoint(prefix)
    assert c.format == "tf-checkpoint"
    np.testing.assert_array_equal(c.tensors["kernel"], kernel)
    np.testing.assert_array_equal(c.tensors["bias"], np.ones(4))
    assert read_checkpoint(tmp_path).tensors.keys() == c.tensors.keys()  # the folder works too
