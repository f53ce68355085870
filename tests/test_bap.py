"""BAP: what each stage trains, that CLIP never changes, and how encoders grow."""

import pytest
import torch

from a3lign_dfer.model.clip_backbone import FrozenCLIP
from a3lign_dfer.model.dynamic_encoder import DynamicEncoder
from a3lign_dfer.training import bap
from a3lign_dfer.training.checkpoint import load_checkpoint, save_checkpoint
from a3lign_dfer.training.trainer import fit
from conftest import toy_features


def _snapshot(module_or_param):
    if isinstance(module_or_param, torch.nn.Parameter):
        return module_or_param.detach().clone()
    return {k: v.detach().clone() for k, v in module_or_param.state_dict().items()}


def _changed(before, after) -> bool:
    if isinstance(before, torch.Tensor):
        return not torch.equal(before, after.detach())
    return any(not torch.equal(before[k], v) for k, v in after.state_dict().items())


def test_fresh_encoder_is_the_mean_and_growth_keeps_the_function():
    torch.manual_seed(0)
    enc = DynamicEncoder(dim=16, max_len=8, heads=2, mlp_ratio=2, dropout=0.0, layers=2).eval()
    x = torch.randn(3, 8, 16)
    torch.testing.assert_close(enc(x), x.mean(1))
    # train-like perturbation, then growth must not change the output
    with torch.no_grad():
        for p in enc.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    before = enc(x)
    enc.grow(4)
    assert enc.depth == 4
    torch.testing.assert_close(enc(x), before)
    first = enc.truncated(2).eval()
    assert first.depth == 2 and torch.equal(first.layers[1].linear1.weight, enc.layers[1].linear1.weight)
    with pytest.raises(ValueError):
        enc.grow(3)


def test_trainable_parameters_per_stage_and_clip_frozen(tiny_clip_dir, tiny_params):
    clip = FrozenCLIP.load(str(tiny_clip_dir))
    clip_before = _snapshot(clip.model)
    params = tiny_params()
    train, val = toy_features(48, seed=0), toy_features(21, seed=1)
    log = lambda row: None  # noqa: E731

    m1, plan1 = bap.stage1(params, clip)
    assert plan1.trainable == {"mat", "de_text"} and m1.de_video is None and m1.jas is None
    mat0, det0 = _snapshot(m1.mat), _snapshot(m1.de_text)
    m1, _ = fit(m1, clip, train, val, plan1, params.train, 0, log)
    assert _changed(mat0, m1.mat) and _changed(det0, m1.de_text)

    m2, plan2 = bap.stage2(params, m1)
    assert plan2.trainable == {"de_video"}
    assert [p.depth for p in plan2.phases] == [1, 2]
    mat1, det1 = _snapshot(m2.mat), _snapshot(m2.de_text)
    torch.testing.assert_close(mat1, m1.mat.detach())
    m2, record = fit(m2, clip, train, val, plan2, params.train, 0, log)
    assert not _changed(mat1, m2.mat) and not _changed(det1, m2.de_text)
    assert m2.de_video.depth == record["depth"] and any(p.abs().sum() > 0 for p in m2.de_video.layers[0].linear2.parameters())

    m3, plan3 = bap.stage3(params, m2)
    assert plan3.trainable == {"mat", "jas"} and m3.de_text is None and m3.de_video is None
    # JAS starts as the first layer(s) of the trained DE_video
    torch.testing.assert_close(m3.jas.layers[0].linear1.weight, m2.de_video.layers[0].linear1.weight)
    assert m3.jas.depth == params.stage3.init_layers
    mat2, jas0 = _snapshot(m3.mat), _snapshot(m3.jas)
    m3, _ = fit(m3, clip, train, val, plan3, params.train, 0, log)
    assert _changed(mat2, m3.mat) and _changed(jas0, m3.jas)

    clip_after = clip.model.state_dict()
    assert all(torch.equal(v, clip_after[k]) for k, v in clip_before.items()), "frozen CLIP changed"
    assert not any(p.requires_grad for p in clip.model.parameters())


def test_all_at_once_trains_mat_and_full_jas_in_stage1(tiny_clip_dir, tiny_params):
    clip = FrozenCLIP.load(str(tiny_clip_dir))
    model, plan = bap.stage1(tiny_params(train={"schedule": "all_at_once"}), clip)
    assert plan.trainable == {"mat", "jas"} and [p.depth for p in plan.phases] == [2]
    assert model.spec.text_encoder == model.spec.video_encoder == "jas"


def test_checkpoint_round_trip_rebuilds_from_meta(tiny_clip_dir, tiny_params, tmp_path):
    clip = FrozenCLIP.load(str(tiny_clip_dir))
    params = tiny_params()
    m1, _ = bap.stage1(params, clip)
    m2, _ = bap.stage2(params, m1)
    m2.de_video.grow(2)
    save_checkpoint(m2, tmp_path / "ck", stage=2, clip_model="x", selected={"epoch": 1})
    loaded, meta = load_checkpoint(tmp_path / "ck")
    assert meta["spec"]["de_video_layers"] == 2 and meta["stage"] == 2
    x = toy_features(5).gather(range(5), 8, train=False)
    m2.eval(), loaded.eval()
    with torch.no_grad():
        vectors = m2.class_vectors(m2.text_features(clip))
        torch.testing.assert_close(loaded(x, vectors), m2(x, vectors))
        torch.testing.assert_close(loaded.class_vectors(loaded.text_features(clip)), vectors)
    assert loaded.spec == m2.current_spec()


def test_encoder_sees_order_once_layers_learn():
    """Centred random positions: still exactly the mean when fresh, order-aware after training."""
    torch.manual_seed(0)
    enc = DynamicEncoder(dim=16, max_len=16, heads=2, mlp_ratio=2, dropout=0.0, layers=1).eval()
    x = torch.randn(2, 12, 16)                          # shorter than max_len
    shuffled = x[:, torch.randperm(12)]
    torch.testing.assert_close(enc(x), x.mean(1))
    torch.testing.assert_close(enc(shuffled), enc(x))   # a fresh encoder ignores order
    with torch.no_grad():
        for p in enc.layers.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    assert not torch.allclose(enc(shuffled), enc(x), atol=1e-4)
