"""BAP: what each stage trains, that CLIP never changes, how encoders grow, what stages refuse."""

import pytest
import torch

from a3lign_dfer.config.training import LearningRates
from a3lign_dfer.evaluation.report import split_report
from a3lign_dfer.inference.predict import class_matrix, predict_logits
from a3lign_dfer.model.checkpoint import load_checkpoint, save_checkpoint
from a3lign_dfer.model.clip_backbone import FrozenCLIP
from a3lign_dfer.model.dynamic_encoder import DynamicEncoder
from a3lign_dfer.report_files import TrainingReport, parse
from a3lign_dfer.training import bap
from a3lign_dfer.training.run_stage import run_stage
from a3lign_dfer.training.trainer import fit, param_groups
from conftest import CLASSES, toy_features, write_toy_cache

NO_LOG = lambda row: None  # noqa: E731


def _snapshot(module_or_param):
    if isinstance(module_or_param, torch.nn.Parameter):
        return module_or_param.detach().clone()
    return {k: v.detach().clone() for k, v in module_or_param.state_dict().items()}


def _changed(before, after) -> bool:
    if isinstance(before, torch.Tensor):
        return not torch.equal(before, after.detach())
    return any(not torch.equal(before[k], v) for k, v in after.state_dict().items())


@pytest.fixture(scope="module")
def clip(tiny_clip_dir):
    return FrozenCLIP.load(str(tiny_clip_dir))


@pytest.fixture(scope="module")
def data():
    return toy_features(48, seed=0), toy_features(21, seed=1)


def test_fresh_encoder_is_the_mean_and_growth_keeps_the_function():
    torch.manual_seed(0)
    enc = DynamicEncoder(dim=16, max_len=8, heads=2, mlp_ratio=2, dropout=0.0, layers=2).eval()
    x = torch.randn(3, 8, 16)
    torch.testing.assert_close(enc(x), x.mean(1))
    with torch.no_grad():                                   # as if trained
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


def test_every_ladder_step_trains_only_its_parts_and_clip_stays_frozen(clip, tiny_params, data):
    clip_before = _snapshot(clip.model)
    params = tiny_params()
    train, val = data

    m1, plan1 = bap.stage1(params, clip, None)
    assert plan1.trainable == {"mat", "de_text"} and m1.de_video is None and m1.jas is None
    mat0, det0 = _snapshot(m1.mat), _snapshot(m1.de_text)
    m1 = fit(m1, clip, train, val, plan1, params.train, 0, NO_LOG)[-1].model
    assert _changed(mat0, m1.mat) and _changed(det0, m1.de_text)

    m2, plan2 = bap.stage2(params, clip, m1)
    assert plan2.trainable == {"de_video"} and [p.depth for p in plan2.phases] == [1, 2]
    mat1, det1 = _snapshot(m2.mat), _snapshot(m2.de_text)
    phases = fit(m2, clip, train, val, plan2, params.train, 0, NO_LOG)
    assert [p.model.de_video.depth for p in phases] == [1, 2]       # every phase keeps its own depth
    m2 = phases[-1].model
    assert not _changed(mat1, m2.mat) and not _changed(det1, m2.de_text)
    assert all(p.abs().sum() > 0 for p in m2.de_video.layers[1].linear2.parameters())   # grown layer trained

    m2t, plan2t = bap.stage2_text(params, clip, m2)
    assert plan2t.trainable == {"mat", "de_text"} and plan2t.grows == "de_text"
    dev = _snapshot(m2t.de_video)
    m2t = fit(m2t, clip, train, val, plan2t, params.train, 0, NO_LOG)[-1].model
    assert m2t.de_text.depth == params.stage2_text.layers[-1] and not _changed(dev, m2t.de_video)

    m3, plan3 = bap.stage3(params, clip, m2t)
    assert plan3.trainable == {"mat", "jas"} and m3.de_text is None and m3.de_video is None
    torch.testing.assert_close(m3.jas.layers[0].linear1.weight, m2t.de_video.layers[0].linear1.weight)
    torch.testing.assert_close(m3.mat, m2t.mat)                       # MAT carries over from the 4|4 step
    assert m3.jas.depth == params.stage3.init_layers
    mat2, jas0 = _snapshot(m3.mat), _snapshot(m3.jas)
    m3 = fit(m3, clip, train, val, plan3, params.train, 0, NO_LOG)[-1].model
    assert _changed(mat2, m3.mat) and _changed(jas0, m3.jas) and m3.jas.depth == params.stage3.layers[-1]

    clip_after = clip.model.state_dict()
    assert all(torch.equal(v, clip_after[k]) for k, v in clip_before.items()), "frozen CLIP changed"
    assert not any(p.requires_grad for p in clip.model.parameters())


@pytest.mark.parametrize("stage,trained", [("all_at_once_separate", {"mat", "de_text", "de_video"}),
                                           ("all_at_once_joint", {"mat", "jas"})])
def test_all_at_once_trains_everything_from_scratch_together(clip, tiny_params, data, stage, trained):
    params = tiny_params()
    model, plan = bap.BUILDERS[stage](params, clip, None)
    assert plan.trainable == trained
    before = {name: _snapshot(getattr(model, name)) for name in trained}
    model = fit(model, clip, *data, plan, params.train, 0, NO_LOG)[-1].model
    assert all(_changed(before[name], getattr(model, name)) for name in trained)
    layers = params.all_at_once.layers
    if stage == "all_at_once_joint":
        assert model.jas.depth == layers and model.spec.video_encoder == "jas"
    else:
        assert model.de_text.depth == model.de_video.depth == layers


def test_parameter_groups_give_mat_its_own_lr_and_no_decay_on_embeddings(clip, tiny_params):
    params = tiny_params()
    model, plan = bap.all_at_once_separate(params, clip, None)
    model.set_trainable(plan.trainable)
    groups = {g["name"]: g for g in param_groups(model, LearningRates(mat=0.003, encoder=0.2), 1e-4)}
    assert groups["mat"]["lr"] == 0.003 and groups["mat"]["weight_decay"] == 0
    assert groups["encoder"]["lr"] == 0.2 and groups["encoder"]["weight_decay"] == 1e-4
    no_decay = {id(p) for p in groups["encoder_no_decay"]["params"]}
    assert id(model.de_text.pos) in no_decay and id(model.de_video.pos) in no_decay
    assert all(p.ndim >= 2 for p in groups["encoder"]["params"])
    total = sum(len(g["params"]) for g in groups.values())
    assert total == len([p for p in model.parameters() if p.requires_grad])
    with pytest.raises(ValueError, match="lr.mat"):
        param_groups(model, LearningRates(mat=None, encoder=0.1), 1e-4)


def test_stage2_never_runs_the_text_encoder_per_step(clip, tiny_params, data, monkeypatch):
    params = tiny_params(train={"batch_size": 4})                     # 12 steps per epoch
    m1, _ = bap.stage1(params, clip, None)
    m2, plan2 = bap.stage2(params, clip, m1)
    calls = []
    original = clip.encode_token_embeddings
    monkeypatch.setattr(clip, "encode_token_embeddings", lambda x: calls.append(1) or original(x))
    fit(m2, clip, *data, plan2, params.train, 0, NO_LOG)
    assert len(calls) == len(plan2.phases)                           # once per growth phase, not per step


def test_predict_is_deterministic_with_dropout(clip, tiny_params):
    params = tiny_params(model={"dropout": 0.5})
    model, _ = bap.all_at_once_joint(params, clip, None)
    with torch.no_grad():
        for p in model.jas.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    model.train()
    data = toy_features(10, seed=3)
    first = predict_logits(model, clip, data)
    torch.testing.assert_close(predict_logits(model, clip, data), first, rtol=0, atol=0)
    assert model.training                                              # caller's mode restored
    x = data.gather(range(10), model.spec.frames, train=False)
    assert not torch.equal(model(x, class_matrix(model, clip)), first)  # dropout really is active in train mode


def test_order_blind_model_shows_exactly_zero_shuffled_drop(clip, tiny_params):
    model, _ = bap.stage1(tiny_params(), clip, None)                  # video vector = mean of frames
    report = split_report(model, clip, toy_features(40, seed=4), (0, 1, 2))
    # Every permutation scores exactly what the normal order does; the drop is that minus the mean of the
    # permutations' scores, which can differ from it in the last bit (-3.5e-18 seen): zero up to rounding,
    # while one clip that changed its prediction would move it by 1/40.
    drops = [report["shuffled"]["uar_drop"], report["shuffled"]["war_drop"], *report["shuffled"]["per_class_drop"].values()]
    assert max(abs(d) for d in drops) < 1e-12


def test_perturbing_jas_changes_class_and_video_vectors(clip, tiny_params):
    model, _ = bap.all_at_once_joint(tiny_params(), clip, None)
    model.eval()
    x = toy_features(4, seed=5).gather(range(4), model.spec.frames, train=False)
    with torch.no_grad():
        text = model.text_features(clip)
        before = model.class_vectors(text), model.video_vectors(x)
        for p in model.jas.layers[0].parameters():
            p.add_(torch.randn_like(p) * 0.1)
        after = model.class_vectors(text), model.video_vectors(x)
    assert not torch.allclose(before[0], after[0]) and not torch.allclose(before[1], after[1])


def test_stage3_refuses_a_dve_video_shallower_than_init_layers(clip, tiny_params):
    params = tiny_params(stage3={"init_layers": 2, "layers": [2, 2], "epochs": [1, 1]},
                         stage2={"layers": [2, 2], "epochs": [1, 1]})
    m1, _ = bap.stage1(params, clip, None)
    m2, _ = bap.stage2(params, clip, m1)
    m2.de_video.grow(1)                                                # a 1-layer DE_video checkpoint
    with pytest.raises(ValueError, match=r"stage3.init_layers=2.*DE_video of 1 layer"):
        bap.stage3(params, clip, m2)


def test_checkpoint_round_trip_rebuilds_from_meta(clip, tiny_params, tmp_path):
    params = tiny_params()
    m1, _ = bap.stage1(params, clip, None)
    m2, _ = bap.stage2(params, clip, m1)
    m2.de_video.grow(2)
    save_checkpoint(m2, tmp_path / "ck", stage="stage2", clip_model="x", selected={"epoch": 1})
    loaded, meta = load_checkpoint(tmp_path / "ck")
    assert meta["spec"]["de_video_layers"] == 2 and meta["stage"] == "stage2"
    x = toy_features(5).gather(range(5), 8, train=False)
    m2.eval(), loaded.eval()
    with torch.no_grad():
        vectors = m2.class_vectors(m2.text_features(clip))
        torch.testing.assert_close(loaded(x, vectors), m2(x, vectors))
        torch.testing.assert_close(loaded.class_vectors(loaded.text_features(clip)), vectors)
    assert loaded.spec == m2.current_spec()


def test_stages_refuse_a_checkpoint_for_other_classes_or_another_clip(clip, tiny_params, tmp_path, tiny_clip_dir):
    params = tiny_params()
    write_toy_cache(tmp_path / "features", clip.embed_dim, {"train": 24, "val": 14})
    run_stage("stage1", params, tmp_path / "features", tmp_path / "s1", tmp_path / "live1")
    other_classes = tiny_params(data={"classes": list(reversed(CLASSES))})
    with pytest.raises(ValueError, match="class set mismatch"):
        run_stage("stage2", other_classes, tmp_path / "features", tmp_path / "s2", tmp_path / "live2", tmp_path / "s1")
    other_clip = tmp_path / "other_clip"
    other_clip.symlink_to(tiny_clip_dir)
    with pytest.raises(ValueError, match="trained on CLIP"):
        run_stage("stage2", tiny_params(clip={"model": str(other_clip)}), tmp_path / "features", tmp_path / "s2",
                  tmp_path / "live2", tmp_path / "s1")


def test_a_stage_run_writes_its_val_report_and_every_phase(clip, tiny_params, tmp_path):
    params = tiny_params()
    write_toy_cache(tmp_path / "features", clip.embed_dim, {"train": 24, "val": 14})
    run_stage("stage1", params, tmp_path / "features", tmp_path / "s1", tmp_path / "live1")
    summary = run_stage("stage2", params, tmp_path / "features", tmp_path / "s2", tmp_path / "live2", tmp_path / "s1")
    assert summary.layers["de_video"] == 2 and [p["depth"] for p in summary.phases] == [1, 2]
    assert [(p.epochs, p.depth) for p in summary.plan] == list(zip(params.stage2.epochs, params.stage2.layers))
    assert load_checkpoint(tmp_path / "s2" / "phase1")[0].de_video.depth == 1
    assert load_checkpoint(tmp_path / "s2")[0].de_video.depth == 2
    val = summary.val
    assert val.num_samples == 14 and set(val.per_class_recall) == set(CLASSES)
    assert val.shuffled.seeds == list(params.shuffle_check.seeds)
    assert val.uar == pytest.approx(sum(val.per_class_recall.values()) / len(CLASSES))
    # DVCLive's metrics file is the training report contract, the plan included.
    written = parse(TrainingReport, (tmp_path / "live2/metrics.json").read_text(), "live2/metrics.json")
    assert written.plan == summary.plan and written.val == summary.val and written.step == sum(params.stage2.epochs)
