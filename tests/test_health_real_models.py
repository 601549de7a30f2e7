"""doctor on a real model: a tiny BERT trained for real (built from a config, no
download). Biases that start at zero and norms' gains are not judged by the 1e-3 update
ratio rule; embedding rows no input uses are not frozen units; findings come one line
per kind of problem."""

from __future__ import annotations

import json

import pytest

from tests.conftest import tiny_bert_config
from weightlapse.health import _frozen_units, diagnose, grouped

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytestmark = pytest.mark.slow


def train_bert(path, lr):
    import weightlapse.torch

    torch.manual_seed(0)
    model = transformers.BertForSequenceClassification(tiny_bert_config())
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)  # as HF does
    recorder = weightlapse.torch.watch(model, path, optimizer, gradients=True, updates=True)
    for _ in range(20):
        ids = torch.randint(0, 40, (8, 12))  # tokens 40-63 and positions 12-31 never used
        loss = model(input_ids=ids, labels=torch.randint(0, 2, (8,))).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    recorder.close()
    return weightlapse.open(path)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("bert")
    return {lr: train_bert(root / f"lr{lr}", lr) for lr in (2e-5, 1e-2)}


def test_a_fine_tuning_learning_rate_is_healthy(runs):
    run = runs[2e-5]
    findings = diagnose(run)
    assert [f for f in findings if f.check.startswith("update-ratio")] == []
    # the unused embedding rows did stop changing, but rows of a lookup table are not units
    words = run["bert.embeddings.word_embeddings.weight"]
    assert _frozen_units(words) != []
    assert [f for f in findings if f.check == "frozen-units"] == []


def test_a_learning_rate_too_high_is_one_line_naming_the_weights(runs):
    run = runs[1e-2]
    findings = [f for f in diagnose(run) if f.check == "update-ratio-high"]
    assert findings and all(f.tensor.endswith(("weight", "embeddings.weight")) for f in findings)
    vectors = [n for n in run.tensors if len(run[n].shape) == 1]  # biases, gains, betas
    assert vectors and not {f.tensor for f in findings} & set(vectors)
    groups = grouped(diagnose(run))
    assert len([g for g in groups if g.check == "update-ratio-high"]) == 1

    from typer.testing import CliRunner

    from weightlapse.cli import app

    out = CliRunner().invoke(app, ["doctor", str(run.path), "--fail-on", "warning"])
    assert out.exit_code == 1 and out.output.count("update-ratio-high") == 1
    data = json.loads(CliRunner().invoke(app, ["doctor", str(run.path), "--json"]).output)
    assert len([f for f in data if f["check"] == "update-ratio-high"]) == len(findings)


def test_a_resnet_s_batch_norms_and_biases_are_not_judged_by_the_matrix_rule(tmp_path):
    import weightlapse.torch
    from tests.interpret.resnet import resnet18

    torch.manual_seed(0)
    model = resnet18(classes=10)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    recorder = weightlapse.torch.watch(model, tmp_path / "r", optimizer, updates=True)
    for _ in range(6):
        x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    recorder.close()
    run = weightlapse.open(tmp_path / "r")
    betas = [n for n in run.tensors if n.endswith("bn1.bias")]
    assert betas and float(run[betas[0]].stats["l2"][0]) == 0.0  # zero at the start
    findings = diagnose(run)
    judged = {f.tensor for f in findings if f.check.startswith("update-ratio")}
    assert all(len(run[n].shape) >= 2 for n in judged)
