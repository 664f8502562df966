"""The model-facing side of the index: an `Embedder` turns frames into what the index stores and
queries into vectors that score against it.

The index never touches a model directly; it talks to this small protocol. One adapter,
`ModelEmbedder`, serves every model: a trained mumur `RetrievalModel`, and any CLIP checkpoint,
which `loading.clip_retrieval_model` turns into a `RetrievalModel` with a `meanP` head (CLIP4Clip's mean
pooling with identity projections, so its scores are CLIP's cosines). Arrays cross this boundary as
numpy float32 (faiss style): shapes and dtypes are checked here, torch stays inside the adapter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from ..errors import ConfigError, ModelLoadError
from .layout import POOLED_KEY, IndexLayout

__all__ = [
    "Embedder",
    "FrameStates",
    "ModelEmbedder",
    "embed_image_queries",
]


@dataclass
class FrameStates:
    """Query-independent arrays the index stores for a batch of media items.

    Attributes:
        pooled: (B, P) float32; the stage-1 vectors (each L2-normalised) in `layout.pooled` order.
        state: (B, T, Ds) float32; the per-frame arrays the exact scorer reads, concatenated along
            the last axis in `layout.state` order.
    """

    pooled: np.ndarray
    state: np.ndarray


@runtime_checkable
class Embedder(Protocol):
    """What the index needs from a model.

    Attributes:
        identity: stable string naming the weights; stored by the index, checked on every open.
        source: the name or path `load_embedder` reloads this embedder from.
        dim: query vector size d (and the size of each stage-1 vector).
        layout: the stored arrays and the query branches they serve (`IndexLayout`).
        num_frames: frames sampled per video.
        frame_sampling: "uniform" (always for indexing).
        image_size: side of the square pixel input.
    """

    identity: str
    source: str
    dim: int
    layout: IndexLayout
    num_frames: int
    frame_sampling: str
    image_size: int

    def preprocess(self, images: list) -> object:
        """List of PIL images -> torch (n, 3, S, S) pixel tensor."""

    def encode_frames(self, pixel_values) -> object:
        """Torch (n, 3, S, S) -> torch (n, Dv) raw frame features."""

    def frame_states(self, features: np.ndarray, mask: np.ndarray,
                     paths: list[str] | None = None) -> FrameStates:
        """(B, T, Dv) features and (B, T) mask -> `FrameStates` laid out as `layout`; `paths`
        are the items' files (a model that reads visual descriptions describes them)."""

    def encode_queries(self, texts: list[str], branch: str,
                       language_code: str | None = None) -> np.ndarray:
        """Texts -> (N, d) float32, L2-normalised, through `branch` (one of `layout.branches`);
        `language_code` is the texts' code for a text encoder that needs one (NLLB-CLIP)."""

    def score(self, queries: np.ndarray, state: np.ndarray, mask: np.ndarray,
              branch: str) -> tuple[np.ndarray, np.ndarray]:
        """(N, d) queries x (B, T, Ds) stored states -> (scores (N, B), attention (N, B, T)),
        reading `branch`'s arrays."""


def _check_2d(name: str, array: np.ndarray, width: int | None = None) -> np.ndarray:
    array = np.asarray(array, dtype=np.float32)
    if array.ndim != 2 or (width is not None and array.shape[1] != width):
        raise ValueError(f"{name} must have shape (n, {width}), got {array.shape}")
    return array


def embed_image_queries(embedder: Embedder, paths: list[str], branch: str) -> np.ndarray:
    """Embed images as queries through the vision side: one frame each, pooled vector.

    Args:
        embedder: the index's embedder.
        paths: image files (a video works too: its sampled frames are pooled as at index time).
        branch: whose stage-1 space to use (one of `embedder.layout.branches`).

    Returns:
        (N, d) float32 L2-normalised pooled vectors, comparable by cosine with the index's
        stage-1 vectors of `branch`.
    """
    import torch

    from ..media.decode import read_frames

    columns = embedder.layout.pooled_columns(branch)
    rows = []
    for path in paths:
        frames = read_frames(path, embedder.num_frames, strategy="uniform")  # MediaDecodeError
        with torch.no_grad():
            pixels = embedder.preprocess(frames.frames)  # (T, 3, S, S)
            features = embedder.encode_frames(pixels).float().numpy()  # (T, Dv)
        mask = np.ones((1, features.shape[0]), dtype=bool)
        rows.append(embedder.frame_states(features[None], mask, [str(path)]).pooled[0, columns])
    return np.stack(rows).astype(np.float32)


def _probe_layout(head, branches: tuple[str, ...], frame_dim: int) -> IndexLayout:
    """The layout of `head`'s index arrays for `branches`, sharing what the branches share.

    An array is stored once when every branch gives exactly the same values on a random probe.
    The heads' maps are analytic in the frames, so two that differ as functions agree on a random
    input with probability zero; equal on the probe means equal everywhere (for these weights,
    which the index identity pins). This needs no declaration from the head: meanP shares
    everything, DCM its ``keys``, DCM with `share_branches` everything.
    """
    import torch

    g = torch.Generator().manual_seed(0)
    features = torch.randn(2, 3, frame_dim, generator=g)  # (B, T, Dv)
    mask = torch.tensor([[True, True, True], [True, True, False]])
    extra = {}
    if "descriptions" in head.item_inputs:  # LECCR: random description units
        extra = {"description_features": torch.randn(2, 2, head.config.text_dim_en, generator=g),
                 "description_mask": torch.ones(2, 2, dtype=torch.bool)}
    with torch.no_grad():
        ctx = head.contextualize(features, mask, extra)  # (B, T', d)
        mask = head.state_mask(mask)
        arrays = {"state": {b: head.index_state(ctx, mask, b) for b in branches},
                  "pooled": {b: {POOLED_KEY: head.pooled(ctx, mask, b)} for b in branches}}
    entries = {}
    for kind, per_branch in arrays.items():
        keys = sorted(per_branch[branches[0]])
        if any(sorted(per_branch[b]) != keys for b in branches):
            raise ConfigError(f"head {type(head).__name__}: index_state keys differ by branch")
        entries[kind] = []
        for key in keys:
            values = [per_branch[b][key] for b in branches]
            shared = all(torch.equal(values[0], v) for v in values[1:])
            for branch, value in zip(branches[:1] if shared else branches, values):
                entries[kind].append((IndexLayout.name(key, branch, shared), value.shape[-1]))
    return IndexLayout(branches, entries["state"], entries["pooled"])


class ModelEmbedder:
    """A `mumur.model.RetrievalModel` seen through the `Embedder` protocol.

    Serves every branch the model can query with (`RetrievalModel.query_branches()`: a text
    encoder and trained), never an untrained one. Stores, for each such branch,
    `head.index_state(ctx, mask, branch)` and `head.pooled(ctx, mask, branch)` after
    `head.contextualize`, arrays the branches share stored once (`_probe_layout`); scores with
    `head.score_index_state`, which equals `head.similarity` (for `mumur-dcm`, MuMUR eq. 1-5)
    exactly in eval mode.

    Args:
        model: a `RetrievalModel` with a vision encoder and at least one trained text branch.
        source: folder / checkpoint name the model is reloaded from (recorded in the index).
        text_source: paired text encoder given with a CLIP checkpoint (recorded), or None.
        kind: identity prefix ("mumur" for a trained model, "clip-meanpool" for a checkpoint).
    """

    def __init__(self, model, source: str, text_source: str | None = None, kind: str = "mumur"):
        if getattr(model, "vision", None) is None:
            raise ModelLoadError(f"model at {source} has no vision encoder; cannot index media")
        branches = model.query_branches()
        if not branches:
            raise ModelLoadError(f"model at {source} has no trained text branch with a text "
                                 f"encoder (train_branches="
                                 f"{model.config.head_config.train_branches}); cannot search")
        self.model = model.eval()
        self.head = model.head
        self.source = str(source)
        self.text_source = text_source
        self.num_frames = int(model.config.num_frames)
        self.frame_sampling = "uniform"
        self.image_size = int(model.image_size)
        self.dim = int(self.head.embed_dim)
        self.layout = _probe_layout(self.head, branches, int(model.vision.dim))
        self.identity = f"{kind}:{model.identity()}:{'+'.join(branches)}"
        self.kind = kind

    def preprocess(self, images):
        return self.model.vision.preprocess(images)

    @property
    def pixel_preprocessor(self):
        """The vision encoder's picklable transform (`ClipPreprocess`), run by decode workers."""
        return self.model.vision.preprocessor

    def encode_frames(self, pixel_values):
        return self.model.encode_frames(pixel_values)  # (n, Dv), no grad

    def frame_states(self, features: np.ndarray, mask: np.ndarray,
                     paths: list[str] | None = None) -> FrameStates:
        import torch

        from ..describe import description_inputs, needs_descriptions

        layout = self.layout
        if needs_descriptions(self.model) and paths is None:
            raise ModelLoadError(f"model at {self.source} reads visual descriptions of the "
                                 "items (LECCR): give the media paths")
        with torch.no_grad():
            f = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))  # (B, T, Dv)
            m = torch.from_numpy(np.asarray(mask, dtype=bool))  # (B, T)
            extra = description_inputs(self.model, paths) if paths is not None else {}
            ctx = self.head.contextualize(f, m, extra)  # (B, T', d)
            m = self.head.state_mask(m)  # (B, T')
            # A shared name is computed by the first branch; a "b/..." name by its branch b.
            owners = {n.rpartition("/")[0] or layout.branches[0]
                      for n, _ in layout.state + layout.pooled}
            state = {b: self.head.index_state(ctx, m, b) for b in owners}
            pooled = {b: {POOLED_KEY: self.head.pooled(ctx, m, b)} for b in owners}

            def gather(arrays, entries):
                parts = []
                for name, _ in entries:
                    owner, _, key = name.rpartition("/")
                    parts.append(arrays[owner or layout.branches[0]][key])
                return torch.cat(parts, dim=-1).float().numpy()

            packed = gather(state, layout.state)  # (B, T, Ds)
            vectors = gather(pooled, layout.pooled)  # (B, P)
        return FrameStates(vectors, packed)

    def vision_record(self) -> dict:
        """What an index records of the vision tower so that text search can skip loading it
        (`mumur.encoders.recorded.encoder_record`)."""
        from ..encoders.recorded import encoder_record

        return encoder_record(self.model.vision)

    def code_families(self) -> dict[str, str | None]:
        """Per served branch, the language-code family its text encoder needs ("nllb") or None."""
        return {b: self.model.language_code_family(b) for b in self.layout.branches}

    def encode_queries(self, texts: list[str], branch: str,
                       language_code: str | None = None) -> np.ndarray:
        self.layout.state_columns(branch)  # ValueError for a branch the index does not serve
        q = self.model.encode_text(list(texts), branch=branch,
                                   language_code=language_code)  # (N, d), no grad
        return _check_2d("queries", q.float().numpy(), self.dim)

    def match_probability(self, scores: np.ndarray, branch: str) -> np.ndarray | None:
        """A sigmoid-trained checkpoint's own match probability of `branch`'s scores.

        For a SigLIP-family checkpoint indexed as is (`clip_retrieval_model`), a score is the
        cosine of the query with an item's (frame-mean) image embedding, and SigLIP reports
        ``sigmoid(cos * exp(logit_scale) + logit_bias)`` with the checkpoint's own scalars
        (Zhai et al. 2023, the sigmoid loss's logit; `mumur.encoders.siglip`). For an image that
        is exactly the model's probability; for a video it is applied to the mean-pooled frames'
        cosine, a use the model was not trained for (docs/deviations.md).

        Args:
            scores: (...,) scores from `score` or the search engine.
            branch: the query branch they came from.

        Returns:
            Probabilities shaped as `scores`, or None when the scores are not such a checkpoint's
            cosines (CLIP-family towers, which have no bias; a trained head's scores).
        """
        import torch

        tower = self.model.encoders().get(f"text_{branch}")
        if self.kind != "clip-meanpool" or getattr(tower, "logit_bias", None) is None:
            return None
        cosine = torch.from_numpy(np.asarray(scores, dtype=np.float32))
        return tower.match_probability(cosine).numpy()

    def score(self, queries, state, mask, branch):
        import torch

        columns = self.layout.state_columns(branch)
        state = np.asarray(state)
        if state.ndim != 3 or state.shape[-1] != self.layout.state_dim:
            raise ValueError(f"state must have shape (B, T, {self.layout.state_dim}), got "
                             f"{state.shape}")
        parts = {key: torch.from_numpy(np.ascontiguousarray(state[..., cols], dtype=np.float32))
                 for key, cols in columns.items()}
        with torch.no_grad():
            q = torch.from_numpy(_check_2d("queries", queries, self.dim))  # (N, d)
            m = torch.from_numpy(np.asarray(mask, dtype=bool))  # (B, T)
            scores, attention = self.head.score_index_state(q, parts, m, branch)
        return scores.float().numpy(), attention.float().numpy()


    def compact_state(self, state: np.ndarray, branch: str, shared: dict | None = None,
                      frames: bool = False):
        """`branch`'s stored arrays in the head's in-memory search form
        (`head.compact_index_state`; for `mumur-dcm`: keys + per-item Grams, heads/dcm_fast.py).

        Args:
            state: (B, T, Ds) stored states (float32 or float16, as loaded).
            branch: the query branch.
            shared: cache of the contiguous copies of arrays every branch shares (the DCM keys),
                so two branches hold one copy.
            frames: also return the head's per-frame stage-1 vectors (`head.frame_vectors`,
                (B, T, d) numpy, or None when the head has none): `(compact, frames)`.
        """
        import torch

        shared = {} if shared is None else shared
        parts = {}
        for name, _ in self.layout.state:
            owner, _, key = name.rpartition("/")
            if owner not in ("", branch):
                continue
            cols = self.layout.state_columns(branch)[key]
            if owner:  # the branch's own array: a strided view, read block by block
                parts[key] = torch.from_numpy(state[..., cols])
            else:
                if name not in shared:
                    shared[name] = torch.from_numpy(np.ascontiguousarray(state[..., cols]))
                parts[key] = shared[name]
        with torch.no_grad():
            compact = self.head.compact_index_state(parts, branch)
            if frames:
                frames = self.head.frame_vectors(parts, branch)
                return compact, (None if frames is None else frames.numpy())
            return compact

    def compact_scorer(self, queries, branch: str):
        """`head.compact_scorer` of torch (N, d) queries: scores blocks of `compact_state`."""
        return self.head.compact_scorer(queries, branch)
