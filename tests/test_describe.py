"""`mumur.describe`: the world's descriptions and their degraded variant, the persistent resumable
cache, Hugging Face captioner / chat VLM backends on tiny random models built and saved here, and
the description inputs of a head that reads them."""

from __future__ import annotations

import json

import pytest
import torch

from mumur.describe import (
    DEFAULT_PROMPT,
    describe_paths,
    description_inputs,
    load_describer,
)
from mumur.describe.world import corrupt_scene, world_entry
from mumur.errors import ConfigError
from mumur.translate.cache import TranslationCache

TINY = {"videos": 6, "images": 3, "val_fraction": 0.0, "test_fraction": 0.0, "multi_shot": 0.5}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from mumur.data.synthetic import SynthConfig, generate

    out = tmp_path_factory.mktemp("describe_world")
    generate(out, SynthConfig(seed=11, **TINY), workers=1, progress=False)
    items = json.loads((out / "manifest.json").read_text())["items"]
    return out, [str(out / it["path"]) for it in items], items


def test_world_descriptions_are_the_manifests(world):
    _, paths, items = world
    backend = load_describer("world-descriptions")
    assert backend.identity == "world-descriptions" and backend.prompt == ""
    assert backend.describe(paths) == [it["description"] for it in items]


def test_degraded_descriptions_change_the_set_share_of_facts(world):
    from mumur.data.synthetic.world import Scene, SceneObject

    _, paths, _ = world
    clean = load_describer("world-descriptions").describe(paths)
    none = load_describer("world-descriptions-degraded:share=0").describe(paths)
    assert none == clean  # share 0 corrupts nothing
    every = load_describer("world-descriptions-degraded:share=1,mode=swap").describe(paths)
    assert all(a != b for a, b in zip(every, clean))  # the place alone always changes
    again = load_describer("world-descriptions-degraded:share=1,mode=swap").describe(paths)
    assert again == every  # seeded per item: stable between runs
    # Facts corrupted at the set rate: 1000 one-object scenes, 30% swap share.
    import numpy as np

    obj = SceneObject("circle", "red", "small", "moves left", None, 0, 0, 0)
    scene = Scene("video", "beach", (obj,))
    rng = np.random.default_rng(0)
    changed = [corrupt_scene(scene, 0.3, "swap", rng) for _ in range(1000)]
    share_place = np.mean([s.place != "beach" for s in changed])
    share_object = np.mean([s.objects[0] != obj for s in changed])
    assert 0.25 < share_place < 0.35 and 0.25 < share_object < 0.35
    two = Scene("video", "beach", (obj, obj))
    dropped = [corrupt_scene(two, 1.0, "drop", rng) for _ in range(20)]
    assert all(len(s.objects) == 1 for s in dropped)  # the last object is kept (swapped)


def test_world_backend_refuses_media_outside_a_world(tmp_path):
    stray = tmp_path / "x.jpg"
    stray.write_bytes(b"not in a world")
    with pytest.raises(ConfigError, match="not an item of a synthetic world"):
        world_entry(stray)
    with pytest.raises(ConfigError, match="unknown describer"):
        load_describer("gpt-vision")
    with pytest.raises(ConfigError, match="share"):
        load_describer("world-descriptions-degraded:share=2")


class _Counting:
    """A backend that counts what it is asked to describe and can fail after some batches."""

    identity, prompt = "counting@1", "p"

    def __init__(self, fail_after: int | None = None):
        self.seen: list[str] = []
        self.fail_after = fail_after

    def describe(self, paths):
        if self.fail_after is not None and len(self.seen) >= self.fail_after:
            raise RuntimeError("killed")
        self.seen.extend(paths)
        return [f"about {p.rsplit('/', 1)[-1]}" for p in paths]


def test_cache_is_persistent_and_resumes_after_a_crash(world, tmp_path):
    _, paths, _ = world
    db = tmp_path / "descriptions.sqlite"
    crashing = _Counting(fail_after=4)
    with TranslationCache(db) as cache, pytest.raises(RuntimeError, match="killed"):
        describe_paths(paths, crashing, cache, batch_size=2)
    assert len(crashing.seen) == 4  # two batches committed before the crash
    resumed = _Counting()
    with TranslationCache(db) as cache:
        texts = describe_paths(paths + paths[:1], resumed, cache, batch_size=2)
    assert sorted(resumed.seen) == sorted(paths[4:])  # only the rest is described
    assert texts[-1] == texts[0] and len(texts) == len(paths) + 1
    other = _Counting()
    other.prompt = "another prompt"  # the key includes the prompt
    with TranslationCache(db) as cache:
        describe_paths(paths[:2], other, cache)
    assert len(other.seen) == 2


@pytest.fixture(scope="module")
def tiny_vlms(tmp_path_factory):
    """A tiny random BLIP captioner and a tiny random LLaVA chat VLM saved to folders."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (
        BertTokenizer,
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessor,
        BlipProcessor,
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
        PreTrainedTokenizerFast,
    )

    root = tmp_path_factory.mktemp("vlms")
    tiny = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=2)
    vision = dict(tiny, image_size=30, patch_size=15)
    words = "a the red blue circle square video picture of on beach grass is".split()
    vocab = {w: i for i, w in enumerate(
        ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]"] + words)}
    torch.manual_seed(0)
    blip = BlipForConditionalGeneration(BlipConfig(
        vision_config=vision, projection_dim=32,
        text_config=dict(tiny, vocab_size=len(vocab), encoder_hidden_size=32, bos_token_id=5,
                         pad_token_id=0, sep_token_id=3, eos_token_id=3,
                         max_position_embeddings=64))).eval()
    blip.save_pretrained(root / "blip")
    BlipProcessor(image_processor=BlipImageProcessor(size={"height": 30, "width": 30}),
                  tokenizer=BertTokenizer(vocab=vocab, bos_token="[DEC]")
                  ).save_pretrained(root / "blip")

    chat_vocab = {w: i for i, w in enumerate(
        ["<pad>", "<unk>", "<s>", "</s>", "<image>", "USER:", "ASSISTANT:"] + words)}
    tok = Tokenizer(models.WordLevel(chat_vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>",
                                        unk_token="<unk>", bos_token="<s>", eos_token="</s>",
                                        extra_special_tokens={"image_token": "<image>"})
    llava = LlavaForConditionalGeneration(LlavaConfig(
        vision_config=CLIPVisionConfig(**vision, projection_dim=32),
        text_config=LlamaConfig(**tiny, vocab_size=len(chat_vocab), num_key_value_heads=2,
                                max_position_embeddings=128, pad_token_id=0, bos_token_id=2,
                                eos_token_id=3),
        image_token_index=chat_vocab["<image>"], vision_feature_layer=-1,
        vision_feature_select_strategy="default")).eval()
    llava.save_pretrained(root / "llava")
    template = ("{% for m in messages %}USER: {% for c in m['content'] %}{% if c['type'] == "
                "'image' %}<image> {% else %}{{ c['text'] }} {% endif %}{% endfor %}{% endfor %}"
                "{% if add_generation_prompt %}ASSISTANT:{% endif %}")
    LlavaProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": 30},
                                                      crop_size={"height": 30, "width": 30}),
                   tokenizer=tokenizer, patch_size=15, vision_feature_select_strategy="default",
                   chat_template=template, num_additional_image_tokens=1
                   ).save_pretrained(root / "llava")
    return root


def test_hf_captioner_and_chat_vlm_describe_images_and_videos(world, tiny_vlms, tmp_path):
    _, paths, items = world
    chosen = [p for p, it in zip(paths, items) if it["type"] == "video"][:2] + [
        p for p, it in zip(paths, items) if it["type"] == "image"][:1]
    caption = load_describer(f"hf-caption:{tiny_vlms / 'blip'},frames=2,max_new_tokens=4")
    chat = load_describer(f"hf-chat:{tiny_vlms / 'llava'},frames=2,max_new_tokens=4")
    assert chat.prompt == DEFAULT_PROMPT and caption.prompt == ""
    assert "frames=2" in chat.identity and chat.identity != caption.identity
    vocab = set("a the red blue circle square video picture of on beach grass is .".split())
    for backend in (caption, chat):
        with TranslationCache(tmp_path / "d.sqlite") as cache:
            texts = describe_paths(chosen, backend, cache, batch_size=2)
            assert len(texts) == 3 and all(texts)  # random weights, but real generated words
            assert all(set(t.replace(".", " . ").split()) <= vocab for t in texts)
            assert describe_paths(chosen, _Counting(), cache) != texts  # other identity
            fresh = load_describer(f"hf-{backend.kind}:{backend.source},frames=2,"
                                   "max_new_tokens=4")
            assert describe_paths(chosen, fresh, cache) == texts
            assert fresh._loaded is None  # all cached: the weights were never loaded
    # The chat prompt reaches the model: the image tokens and the prompt words are in the input.
    text = chat.processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "x"}]}],
        add_generation_prompt=True)
    assert text.startswith("USER: <image>") and text.endswith("ASSISTANT:")


def test_description_inputs_pad_units_per_item(world, tiny_clip_checkpoint):
    from mumur.encoders import load_encoder
    from mumur.heads.slots import description_units
    from mumur.model import create_model

    _, paths, items = world
    text = load_encoder(str(tiny_clip_checkpoint[0]), modality="text")
    model = create_model("leccr", text_en=text, embed_dim=16, frame_dim=8, text_dim_ml=8,
                         num_heads=2)
    out = description_inputs(model, paths)
    feats, mask = out["description_features"], out["description_mask"]
    assert feats.shape[:2] == mask.shape and feats.shape[0] == len(paths)
    counts = [len(description_units(it["description"])) for it in items]
    assert mask.sum(dim=1).tolist() == counts and max(counts) > 1
    assert torch.all(feats[~mask] == 0)
    first = description_units(items[0]["description"])[0]
    assert torch.allclose(feats[0, 0], text([first])[0], atol=1e-5)  # the shared text tower
    base = create_model("mumur-dcm", text_en=text, embed_dim=16, frame_dim=8, text_dim_ml=8)
    assert description_inputs(base, paths) == {}  # a head without descriptions gets none


def test_describe_cli_writes_descriptions_and_reuses_the_cache(world, tmp_path):
    from typer.testing import CliRunner

    from mumur.cli import app

    root, _, items = world
    out = tmp_path / "d.json"
    args = ["describe", "--dataset", "synthetic", "--root", str(root), "--split", "train",
            "--backend", "world-descriptions-degraded:share=0.5", "--out", str(out),
            "--cache", str(tmp_path / "c.sqlite"), "--quiet"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["describer"].startswith("world-descriptions-degraded:share=0.5")
    assert set(data["descriptions"]) == {it["id"] for it in items if it["split"] == "train"}
    bad = CliRunner().invoke(app, args[:7] + ["--backend", "nope", "--quiet"])
    assert bad.exit_code != 0 and isinstance(bad.exception, ConfigError)
    assert "unknown describer" in str(bad.exception)
