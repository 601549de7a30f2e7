import pytest

from weightlapse.errors import WeightlapseError
from weightlapse.record.schedule import (
    BudgetedLogSpaced,
    Either,
    Every,
    LogSpaced,
    Never,
    PerEpoch,
    as_schedule,
)
from weightlapse.record.select import NameFilter


def test_every_n_steps():
    assert [s for s in range(25) if Every(10).due(s)] == [0, 10, 20]


def test_log_spaced_is_dense_early_and_sparse_late():
    due = [s for s in range(100_000) if LogSpaced(20).due(s)]
    assert due[:9] == list(range(9))  # every one of the first steps
    gaps = [b - a for a, b in zip(due, due[1:])]
    assert gaps[-1] > 1000  # far apart late in training
    assert 80 < len(due) < 120  # about 20 per decade over 5 decades


def test_per_epoch_only_at_epoch_ends():
    assert not PerEpoch().due(5) and PerEpoch().due(5, epoch_end=True)


@pytest.mark.parametrize(
    "value, expected",
    [
        (3, Every(3)),
        ("every:7", Every(7)),
        ("epoch", PerEpoch()),
        ("log", LogSpaced()),
        ("log:5", LogSpaced(5)),
        (None, Never()),
    ],
)
def test_schedules_from_plain_values(value, expected):
    assert as_schedule(value) == expected


@pytest.mark.parametrize("bad", ["weekly", 0, -2, True])
def test_a_bad_schedule_says_what_would_be_right(bad):
    with pytest.raises(WeightlapseError, match="every|epoch|log|integer"):
        as_schedule(bad)


def test_name_globs():
    f = NameFilter(include=["*kernel", "conv*"], exclude="*bias")
    assert f.select(["dense/kernel", "dense/bias", "conv1.weight", "conv1.bias"]) == [
        "dense/kernel",
        "conv1.weight",
    ]


def test_the_default_snapshot_schedule_fits_the_budget_to_a_million_steps():
    auto = as_schedule("auto")
    assert isinstance(auto, BudgetedLogSpaced) and auto.per_decade == 20
    auto.fit(100 * 2**20, 2**30)  # 25M float32 parameters, 1 GiB: 10 snapshots, 1 kept
    assert auto.per_decade == 1
    assert [s for s in range(10**4) if auto.due(s)] == [0, 9, 99, 999, 9999]
    small = as_schedule("auto")
    small.fit(2**20, 2**30)  # 1 MB: 1,023 snapshots: 20 a decade, as 'log'
    assert [s for s in range(500) if small.due(s)] == [s for s in range(500) if LogSpaced().due(s)]
    unlimited = as_schedule("auto")
    unlimited.fit(100 * 2**20, None)
    assert unlimited.per_decade == 20
    both = as_schedule("auto+every:1000")
    assert isinstance(both, Either)
    both.fit(100 * 2**20, 2**30)
    assert both.first.per_decade == 1
