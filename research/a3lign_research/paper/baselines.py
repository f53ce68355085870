"""Paper Table 2 baselines on the same frozen CLIP and feature cache: zero-shot CLIP, a linear
probe, CoOp and CoCoOp (recipes of runs.py).

Every baseline sees the video as A3lign-DFER's `mean` video encoder does (paper Table 3): the
mean of the L2-normalised cached frame features, `features.num_frames` segment-sampled frames
(training: random frames of a random cached view; evaluation: centre frames of view 0). So the
rows differ from A3lign-DFER only in the text side and the head, not in what the video is.
Test is only reported: the probe's regularisation and the prompt learners' epoch are picked on
val UAR. Training knobs are module constants, the same for every seed and dataset.
"""
from __future__ import annotations

import copy
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from a3lign_dfer.config.training import TrainingParams
from a3lign_dfer.data.feature_cache import FeatureSet
from a3lign_dfer.evaluation.metrics import recall_metrics
from a3lign_dfer.model.clip_backbone import FrozenCLIP
from a3lign_dfer.training.trainer import class_weights
from a3lign_research.paper.runs import Workspace

EVAL_BATCH = 256                          # clips per forward at evaluation (CoCoOp: x classes sentences)

# Linear probe: multinomial logistic regression, full-batch L-BFGS (as CLIP's probe, without sklearn).
PROBE_L2 = tuple(10.0 ** k for k in range(-6, 1))   # L2 strengths on the mean loss, a log grid as CLIP sweeps
PROBE_MAX_ITER = 500                      # L-BFGS iterations; the weakest L2 on separable data stops here

# CoOp / CoCoOp (Zhou et al. 2022a, 2022b), one schedule for both so their rows differ by the meta-net only.
# The schedule was picked on the default benchmark's val UAR (seeds 0, 1): CoOp's own lr 0.002 at batch 32
# stays at chance on the small CLIP, whose text side is very sharp in the context vectors.
CTX_TOKENS = 16                           # M: CoOp's default context length
CTX_STD = 0.02                            # CoOp's random context init (its M=16 default has no init words)
PROMPT_EPOCHS = 10                        # CoCoOp's own; each of its steps encodes batch x classes sentences
PROMPT_BATCH = 4                          # small batches (CoCoOp: 1): at 10 epochs 4 beat 2, 8 and 32
PROMPT_LR = 0.02                          # SGD + train.momentum, cosine to 0; 0.02 beat 0.002-0.2 at batch 4-32
META_REDUCTION = 16                       # CoCoOp's meta-net bottleneck: D -> D // 16 -> text width


def _video_vectors(data: FeatureSet, idx: np.ndarray, num: int, train: bool,
                   rng: np.random.Generator | None, device: torch.device) -> torch.Tensor:
    """(len(idx), D) means of the L2-normalised frame features."""
    return F.normalize(data.gather(idx, num, train, rng).to(device), dim=-1).mean(1)


def _eval_vectors(data: FeatureSet, num: int, device: torch.device) -> torch.Tensor:
    """Every clip's video vector at evaluation (centre frames, view 0), in chunks."""
    chunks = [_video_vectors(data, np.arange(s, min(s + EVAL_BATCH, len(data))), num, False, None, device)
              for s in range(0, len(data), EVAL_BATCH)]
    return torch.cat(chunks) if chunks else torch.zeros(0, data.embed_dim, device=device)


def _report(data: FeatureSet, logits: torch.Tensor, classes: tuple[str, ...]) -> dict:
    return recall_metrics(data.labels.numpy(), logits.argmax(1).cpu().numpy(), classes)


@torch.no_grad()
def zero_shot(ws: Workspace, params: TrainingParams) -> dict[str, dict]:
    """CLIP zero-shot at video level: cosine of the video vector with each class prompt
    (`model.init_text`, through the real tokenizer). Nothing is drawn or trained, so every
    seed gives the same row."""
    classes, clip = tuple(params.data.classes), ws.clip
    text = F.normalize(clip.encode_texts([params.model.init_text.format(c) for c in classes]), dim=-1)
    return {"zero_shot": {split: _report(data, _eval_vectors(data, params.features.num_frames, clip.device) @ text.T,
                                         classes)
                          for split, data in (("val", ws.val), ("test", ws.test))}}


def _fit_probe(x: torch.Tensor, y: torch.Tensor, num_classes: int, l2: float,
               weight: torch.Tensor | None) -> nn.Linear:
    """Multinomial logistic regression from zeros (a convex problem: the optimum, not a draw)."""
    probe = nn.Linear(x.shape[1], num_classes).to(x.device)
    nn.init.zeros_(probe.weight)
    nn.init.zeros_(probe.bias)
    opt = torch.optim.LBFGS(probe.parameters(), lr=1.0, max_iter=PROBE_MAX_ITER, history_size=20,
                            tolerance_grad=1e-6, tolerance_change=1e-9, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(probe(x), y, weight=weight) + 0.5 * l2 * probe.weight.square().sum()
        loss.backward()
        return loss

    opt.step(closure)
    return probe


def linear_probe(ws: Workspace, params: TrainingParams) -> dict[str, dict]:
    """Logistic regression on the video vectors, standardised with the train split's statistics
    (CLIP features sit in a narrow cone: one L2 strength then weighs every dimension alike).

    Train samples are the train clips at evaluation sampling (centre frames, view 0), one per
    clip, as CLIP's probe fits unaugmented features. Picked on val UAR (then WAR): the L2
    strength from PROBE_L2 and the class weighting, none or `train.class_weight` (UAR counts
    the rare classes as much as the common ones). Deterministic: no draw, the seed plays no part.
    """
    classes, device, num = tuple(params.data.classes), ws.clip.device, params.features.num_frames
    x_train, x_val, x_test = (_eval_vectors(d, num, device) for d in (ws.train, ws.val, ws.test))
    mean, std = x_train.mean(0), x_train.std(0).clamp(min=1e-6)
    x_train, x_val, x_test = ((x - mean) / std for x in (x_train, x_val, x_test))
    y = ws.train.labels.to(device)
    best_key, best = (-math.inf, -math.inf), None
    for scheme in dict.fromkeys(("none", params.train.class_weight)):
        weight = class_weights(ws.train.labels, len(classes), scheme)
        weight = None if weight is None else weight.to(device)
        for l2 in PROBE_L2:
            probe = _fit_probe(x_train, y, len(classes), l2, weight)
            with torch.no_grad():
                val = _report(ws.val, probe(x_val), classes)
            if (val["uar"], val["war"]) > best_key:
                best_key, best = (val["uar"], val["war"]), (probe, val, {"l2": l2, "class_weight": scheme})
    probe, val, chosen = best
    with torch.no_grad():
        test = _report(ws.test, probe(x_test), classes)
    return {"linear_probe": {"val": {**val, "selected": chosen}, "test": test}}


class PromptLearner(nn.Module):
    """CoOp's M context vectors shared by every class sentence [SOS] ctx name [period] [EOS];
    with `conditional`, CoCoOp's meta-net adds a per-video shift to every context vector, so
    each video gets its own class sentences."""

    def __init__(self, clip: FrozenCLIP, classes: tuple[str, ...], conditional: bool):
        super().__init__()
        width, dim = clip.text_width, clip.embed_dim
        self.ctx = nn.Parameter(torch.randn(CTX_TOKENS, width) * CTX_STD)
        self.meta_net = None
        if conditional:
            self.meta_net = nn.Sequential(nn.Linear(dim, dim // META_REDUCTION), nn.ReLU(inplace=True),
                                          nn.Linear(dim // META_REDUCTION, width))
            # Zero output at the start (CoCoOp starts as CoOp): the default init's bias alone shifts each
            # context vector by ~10x its norm, and from there it stayed at chance on the default benchmark.
            nn.init.zeros_(self.meta_net[-1].weight)
            nn.init.zeros_(self.meta_net[-1].bias)
        embed = lambda ids: clip.token_embeddings(torch.tensor(ids))  # noqa: E731
        self.sos, self.eos = embed([clip.sos_id]), embed([clip.eos_id])
        names = [clip.tokenizer(c, add_special_tokens=False)["input_ids"] + [clip.period_id] for c in classes]
        # Classes whose name + period have the same token count go through the text encoder together.
        self.groups = [([i for i, n in enumerate(names) if len(n) == length],
                        torch.stack([embed(n) for n in names if len(n) == length]))
                       for length in sorted({len(n) for n in names})]
        self.order = np.argsort([i for idx, _ in self.groups for i in idx])

    def class_features(self, clip: FrozenCLIP, videos: torch.Tensor | None = None) -> torch.Tensor:
        """(C, D) class sentence features; conditional: (B, C, D), one set per video vector."""
        ctx = self.ctx[None]
        if self.meta_net is not None:
            ctx = ctx + self.meta_net(F.normalize(videos, dim=-1))[:, None]
        n, parts = ctx.shape[0], []
        for _, names in self.groups:
            g, _, w = names.shape
            seq = torch.cat([self.sos.expand(n, g, 1, w), ctx[:, None].expand(n, g, -1, -1),
                             names.expand(n, -1, -1, -1), self.eos.expand(n, g, 1, w)], dim=2)
            parts.append(clip.encode_token_embeddings(seq.flatten(0, 1)).view(n, g, -1))
        out = torch.cat(parts, dim=1)[:, self.order]
        return out if self.meta_net is not None else out[0]

    def logits(self, clip: FrozenCLIP, videos: torch.Tensor, temperature: float) -> torch.Tensor:
        text = F.normalize(self.class_features(clip, videos), dim=-1)
        v = F.normalize(videos, dim=-1)
        cos = v @ text.T if text.ndim == 2 else torch.einsum("bd,bcd->bc", v, text)
        return cos / temperature


@torch.no_grad()
def _prompt_logits(learner: PromptLearner, clip: FrozenCLIP, videos: torch.Tensor, temperature: float) -> torch.Tensor:
    return torch.cat([learner.logits(clip, videos[s:s + EVAL_BATCH], temperature)
                      for s in range(0, len(videos), EVAL_BATCH)])


def _train_prompts(ws: Workspace, params: TrainingParams, conditional: bool) -> dict:
    """CoOp's recipe: plain cross-entropy, SGD + train.momentum at PROMPT_LR with a cosine decay;
    gradients clipped at train.grad_clip as A3lign's own prompt tokens are (without it the first
    steps, at logit scale 1/tau, throw the context off). The epoch of best val UAR (then lower val
    loss) is kept and reported."""
    classes, clip, device = tuple(params.data.classes), ws.clip, ws.clip.device
    num, tau, seed = params.features.num_frames, params.model.temperature, params.train.seed
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    learner = PromptLearner(clip, classes, conditional).to(device)
    steps = PROMPT_EPOCHS * math.ceil(len(ws.train) / PROMPT_BATCH)
    opt = torch.optim.SGD(learner.parameters(), lr=PROMPT_LR, momentum=params.train.momentum)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(steps, 1))
    x_val = _eval_vectors(ws.val, num, device)
    y_train, y_val = ws.train.labels.to(device), ws.val.labels.to(device)
    best_key, best = (-math.inf, -math.inf), None
    for epoch in range(1, PROMPT_EPOCHS + 1):
        order = rng.permutation(len(ws.train))
        for start in range(0, len(order), PROMPT_BATCH):
            idx = order[start:start + PROMPT_BATCH]
            videos = _video_vectors(ws.train, idx, num, True, rng, device)
            loss = F.cross_entropy(learner.logits(clip, videos, tau), y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if params.train.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(learner.parameters(), params.train.grad_clip)
            opt.step()
            sched.step()
        logits = _prompt_logits(learner, clip, x_val, tau)
        val = _report(ws.val, logits, classes)
        key = (val["uar"], -float(F.cross_entropy(logits, y_val)))
        if key > best_key:
            best_key, best = key, (copy.deepcopy(learner.state_dict()), {**val, "selected": {"epoch": epoch}})
    state, val = best
    learner.load_state_dict(state)
    test = _report(ws.test, _prompt_logits(learner, clip, _eval_vectors(ws.test, num, device), tau), classes)
    return {"val": val, "test": test}


def coop(ws: Workspace, params: TrainingParams) -> dict[str, dict]:
    """CoOp: M=16 learned context vectors shared by all classes (unified context, class name last)."""
    return {"coop": _train_prompts(ws, params, conditional=False)}


def cocoop(ws: Workspace, params: TrainingParams) -> dict[str, dict]:
    """CoCoOp: CoOp's context shifted per video by a meta-net on the video vector."""
    return {"cocoop": _train_prompts(ws, params, conditional=True)}
