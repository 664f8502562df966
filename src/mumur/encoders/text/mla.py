"""MLA: a frozen CLIP text tower with per-language acquirers (Zhang et al., MLMM/M-CLIP/MLA
survey §3.2.2, eq. 6-8).

The language acquisition encoder Psi' keeps every weight of the CLIP text encoder Psi fixed and
adds, for each target language l,

* a group of *language acquirers* theta_LA^l: one bottleneck MLP after every transformer layer,
  applied as a residual (`h <- h + up(gelu(down(h)))`);
* and, shared by all target languages, a multilingual token embedding table theta_emb (with its
  own tokenizer) that replaces CLIP's English token embeddings.

English keeps the original path (CLIP tokenizer, embeddings, layers, no acquirer), so English
queries give exactly the frozen tower's embeddings (the property the survey credits MLA with:
"maintains the English performance of CLIP"). Every other language is routed through its own
acquirers: by the language code the caller gives (`with encoder.language("de")`, codes are
ISO 639-1 tags, spelt as the `m2m100` family of `mumur.translate.codes` spells them), else by
language identification (py3langid restricted to the encoder's languages, best guess). A language
without acquirers (a held-out language queried zero-shot) goes through those of `fallback` when
one is set, else through those of the acquirer language py3langid finds closest to its texts
(Portuguese through Spanish's, say).

Deviations (docs/deviations.md): the multilingual embedding is initialised from CLIP's own token
embeddings (each multilingual sub-word the mean of CLIP's embeddings of its BPE pieces) instead of
mBERT's; the acquirers' up-projection starts at zero (Psi' = Psi at initialisation) where the
paper initialises them randomly.

Folder written by `save`, read by `load_encoder(folder, modality="text")`::

    mumur_encoder.json  {"kind": "mla-text", "languages", "bottleneck", "fallback", "source"}
    clip/               the frozen CLIP text tower (its own encoder folder)
    tokenizer.json ...  the multilingual tokenizer
    mla.safetensors     the multilingual embedding table and every language's acquirers
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from mumur.encoders.base import read_json_file, resolve_file, write_encoder_file
from mumur.encoders.text.base import TextEncoder, load_tokenizer, pool_hidden_states
from mumur.encoders.text.clip import ClipTextEncoder
from mumur.errors import EncoderLoadError

__all__ = ["MLA_FILE", "LanguageAcquirer", "MlaTextEncoder", "identify_languages",
           "load_mla_text"]

MLA_FILE = "mla.safetensors"
_CLIP_FOLDER = "clip"
_identifiers: dict[tuple[str, ...], object] = {}
_identifier_lock = threading.Lock()


def identify_languages(texts: Sequence[str], languages: Sequence[str]) -> list[str]:
    """The most likely language of each text among `languages` (py3langid, no threshold: the
    router must choose a path for every query).

    Raises:
        EncoderLoadError: py3langid is not installed.
    """
    key = tuple(sorted(set(languages)))
    with _identifier_lock:
        if key not in _identifiers:
            try:
                from py3langid.langid import MODEL_FILE, LanguageIdentifier
            except ImportError as exc:
                raise EncoderLoadError("MLA routing without a language code needs py3langid "
                                       "(pip install py3langid)") from exc
            identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
            known = set(identifier.nb_classes)
            identifier.set_languages([lang for lang in key if lang in known])
            _identifiers[key] = identifier
        identifier = _identifiers[key]
    return [str(identifier.classify(t)[0]) for t in texts]


class LanguageAcquirer(nn.Module):
    """One language's acquirers: a bottleneck MLP after each of `layers` transformer layers.

    Args:
        layers: transformer layers of the frozen tower.
        hidden: its hidden size.
        bottleneck: the MLP's inner width.
    """

    def __init__(self, layers: int, hidden: int, bottleneck: int):
        super().__init__()
        self.down = nn.ModuleList(nn.Linear(hidden, bottleneck) for _ in range(layers))
        self.up = nn.ModuleList(nn.Linear(bottleneck, hidden) for _ in range(layers))
        for up in self.up:  # residual branch starts at zero: Psi' = Psi at initialisation
            nn.init.zeros_(up.weight)
            nn.init.zeros_(up.bias)

    def forward(self, hidden: torch.Tensor, layer: int) -> torch.Tensor:
        """`(n, L, H)` states after transformer layer `layer` -> `(n, L, H)`."""
        return hidden + self.up[layer](nn.functional.gelu(self.down[layer](hidden)))


class MlaTextEncoder(TextEncoder):
    """Language acquisition encoder Psi' around a frozen `ClipTextEncoder` Psi (module docstring).

    Args:
        clip: the frozen CLIP text encoder (English path; its layers serve every language).
        tokenizer: the multilingual tokenizer (right padding, `</s>` last: EOS pooling).
        languages: target languages, one acquirer group each ("en" is never one).
        bottleneck: acquirer inner width.
        fallback: the acquirers used for a language without its own (None: the acquirer
            language identified as closest to each text).
        source: name recorded in the identity.
    """

    kind = "mla-text"
    code_family = "m2m100"  # ISO 639-1 tags ("de", "zh"): the family whose codes are those tags
    default_language_code = None

    def __init__(self, clip: ClipTextEncoder, tokenizer, languages: Sequence[str],
                 bottleneck: int = 64, fallback: str | None = None, source: str = "mla"):
        languages = [lang for lang in dict.fromkeys(languages) if lang != "en"]
        if not languages:
            raise ValueError("MLA needs at least one non-English language")
        max_length = min(int(tokenizer.model_max_length or clip.max_length), clip.max_length)
        super().__init__(source, clip.dim, tokenizer, max_length)
        self.clip = clip
        for p in self.clip.parameters():
            p.requires_grad_(False)
        text = clip.model.text_model
        self.hidden = int(text.config.hidden_size)
        self.num_layers = len(text.encoder.layers)
        self.bottleneck = int(bottleneck)
        self.embedding = nn.Embedding(len(tokenizer), self.hidden)  # theta_emb, shared
        self.acquirers = nn.ModuleDict({lang: LanguageAcquirer(self.num_layers, self.hidden,
                                                               self.bottleneck)
                                        for lang in languages})  # theta_LA per language
        self.fallback = fallback if fallback in self.acquirers else None
        self._language: str | None = None

    # -- routing ----------------------------------------------------------------------------
    @property
    def languages(self) -> list[str]:
        """English plus every language with acquirers."""
        return ["en", *self.acquirers]

    def _set_language_code(self, code: str | None) -> None:
        self._language = None if code is None else str(code).split("-")[0].lower()

    def route(self, texts: Sequence[str]) -> list[str]:
        """The path of each text: "en", or the language whose acquirers it goes through (the
        given language, else the identified one; a language without acquirers -> `fallback`, or
        the closest acquirer language)."""
        texts = list(texts)
        given = self._language
        found = [given] * len(texts) if given else identify_languages(texts, self.languages)
        lost = [i for i, lang in enumerate(found) if lang != "en" and lang not in self.acquirers]
        if lost and self.fallback is None:
            nearest = identify_languages([texts[i] for i in lost], list(self.acquirers))
            for i, lang in zip(lost, nearest):
                found[i] = lang
        return [lang if lang == "en" or lang in self.acquirers else self.fallback
                for lang in found]

    # -- forward ----------------------------------------------------------------------------
    def forward(self, texts: Sequence[str]) -> torch.Tensor:
        """Args: texts, list of n strings. Returns: `(n, dim)` un-normalised embeddings, each
        text through its routed path (grouped by path, order kept)."""
        texts = list(texts)
        routes = self.route(texts)
        out = torch.zeros(len(texts), self.dim, device=self.device)
        for lang in dict.fromkeys(routes):
            rows = [i for i, r in enumerate(routes) if r == lang]
            batch = [texts[i] for i in rows]
            out[rows] = (self.clip(batch).to(out.dtype) if lang == "en"
                         else self.forward_language(batch, lang).to(out.dtype))
        return out

    def forward_language(self, texts: Sequence[str], language: str) -> torch.Tensor:
        """Psi'(T) for texts all in `language` (one language per mini-batch in training):
        `(n, dim)` un-normalised, differentiable in theta_emb and theta_LA^language."""
        enc = self.tokenize(texts)
        return self.forward_tokens(enc["input_ids"], enc["attention_mask"], language)

    def forward_tokens(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                       language: str) -> torch.Tensor:
        """`(n, L)` multilingual token ids -> `(n, dim)`: shared embedding + CLIP's positions,
        each frozen layer followed by the language's acquirer, CLIP's final norm, the state of the
        last token (`</s>`, as CLIP pools its EOS token) and CLIP's projection."""
        text = self.clip.model.text_model
        if language not in self.acquirers:
            language = self.fallback or next(iter(self.acquirers))
        acquirer = self.acquirers[language]
        length = input_ids.shape[1]
        positions = torch.arange(length, device=input_ids.device)
        hidden = self.embedding(input_ids) + text.embeddings.position_embedding(positions)
        mask = _causal_padding_mask(attention_mask, hidden.dtype)  # (n, 1, L, L)
        for k, layer in enumerate(text.encoder.layers):
            hidden = layer(hidden, mask)
            hidden = hidden[0] if isinstance(hidden, tuple) else hidden  # (n, L, H)
            hidden = acquirer(hidden, k)
        hidden = text.final_layer_norm(hidden)
        pooled = pool_hidden_states(hidden, attention_mask, "eos")  # (n, H)
        return self.clip.model.text_projection(pooled)  # (n, dim)

    # -- parameters -------------------------------------------------------------------------
    def language_parameters(self, language: str) -> list[nn.Parameter]:
        """theta_LA of one language."""
        return list(self.acquirers[language].parameters())

    def add_language(self, language: str) -> LanguageAcquirer:
        """A fresh acquirer group for `language` (the cost of one more language); returns it."""
        if language == "en" or language in self.acquirers:
            raise ValueError(f"language {language!r} already has a path")
        self.acquirers[language] = LanguageAcquirer(self.num_layers, self.hidden,
                                                    self.bottleneck).to(self.device)
        return self.acquirers[language]

    # -- save -------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write `clip/`, the tokenizer, `mla.safetensors` and `mumur_encoder.json`."""
        from safetensors.torch import save_file

        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        self.clip.save(folder / _CLIP_FOLDER)
        self._save_tokenizer(folder)
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()
                 if not k.startswith("clip.")}
        save_file(state, str(folder / MLA_FILE))
        return write_encoder_file(folder, self.kind, source=self.source,
                                  languages=list(self.acquirers), bottleneck=self.bottleneck,
                                  fallback=self.fallback)


def _causal_padding_mask(attention_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Additive `(n, 1, L, L)` mask: CLIP's causal mask plus key padding."""
    n, length = attention_mask.shape
    blocked = torch.ones(length, length, dtype=torch.bool,
                         device=attention_mask.device).triu(1)  # (L, L) future tokens
    blocked = blocked[None] | ~attention_mask.bool()[:, None, :]  # (n, L, L)
    return torch.zeros(n, 1, length, length, dtype=dtype,
                       device=attention_mask.device).masked_fill(blocked[:, None],
                                                                 torch.finfo(dtype).min)


def load_mla_text(name_or_path: str, source: str | None = None) -> MlaTextEncoder:
    """Read a folder written by `MlaTextEncoder.save`.

    Raises:
        EncoderLoadError: missing files or weights of the wrong shape.
    """
    from safetensors.torch import load_file

    from mumur.encoders.text.clip import load_clip_text

    saved = read_json_file(name_or_path, "mumur_encoder.json")
    missing = [k for k in ("languages", "bottleneck") if k not in saved]
    if missing:
        raise EncoderLoadError(f"cannot load encoder {name_or_path!r}: mumur_encoder.json lacks "
                               f"{missing}")
    clip = load_clip_text(os.path.join(name_or_path, _CLIP_FOLDER))
    encoder = MlaTextEncoder(clip, load_tokenizer(name_or_path), saved["languages"],
                             saved["bottleneck"], saved.get("fallback"),
                             source or saved.get("source") or name_or_path)
    state = load_file(resolve_file(name_or_path, MLA_FILE))
    try:
        missing_keys, unexpected = encoder.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        raise EncoderLoadError(f"cannot load encoder {name_or_path!r}: MLA weights do not match "
                               f"the saved shapes: {exc}") from exc
    missing_keys = [k for k in missing_keys if not k.startswith("clip.")]
    if missing_keys or unexpected:
        raise EncoderLoadError(f"cannot load encoder {name_or_path!r}: MLA weights missing "
                               f"{missing_keys[:3]} / unexpected {unexpected[:3]}")
    return encoder.eval()
