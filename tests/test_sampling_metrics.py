"""Segment sampling, UAR with an absent class, and the typed params."""
from pathlib import Path

import numpy as np
import pytest

import yaml

from a3lign_dfer.config.params import load_params, params_from_dict
from a3lign_dfer.data.sampling import segment_indices
from a3lign_dfer.evaluation.metrics import recall_metrics
from conftest import CLASSES, toy_features


def test_eval_sampling_takes_segment_centres():
    idx = segment_indices(32, 16, train=False)
    assert idx.tolist() == list(range(1, 32, 2))
    assert segment_indices(32, 16, train=False).tolist() == idx.tolist()  # deterministic


def test_train_sampling_stays_in_its_segment_and_varies():
    rng = np.random.default_rng(0)
    draws = np.stack([segment_indices(48, 16, train=True, rng=rng) for _ in range(50)])
    segment = np.arange(16)[None, :]
    assert ((draws >= segment * 3) & (draws < segment * 3 + 3)).all()
    assert len({tuple(d) for d in draws}) > 1


@pytest.mark.parametrize("n", [1, 5, 15])
def test_short_clips_repeat_frames_in_order(n):
    for train in (False, True):
        idx = segment_indices(n, 16, train=train, rng=np.random.default_rng(0))
        assert len(idx) == 16
        assert set(idx.tolist()) == set(range(n))          # every frame used
        assert (np.diff(idx) >= 0).all()                   # never loops back: order kept


def test_empty_clip_is_an_error():
    with pytest.raises(ValueError):
        segment_indices(0, 16, train=False)


def test_gather_shapes_views_and_permutation():
    data = toy_features(6, dim=16, frames=12, views=3)
    rng = np.random.default_rng(0)
    x = data.gather(np.arange(6), 16, train=True, rng=rng)
    assert x.shape == (6, 16, 16)
    plain = data.gather(np.arange(6), 16, train=False)
    shuffled = data.gather(np.arange(6), 16, train=False, permute=np.random.default_rng(1))
    assert not np.allclose(plain, shuffled)
    assert np.allclose(np.sort(plain.numpy(), axis=1), np.sort(shuffled.numpy(), axis=1))  # same frames


def test_uar_counts_an_absent_class():
    y_true = np.array([0, 0, 1, 1, 2, 2])                  # classes 3..6 absent
    y_pred = np.array([0, 0, 1, 0, 2, 2])
    m = recall_metrics(y_true, y_pred, CLASSES)
    assert m["war"] == pytest.approx(5 / 6)
    assert m["uar"] == pytest.approx((1 + 0.5 + 1) / 7)   # divided by all 7 classes
    assert m["absent_classes"] == list(CLASSES[3:])
    assert m["per_class_recall"]["sad"] == 0.5


def test_params_file_is_the_only_source_and_bad_values_fail():
    params_file = Path(__file__).parents[1] / "params.yaml"
    params = load_params(params_file)
    assert params.model.sentences == 16 and params.model.tokens == 64
    assert params.stage2.layers == (2, 4) and params.data.classes == CLASSES and params.stage2.lr.mat is None
    override = lambda **sections: load_params(params_file, sections)  # noqa: E731
    # No defaults in code: a key missing from the file fails, naming it.
    raw = yaml.safe_load(params_file.read_text())
    del raw["stage1"]["epochs"]
    with pytest.raises(ValueError, match=r"missing key\(s\) \['epochs'\] in 'stage1'"):
        params_from_dict(raw)
    with pytest.raises(ValueError, match=r"missing key\(s\) \['release'\]"):
        params_from_dict({k: v for k, v in yaml.safe_load(params_file.read_text()).items() if k != "release"})
    with pytest.raises(ValueError, match="unknown key"):
        override(model={"sentence": 3})
    with pytest.raises(ValueError, match="stage2 freezes MAT"):
        override(stage2={"lr": {"mat": 0.01, "encoder": 0.1}})
    # Wrong types fail at load with their key; ints pass where floats are asked, bools never pass as numbers.
    with pytest.raises(ValueError, match=r"stage3.lr.mat must be float, got 'abc'"):
        override(stage3={"lr": {"mat": "abc", "encoder": 0.1}})
    with pytest.raises(ValueError, match=r"train.batch_size must be int, got True"):
        override(train={"batch_size": True})
    with pytest.raises(ValueError, match=r"release.min_test_uar must be float"):
        override(release={"min_test_uar": "0.7"})
    assert override(stage3={"lr": {"mat": 1, "encoder": 0.1}}).stage3.lr.mat == 1
    with pytest.raises(ValueError, match="stage3 trains MAT"):
        override(stage3={"lr": {"encoder": 0.1, "mat": None}})
    with pytest.raises(ValueError, match="shrink"):
        override(stage2={"layers": [4, 2], "epochs": [1, 1]})
    with pytest.raises(ValueError, match="serve.backend must be one of"):
        override(serve={"backend": "triton"})
    with pytest.raises(ValueError, match="serve.max_batch must be positive, got 0"):
        override(serve={"max_batch": 0})


def test_class_weights_favour_rare_classes_and_skip_absent_ones():
    import torch

    from a3lign_dfer.training.trainer import class_weights

    labels = torch.tensor([0] * 8 + [1] * 2)          # class 2 absent
    assert class_weights(labels, 3, "none") is None
    inverse = class_weights(labels, 3, "inverse")
    assert inverse[2] == 0 and inverse[:2].mean().item() == pytest.approx(1.0)
    assert inverse[1] / inverse[0] == pytest.approx(4.0)
    assert class_weights(labels, 3, "sqrt_inverse")[1] / class_weights(labels, 3, "sqrt_inverse")[0] == \
        pytest.approx(2.0)
