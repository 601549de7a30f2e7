"""The same network in PyTorch and in Keras (PyTorch and TensorFlow backends) gives the
same maps for every method."""

import json
import textwrap

import numpy as np
import pytest

from tests.conftest import run_python

torch = pytest.importorskip("torch")
pytest.importorskip("keras")

METHODS = ["saliency", "deconvnet", "guided", "integrated", "gradcam", "gradcam++"]

KERAS_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import keras
    from weightlapse.interpret.methods import make_method

    def keras_maps(weights, x_nchw, methods):
        model = keras.Sequential([
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv1"),
            keras.layers.Conv2D(6, 3, padding="same", name="conv2"),
            keras.layers.ReLU(name="relu2"),
            keras.layers.GlobalAveragePooling2D(name="pool"),
            keras.layers.Dense(3, name="fc"),
        ])
        model.get_layer("conv1").set_weights([weights["c1w"].transpose(2, 3, 1, 0),
                                              weights["c1b"]])
        model.get_layer("conv2").set_weights([weights["c2w"].transpose(2, 3, 1, 0),
                                              weights["c2b"]])
        model.get_layer("fc").set_weights([weights["fw"].T, weights["fb"]])
        x = np.ascontiguousarray(x_nchw.transpose(0, 2, 3, 1))
        out = {}
        for name in methods:
            layer = "relu2" if name.startswith("gradcam") else None
            maps = make_method(name, model).attribute(x, target=1, layer=layer)
            out[name] = maps if layer else maps.transpose(0, 3, 1, 2)  # back to NCHW
        return out
""")


def torch_model():
    torch.manual_seed(0)
    m = torch.nn.Sequential()
    m.add_module("conv1", torch.nn.Conv2d(1, 4, 3, padding=1))
    m.add_module("relu1", torch.nn.ReLU())
    m.add_module("conv2", torch.nn.Conv2d(4, 6, 3, padding=1))
    m.add_module("relu2", torch.nn.ReLU())
    m.add_module("pool", torch.nn.AdaptiveAvgPool2d(1))
    m.add_module("flat", torch.nn.Flatten())
    m.add_module("fc", torch.nn.Linear(6, 3))
    return m


def torch_maps(model, x):
    from weightlapse.interpret.methods import make_method

    return {
        name: make_method(name, model).attribute(
            x, target=1, layer="relu2" if name.startswith("gradcam") else None
        )
        for name in METHODS
    }


def weights_of(model):
    return {
        "c1w": model.conv1.weight,
        "c1b": model.conv1.bias,
        "c2w": model.conv2.weight,
        "c2b": model.conv2.bias,
        "fw": model.fc.weight,
        "fb": model.fc.bias,
    }


def test_keras_on_the_torch_backend_agrees_with_pytorch():
    import keras

    assert keras.backend.backend() == "torch"
    model = torch_model()
    weights = {k: v.detach().numpy() for k, v in weights_of(model).items()}
    x = np.random.default_rng(0).normal(size=(2, 1, 8, 8)).astype(np.float32)
    namespace: dict = {}
    exec(KERAS_SCRIPT, namespace)
    got = namespace["keras_maps"](weights, x, METHODS)
    want = torch_maps(model, x)
    for name in METHODS:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-4, atol=1e-5, err_msg=name)


@pytest.mark.slow
def test_keras_on_the_tensorflow_backend_agrees_with_pytorch(tmp_path):
    pytest.importorskip("tensorflow")
    model = torch_model()
    weights = {k: v.detach().numpy() for k, v in weights_of(model).items()}
    x = np.random.default_rng(0).normal(size=(2, 1, 8, 8)).astype(np.float32)
    np.savez(tmp_path / "in.npz", x=x, **weights)
    code = KERAS_SCRIPT + textwrap.dedent(f"""
        data = dict(np.load({str(tmp_path / "in.npz")!r}))
        x = data.pop("x")
        maps = keras_maps(data, x, {METHODS!r})
        np.savez({str(tmp_path / "out.npz")!r}, **maps)
        print(json.dumps(keras.backend.backend()))
    """)
    proc = run_python(code, env={"KERAS_BACKEND": "tensorflow"})
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == "tensorflow"
    got = np.load(tmp_path / "out.npz")
    want = torch_maps(model, x)
    for name in METHODS:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-4, atol=1e-5, err_msg=name)
