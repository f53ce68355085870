"""MAT through the frozen CLIP text encoder: the paper's Eq. 2 layout against transformers' own text model,
the compact layout against padding after EOS."""
import copy

import pytest
import torch

from a3lign_dfer.model.a3lign import A3lignDFER
from a3lign_dfer.model.clip_backbone import FrozenCLIP
from a3lign_dfer.training import bap


def test_eos_pooling_at_t_plus_2_equals_padding_to_context(tiny_clip_dir, tiny_params):
    clip = FrozenCLIP.load(str(tiny_clip_dir))
    model, _ = bap.stage1(tiny_params(model={"text_layout": "compact"}), clip, None)
    short = model.text_features(clip)                      # (C, S, D) from T+2 tokens

    c, s, t, w = model.mat.shape
    rows = model.mat.detach().reshape(c * s, t, w)
    sos = clip.token_embeddings(torch.tensor([clip.sos_id])).expand(c * s, 1, w)
    eos = clip.token_embeddings(torch.tensor([clip.eos_id])).expand(c * s, 1, w)
    pad = clip.token_embeddings(torch.full((c * s, clip.context_length - t - 2), clip.eos_id))
    with torch.no_grad():
        text = clip.model.text_model
        hidden = text.embeddings(inputs_embeds=torch.cat([sos, rows, eos, pad], 1))
        # Plain SDPA with an explicit causal mask over all 77 positions, not our code path.
        for layer in text.encoder.layers:
            hidden = layer(hidden, attention_mask=_causal(hidden.shape[1]))
        full = clip.model.text_projection(text.final_layer_norm(hidden)[:, t + 1]).view(c, s, -1)
    assert short.shape == (c, s, clip.embed_dim)
    torch.testing.assert_close(short, full, atol=1e-5, rtol=1e-5)


def test_paper_layout_is_eq2_through_transformers_own_text_model(tiny_clip_dir, tiny_params):
    """Built independently of our code path: MAT rows are the embeddings of real tokens and Eq. 2's zero
    slots a token whose embedding row is zeroed, so the whole 77-token sequence is plain input_ids for
    CLIPModel.get_text_features (its own positions, causal mask and pooling at the EOS id)."""
    clip = FrozenCLIP.load(str(tiny_clip_dir))
    model, _ = bap.stage1(tiny_params(model={"text_layout": "paper"}), clip, None)
    c, s, t, w = model.mat.shape
    ids = torch.randint(1000, 40000, (c * s, t), generator=torch.Generator().manual_seed(0))
    zero_id = 40001
    with torch.no_grad():
        model.mat.copy_(clip.token_embeddings(ids).view(c, s, t, w))
        ours = model.text_features(clip)

    period = clip.tokenizer(".", add_special_tokens=False)["input_ids"]
    column = lambda token, n=1: torch.full((c * s, n), token)  # noqa: E731
    tokens = torch.cat([column(clip.tokenizer.bos_token_id), ids, column(zero_id, 74 - t), column(period[0]),
                        column(clip.tokenizer.eos_token_id)], dim=1)
    assert tokens.shape[1] == 77 and clip.context_length == 77
    assert ((tokens == clip.tokenizer.eos_token_id).int().argmax(1) == 76).all()      # EOS at position 76
    reference = copy.deepcopy(clip.model)
    with torch.no_grad():
        reference.text_model.embeddings.token_embedding.weight[zero_id] = 0
        expected = reference.get_text_features(input_ids=tokens).pooler_output.view(c, s, -1)
    assert ours.shape == (c, s, clip.embed_dim)
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-5)

    # The zeros and the period shape the EOS feature: the compact layout is another model.
    compact = A3lignDFER(model.spec.evolve(text_layout="compact"))
    compact.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert (compact.text_features(clip) - ours).abs().max() > 1e-2


def test_paper_layout_refuses_more_tokens_than_the_context_leaves(tiny_clip_dir, tiny_params):
    clip = FrozenCLIP.load(str(tiny_clip_dir))
    model, _ = bap.stage1(tiny_params(model={"text_layout": "paper", "tokens": 75}), clip, None)
    with pytest.raises(ValueError, match="at most 74"):
        model.text_features(clip)


def _causal(n: int) -> torch.Tensor:
    return torch.full((n, n), float("-inf")).triu(1)[None, None]


def test_token_embedding_path_matches_clip_on_a_tokenized_sentence(tiny_clip_dir):
    clip = FrozenCLIP.load(str(tiny_clip_dir))
    ids = clip.tokenizer(["a face with a neutral expression"], return_tensors="pt")["input_ids"]
    padded = clip.tokenizer(["a face with a neutral expression"], padding="max_length", return_tensors="pt")
    assert padded["input_ids"].shape[1] == clip.context_length
    with torch.no_grad():
        ours = clip.encode_token_embeddings(clip.token_embeddings(ids))
        reference = clip.model.get_text_features(**padded).pooler_output
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=1e-5)


def test_clip_tokenizer_matches_open_clip():
    import open_clip

    from a3lign_dfer.model.tokenizer import build_clip_tokenizer

    ours, reference = build_clip_tokenizer(), open_clip.get_tokenizer("ViT-B-32")
    for text in ["a face with raised eyebrows, wide open eyes and an open mouth", "Naïve CAFÉ can't 123!!"]:
        expected = reference([text])[0]
        assert ours(text)["input_ids"] == expected[expected != 0].tolist()


def test_mat_shape_and_text_init(tiny_clip_dir, tiny_params):
    clip = FrozenCLIP.load(str(tiny_clip_dir))
    params = tiny_params(model={"init": "text", "init_text": "a photo of a {} face"})
    model, _ = bap.stage1(params, clip, None)
    assert isinstance(model, A3lignDFER)
    assert model.mat.shape == (7, 4, 6, clip.text_width)
    std = clip.token_embeddings(torch.arange(100)).std().item()
    for ci, name in enumerate(params.data.classes):
        ids = clip.tokenizer(f"a photo of a {name} face", add_special_tokens=False)["input_ids"][:6]
        expected = clip.token_embeddings(torch.tensor(ids))
        for si in range(4):  # every sentence starts with the class description
            torch.testing.assert_close(model.mat[ci, si, : len(ids)].detach(), expected, atol=0.5 * std, rtol=0)
    # the sentences are not clones, even when the description fills all T tokens
    assert not torch.allclose(model.mat[0, 0], model.mat[0, 1])
    random_model, _ = bap.stage1(tiny_params(model={"init": "random"}), clip, None)
    assert not torch.allclose(random_model.mat[0, 0, :3], model.mat[0, 0, :3])
