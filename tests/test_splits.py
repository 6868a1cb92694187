"""Subject-grouped splits: disjoint by construction, property-tested over random subject sets."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ape_nas.data.splits import Split, grouped_kfold, holdout_split, make_splits
from ape_nas.errors import UserError

subject_sets = st.lists(
    st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=1, max_size=4), min_size=4, max_size=40, unique=True
)


def _disjoint(s: Split) -> None:
    assert not set(s.train) & set(s.val)
    assert not set(s.train) & set(s.test)
    assert not set(s.val) & set(s.test)


@settings(max_examples=200, deadline=None)
@given(subjects=subject_sets, data=st.data())
def test_holdout_partitions_every_subject_exactly_once(subjects, data):
    n = len(subjects)
    test = data.draw(st.integers(1, n - 2))
    val = data.draw(st.integers(1, n - test - 1))
    seed = data.draw(st.integers(0, 2**31))
    s = holdout_split(subjects, test, val, seed)
    _disjoint(s)
    assert sorted(s.train + s.val + s.test) == sorted(subjects)
    assert (len(s.test), len(s.val)) == (test, val)
    assert s == holdout_split(list(reversed(subjects)), test, val, seed)  # order of input does not matter


@settings(max_examples=200, deadline=None)
@given(subjects=subject_sets, data=st.data())
def test_kfold_validates_each_non_test_subject_once(subjects, data):
    n = len(subjects)
    test = data.draw(st.integers(1, n - 2))
    folds = data.draw(st.integers(2, n - test))
    splits = grouped_kfold(subjects, test, folds, data.draw(st.integers(0, 1000)))
    assert len(splits) == folds
    tests = {sp.test for sp in splits}
    assert len(tests) == 1
    rest = set(subjects) - set(splits[0].test)
    seen = []
    for sp in splits:
        _disjoint(sp)
        assert set(sp.train) | set(sp.val) == rest
        seen += sp.val
    assert sorted(seen) == sorted(rest)
    sizes = [len(sp.val) for sp in splits]
    assert max(sizes) - min(sizes) <= 1


@settings(max_examples=100, deadline=None)
@given(subjects=subject_sets, data=st.data())
def test_loso_leaves_out_one_subject_per_fold(subjects, data):
    test = data.draw(st.integers(1, len(subjects) - 2))
    splits = make_splits({"kind": "loso", "test_subjects": test, "seed": 3}, subjects)
    assert len(splits) == len(subjects) - test
    assert all(len(sp.val) == 1 for sp in splits)
    assert sorted(v for sp in splits for v in sp.val) == sorted(set(subjects) - set(splits[0].test))


def test_split_asserts_disjointness():
    with pytest.raises(AssertionError, match="share"):
        Split(train=("a", "b"), val=("b",), test=("c",))


def test_explicit_ids_and_bad_requests():
    s = holdout_split(["S1", "S2", "S3", "S4", "S5"], ["S5"], ["S1", "S2"], 0)
    assert s.test == ("S5",) and s.val == ("S1", "S2") and s.train == ("S3", "S4")
    with pytest.raises(UserError, match="S9"):
        holdout_split(["S1", "S2", "S3"], ["S9"], 1, 0)
    with pytest.raises(UserError, match="only 2 remain"):
        holdout_split(["S1", "S2", "S3"], 1, 2, 0)
    with pytest.raises(UserError, match="folds"):
        grouped_kfold(["S1", "S2", "S3"], 1, 5, 0)


def test_max_folds_truncates():
    splits = make_splits(
        {"kind": "kfold", "test_subjects": 2, "folds": 4, "max_folds": 2, "seed": 0}, [f"S{i}" for i in range(10)]
    )
    assert len(splits) == 2


def test_partitions_must_hold_the_classes_the_metrics_need():
    from ape_nas.data.splits import Split, check_balance
    from ape_nas.errors import KeyedError

    labels = {"S1": {0, 1}, "S2": {0, 1}, "S3": {1}, "S4": {1}, "S5": {0}}
    names = ["baseline", "stress"]
    # kfold/loso: a validation group may hold one class (the folds are pooled)
    check_balance([Split(train=("S1", "S5"), val=("S3",), test=("S4",))], labels, names, "kfold")
    with pytest.raises(KeyedError, match="validation subjects S3, S4 hold windows of one class only") as err:
        check_balance([Split(train=("S1", "S5"), val=("S3", "S4"), test=("S2",))], labels, names, "holdout")
    assert err.value.keys[0] == ("protocol", "val_subjects")
    with pytest.raises(KeyedError, match="training subjects have no windows of class baseline"):
        check_balance([Split(train=("S3", "S4"), val=("S1",), test=("S2",))], labels, names, "holdout")
    check_balance([Split(train=("S3", "S5"), val=("S1",), test=("S2",))], labels, names, "holdout")


def test_protocol_counts_name_the_key_to_change():
    from ape_nas.data.splits import check_counts
    from ape_nas.errors import KeyedError

    subjects = [f"S{i:02d}" for i in range(16)]
    with pytest.raises(KeyedError, match="14 test \\+ 3 validation subjects leave none of the data's 16") as err:
        check_counts({"kind": "holdout", "test_subjects": 14, "val_subjects": 3}, subjects)
    assert err.value.keys[0] == ("protocol", "test_subjects")
    with pytest.raises(KeyedError, match="16 test subjects, but the data has 16"):
        check_counts({"kind": "loso", "test_subjects": 16}, subjects)
    with pytest.raises(KeyedError) as err:
        check_counts({"kind": "kfold", "test_subjects": 10, "folds": 8}, subjects)
    assert err.value.keys[0] == ("protocol", "folds")
    check_counts({"kind": "holdout", "test_subjects": 3, "val_subjects": 3}, subjects)
