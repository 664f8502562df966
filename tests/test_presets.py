"""Paper presets (`mumur presets`), transcribed paper tables and the paper-layout renderer."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from mumur.config import load_packaged_config
from mumur.errors import ConfigError
from mumur.eval.paper_table import (
    list_paper_tables,
    load_paper_table,
    our_values,
    render_paper_table,
)
from mumur.recipes.presets import (
    eval_config,
    experiment_config,
    get_preset,
    list_presets,
    resolve_paper_table,
    write_preset_configs,
)

SEEDS = Path("/work/shared/seeds")
SEED_FILES = {"mumur": "mumur.md", "leccr": "leccr.md", "mlmm": "mlmm-mclip-mla-clip4vla.md"}


# ------------------------------------------------------------------------------------- presets

@pytest.mark.parametrize("name", list_presets())
def test_every_preset_builds_valid_configs(name, tmp_path):
    from mumur.model import create_model
    from mumur.train.config import parse_experiment_config

    preset = get_preset(name)
    load_paper_table(preset.paper_table)  # the table it reports into exists
    if preset.trains:
        cfg = experiment_config(preset, tmp_path, cache_dir=tmp_path / "cache")
        parsed = parse_experiment_config(cfg, tmp_path)
        assert parsed.train.batch_size == preset.batch_size
        assert parsed.train.epochs == preset.epochs
        assert parsed.train.lr * parsed.train.min_lr_ratio == pytest.approx(preset.min_lr)
        # The model section builds (head options are valid create_model overrides).
        model = create_model(cfg["model"]["name"], **cfg["model"]["overrides"])
        assert model.config.num_frames == preset.num_frames
    else:
        with pytest.raises(ConfigError, match="trains nothing"):
            experiment_config(preset, tmp_path)
    ecfg = eval_config(preset, tmp_path / "model", tmp_path)
    assert ecfg["data"]["benchmark"] == preset.eval_benchmark
    assert ecfg["protocol"] in ("caption", "group")
    assert resolve_paper_table(name).id == preset.paper_table


def test_mumur_presets_follow_section_4_3():
    # MuMUR §4.3: frames / max length / batch / epochs; AdamW lr 1e-4, cosine decay to 1e-6;
    # French translations; 512-d DCM with dropout 0.4.
    expected = {"mumur-msrvtt9k": (16, 32, 32, 5), "mumur-msrvtt7k": (16, 32, 32, 5),
                "mumur-didemo": (42, 64, 16, 12), "mumur-charades": (42, 30, 16, 15)}
    for name, (frames, length, batch, epochs) in expected.items():
        p = get_preset(name)
        assert (p.num_frames, p.max_text_length, p.batch_size, p.epochs) == (
            frames, length, batch, epochs)
        assert (p.lr, p.min_lr, p.ml_languages) == (1e-4, 1e-6, ("fr",))
        head_options = load_packaged_config("models", p.model)["overrides"]
        assert head_options["embed_dim"] == 512 and head_options["dropout"] == 0.4
    assert get_preset("mumur-msvd").num_frames == 16
    assert get_preset("mumur-flickr30k").num_frames == 1


def test_ccr_and_mlmm_settings_keep_forbidden_captions_out_of_training(tmp_path):
    # LECCR §4.1: only vision-English pairs (+ MT) in training; human non-English at test.
    p = get_preset("leccr-multi30k-de")
    cfg = experiment_config(p, tmp_path)
    assert cfg["data"]["options"]["languages"] == ["en"]
    assert cfg["data"]["val_languages"] == ["en"]
    assert p.translate_languages == ("de",) and p.eval_languages == ("de",)
    assert (p.epochs, p.lr) == (40, 1e-5)
    # MLMM §3.1.5 fine-tune on English: English captions only, tested on every language.
    ft_en = experiment_config(get_preset("mlmm-ft-en-multi30k"), tmp_path)
    assert ft_en["train"]["en_only"] is True
    assert ft_en["data"]["options"]["languages"] == ["en"]
    assert get_preset("mlmm-ft-en-multi30k").eval_languages == ("en", "de", "fr", "cs")
    ft_all = experiment_config(get_preset("mlmm-ft-all-multi30k"), tmp_path)
    assert ft_all["train"]["ml_languages"] == ["de", "fr", "cs"]


def test_write_preset_configs(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    paths = write_preset_configs("mumur-didemo", tmp_path / "exp", root)
    train = json.loads(paths["train"].read_text())
    ev = json.loads(paths["eval"].read_text())
    assert Path(train["data"]["root"]).is_absolute()
    assert ev["model"] == str((tmp_path / "exp" / "run" / "best").resolve())
    assert ev["paper_table"] == "mumur-table4"
    with pytest.raises(ConfigError, match="zero-shot"):
        write_preset_configs("mlmm-zeroshot-multi30k", tmp_path / "zs", root)
    zs = write_preset_configs("mlmm-zeroshot-multi30k", tmp_path / "zs", root,
                              model=tmp_path / "m")
    assert set(zs) == {"eval"}
    with pytest.raises(ConfigError, match="unknown preset"):
        get_preset("mumur-nope")
    with pytest.raises(ConfigError, match="unknown field"):
        get_preset("mumur-didemo", frames=3)


# -------------------------------------------------------------------------------- paper tables

def _numbers(line: str) -> list[float]:
    return [float(x) for x in re.findall(r"\d+(?:\.\d+)?", line)]


def _is_subsequence(values: list[float], numbers: list[float]) -> bool:
    it = iter(numbers)
    return all(any(abs(n - v) < 1e-9 for n in it) for v in values)


@pytest.mark.parametrize("table_id", list_paper_tables())
def test_paper_table_numbers_are_in_the_seed_text(table_id):
    table = load_paper_table(table_id)
    seed = SEEDS / SEED_FILES[table_id.split("-")[0]]
    if not seed.exists():
        pytest.skip(f"seed text {seed} not present")
    lines = seed.read_text(encoding="utf-8").splitlines()
    for row in table.rows:
        values = [v for v in row["values"] if v is not None]
        hits = [ln for ln in lines if _is_subsequence(values, _numbers(ln))]
        assert hits, f"{table_id}: {row['model']} {values} not found in {seed.name}"
        for key, text in row.get("unreadable", {}).items():
            assert any(text in ln for ln in hits), (table_id, row["model"], key)


def test_paper_table_spot_checks():
    t1 = load_paper_table("mumur-table1")
    assert t1.value("MuMUR", "t2v.R1") == 46.6
    assert t1.value("MuMUR", "v2t.MnR") == 8.07
    assert t1.value("CLIP4Clip (Luo et al., 2021)", "v2t.R1") == 43.1
    assert t1.value("CLIP4Clip (Luo et al., 2021)", "t2v.MdR") is None  # a dash in the paper
    assert t1.value("CLIP (Radford et al., 2021)", "t2v.R10") is None  # garbled "2.6"
    assert load_paper_table("mumur-table5").value("ECLIPSE (Lin et al., 2022)", "t2v.MnR") == 84.9
    assert load_paper_table("mumur-table7").value("MuMUR - fr (zero-shot)", "sw.t2v.R1") == 22.5
    assert load_paper_table("mumur-table8").value("MuMUR", "cs.t2v.R1") == 69.3
    assert load_paper_table("leccr-table2").value("LECCR", "SumR") == 394.4
    assert load_paper_table("leccr-table1").value("MURAL [14]*", "mscoco.zh.SumR") is None
    t6 = load_paper_table("mlmm-table6")
    assert t6.value("M-CLIP", "multi30k.cs.mR", group="FT-all") == 85.6
    assert t6.value("M-CLIP", "multi30k.cs.mR", group="Zero-shot") == 72.3
    with pytest.raises(ConfigError, match="unknown paper table"):
        load_paper_table("mumur-table99")


def _result(dataset: str, langs: dict[str, float]) -> dict:
    """A fake evaluation result whose metrics are offsets of one base number per language."""
    out = {"languages": {}, "dataset": {"name": dataset, "split": "test", "items": 10}}
    for lang, base in langs.items():
        t2v = {"R1": base, "R5": base + 10, "R10": base + 20, "MdR": 3.0, "MnR": 9.5}
        v2t = {"R1": base + 1, "R5": base + 11, "R10": base + 21, "MdR": 2.0, "MnR": 7.25}
        out["languages"][lang] = {"t2v": t2v, "v2t": v2t,
                                  "SumR": sum(t2v[k] + v2t[k] for k in ("R1", "R5", "R10"))}
    return out


def test_render_puts_our_row_beside_the_papers():
    table = load_paper_table("mumur-table1")
    text = render_paper_table(table, [("run-a", _result("msrvtt-9k", {"en": 40.0}))])
    lines = [ln for ln in text.splitlines() if ln.startswith("| ")]
    header, rows = lines[0], lines[1:]
    assert header.count("|") - 1 == 2 + len(table.columns)  # Setting, Model, metrics
    assert len(rows) == len(table.rows) + 1
    paper = next(r for r in rows if "| MuMUR |" in r)
    assert "46.6" in paper and "8.07" in paper
    ours = [c.strip() for c in rows[-1].strip("|").split("|")]
    assert ours[:2] == ["Ours", "mumur (ours, run-a)"]
    assert ours[2:] == ["40.0", "50.0", "60.0", "3.0", "9.5", "41.0", "51.0", "61.0", "2.0",
                        "7.25"]
    # Another dataset's result leaves our cells blank instead of mixing benchmarks.
    other = render_paper_table(table, [("x", _result("msvd", {"en": 40.0}))], fmt="tsv")
    assert other.splitlines()[-1].split("\t")[2:] == ["–"] * len(table.columns)


def test_our_values_sumr_mean_recall_and_average_columns():
    res = _result("mscoco", {"en": 30.0, "zh": 20.0, "ja": 10.0})
    leccr = load_paper_table("leccr-table1")
    values = our_values(leccr, res)
    sumr_zh = res["languages"]["zh"]["SumR"]
    assert values == [None, None, None, sumr_zh, res["languages"]["ja"]["SumR"]]
    mlmm = load_paper_table("mlmm-table6")
    assert our_values(mlmm, res)[4] == pytest.approx(res["languages"]["en"]["SumR"] / 6)
    t8 = load_paper_table("mlmm-table8")
    langs = {lang: 10.0 + i for i, lang in enumerate(t8.columns[-1]["languages"])}
    vals = our_values(t8, _result("msrvtt-multilingual", langs))
    assert vals[-1] == pytest.approx(np.mean(list(langs.values())))
    partial = our_values(t8, _result("msrvtt-multilingual", {"en": 1.0}))
    assert partial[0] == 1.0 and partial[-1] is None  # no average over missing languages


def test_cli_eval_rejects_unknown_paper_table_before_evaluating(tmp_path):
    from typer.testing import CliRunner

    from mumur.cli import app

    cfg = tmp_path / "eval.json"
    cfg.write_text("{}")
    res = CliRunner().invoke(app, ["eval", str(cfg), "--paper-table", "no-such-table"])
    assert res.exit_code != 0
    assert "unknown paper table or preset" in str(res.exception)


def test_presets_cli_lists_and_writes(tmp_path):
    import subprocess
    import sys

    from typer.testing import CliRunner

    from mumur.cli import app

    runner = CliRunner()
    listed = runner.invoke(app, ["presets", "list"])
    assert listed.exit_code == 0, listed.output
    lines = listed.output.splitlines()
    assert len(lines) == len(list_presets())
    assert lines[0].split() == ["leccr-mscoco-ja", "ccr", "mscoco", "->", "mscoco",
                                "leccr-table1"]
    (tmp_path / "data").mkdir()
    written = runner.invoke(app, ["presets", "write", "mumur-didemo", "--out",
                                  str(tmp_path / "exp"), "--root", str(tmp_path / "data")])
    assert written.exit_code == 0, written.output
    assert json.loads((tmp_path / "exp" / "train.json").read_text())["train"]["epochs"] == 12
    assert f"eval: {tmp_path / 'exp' / 'eval.json'}" in written.output
    # Bad input: one line on stderr and a non-zero exit, through the real entry point.
    bad = subprocess.run([sys.executable, "-m", "mumur", "presets", "write", "mumur-nope",
                          "--out", str(tmp_path / "x"), "--root", str(tmp_path / "data")],
                         check=False, capture_output=True, text=True)
    assert bad.returncode == 1
    assert bad.stderr.strip().splitlines() == [bad.stderr.strip()]
    assert bad.stderr.startswith("error: unknown preset 'mumur-nope'")
    assert runner.invoke(app, ["presets", "--help"]).exit_code == 0
