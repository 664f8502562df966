"""CPU embedding rate and size of each backbone in the model catalogue, on random weights of the
real shape.

Each catalogue `shape` is rebuilt from its published configuration with transformers modules
(random weights: the FLOPs and parameter counts are the real ones; the embeddings are not):
CLIP ViT-B/32 and ViT-H/14 vision towers (`CLIPVisionModelWithProjection`; open_clip's ViTs have
the same layers), SigLIP towers (`SiglipVisionModel` / `SiglipTextModel`), XLM-R and NLLB-200
encoders (`XLMRobertaModel`, `M2M100Encoder`) plus the linear projection open_clip / M-CLIP put on
them. Rates: images per second (one image per call of a batch of 4, 224 or 256 px, preprocessed
tensors) and queries per second (batches of 8 short queries), float32, eval, no_grad, on
`--threads` threads (default 1: the rate one core gives). Keep it short: `--seconds` per
measurement.

Usage: python benchmarks/backbone_rate.py [--shapes clip-b32,siglip-b16-256] [--threads 1]
       [--seconds 6] [--write]   (--write stores the figures in the packaged catalogue)

Prints readable figures and, as the last line, one JSON object with the same figures.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch
from torch import nn

QUERIES = ["a dog on the beach", "ein Hund am Strand", "un chien sur la plage", "海滩上的狗",
           "собака на пляже", "a red car at night", "niños jugando en la nieve", "赤い花"]
CATALOGUE = Path(__file__).resolve().parents[1] / "src/mumur/configs/catalogue/backbones.json"


def _vit(hidden, layers, heads, inter, patch, image, proj):
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    cfg = CLIPVisionConfig(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                           intermediate_size=inter, patch_size=patch, image_size=image,
                           projection_dim=proj)
    model = CLIPVisionModelWithProjection(cfg)
    return model, image, lambda x: model(pixel_values=x).image_embeds


def _siglip(hidden, layers, heads, inter, patch, image, vocab):
    from transformers import (
        SiglipTextConfig,
        SiglipTextModel,
        SiglipVisionConfig,
        SiglipVisionModel,
    )

    tower = {"hidden_size": hidden, "num_hidden_layers": layers, "num_attention_heads": heads,
             "intermediate_size": inter}
    vision = SiglipVisionModel(SiglipVisionConfig(**tower, patch_size=patch, image_size=image))
    text = SiglipTextModel(SiglipTextConfig(**tower, vocab_size=vocab, max_position_embeddings=64))
    return ((vision, image, lambda x: vision(pixel_values=x).pooler_output),
            (text, 64, lambda ids: text(input_ids=ids).pooler_output))


class _Projected(nn.Module):
    """A HF text encoder + pooling + linear projection (open_clip HFTextEncoder, M-CLIP)."""

    def __init__(self, encoder, width, dim, pooling):
        super().__init__()
        self.encoder, self.proj, self.pooling = encoder, nn.Linear(width, dim, bias=False), pooling

    def forward(self, ids):
        hidden = self.encoder(input_ids=ids).last_hidden_state  # (n, L, H)
        pooled = hidden[:, 0] if self.pooling == "cls" else hidden.mean(dim=1)
        return self.proj(pooled)  # (n, dim)


def _xlmr(large: bool, dim: int):
    from transformers import XLMRobertaConfig, XLMRobertaModel

    w, layers, heads = (1024, 24, 16) if large else (768, 12, 12)
    cfg = XLMRobertaConfig(vocab_size=250002, hidden_size=w, num_hidden_layers=layers,
                           num_attention_heads=heads, intermediate_size=4 * w,
                           max_position_embeddings=514)
    model = _Projected(XLMRobertaModel(cfg, add_pooling_layer=False), w, dim, "mean")
    return model, 24, model


def _nllb(large: bool, dim: int):
    from transformers import M2M100Config
    from transformers.models.m2m_100.modeling_m2m_100 import M2M100Encoder

    layers, ffn = (24, 8192) if large else (12, 4096)  # nllb-200-distilled-1.3B / -600M
    cfg = M2M100Config(vocab_size=256206, d_model=1024, encoder_layers=layers,
                       encoder_attention_heads=16, encoder_ffn_dim=ffn, decoder_layers=1,
                       max_position_embeddings=1024)
    model = _Projected(M2M100Encoder(cfg), 1024, dim, "cls")
    return model, 24, model


def build(shape: str):
    """((vision module, side, fn), (text module, length, fn), embedding dim) of a shape."""
    b32 = lambda p: _vit(768, 12, 12, 3072, 32, 224, p)
    h14 = lambda p: _vit(1280, 32, 16, 5120, 14, 224, p)
    if shape == "clip-b32":
        from transformers import CLIPTextConfig, CLIPTextModelWithProjection

        text = CLIPTextModelWithProjection(CLIPTextConfig(projection_dim=512))
        return b32(512), (text, 77, lambda ids: text(input_ids=ids).text_embeds), 512
    if shape == "siglip-b16-256":
        return (*_siglip(768, 12, 12, 3072, 16, 256, 256000), 768)
    if shape == "siglip-so400m-16-256":
        return (*_siglip(1152, 27, 16, 4304, 16, 256, 256000), 1152)
    if shape == "m-clip-large":
        return b32(512), _xlmr(True, 512), 512
    if shape == "nllb-clip-base":
        return b32(512), _nllb(False, 512), 512
    if shape == "nllb-clip-large":
        return h14(1024), _nllb(True, 1024), 1024
    if shape == "xlmr-base-b32":
        return b32(512), _xlmr(False, 512), 512
    if shape == "xlmr-large-h14":
        return h14(1024), _xlmr(True, 1024), 1024
    raise SystemExit(f"unknown shape {shape!r}")


def _rate(fn, make_batch, n_per_call: int, seconds: float) -> float:
    with torch.no_grad():
        fn(make_batch())  # warm-up
        calls, start = 0, time.perf_counter()
        while calls == 0 or time.perf_counter() - start < seconds:
            fn(make_batch())
            calls += 1
        return calls * n_per_call / (time.perf_counter() - start)


def measure(shape: str, seconds: float) -> dict:
    with torch.device("meta"):
        (vision, side, vfn), (text, length, tfn), dim = build(shape)
    params = sum(p.numel() for m in {id(vision): vision, id(text): text}.values()
                 for p in m.parameters())
    out = {"shape": shape, "params": params, "embed_dim": dim}
    g = torch.Generator().manual_seed(0)
    for module in (vision, text):
        module.to_empty(device="cpu").eval()
        for p in module.parameters():
            p.data.normal_(0, 0.02, generator=g)
        for name, b in module.named_buffers():  # to_empty leaves buffers uninitialised
            if name.endswith("position_ids"):
                b.copy_(torch.arange(b.shape[-1]).expand_as(b))
            else:
                b.zero_()
        for m in module.modules():  # M2M100's sinusoidal table is a buffer built from config
            if hasattr(m, "make_weights") and hasattr(m, "weights"):
                m.make_weights(m.weights.shape[0], m.embedding_dim, m.padding_idx)
    out["images_per_s"] = round(_rate(vfn, lambda: torch.randn(4, 3, side, side), 4, seconds), 3)
    vocab = 1000  # ids of real tokens: low ids; the cost does not depend on which
    out["queries_per_s"] = round(_rate(
        tfn, lambda: torch.randint(5, vocab, (8, length), generator=g), 8, seconds), 3)
    out["query_tokens"] = length
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    catalogue = json.loads(CATALOGUE.read_text())
    shapes = sorted({m["shape"] for m in catalogue["models"] if m.get("shape")})
    parser.add_argument("--shapes", default=",".join(shapes))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--write", action="store_true", help="store the figures in the catalogue")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = {}
    for shape in args.shapes.split(","):
        r = measure(shape, args.seconds)
        results[shape] = r
        print(f"{shape:22s} {r['params'] / 1e6:8.1f} M params  {r['embed_dim']:5d}-d  "
              f"{r['images_per_s']:7.2f} images/s  {r['queries_per_s']:7.2f} queries/s "
              f"({r['query_tokens']} tokens)", flush=True)
    meta = {"threads": args.threads, "cpu": platform.processor() or platform.machine(),
            "torch": torch.__version__,
            "command": f"python benchmarks/backbone_rate.py --threads {args.threads} "
                       f"--seconds {args.seconds:g} --write"}
    if args.write:
        for shape, r in results.items():
            catalogue["cpu"][shape] = {**{k: v for k, v in r.items() if k != "shape"}, **meta}
        CATALOGUE.write_text(json.dumps(catalogue, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps({"results": results, **meta}))


if __name__ == "__main__":
    main()
