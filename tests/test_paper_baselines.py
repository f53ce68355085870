"""Paper Table 2 baselines (research/a3lign_research/paper/baselines.py) on the tiny CLIP and toy features."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from a3lign_dfer.data.feature_cache import FeatureSet, InMemoryFrames
from a3lign_dfer.data.sampling import segment_indices
from a3lign_dfer.evaluation.metrics import recall_metrics
from a3lign_research.paper import baselines
from a3lign_research.paper.runs import Workspace
from a3lign_dfer.model.clip_backbone import FrozenCLIP
from conftest import CLASSES, toy_features

SIZES = (140, 70, 70)     # train, val, test clips


def clips(data: FeatureSet, start: int, stop: int) -> FeatureSet:
    """Clips start..stop-1 of a toy set (toy_features draws its class directions per seed, so the
    three splits are cut from one draw)."""
    lo, hi = int(data.frames.offsets[start]), int(data.frames.offsets[stop])
    return FeatureSet(InMemoryFrames(data.frames.feats[lo:hi], data.frames.offsets[start:stop + 1] - lo),
                      data.labels[start:stop], data.clips.iloc[start:stop].reset_index(drop=True))


@pytest.fixture(scope="module")
def ws(tiny_clip_dir) -> Workspace:
    clip = FrozenCLIP.load(str(tiny_clip_dir))
    data = toy_features(sum(SIZES), dim=clip.embed_dim, frames=12, views=2, seed=0)
    ends = np.cumsum(SIZES)
    return Workspace(clip, clips(data, 0, ends[0]), clips(data, ends[0], ends[1]), clips(data, ends[1], ends[2]))


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Recipes run on one thread per worker (runs.run_job); two threads on a busy two-core machine
    made these tiny steps a hundred times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_zero_shot_is_the_prompt_cosine_argmax(ws, tiny_params):
    """By hand from the raw cached frames: centre frames of view 0, normalised, averaged; the
    class prompts through the real tokenizer."""
    params = tiny_params()
    num = params.features.num_frames
    text = F.normalize(ws.clip.encode_texts([params.model.init_text.format(c) for c in CLASSES]), dim=-1)
    rows = baselines.zero_shot(ws, params)
    assert set(rows) == {"zero_shot"}
    for split, data in (("val", ws.val), ("test", ws.test)):
        preds = []
        for i in range(len(data)):
            frames = data.frames.clip(i)
            x = torch.from_numpy(frames[segment_indices(len(frames), num, False), 0]).float()
            preds.append(int((F.normalize(x, dim=-1).mean(0) @ text.T).argmax()))
        assert len(set(preds)) > 2          # not one class for everything: the comparison means something
        assert rows["zero_shot"][split] == recall_metrics(data.labels.numpy(), np.array(preds), CLASSES)


def test_prompt_sentences_are_sos_context_name_period_eos(ws):
    """With the context set to real words' embeddings, CoOp's class sentence is exactly what CLIP's
    own text path gives for "<words> <class>." (and each class name, "disgust" of two tokens too)."""
    clip = ws.clip
    words = " ".join(["a"] * baselines.CTX_TOKENS)
    learner = baselines.PromptLearner(clip, CLASSES, conditional=False)
    with torch.no_grad():
        learner.ctx.copy_(clip.token_embeddings(torch.tensor(clip.tokenizer(words, add_special_tokens=False)
                                                             ["input_ids"])))
        got = learner.class_features(clip)
        want = clip.encode_texts([f"{words} {c}." for c in CLASSES])
    assert got.shape == (len(CLASSES), clip.embed_dim)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_cocoop_gives_each_video_its_own_class_sentences(ws):
    """The meta-net's output is added to every context vector: zero at the start (CoOp's shared
    sentences for every video), a sentence set of each video's own once it has weights."""
    clip = ws.clip
    torch.manual_seed(0)
    learner = baselines.PromptLearner(clip, CLASSES, conditional=True)
    videos = torch.randn(3, clip.embed_dim)
    with torch.no_grad():
        start = learner.class_features(clip, videos)
        torch.nn.init.normal_(learner.meta_net[-1].weight, std=0.1)
        per_video = learner.class_features(clip, videos)
        learner.meta_net = None
        shared = learner.class_features(clip)
    assert per_video.shape == (3, len(CLASSES), clip.embed_dim)
    torch.testing.assert_close(start, shared.expand(3, -1, -1))
    assert (per_video[0] - per_video[1]).abs().max() > 1e-3
    assert (per_video - shared).abs().max() > 1e-3


# UAR floors on the separable toy features (chance: 1/7); zero-shot on a random tiny CLIP has none.
@pytest.mark.parametrize("recipe, floor", [("zero_shot", None), ("linear_probe", 0.9), ("coop", 0.5),
                                           ("cocoop", 0.5)])
def test_recipe_reports_val_and_test_deterministically(ws, tiny_params, recipe, floor):
    """Same (ws, params) twice: the same numbers, whatever global RNG state is left in between; the
    trained baselines learn the separable toy features; test labels play no part in any choice."""
    params = tiny_params()
    first = getattr(baselines, recipe)(ws, params)
    torch.manual_seed(123)
    np.random.seed(123)
    assert getattr(baselines, recipe)(ws, params) == first
    assert set(first) == {recipe}
    report = first[recipe]
    assert report["val"]["num_samples"] == SIZES[1] and report["test"]["num_samples"] == SIZES[2]
    if floor is not None:
        assert report["val"]["uar"] > floor and report["test"]["uar"] > floor, report
    shuffled = replace(ws.test, labels=ws.test.labels[torch.randperm(len(ws.test), generator=torch.Generator()
                                                                      .manual_seed(0))])
    blind = getattr(baselines, recipe)(replace(ws, test=shuffled), params)[recipe]
    assert blind["val"] == report["val"]
