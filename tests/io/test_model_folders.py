"""Hugging Face model folders (one file, safetensors shards, .bin shards) read as one
model, imported as one step each; Keras 3 .weights.h5 files with their layers' names."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from tests.conftest import tiny_bert_config
from weightlapse.io.formats import CheckpointError, read_checkpoint
from weightlapse.io.importing import import_checkpoints

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


def tiny_bert(seed=0):
    torch.manual_seed(seed)
    config = tiny_bert_config()
    return transformers.BertModel(config)


def state(model):
    return {k: v.detach().numpy() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("layout", ["single", "safetensors-shards", "bin-shards"])
def test_a_model_folder_reads_as_one_model(tmp_path, layout):
    model = tiny_bert()
    options = {
        "single": {},
        "safetensors-shards": {"max_shard_size": "20KB"},
        "bin-shards": {"max_shard_size": "20KB", "safe_serialization": False},
    }[layout]
    model.save_pretrained(tmp_path / "bert", **options)
    files = sorted(p.name for p in (tmp_path / "bert").iterdir())
    if layout != "single":
        assert sum("-of-" in f for f in files) >= 2  # really sharded
    c = read_checkpoint(tmp_path / "bert")
    want = state(model)
    assert sorted(c.tensors) == sorted(want)
    for name, array in want.items():
        np.testing.assert_array_equal(c.tensors[name], array, err_msg=name)
    assert c.meta["class"] == "BertModel" and c.meta["model_type"] == "bert"
    assert c.layouts["encoder.layer.0.attention.self.query.weight"] == "out,in"


def test_inspect_of_a_model_folder_lists_its_tensors(tmp_path):
    from typer.testing import CliRunner

    from weightlapse.cli import app

    tiny_bert().save_pretrained(tmp_path / "bert", max_shard_size="20KB")
    out = CliRunner().invoke(app, ["inspect", str(tmp_path / "bert"), "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert data["format"] == "hf-safetensors"
    assert "encoder.layer.1.output.dense.weight" in {t["name"] for t in data["tensors"]}


def test_import_makes_one_step_per_checkpoint_not_per_shard(tmp_path):
    folder = tmp_path / "out"
    for step in (500, 1000):
        tiny_bert(seed=step).save_pretrained(folder / f"checkpoint-{step}", max_shard_size="20KB")
    run = import_checkpoints(folder, tmp_path / "run")
    assert run.steps.tolist() == [500, 1000]
    np.testing.assert_array_equal(
        run["pooler.dense.weight"].at(1000), state(tiny_bert(seed=1000))["pooler.dense.weight"]
    )
    shards = tmp_path / "shards"
    tiny_bert().save_pretrained(shards, max_shard_size="20KB")
    (shards / "model.safetensors.index.json").unlink()  # shards alone still group
    (shards / "config.json").unlink()
    run = import_checkpoints(shards, tmp_path / "run2")
    assert len(run.steps) == 1 and len(run.tensors) == len(state(tiny_bert()))


def test_an_index_that_points_outside_the_folder_or_a_missing_shard_is_refused(tmp_path):
    tiny_bert().save_pretrained(tmp_path / "bert", max_shard_size="20KB")
    index = tmp_path / "bert" / "model.safetensors.index.json"
    data = json.loads(index.read_text())
    first = next(iter(data["weight_map"]))
    shutil.copy(tmp_path / "bert" / data["weight_map"][first], tmp_path / "outside.safetensors")
    data["weight_map"][first] = "../outside.safetensors"
    index.write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match="outside the model's folder"):
        read_checkpoint(tmp_path / "bert")
    index.unlink()
    next((tmp_path / "bert").glob("model-00002-of-*.safetensors")).unlink()
    with pytest.raises(CheckpointError, match="missing"):
        read_checkpoint(tmp_path / "bert")


def test_keras_weights_h5_keeps_layer_and_variable_names(tmp_path):
    from tests.conftest import run_python

    code = f"""
import json, keras, numpy as np
from weightlapse.io.formats import read_checkpoint
m = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, name="stem"),
    keras.layers.BatchNormalization(center=False, name="bn"), keras.layers.Flatten(),
    keras.layers.Dense(10, name="head"), keras.layers.Dense(3, use_bias=False, name="out")])
path = {str(tmp_path / "m.weights.h5")!r}
m.save_weights(path)
bare = sorted(read_checkpoint(path).tensors)
open({str(tmp_path / "config.json")!r}, "w").write(m.to_json())
named = read_checkpoint(path)
head = keras.ops.convert_to_numpy(m.get_layer("head").kernel)
assert np.array_equal(named.tensors["head/kernel"], head)
layout = named.layouts["stem/kernel"]
print(json.dumps({{"bare": bare, "named": sorted(named.tensors), "layout": layout}}))
"""
    out = json.loads(run_python(code, env={"KERAS_BACKEND": "torch"}).stdout.splitlines()[-1])
    assert out["bare"] == sorted(
        [  # Keras's own storage names; variables named when sure
            "batch_normalization/var0",
            "batch_normalization/var1",
            "batch_normalization/var2",
            "conv2d/kernel",
            "conv2d/bias",
            "dense/kernel",
            "dense/bias",
            "dense_1/kernel",
        ]
    )
    assert out["named"] == sorted(
        [
            "bn/gamma",
            "bn/moving_mean",
            "bn/moving_variance",
            "stem/kernel",
            "stem/bias",
            "head/kernel",
            "head/bias",
            "out/kernel",
        ]
    )
    assert out["layout"] == "h,w,in,out"
