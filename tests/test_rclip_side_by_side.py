"""benchmarks/rclip_side_by_side.py: the ONNX towers it writes for rclip match the checkpoint."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

_BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(_BENCH))  # the script imports its sibling cold_search.py
_spec = importlib.util.spec_from_file_location("rclip_side_by_side",
                                               _BENCH / "rclip_side_by_side.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def test_exported_towers_reproduce_the_checkpoint_in_rclip_layout(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    if importlib.util.find_spec("open_clip") is None:  # ships the BPE vocabulary rclip reads
        pytest.skip("open_clip is not installed")
    import torch
    from transformers import CLIPModel

    checkpoint = bench.build_checkpoint(tmp_path / "clip", "tiny")
    datadir = tmp_path / "rclip-data"
    bench.export_rclip_model(checkpoint, datadir)
    assert (datadir / bench.RCLIP_VOCAB).stat().st_size > 100_000
    model = CLIPModel.from_pretrained(checkpoint).eval()
    folder = datadir / bench.RCLIP_MODEL_SUBDIR

    side = model.config.vision_config.image_size
    pixels = torch.randn(3, 3, side, side, generator=torch.Generator().manual_seed(0))
    visual = ort.InferenceSession(str(folder / "visual.onnx"))
    (got,) = visual.run(None, {"input": pixels.numpy()})
    with torch.no_grad():
        want = model.get_image_features(pixel_values=pixels).pooler_output.numpy()
    assert got.shape == want.shape == (3, model.config.projection_dim)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)

    # rclip pads its 77 ids with 0 after the end token (49407); the pooled end-token state must not
    # see the padding, so the ONNX tower on 0-padding equals the checkpoint on end-token padding.
    ids = np.zeros((2, 77), dtype=np.int64)
    ids[0, :4] = [49406, 320, 1929, 49407]
    ids[1, :6] = [49406, 320, 2866, 2368, 530, 49407]
    eos_padded = torch.from_numpy(np.where(ids == 0, 49407, ids))
    textual = ort.InferenceSession(str(folder / "textual.onnx"))
    (got,) = textual.run(None, {"input": ids})
    with torch.no_grad():
        want = model.get_text_features(input_ids=eos_padded).pooler_output.numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    assert not np.allclose(got[0], got[1])  # different texts, different embeddings
