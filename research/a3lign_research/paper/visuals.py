"""Paper 4.4: the t-SNE of Fig. 4 and the nearest vocabulary words of MAT (Table 6).

`tsne_figure` draws test videos (dots) and class vectors (stars) in one 2-D t-SNE per
panel: before training (CLIP space: mean of the L2-normalised frame features, and the
freshly initialised MAT of stage 1 through CLIP, averaged over sentences) and after BAP
(the checkpoint's video and class vectors). t-SNE distorts distances, so the numbers it
returns are measured in the original space: the accuracy of the nearest class vector
(cosine), the silhouette of the videos by true class (cosine) and how close a video is to
its own class vector.

`nearest_words` matches every MAT token vector to its nearest row of CLIP's token
embedding matrix (cosine), keeps the rows that are whole words (the paper drops names
and other irrelevant terms by hand; here: ASCII letters only, at least 3 of them,
word-final BPE tokens, no special tokens) and ranks each class's words by how many of its
tokens they are nearest to. MAT starts from the tokens of `init_text` (paper: learnable
embeddings; here `model.init: text`), so those positions find their init words back
unless MAT moved; the words of the other positions are reported apart, with how far MAT
moved from its init.

Example (repo root, after `dvc repro`):
    from a3lign_dfer.config.schema import load
    from a3lign_dfer.config.training import TrainingParams
    params = load(TrainingParams, "params.yaml")
    tsne_figure(Path("models/stage3"), Path("data/features"), Path("/tmp/fig4.png"), params)
    print(nearest_words_markdown(nearest_words(Path("models/stage3"))))
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib import patheffects
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from a3lign_dfer.config.training import TrainingParams
from a3lign_dfer.data.feature_cache import FeatureSet, load_feature_set
from a3lign_dfer.inference.predict import class_matrix
from a3lign_dfer.markdown_table import markdown_table
from a3lign_dfer.model.a3lign import A3lignDFER
from a3lign_dfer.model.checkpoint import check_compatible, load_checkpoint
from a3lign_dfer.model.clip_backbone import FrozenCLIP
from a3lign_dfer.training import bap

FIGSIZE = (16.0, 7.0)   # inches; the PNG is FIGSIZE * DPI pixels (no tight bbox, so the size is fixed)
DPI = 120
BATCH = 256
MIN_WORD_LEN = 3
WORD_END = "</w>"


# ---- Figure 4: t-SNE ---------------------------------------------------------------------------------------------
def _subsample(n: int, max_clips: int, seed: int) -> np.ndarray:
    if n <= max_clips:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=max_clips, replace=False))


def _frames(data: FeatureSet, idx: np.ndarray, num: int, device: torch.device):
    for start in range(0, len(idx), BATCH):
        yield data.gather(idx[start:start + BATCH], num, train=False).to(device)


@torch.no_grad()
def _before(params: TrainingParams, clip: FrozenCLIP, data: FeatureSet, idx: np.ndarray) -> tuple[np.ndarray, ...]:
    """CLIP space: mean of the L2-normalised frame features; freshly initialised MAT, sentence-averaged."""
    model, _ = bap.stage1(params, clip, None)
    model.to(clip.device).eval()
    classes = F.normalize(model.text_features(clip), dim=-1).mean(dim=1)
    videos = torch.cat([F.normalize(x, dim=-1).mean(dim=1).cpu()
                        for x in _frames(data, idx, params.features.num_frames, clip.device)])
    return videos.numpy(), classes.cpu().numpy()


@torch.no_grad()
def _after(model: A3lignDFER, clip: FrozenCLIP, data: FeatureSet, idx: np.ndarray) -> tuple[np.ndarray, ...]:
    model.eval()
    classes = class_matrix(model, clip)
    videos = torch.cat([model.video_vectors(x).cpu() for x in _frames(data, idx, model.spec.frames, clip.device)])
    return videos.numpy(), classes.cpu().numpy()


def _unit(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def space_numbers(videos: np.ndarray, classes: np.ndarray, labels: np.ndarray) -> dict:
    """What the picture should show, measured in the original space (cosine), not in t-SNE.

    accuracy / uar: the nearest class vector of each video (the model's own decision rule);
    silhouette: videos by true class (cosine distance), in [-1, 1], None with < 2 classes present;
    own_class_cosine: mean cosine of a video to its class vector; margin: that minus its mean cosine
    to the other class vectors; class_pairwise_cosine: mean cosine between two class vectors.
    """
    from sklearn.metrics import silhouette_score

    v, c = _unit(videos), _unit(classes)
    cos = v @ c.T
    pred = cos.argmax(axis=1)
    present = np.unique(labels)
    recall = [float((pred[labels == k] == k).mean()) for k in present]
    own = cos[np.arange(len(labels)), labels]
    others = (cos.sum(axis=1) - own) / max(len(c) - 1, 1)
    silhouette = (float(silhouette_score(v, labels, metric="cosine"))
                  if 2 <= len(present) <= len(labels) - 1 else None)
    pairs = (c @ c.T)[np.triu_indices(len(c), k=1)]
    return {"accuracy": float((pred == labels).mean()), "uar": float(np.mean(recall)), "silhouette": silhouette,
            "own_class_cosine": float(own.mean()), "margin": float((own - others).mean()),
            "class_pairwise_cosine": float(pairs.mean()) if pairs.size else None}


def _embed(videos: np.ndarray, classes: np.ndarray, seed: int) -> np.ndarray:
    """2-D t-SNE of the unit vectors (Euclidean on the sphere = cosine), on one thread: as fast on a busy CPU
    (OpenMP's per-iteration wake-ups dominate at these sizes) and independent of the core count."""
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    x = np.concatenate([_unit(videos), _unit(classes)]).astype(np.float32)
    perplexity = float(min(30.0, max(2.0, (len(x) - 1) / 3)))
    with threadpool_limits(1):
        return TSNE(n_components=2, perplexity=perplexity, init="pca", learning_rate="auto",
                    random_state=seed).fit_transform(x)


def _pca2(x: np.ndarray) -> np.ndarray:
    """2-D PCA of a few vectors, signs fixed (largest loading positive) so the picture is deterministic."""
    x = _unit(x)
    x = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    vt = vt[:2]
    vt = vt * np.sign(vt[np.arange(len(vt)), np.abs(vt).argmax(axis=1)])[:, None]
    out = x @ vt.T
    return np.pad(out, ((0, 0), (0, 2 - out.shape[1])))


STROKE = [patheffects.withStroke(linewidth=3, foreground="white")]


def _stars(ax, xy: np.ndarray, classes: tuple[str, ...], colors, size: float, fan: float) -> None:
    """Class vectors as stars; labels fanned out around them, so stars on one spot stay readable."""
    for k, (name, (x, y)) in enumerate(zip(classes, xy)):
        ax.scatter([x], [y], color=colors[k], marker="*", s=size, edgecolors="black", linewidths=1.1, zorder=3)
        angle = 2 * np.pi * (k + 0.5) / len(classes)
        ax.annotate(name, (x, y), xytext=(fan * np.cos(angle), fan * np.sin(angle)), textcoords="offset points",
                    fontsize=9, weight="bold", color=colors[k], path_effects=STROKE, zorder=4, ha="center",
                    va="center", arrowprops=dict(arrowstyle="-", color=colors[k], lw=0.8, shrinkA=0, shrinkB=4))


def _numbers_text(n: dict) -> str:
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    return "\n".join([
        "original space (cosine)",
        f"nearest class vector acc  {fmt(n['accuracy'])}",
        f"nearest class vector UAR  {fmt(n['uar'])}",
        f"silhouette (videos)       {fmt(n['silhouette'])}",
        f"video . own class vector  {fmt(n['own_class_cosine'])}",
        f"margin over other classes {fmt(n['margin'])}",
        f"class . class (mean)      {fmt(n['class_pairwise_cosine'])}",
    ])


def _panel(axes: dict, key: str, xy: np.ndarray, vectors: np.ndarray, labels: np.ndarray,
           classes: tuple[str, ...], colors, title: str, numbers: dict) -> None:
    ax, detail, box = axes[key], axes[f"{key}_text"], axes[f"{key}_numbers"]
    n = len(labels)
    ax.scatter(xy[:n, 0], xy[:n, 1], c=colors[labels], s=9, alpha=0.55, linewidths=0)
    _stars(ax, xy[n:], classes, colors, size=420, fan=34)
    ax.set_title(f"{title}\nt-SNE of test videos (dots) and class vectors (stars)", fontsize=11)
    detail.set_title("class vectors alone (PCA)", fontsize=9)
    _stars(detail, _pca2(vectors), classes, colors, size=160, fan=16)
    detail.margins(0.35)
    box.text(0.0, 1.0, _numbers_text(numbers), family="monospace", fontsize=8, va="top", ha="left",
             transform=box.transAxes)
    for a in (ax, detail, box):
        a.set_xticks([])
        a.set_yticks([])
    box.axis("off")


def tsne_figure(checkpoint: Path, features: Path, out_png: Path, params: TrainingParams, seed: int = 0,
                max_clips: int = 1000, device: str = "cpu") -> dict:
    """Fig. 4 for one checkpoint on the test split: before training | after BAP; returns the numbers per panel.

    `params` must be the ones the checkpoint was trained with (same classes and CLIP): they
    build the "before" model exactly as stage 1 does (bap.stage1, train.seed). `seed` draws
    the test subsample (at most `max_clips`) and seeds t-SNE.
    """
    checkpoint, features, out_png = Path(checkpoint), Path(features), Path(out_png)
    classes = tuple(params.data.classes)
    model, meta = load_checkpoint(checkpoint, device)
    check_compatible(meta, classes, params.clip.model, checkpoint)
    clip = FrozenCLIP.load(meta["clip_model"], device)
    data = load_feature_set(features, "test", classes)
    if data.embed_dim != clip.embed_dim:
        raise ValueError(f"{features}: features of dim {data.embed_dim}, CLIP {meta['clip_model']!r} has "
                         f"{clip.embed_dim}")
    idx = _subsample(len(data), max_clips, seed)
    labels = data.labels[idx].numpy()

    panels = {"before": _before(params, clip, data, idx), "after": _after(model, clip, data, idx)}
    titles = {"before": "before training (CLIP space, initial MAT)", "after": f"after BAP ({checkpoint.name})"}
    numbers = {key: space_numbers(v, c, labels) for key, (v, c) in panels.items()}

    from matplotlib import colormaps

    colors = np.array(colormaps["tab10" if len(classes) <= 10 else "tab20"].colors)[: len(classes)]
    fig = Figure(figsize=FIGSIZE, layout="constrained")
    axes = fig.subplot_mosaic([["before", "before_text", "after", "after_text"],
                               ["before", "before_numbers", "after", "after_numbers"]],
                              width_ratios=[3, 1.15, 3, 1.15], height_ratios=[1, 1])
    for key, (videos, vectors) in panels.items():
        _panel(axes, key, _embed(videos, vectors, seed), vectors, labels, classes, colors, titles[key], numbers[key])
    handles = [Line2D([], [], marker="o", linestyle="", color=colors[k], label=name) for k, name in enumerate(classes)]
    handles.append(Line2D([], [], marker="*", linestyle="", color="grey", markeredgecolor="black", markersize=14,
                          label="class vector"))
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), frameon=False)
    fig.suptitle(f"Fig. 4: {len(idx)} test videos (true class) and the class vectors, before and after training")
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=DPI)
    return {"checkpoint": str(checkpoint), "features": str(features), "png": str(out_png), "seed": seed,
            "clips": int(len(idx)), "test_clips": len(data), "classes": list(classes),
            "metric_space": "original (cosine), not t-SNE", **numbers}


# ---- Table 6: nearest vocabulary words ---------------------------------------------------------------------------
def word_of(token: str, special: set[str]) -> str | None:
    """The word a BPE token stands for, or None: whole words only (word-final), ASCII letters, >= 3 of them."""
    if token in special or not token.endswith(WORD_END):
        return None
    word = token[: -len(WORD_END)]
    return word if len(word) >= MIN_WORD_LEN and word.isascii() and word.isalpha() else None


@torch.no_grad()
def _nearest_rows(tokens: torch.Tensor, table: torch.Tensor, chunk: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, W) vectors -> index and cosine of the nearest row of `table` (V, W) by cosine."""
    table = F.normalize(table.float(), dim=-1)
    index, cosine = [], []
    for start in range(0, len(tokens), chunk):
        cos = F.normalize(tokens[start:start + chunk].float(), dim=-1) @ table.T
        best = cos.max(dim=1)
        index.append(best.indices.cpu())
        cosine.append(best.values.cpu())
    return torch.cat(index), torch.cat(cosine)


def _ranked(ids: np.ndarray, cos: np.ndarray, words: dict[int, str], top: int) -> list[dict]:
    count: Counter[str] = Counter()
    total: dict[str, float] = {}
    for i, c in zip(ids.tolist(), cos.tolist()):
        word = words.get(i)
        if word is not None:
            count[word] += 1
            total[word] = total.get(word, 0.0) + c
    ranked = sorted(count, key=lambda w: (-count[w], -total[w] / count[w], w))[:top]
    return [{"word": w, "count": count[w], "mean_cos": round(total[w] / count[w], 4)} for w in ranked]


def _mean(x: np.ndarray) -> float | None:
    return round(float(x.mean()), 4) if x.size else None


def _initial_mat(model: A3lignDFER, clip: FrozenCLIP, meta: dict) -> torch.Tensor | None:
    """MAT as stage 1 initialised it, rebuilt from the checkpoint's record (model.init, init_text, train_seed)."""
    record = (meta.get("params") or {}).get("model") or {}
    if "init" not in record or "train_seed" not in meta:
        return None
    with torch.random.fork_rng(devices=[]):          # building the encoders draws from the global RNG
        fresh = A3lignDFER(model.spec)
    fresh.init_mat(clip, record["init"], record.get("init_text", "{}"), int(meta["train_seed"]))
    return fresh.mat.detach()


def nearest_words(checkpoint: Path, top: int = 6, init_text: str | None = None, device: str = "cpu") -> dict:
    """Table 6: each class's most frequent nearest vocabulary words over all its MAT tokens (S x T).

    init_text: the template MAT was initialised from ("a photo of a {} face"); None reads it
    from the checkpoint's record (params.model.init == "text"), "" means none. Its token
    positions (per class, in every sentence) are excluded for `words_beyond_init`.
    """
    checkpoint = Path(checkpoint)
    model, meta = load_checkpoint(checkpoint, device)
    clip = FrozenCLIP.load(meta["clip_model"], device)
    source = "argument"
    if init_text is None:
        record = (meta.get("params") or {}).get("model") or {}
        init_text = record.get("init_text") if record.get("init") == "text" else None
        source = "checkpoint" if init_text else None
    init_text = init_text or None
    if init_text is None:
        source = None

    tok = clip.tokenizer
    special = set(tok.all_special_tokens)
    table = clip.model.text_model.embeddings.token_embedding.weight.detach()
    vocab = tok.convert_ids_to_tokens(list(range(table.shape[0])))
    words = {i: w for i, t in enumerate(vocab) if t is not None and (w := word_of(t, special)) is not None}

    mat = model.mat.detach()
    c, s, t, w = mat.shape
    ids, cos = (x.numpy().reshape(c, s, t) for x in _nearest_rows(mat.reshape(-1, w), table))
    initial = _initial_mat(model, clip, meta)
    to_initial = (F.cosine_similarity(mat.float().cpu(), initial.float().cpu(), dim=-1).numpy()
                  if initial is not None and initial.shape == mat.shape else None)

    per_class, kept, init_cos, free_cos, init_word_cos, init_same = {}, 0, [], [], [], []
    for ci, name in enumerate(model.spec.classes):
        init_ids = (tok(init_text.format(name), add_special_tokens=False)["input_ids"][:t] if init_text else [])
        k = len(init_ids)
        as_word = np.isin(ids[ci], list(words))
        kept += int(as_word.sum())
        init_cos.append(cos[ci, :, :k].ravel())
        free_cos.append(cos[ci, :, k:].ravel())
        if k:
            target = F.normalize(clip.token_embeddings(torch.tensor(init_ids)).float(), dim=-1).cpu()
            init_word_cos.append((F.normalize(mat[ci, :, :k].float().cpu(), dim=-1) * target).sum(-1).numpy().ravel())
            init_same.append((ids[ci, :, :k] == np.array(init_ids)).ravel())
        per_class[name] = {
            "words": _ranked(ids[ci].ravel(), cos[ci].ravel(), words, top),
            "words_beyond_init": _ranked(ids[ci, :, k:].ravel(), cos[ci, :, k:].ravel(), words, top),
            "init_tokens": tok.convert_ids_to_tokens(init_ids),
            "tokens": s * t,
            "tokens_nearest_a_word": int(as_word.sum()),
            "mean_nearest_cos": _mean(cos[ci]),
        }
    cat = lambda xs: np.concatenate(xs) if xs else np.zeros(0)  # noqa: E731
    movement = {
        "mean_nearest_cos": _mean(cos),                            # 1: every token is a vocabulary row
        "mean_nearest_cos_init_positions": _mean(cat(init_cos)),
        "mean_nearest_cos_beyond_init": _mean(cat(free_cos)),
        "mean_cos_to_init_word": _mean(cat(init_word_cos)),       # init positions vs their init token's embedding
        "init_word_still_nearest": _mean(cat(init_same).astype(float)),
        "mean_cos_to_initial_mat": None if to_initial is None else _mean(to_initial),  # rebuilt from the record
        "tokens_nearest_a_word": kept,
        "tokens": c * s * t,
    }
    return {"checkpoint": str(checkpoint), "clip_model": meta["clip_model"], "top": top,
            "init_text": init_text, "init_text_source": source, "vocabulary_words": len(words),
            "classes": per_class, "movement": movement}


def nearest_words_markdown(result: dict, beyond_init: bool = False) -> str:
    """Table 6's layout, class | words; a word equal to its class name in bold (the paper bolds exact matches)."""
    key = "words_beyond_init" if beyond_init else "words"
    scope = "MAT tokens beyond the init text" if beyond_init else "all MAT tokens"
    rows = []
    for name, row in result["classes"].items():
        words = [f"**{r['word']}**" if r["word"] == name.lower() else r["word"] for r in row[key]]
        rows.append([name, ", ".join(words) if words else "-"])
    return markdown_table(["class", f"nearest vocabulary words ({scope})"], rows) + "\n"
