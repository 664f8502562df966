"""Property-based tests (hypothesis) of what users rely on: metrics against brute force on tied
inputs, frame picking for any duration / fps / frame count / GOP, the published query and
language patterns against the validators, config JSON round trips. Bounded (max_examples) so the
default suite stays fast; `HYPOTHESIS_PROFILE=long` runs each 20x longer."""

from __future__ import annotations

import dataclasses
import json
import os
import re
from fractions import Fraction
from types import SimpleNamespace

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from test_metrics import brute_t2v, brute_v2t_caption, brute_v2t_group  # noqa: E402

from mumur.config import merge_patch  # noqa: E402
from mumur.errors import ConfigError, QueryError  # noqa: E402
from mumur.eval.metrics import ranks_to_metrics, retrieval_ranks  # noqa: E402
from mumur.index.language import LANGUAGE_PATTERN, normalize_language  # noqa: E402
from mumur.index.search import MAX_QUERY_CHARS, QUERY_PATTERN, _validate  # noqa: E402
from mumur.media.video import _pick_by_seeking, _pick_sequential, sample_frame_times  # noqa: E402
from mumur.model import list_models  # noqa: E402
from mumur.model.spec import ModelConfig, head_class  # noqa: E402

settings.register_profile("default", max_examples=40, deadline=None)
settings.register_profile("long", max_examples=800, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


# ---- metrics ----------------------------------------------------------------------------------

@st.composite
def tied_problems(draw):
    """A small similarity matrix with few distinct values (many ties, some NaN) + ground truth."""
    n_items = draw(st.integers(1, 9))
    n_captions = draw(st.integers(1, 14))
    levels = draw(st.integers(1, 4))
    values = draw(st.lists(st.integers(0, levels), min_size=n_captions * n_items,
                           max_size=n_captions * n_items))
    sim = np.array(values, dtype=float).reshape(n_captions, n_items)
    if draw(st.booleans()):
        sim[sim == levels] = np.nan  # NaN counts as -inf
    caption_item = np.array(draw(st.lists(st.integers(0, n_items - 1), min_size=n_captions,
                                          max_size=n_captions)))
    return sim, caption_item


@given(tied_problems(), st.integers(1, 5), st.integers(1, 5))
def test_ranks_match_brute_force_on_tied_inputs(problem, caption_block, item_block):
    sim, caption_item = problem
    reference = np.where(np.isnan(sim), -np.inf, sim)
    for protocol, brute in (("caption", brute_v2t_caption), ("group", brute_v2t_group)):
        ranks = retrieval_ranks(sim, caption_item, protocol, caption_block, item_block)
        assert ranks.t2v.tolist() == brute_t2v(reference, caption_item).tolist()
        assert ranks.v2t.tolist() == brute(reference, caption_item).tolist()
    # Pessimistic ties: a constant scorer gets the worst rank, never the best.
    flat = retrieval_ranks(np.zeros_like(sim), caption_item)
    assert (flat.t2v == sim.shape[1]).all()


@given(st.lists(st.integers(1, 50), min_size=1, max_size=40))
def test_metric_summary_of_ranks(ranks):
    m = ranks_to_metrics(np.array(ranks), 50)
    r = np.array(ranks)
    assert m["R1"] <= m["R5"] <= m["R10"] <= 100.0
    assert m["R10"] == pytest.approx(100.0 * sum(x <= 10 for x in ranks) / len(ranks))
    assert m["MdR"] == float(np.median(r)) and m["MnR"] == pytest.approx(r.mean())


# ---- frame picking ----------------------------------------------------------------------------

class _FakeVideo:
    """A container of `n` frames at `fps`, a keyframe every `gop` frames, pts in 1/90000 s:
    `seek` lands on the keyframe at or before the offset (backward), `decode` goes on from
    there. Frames carry their index."""

    def __init__(self, n: int, fps: float, gop: int):
        self.stream = SimpleNamespace(time_base=Fraction(1, 90000), thread_type=None)
        self.pts = [round(i * 90000 / fps) for i in range(n)]
        self.gop, self.pos = gop, 0

    def seek(self, offset, stream=None, backward=True, any_frame=False):
        keys = [i for i in range(0, len(self.pts), self.gop) if self.pts[i] <= offset]
        self.pos = keys[-1] if keys else 0

    def decode(self, stream=None):
        while self.pos < len(self.pts):
            self.pos += 1
            yield SimpleNamespace(pts=self.pts[self.pos - 1], index=self.pos - 1)


@given(n=st.integers(1, 400), fps=st.floats(0.5, 120.0), gop=st.integers(1, 60),
       num_frames=st.integers(1, 40), strategy=st.sampled_from(["uniform", "random"]),
       seed=st.integers(0, 2**16))
def test_picked_frames_for_any_duration_fps_and_count(n, fps, gop, num_frames, strategy, seed):
    video = _FakeVideo(n, fps, gop)
    duration = n / fps
    targets = sample_frame_times(duration, num_frames, strategy, seed)
    assert len(targets) == num_frames and targets == sorted(targets)
    seg = duration / num_frames
    for i, t in enumerate(targets):  # one target inside each of the equal segments
        assert i * seg - 1e-9 <= t <= (i + 1) * seg + 1e-9
    times = [p / 90000 for p in video.pts]
    # Brute force: the first frame at or after each target, else the last frame.
    expected = [next((j for j, tj in enumerate(times) if tj >= t - 1e-6), n - 1) for t in targets]
    for pick in (_pick_by_seeking, _pick_sequential):
        video.pos = 0
        picked, n_decoded = pick("fake.mp4", video, video.stream, 0.0, fps, targets, 1e-6, None)
        assert [frame.index for _, frame in picked] == expected, pick.__name__
        assert [t for t, _ in picked] == pytest.approx([times[j] for j in expected])
        assert n_decoded >= 1


# ---- published patterns == validators ---------------------------------------------------------

_QUERY_CHARS = st.characters(codec="utf-8") | st.sampled_from(
    ["\x00", "\x01", "\x1f", "\t", "\n", "\r", "\x7f", "\x85", "\xa0", "\u2028", "\u3000",
     "\ufeff", " ", "a", "é", "狗"])


@given(st.text(_QUERY_CHARS, min_size=0, max_size=12) | st.text(max_size=MAX_QUERY_CHARS + 2))
def test_query_pattern_accepts_exactly_what_search_accepts(query):
    by_schema = 1 <= len(query) <= MAX_QUERY_CHARS and re.fullmatch(QUERY_PATTERN, query)
    try:
        text = _validate(query, 10, None)
    except QueryError:
        assert not by_schema
    else:
        assert by_schema and text == query.strip() and text


@given(st.from_regex(LANGUAGE_PATTERN, fullmatch=True).filter(lambda s: len(s) <= 35)
       | st.text(max_size=12))
def test_language_pattern_accepts_exactly_the_codes_search_accepts(code):
    by_schema = 2 <= len(code) <= 35 and re.fullmatch(LANGUAGE_PATTERN, code)
    try:
        normalize_language(code)
    except QueryError:
        assert not by_schema
    else:
        assert by_schema or code != code.strip()  # the Python API also trims spaces


# ---- config round trips -----------------------------------------------------------------------

def _field_values(field: dataclasses.Field):
    default = field.default if field.default is not dataclasses.MISSING else \
        field.default_factory()
    if isinstance(default, bool):
        return st.booleans()
    if isinstance(default, int):
        return st.sampled_from([1, 2, 4, 8, 16, 32, 64, 512])
    if isinstance(default, float):
        return st.floats(0.0, 0.99) | st.floats(-1e6, 1e6)
    if isinstance(default, tuple):
        return st.sampled_from([("en",), ("ml",), ("en", "ml")])
    if isinstance(default, dict):
        return st.dictionaries(st.sampled_from(["en", "ml", "distill"]), st.floats(0.0, 10.0))
    if field.name == "temporal":
        return st.sampled_from(["none", "pos", "transformer"])
    return st.just(default)


@st.composite
def model_configs(draw):
    head = draw(st.sampled_from(list_models()))
    cls = head_class(head).config_class
    fields = [f for f in dataclasses.fields(cls)]
    chosen = draw(st.lists(st.sampled_from(fields), unique_by=lambda f: f.name, max_size=6))
    overrides = {f.name: draw(_field_values(f)) for f in chosen}
    try:
        head_config = cls(**overrides)
        return ModelConfig(head=head, head_config=head_config,
                           vision=draw(st.none() | st.text(max_size=8)),
                           text_ml=draw(st.none() | st.just("usem3")),
                           num_frames=draw(st.integers(1, 64)),
                           frame_sampling=draw(st.sampled_from(["uniform", "random"])))
    except ConfigError:
        assume(False)


@given(model_configs())
def test_model_config_json_round_trip(config):
    text = json.dumps(config.to_dict())
    assert ModelConfig.from_dict(json.loads(text)) == config


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=4),
                     lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(st.text(max_size=3), inner, max_size=3), max_leaves=12)


@given(st.dictionaries(st.text(max_size=3), _JSON, max_size=4),
       st.dictionaries(st.text(max_size=3), _JSON, max_size=4))
def test_merge_patch_laws(target, patch):
    before = json.dumps([target, patch], sort_keys=True)
    once = merge_patch(target, patch)
    assert json.dumps([target, patch], sort_keys=True) == before  # inputs untouched
    assert merge_patch(once, patch) == once  # idempotent
    assert merge_patch(target, {}) == target
    for key, value in patch.items():  # null deletes, objects merge, anything else replaces
        if value is None:
            assert key not in once
        elif not isinstance(value, dict):
            assert once[key] == value
