"""Seeded synthetic face-expression videos: the embedded default benchmark."""
from a3lign_dfer.data.synthetic.controls import CONTROLS, PROTOTYPES, caption_for
from a3lign_dfer.data.synthetic.generate import generate, plan
from a3lign_dfer.data.synthetic.render import RenderedClip, render_clip

__all__ = ["CONTROLS", "PROTOTYPES", "RenderedClip", "caption_for", "generate", "plan", "render_clip"]
