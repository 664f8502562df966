"""`RetrievalModel`: encoders (vision, English text, multilingual text) + a method head; MuMUR
§3.2. Encoders are optional: a model without them scores precomputed features (feature caches)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..config import replace_config, write_json
from ..errors import ConfigError
from ..heads import BRANCHES, RetrievalHead
from ..heads.base import HeadInputs, check_branch
from ..losses import LossOutput, gather_batch, training_world_size
from .spec import (
    CONFIG_FILE,
    ENCODER_SLOTS,
    FORMAT,
    FORMAT_VERSION,
    WEIGHTS_FILE,
    MediaFeatures,
    ModelConfig,
    head_class,
)

__all__ = ["RetrievalModel"]

_STANDARD_BATCH_KEYS = frozenset(
    {"pixel_values", "frame_features", "mask"}
    | {f"text_{b}{suffix}" for b in BRANCHES for suffix in ("", "_features")})




class RetrievalModel(nn.Module):
    """Encoders + method head; MuMUR §3.2.

    Args:
        config: the model config (its `head_config` must be set).
        head: the head module (built from the config when None).
        vision, text_en, text_ml: encoders (`mumur.encoders.Encoder`) or None.
    """

    def __init__(self, config: ModelConfig, head: RetrievalHead | None = None,
                 vision: nn.Module | None = None, text_en: nn.Module | None = None,
                 text_ml: nn.Module | None = None):
        super().__init__()
        head_cls = head_class(config.head)
        if config.head_config is None:
            config = replace_config(config, head_config=head_cls.config_class())
        self.config = config
        self.head = head if head is not None else head_cls(config.head_config)
        self.vision, self.text_en, self.text_ml = vision, text_en, text_ml
        self._check_dims()

    def _check_dims(self) -> None:
        cfg = self.config.head_config
        wanted = {"vision": cfg.frame_dim, "text_en": cfg.text_dim_en, "text_ml": cfg.text_dim_ml}
        for slot, dim in wanted.items():
            encoder = getattr(self, slot)
            if encoder is not None and encoder.dim != dim:
                raise ConfigError(f"{slot} encoder outputs {encoder.dim}-d features but the head "
                                  f"expects {dim} (head option "
                                  f"{'frame_dim' if slot == 'vision' else 'text_dim_' + slot[5:]})")

    # -- properties ------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        """Device of the head."""
        return next(self.head.parameters()).device

    @property
    def image_size(self) -> int:
        """Input side S of the vision encoder (config value without one)."""
        return int(getattr(self.vision, "image_size", self.config.image_size))

    def has_branch(self, branch: str) -> bool:
        """Whether `branch` can encode text and was trained (MuMUR §3.2.5 branch choice)."""
        return (getattr(self, f"text_{check_branch(branch)}") is not None
                and branch in self.config.head_config.train_branches)

    def query_branches(self) -> tuple[str, ...]:
        """The branches that can encode queries: a text encoder and trained (`has_branch`)."""
        return tuple(b for b in BRANCHES if self.has_branch(b))

    def _text_encoder(self, branch: str):
        encoder = getattr(self, f"text_{check_branch(branch)}")
        if encoder is None:
            raise ConfigError(f"model has no {branch!r} text encoder (text_{branch} is None); "
                              f"pass precomputed text_{branch}_features instead")
        return encoder

    def _vision_encoder(self):
        if self.vision is None:
            raise ConfigError("model has no vision encoder; pass precomputed frame_features")
        return self.vision

    # -- inference -------------------------------------------------------------------------------
    def _text_features(self, texts: Sequence[str], branch: str,
                       language_code: str | None = None) -> torch.Tensor:
        encoder = self._text_encoder(branch)
        if language_code is None or getattr(encoder, "code_family", None) is None:
            return encoder(list(texts)).to(self.device)  # (N, Dt)
        with encoder.language(language_code):
            return encoder(list(texts)).to(self.device)  # (N, Dt)

    def language_code_family(self, branch: str) -> str | None:
        """The code family the branch's text encoder needs per query ("nllb"), or None."""
        return getattr(self._text_encoder(branch), "code_family", None)

    @torch.no_grad()
    def encode_text(self, texts: Sequence[str], branch: str = "en",
                    language_code: str | None = None) -> torch.Tensor:
        """Embed queries with the branch's text encoder and projection.

        Args:
            texts: N strings.
            branch: "en" (R_E) or "ml" (R_M).
            language_code: the texts' code in the encoder's `code_family` (NLLB-CLIP:
                FLORES-200, e.g. "deu_Latn"); ignored by encoders without one.

        Returns:
            (N, d) L2-normalised.
        """
        features = self._text_features(texts, branch, language_code)
        return self.head.text_embed(features, branch)

    @torch.no_grad()
    def encode_frames(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Raw frame features of preprocessed frames: (n, 3, S, S) -> (n, Dv), un-normalised."""
        vision = self._vision_encoder()
        return vision(pixel_values.to(vision.device)).float()

    @torch.no_grad()
    def encode_media(self, paths: Sequence[str | Path],
                     extra: dict[str, Any] | None = None) -> MediaFeatures:
        """Decode, sample (uniform, `config.num_frames`), encode and contextualise media files.

        Args:
            paths: image or video files.
            extra: the head's per-item inputs (`head.item_inputs`), rows in `paths` order.

        Returns:
            MediaFeatures with T = num_frames (images: one valid frame).

        Raises:
            MediaDecodeError: a file cannot be decoded.
        """
        from ..media.decode import read_frames

        vision = self._vision_encoder()
        n_frames = self.config.num_frames
        decoded = [read_frames(p, n_frames, strategy="uniform") for p in paths]
        pixels = vision.preprocess([im for fr in decoded for im in fr.frames])  # (sum n, 3, S, S)
        flat = self.encode_frames(pixels).to(self.device)  # (sum n, Dv)
        counts = [len(fr.frames) for fr in decoded]
        features = flat.new_zeros(len(paths), n_frames, flat.shape[-1])  # (B, T, Dv)
        mask = torch.zeros(len(paths), n_frames, dtype=torch.bool, device=self.device)
        timestamps = torch.zeros(len(paths), n_frames, dtype=torch.float32)
        for i, (part, fr) in enumerate(zip(flat.split(counts), decoded)):
            features[i, :len(part)] = part
            mask[i, :len(part)] = True
            timestamps[i, :len(part)] = torch.tensor(fr.timestamps, dtype=torch.float32)
        return MediaFeatures(self.head.contextualize(features, mask, extra),
                             self.head.state_mask(mask), timestamps)

    @torch.no_grad()
    def score(self, text_emb: torch.Tensor, frames_ctx: torch.Tensor, mask: torch.Tensor,
              branch: str = "en") -> torch.Tensor:
        """Cosine scores (N, B) of text embeddings against contextualised items (head similarity).
        """
        return self.head.similarity(text_emb.to(self.device), frames_ctx.to(self.device),
                                    mask.to(self.device), branch)

    # -- training --------------------------------------------------------------------------------
    def compute_loss(self, batch: dict[str, Any]) -> LossOutput:
        """Training loss of one batch of matching (item, English caption, multilingual caption).

        Args:
            batch: ``pixel_values`` (B, T, 3, S, S) or ``frame_features`` (B, T, Dv); ``mask``
                (B, T) bool (default: all frames valid); per branch b in (en, ml) either
                ``text_b`` (list of B strings, encoded here, differentiably when the encoder is
                trainable) or ``text_b_features`` (B, Dt) (a frozen encoder's cached outputs).
                Any other entry reaches the head untouched in `HeadInputs.extra`.

        Returns:
            the head's `LossOutput`: the weighted total and its named terms (MuMUR: L = L_E +
            L_M, eq. 6); branches without text are skipped.
        """
        device = self.device
        frames = self._batch_frames(batch)  # (B, T, Dv)
        mask = batch.get("mask")
        mask = (torch.ones(frames.shape[:2], dtype=torch.bool, device=device) if mask is None
                else torch.as_tensor(mask, dtype=torch.bool).to(device))
        extra = {k: v for k, v in batch.items() if k not in _STANDARD_BATCH_KEYS}
        ctx = self.head.contextualize(frames, mask, extra)  # (B, T', d)
        inputs = HeadInputs(ctx, self.head.state_mask(mask))
        for branch in BRANCHES:
            if f"text_{branch}_features" in batch:
                feats = torch.as_tensor(batch[f"text_{branch}_features"]).float().to(device)
            elif f"text_{branch}" in batch:
                feats = self._text_features(batch[f"text_{branch}"], branch)
            else:
                continue
            inputs.text_features[branch] = feats  # (B, Dt)
            inputs.text[branch] = self.head.text_embed(feats, branch)  # (B, d)
        inputs.extra = extra
        if self.training and training_world_size() > 1:
            inputs = _global_batch(inputs)
        return self.head.loss(inputs)

    def _batch_frames(self, batch: dict[str, Any]) -> torch.Tensor:
        device = self.device
        if "frame_features" in batch:
            return torch.as_tensor(batch["frame_features"]).float().to(device)
        if "pixel_values" not in batch:
            raise ConfigError(f"batch needs 'pixel_values' or 'frame_features'; got keys "
                              f"{sorted(batch)}")
        vision = self._vision_encoder()
        pixels = torch.as_tensor(batch["pixel_values"])  # (B, T, 3, S, S)
        mask = batch.get("mask")
        mask = (torch.ones(pixels.shape[:2], dtype=torch.bool) if mask is None
                else torch.as_tensor(mask, dtype=torch.bool).cpu())
        valid = vision(pixels[mask].to(vision.device)).float().to(device)  # (n_valid, Dv)
        frames = valid.new_zeros(*pixels.shape[:2], valid.shape[-1])  # padding stays zero
        frames[mask.to(device)] = valid
        return frames

    # -- persistence -----------------------------------------------------------------------------
    def encoders(self) -> dict[str, nn.Module]:
        """The present encoders by slot (``vision``, ``text_en``, ``text_ml``)."""
        return {slot: getattr(self, slot) for slot in ENCODER_SLOTS
                if getattr(self, slot) is not None}

    def save(self, path: str | Path) -> Path:
        """Write ``config.json``, ``model.safetensors`` (head) and one folder per encoder.

        Args:
            path: target folder (created; existing files are overwritten).

        Returns:
            the folder.
        """
        from safetensors.torch import save_file

        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        saved: dict[int, str] = {}
        folders = {}
        for slot, encoder in self.encoders().items():
            if id(encoder) not in saved:  # one shared encoder is written once
                encoder.save(folder / slot)
                saved[id(encoder)] = slot
            folders[slot] = saved[id(encoder)]
        state = {k: v.detach().cpu().contiguous() for k, v in self.head.state_dict().items()}
        save_file(state, str(folder / WEIGHTS_FILE), metadata={"format": FORMAT})
        write_json(folder / CONFIG_FILE, {"format": FORMAT, "format_version": FORMAT_VERSION,
                                          "config": self.config.to_dict(),
                                          "encoder_folders": folders,
                                          "identity": self.identity()})
        return folder

    def identity(self) -> str:
        """Stable hash of the config (without encoder paths) + head weights + encoder identities.
        Unchanged by save/load; changes when any weight changes."""
        cfg = self.config.to_dict()
        for slot in ENCODER_SLOTS:
            cfg.pop(slot)  # a path changes on save; the encoder identity names the weights
        digest = hashlib.sha256(json.dumps(cfg, sort_keys=True).encode())
        _update_digest(digest, self.head)
        for slot, encoder in self.encoders().items():
            digest.update(f"{slot}={encoder.identity}".encode())
        return f"{self.config.head}@{digest.hexdigest()[:16]}"


def _update_digest(digest, module: nn.Module) -> None:
    # Names, dtypes, shapes and bytes of every tensor (0-d tensors such as logit_scale included).
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}|{t.dtype}|{tuple(tensor.shape)}".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes())




def _global_batch(inputs: HeadInputs) -> HeadInputs:
    """Data-parallel training (torchrun): every rank's head inputs gathered into the global batch
    (with gradients), so the contrastive loss sees every rank's items and texts as negatives, as
    single-process training on the global batch does. Extra entries are gathered when they are
    tensors with one row per item; others stay per rank."""
    local = inputs.frames_ctx.shape[0]
    return HeadInputs(
        gather_batch(inputs.frames_ctx), gather_batch(inputs.mask),
        {b: gather_batch(t) for b, t in inputs.text.items()},
        {b: gather_batch(t) for b, t in inputs.text_features.items()},
        {k: gather_batch(v) if isinstance(v, torch.Tensor) and v.ndim and v.shape[0] == local
         else v for k, v in inputs.extra.items()})
