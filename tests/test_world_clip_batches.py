"""world-CLIP pretraining: grid-cell targets, grouped hard-negative batches, the cell loss."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mumur.data.synthetic import Scene, SceneObject
from mumur.data.synthetic.frames import CELL_FIELDS, cell_targets
from mumur.data.synthetic.world import COLOURS, PLACES, SHAPES
from mumur.errors import ConfigError
from mumur.train.pretrain.frames import FrameTable, PretrainBatches
from mumur.train.pretrain.recipe import FrameDataSpec, ObjectiveSpec


def _obj(shape, colour, size="large", motion="stays still", x=0.5, y=0.5):
    return SceneObject(shape, colour, size, motion, None, x, y, 0.0)


def test_cell_targets_known_answer():
    main = _obj("star", "blue", "small", x=0.1, y=0.1)  # top left: cell 0
    other = _obj("circle", "red", "large", x=0.5, y=0.9)  # bottom centre: cell 7
    got = cell_targets(Scene("image", "snow", (main, other)), 0.0)
    assert got.shape == (9, len(CELL_FIELDS))
    assert got[0].tolist() == [SHAPES.index("star") + 1, COLOURS.index("blue") + 1, 1]
    assert got[7].tolist() == [SHAPES.index("circle") + 1, COLOURS.index("red") + 1, 2]
    assert got[[1, 2, 3, 4, 5, 6, 8]].sum() == 0


def test_cell_targets_follow_motion_and_put_the_main_object_on_top():
    mover = _obj("heart", "green", motion="moves right", x=0.2, y=0.5)  # travels 0.35 right
    start = cell_targets(Scene("video", "beach", (mover,)), 0.0)
    end = cell_targets(Scene("video", "beach", (mover,)), 1.0)
    assert start[3, 0] == SHAPES.index("heart") + 1 and end[3, 0] == 0
    assert end[4, 0] == SHAPES.index("heart") + 1  # x = 0.55: the centre cell
    main, under = _obj("square", "white"), _obj("triangle", "black")  # same cell
    both = cell_targets(Scene("image", "night", (main, under)), 0.0)
    assert both[4, 0] == SHAPES.index("square") + 1  # drawn last, so it is what the cell shows


def _table(n_items=40, frames_per_item=3, seed=0):
    rng = np.random.default_rng(seed)
    items = []
    for _ in range(n_items):
        obj = _obj(SHAPES[rng.integers(5)], COLOURS[rng.integers(2)])  # 2 colours: big groups
        items.append(SimpleNamespace(scene=Scene("video", PLACES[rng.integers(2)], (obj,)),
                                     media_type="video"))
    item = np.repeat(np.arange(n_items), frames_per_item)
    t = np.tile(np.linspace(0, 1, frames_per_item), n_items).astype(np.float32)
    frames = np.zeros((len(item), 8, 8, 3), np.uint8)
    return FrameTable(frames, item, t, items, {"items": []}, None)


class _Tok:
    def __call__(self, texts, **_):
        ids = torch.ones(len(texts), 4, dtype=torch.long)
        return {"input_ids": ids, "attention_mask": ids}


def test_grouped_batches_share_the_facets_and_are_deterministic():
    table = _table()
    spec = FrameDataSpec(frames_per_source=2, steps_per_epoch=5, group_by=("place", "colour"),
                         grouped_share=0.5, group_sources=4, workers=1)
    batches = PretrainBatches(table, _Tok(), batch_size=16, spec=spec, seed=3)
    again = PretrainBatches(table, _Tok(), batch_size=16, spec=spec, seed=3)
    for index in range(5):
        rows = batches._plan(0)[index]
        assert np.array_equal(rows, again._plan(0)[index])
        assert len(rows) == 16
        group = {(table.items[table.item[r]].scene.place,
                  table.items[table.item[r]].scene.objects[0].colour) for r in rows[:8]}
        assert len(group) == 1  # the grouped half: one (place, colour)
        assert len({int(table.item[r]) for r in rows[:8]}) == 4  # 4 sources x 2 frames
    for index in range(5):
        # A source of a group may come again in the random part: every pair of its frames
        # whose caption is true of both must then leave the softmax (no false negatives).
        rows, batch = batches._plan(0)[index], batches.batch(0, index)
        same = rows[:, None] == rows[None, :]
        np.fill_diagonal(same, False)
        assert batch["negative_mask"].numpy()[same].all()
        assert batch["cells"].shape == (16, 9, 3) and batch["cells"].dtype == torch.int64
    plain = PretrainBatches(table, _Tok(), 16, FrameDataSpec(frames_per_source=2,
                                                             steps_per_epoch=5), seed=3)
    assert not np.array_equal(plain._plan(0)[0], batches._plan(0)[0])


@pytest.mark.parametrize("bad", [{"group_by": ("motion",)}, {"grouped_share": 0.5},
                                 {"group_by": ("place",), "grouped_share": 1.5},
                                 {"group_sources": 1}])
def test_bad_grouping_is_a_config_error(bad):
    with pytest.raises(ConfigError):
        FrameDataSpec(**bad)


def test_cells_loss_is_the_mean_cross_entropy_of_the_three_fields():
    from transformers import CLIPConfig, CLIPModel

    from mumur.train.pretrain.model import WorldClipPretrainer

    config = CLIPConfig(vision_config=dict(image_size=16, patch_size=8, hidden_size=16,
                                           num_hidden_layers=1, num_attention_heads=2,
                                           intermediate_size=32),
                        text_config=dict(vocab_size=100, hidden_size=16, num_hidden_layers=1,
                                         num_attention_heads=2, intermediate_size=32),
                        projection_dim=8)
    model = WorldClipPretrainer(CLIPModel(config), None,
                                ObjectiveSpec(geometry_weight=0.0, cells_weight=0.5))
    torch.manual_seed(0)
    image = F.normalize(torch.randn(4, 8), dim=-1)
    target = torch.stack([torch.from_numpy(cell_targets(
        Scene("image", "snow", (_obj(SHAPES[k], COLOURS[k], x=0.1 + 0.2 * k),)), 0.0))
        for k in range(4)])
    logits = model.cells(image * 8 ** 0.5).view(4, 9, -1)  # unit norm scaled by sqrt(d)
    sizes = list(CELL_FIELDS.values())
    expected = torch.stack([F.cross_entropy(p.reshape(-1, p.shape[-1]), target[..., k].reshape(-1))
                            for k, p in enumerate(torch.split(logits, sizes, -1))]).mean()
    assert torch.allclose(model.cells_loss(image, target), expected)
    assert model.cells.out_features == 9 * (6 + 9 + 3)
