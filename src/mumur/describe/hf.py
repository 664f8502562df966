"""Visual descriptions from Hugging Face vision-language models (`transformers`,
`AutoModelForImageTextToText` + `AutoProcessor`).

Two kinds:

* ``caption``: a captioner (BLIP `BlipForConditionalGeneration`, BLIP-2
  `Blip2ForConditionalGeneration`). It takes no instruction: the prompt is used as a text prefix
  only when `prefix=1` (BLIP conditional captioning); a video is described by captioning each
  sampled frame and joining the distinct captions in time order.
* ``chat``: a chat VLM with a chat template (LLaVA `LlavaForConditionalGeneration`, Qwen2-VL
  `Qwen2VLForConditionalGeneration`, ...): one user turn with the item's frames as images (one for
  an image, `frames` for a video) and the prompt (LECCR §3.2: "Please describe the contents of
  this image in detail."); the answer is the generated continuation.

Greedy decoding, `max_new_tokens` tokens. The identity (the cache key's model part) names the
checkpoint (its hub commit, or for a local folder a hash of its config and weight files), the
kind, frames and token limit.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from ..errors import ConfigError

__all__ = ["HFDescriber"]


def _checkpoint_id(source: str) -> str:
    """The checkpoint's identity without loading its weights: a local folder's config and weight
    file sizes, or a hub id's commit (from its config, a small download)."""
    folder = Path(source)
    if not folder.is_dir():
        from transformers import AutoConfig

        try:
            commit = getattr(AutoConfig.from_pretrained(source), "_commit_hash", None)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"describer model {source!r}: {exc}") from None
        return f"{source}@{commit or 'unknown'}"
    digest = hashlib.sha1()
    for f in sorted(folder.glob("*.json")) + sorted(folder.glob("*.safetensors")):
        digest.update(f.name.encode())
        digest.update(f.read_bytes() if f.suffix == ".json" else str(f.stat().st_size).encode())
    return f"{folder.resolve()}@{digest.hexdigest()[:12]}"


class HFDescriber:
    """A captioner or chat VLM as a description backend (module docstring).

    Args:
        model: hub id or local folder.
        kind: ``caption`` or ``chat``.
        prompt: the instruction (chat) or prefix (caption with `prefix`).
        frames: frames sampled from a video (uniform).
        max_new_tokens: generation limit.
        prefix: caption kind only: pass the prompt as a text prefix.
        device: torch device.
    """

    def __init__(self, model: str, kind: str = "chat", prompt: str | None = None,
                 frames: int | str = 4, max_new_tokens: int | str = 128, prefix: int | str = 0,
                 device: str = "cpu"):
        from .pipeline import DEFAULT_PROMPT

        if kind not in ("caption", "chat"):
            raise ConfigError(f"describer kind {kind!r}: use caption or chat")
        self.kind, self.source, self.device = kind, str(model), device
        self.frames, self.max_new_tokens = int(frames), int(max_new_tokens)
        self.prefix = bool(int(prefix))
        self.prompt = (prompt or DEFAULT_PROMPT) if kind == "chat" or self.prefix else ""
        # The identity is known without the weights: a run whose descriptions are all cached
        # (`mumur describe` ran earlier, e.g. on a GPU machine) never loads the model.
        self.identity = (f"hf-{kind}:{_checkpoint_id(self.source)}:"
                         f"frames={self.frames},max_new_tokens={self.max_new_tokens}")
        self._loaded = None

    @property
    def processor(self):
        return self._load()[0]

    @property
    def model(self):
        return self._load()[1]

    def _load(self):
        if self._loaded is None:
            from transformers import AutoModelForImageTextToText, AutoProcessor

            try:
                processor = AutoProcessor.from_pretrained(self.source)
                model = AutoModelForImageTextToText.from_pretrained(self.source)
            except (OSError, ValueError) as exc:
                raise ConfigError(f"describer model {self.source!r}: {exc}") from None
            tokenizer = getattr(processor, "tokenizer", None)
            if self.kind == "chat" and tokenizer is not None:
                tokenizer.padding_side = "left"  # decoder-only generation continues the prompt
            self._loaded = (processor, model.to(self.device).eval())
        return self._loaded

    def _frames(self, path: str) -> list:
        from ..media.decode import read_frames

        return list(read_frames(path, self.frames, strategy="uniform").frames)

    def _generate(self, inputs) -> list[str]:
        import torch

        inputs = inputs.to(self.model.device)
        with torch.no_grad():
            out = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens,
                                      do_sample=False)
        if self.kind == "chat":
            out = out[:, inputs["input_ids"].shape[1]:]  # the continuation only
        texts = self.processor.batch_decode(out, skip_special_tokens=True)
        return [" ".join(t.split()) for t in texts]

    def describe(self, paths: list[str]) -> list[str]:
        """One description per media file."""
        frames = [self._frames(p) for p in paths]
        if self.kind == "caption":
            flat = [im for fr in frames for im in fr]
            kwargs = {"text": [self.prompt] * len(flat)} if self.prefix else {}
            captions = self._generate(self.processor(images=flat, return_tensors="pt", **kwargs))
            out, start = [], 0
            for fr in frames:
                mine = list(dict.fromkeys(c for c in captions[start:start + len(fr)] if c))
                out.append(". ".join(mine))
                start += len(fr)
            return out
        texts = []
        for fr in frames:
            content = [{"type": "image"} for _ in fr] + [{"type": "text", "text": self.prompt}]
            texts.append(self.processor.apply_chat_template(
                [{"role": "user", "content": content}], add_generation_prompt=True))
        inputs = self.processor(text=texts, images=[im for fr in frames for im in fr],
                                padding=True, return_tensors="pt")
        return self._generate(inputs)
