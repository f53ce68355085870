"""Paper 4.4 visuals: Fig. 4 (t-SNE before / after BAP) and Table 6 (nearest vocabulary words of MAT)."""

import re

import numpy as np
import pytest
import torch

from a3lign_dfer.data.feature_cache import load_feature_set
from a3lign_research.paper import visuals
from a3lign_research.paper.visuals import nearest_words, nearest_words_markdown, tsne_figure
from a3lign_dfer.inference.predict import predict_logits
from a3lign_dfer.model.checkpoint import load_checkpoint, save_checkpoint
from a3lign_dfer.model.clip_backbone import FrozenCLIP
from a3lign_dfer.training import bap
from a3lign_dfer.training.run_stage import run_stage
from conftest import write_toy_cache

INIT_TEXT = "a photo of a {} face"          # 6 tokens for every one-token class name


@pytest.fixture(scope="module")
def clip(tiny_clip_dir):
    return FrozenCLIP.load(str(tiny_clip_dir))


def _png_size(path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def test_tsne_figure_draws_both_panels_and_measures_in_the_original_space(clip, tiny_params, tmp_path):
    params = tiny_params()
    features = tmp_path / "features"
    write_toy_cache(features, clip.embed_dim, {"train": 24, "val": 14, "test": 30})
    run_stage("stage1", params, features, tmp_path / "s1", tmp_path / "live1")
    out = tmp_path / "fig" / "tsne.png"

    result = tsne_figure(tmp_path / "s1", features, out, params, seed=0, max_clips=20)

    assert out.stat().st_size > 10_000
    assert _png_size(out) == (round(visuals.FIGSIZE[0] * visuals.DPI), round(visuals.FIGSIZE[1] * visuals.DPI))
    assert result["clips"] == 20 and result["test_clips"] == 30
    for key in ("before", "after"):
        numbers = result[key]
        assert 0 <= numbers["accuracy"] <= 1 and 0 <= numbers["uar"] <= 1
        assert -1 <= numbers["silhouette"] <= 1 and -1 <= numbers["own_class_cosine"] <= 1
        assert -2 <= numbers["margin"] <= 2 and -1 <= numbers["class_pairwise_cosine"] <= 1
    # "after" accuracy is the checkpoint's own decision rule on the same seeded subsample
    model, _ = load_checkpoint(tmp_path / "s1")
    test = load_feature_set(features, "test", tuple(params.data.classes))
    idx = visuals._subsample(len(test), 20, 0)
    pred = predict_logits(model, clip, test).argmax(1).numpy()[idx]
    assert result["after"]["accuracy"] == pytest.approx(float((pred == test.labels.numpy()[idx]).mean()))
    # deterministic: the numbers do not depend on t-SNE
    again = tsne_figure(tmp_path / "s1", features, tmp_path / "again.png", params, seed=0, max_clips=20)
    assert {k: again[k] for k in ("before", "after")} == {k: result[k] for k in ("before", "after")}


def _ids(clip, word: str) -> int:
    ids = clip.tokenizer(word, add_special_tokens=False)["input_ids"]
    assert len(ids) == 1, word
    return ids[0]


@pytest.fixture
def planted(clip, tiny_params, tiny_clip_dir, tmp_path):
    """A stage-1 model (T = 10, S = 4) whose 'happy' tokens are exactly known token embeddings."""
    params = tiny_params(model={"tokens": 10})
    model, _ = bap.stage1(params, clip, None)
    classes = model.spec.classes
    happy, sad = classes.index("happy"), classes.index("sad")
    emb = lambda i: clip.token_embeddings(torch.tensor([i]))[0]  # noqa: E731
    vocab = clip.tokenizer.convert_ids_to_tokens(list(range(len(clip.tokenizer))))
    mojibake = next(i for i, t in enumerate(vocab) if t.endswith("</w>") and t[:-4].isalpha() and not t.isascii())
    # never words: punctuation, specials, too short, not word-final (BPE piece), alphabetic but not ASCII
    excluded = [_ids(clip, ","), clip.sos_id, clip.eos_id, _ids(clip, "an"),
                vocab.index("disgu"), mojibake, _ids(clip, "."), _ids(clip, "!")]
    with torch.no_grad():
        for s in range(4):
            for p in range(5):
                model.mat[happy, s, p] = emb(_ids(clip, "smile"))       # 20 tokens, all inside the init text
            for p in range(5, 8):
                model.mat[happy, s, p] = emb(_ids(clip, "happy"))       # 12 tokens, 8 of them beyond it
            model.mat[happy, s, 8] = emb(excluded[2 * s])
            model.mat[happy, s, 9] = emb(excluded[2 * s + 1])
            model.mat[sad, s] = emb(_ids(clip, ","))
        # a tie on count (3 and 3) goes to the closer word
        for s in range(3):
            model.mat[sad, s, 9] = emb(_ids(clip, "tears"))
            model.mat[sad, s, 8] = emb(_ids(clip, "gloomy")) + 0.05 * emb(_ids(clip, "tears"))
    save_checkpoint(model, tmp_path / "ck", clip_model=str(tiny_clip_dir))
    return tmp_path / "ck", excluded


def test_nearest_words_finds_planted_words_and_never_returns_non_words(planted, clip):
    ckpt, excluded = planted
    result = nearest_words(ckpt, top=6)
    happy = result["classes"]["happy"]
    assert [r["word"] for r in happy["words"]] == ["smile", "happy"]
    assert [r["count"] for r in happy["words"]] == [20, 12]
    assert all(r["mean_cos"] == pytest.approx(1.0, abs=1e-4) for r in happy["words"])
    assert happy["tokens"] == 40 and happy["tokens_nearest_a_word"] == 32
    sad = result["classes"]["sad"]
    assert [r["word"] for r in sad["words"]] == ["tears", "gloomy"]
    assert sad["words"][0]["mean_cos"] > sad["words"][1]["mean_cos"]
    assert result["init_text"] is None and happy["words_beyond_init"] == happy["words"]

    excluded_tokens = {t.removesuffix("</w>") for t in clip.tokenizer.convert_ids_to_tokens(excluded)}
    special = set(clip.tokenizer.all_special_tokens)
    for row in result["classes"].values():
        for r in row["words"] + row["words_beyond_init"]:
            assert re.fullmatch(r"[A-Za-z]{3,}", r["word"]) and r["word"] not in excluded_tokens | special
        assert len(row["words"]) <= 6
    assert [r["word"] for r in nearest_words(ckpt, top=1)["classes"]["happy"]["words"]] == ["smile"]
    assert nearest_words(ckpt, top=6) == result                              # deterministic

    table = nearest_words_markdown(result)
    assert table.splitlines()[0].startswith("| class |") and "| happy | smile, **happy** |" in table
    assert len(table.splitlines()) == 2 + len(result["classes"])


def test_nearest_words_excludes_the_init_text_positions(planted):
    ckpt, _ = planted
    result = nearest_words(ckpt, init_text=INIT_TEXT)
    happy = result["classes"]["happy"]
    assert result["init_text_source"] == "argument"
    assert happy["init_tokens"] == ["a</w>", "photo</w>", "of</w>", "a</w>", "happy</w>", "face</w>"]
    assert [r["word"] for r in happy["words"]] == ["smile", "happy"]
    assert [(r["word"], r["count"]) for r in happy["words_beyond_init"]] == [("happy", 8)]
    assert "| happy | **happy** |" in nearest_words_markdown(result, beyond_init=True)
    movement = result["movement"]
    assert movement["init_word_still_nearest"] < 1                     # the planted 'smile' replaced the init
    assert 0 < movement["mean_nearest_cos"] <= 1 + 1e-6


def test_an_untrained_mat_has_not_moved_from_its_recorded_init(clip, tiny_params, tiny_clip_dir, tmp_path):
    params = tiny_params(model={"tokens": 10})
    model, _ = bap.stage1(params, clip, None)
    save_checkpoint(model, tmp_path / "ck", clip_model=str(tiny_clip_dir), train_seed=params.train.seed,
                    params={"model": {"init": "text", "init_text": INIT_TEXT}})
    result = nearest_words(tmp_path / "ck")
    assert result["init_text"] == INIT_TEXT and result["init_text_source"] == "checkpoint"
    movement = result["movement"]
    assert movement["mean_cos_to_initial_mat"] == pytest.approx(1.0, abs=1e-4)
    assert movement["init_word_still_nearest"] == 1.0 and movement["mean_cos_to_init_word"] > 0.9
    for name, row in result["classes"].items():
        if len(row["init_tokens"]) == 6:                         # one-token class names: 'a photo of a <name> face'
            assert {"photo", "face", name} <= {r["word"] for r in row["words"]}
    assert np.isfinite(movement["mean_nearest_cos_beyond_init"])
