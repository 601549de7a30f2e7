"""weightlapse.huggingface on a real transformers.Trainer: a tiny BERT built from a
config (no download), accumulation and clipping, metrics and TrainingArguments."""

import numpy as np
import pytest
import torch

import weightlapse
from tests.conftest import tiny_bert_config

transformers = pytest.importorskip("transformers")
pytest.importorskip("accelerate")
from weightlapse.huggingface import WeightlapseCallback  # noqa: E402

pytestmark = pytest.mark.slow


class Reference(transformers.TrainerCallback):
    """Each step's gradients as the optimizer receives them (after clipping)."""

    def __init__(self):
        self.grads = []

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        self.grads.append(
            {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
        )


def dataset(n=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 64, (n, 12), generator=g)
    labels = (ids[:, 0] > 32).long()
    return [
        {"input_ids": i, "attention_mask": torch.ones(12, dtype=torch.long), "labels": y}
        for i, y in zip(ids, labels)
    ]


def test_a_trainer_records_a_tiny_bert_with_its_metrics_and_arguments(tmp_path):
    torch.manual_seed(0)
    model = transformers.BertForSequenceClassification(tiny_bert_config())
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "out"),
        max_steps=6,
        per_device_train_batch_size=4,
        gradient_accumulation_steps=2,
        max_grad_norm=0.5,
        learning_rate=1e-3,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
    )
    reference = Reference()
    trainer = transformers.Trainer(
        model=model,
        args=args,
        train_dataset=dataset(),
        callbacks=[WeightlapseCallback(gradients=True, snapshots=3), reference],
    )
    trainer.train()

    run = weightlapse.open(tmp_path / "out" / "weightlapse")  # the default place
    assert list(run.steps) == list(range(7)) and not run.is_live
    assert run.meta["model"]["class"] == "BertForSequenceClassification"
    assert run.meta["training_arguments"]["max_grad_norm"] == 0.5
    assert run.meta["model_config"]["hidden_size"] == 16
    names = set(run.tensors)
    assert "bert.encoder.layer.0.attention.self.query.weight" in names
    assert "classifier.weight" in names and len(names) == len(list(model.parameters()))
    assert {"loss", "learning_rate", "grad_norm"} <= set(run.scalar_names)
    assert np.isfinite(run.scalar("loss")[1:]).all()

    for name in ("classifier.weight", "bert.encoder.layer.1.output.dense.weight"):
        recorded = run[name].grad.stats["l2"]
        want = [float(g[name].norm()) for g in reference.grads]
        np.testing.assert_allclose(recorded, want, rtol=1e-5)
    total = [
        float(torch.sqrt(sum((g**2).sum() for g in step.values()))) for step in reference.grads
    ]
    assert max(total) <= 0.5 + 1e-4  # clipped, and recorded after clipping
    final = run["classifier.weight"].at(-1)
    np.testing.assert_array_equal(final, model.classifier.weight.detach().numpy())


def test_the_callback_outside_process_zero_records_nothing(tmp_path):
    callback = WeightlapseCallback(tmp_path / "r")
    state = transformers.TrainerState()
    state.is_world_process_zero = False
    args = transformers.TrainingArguments(output_dir=str(tmp_path / "o"), report_to="none")
    callback.on_train_begin(args, state, transformers.TrainerControl(), model=None)
    assert callback.watcher is None and not (tmp_path / "r").exists()
