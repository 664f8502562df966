"""Benchmark adapters on real annotation excerpts (and documented fixtures, see fixtures README).

Expected values were read by hand from the fixture files.
"""

from __future__ import annotations

import gzip
import importlib
import json
import pickle
import shutil
from pathlib import Path

import pytest

from mumur.data import BENCHMARKS, RetrievalDataset
from mumur.data.benchmarks._io import (
    read_caption_file,
    read_csv_rows,
    read_id_list,
    read_lines,
    video_id_from_cap_id,
)
from mumur.errors import ConfigError, DatasetError, MissingMediaError

FIX = Path(__file__).parent / "fixtures" / "benchmarks"
NAMES = ["msrvtt-1ka", "msrvtt-9k", "msrvtt-7k", "msrvtt-multilingual", "msrvtt-cn", "msvd",
         "didemo", "charades", "vatex", "flickr30k", "multi30k", "mscoco"]
MODULES = ["msrvtt", "msrvtt_multilingual", "msrvtt_cn", "msvd", "didemo", "charades", "vatex",
           "flickr30k", "multi30k", "mscoco"]
for _m in MODULES:
    importlib.import_module(f"mumur.data.benchmarks.{_m}")


def load(name: str, root, split: str = "test", **options) -> RetrievalDataset:
    # The adapters directly (load_benchmark also imports the synthetic adapter, another slice).
    return BENCHMARKS.get(name)(root, split=split, **options)


def texts(ds: RetrievalDataset, item: int, lang: str = "en") -> list[str]:
    return [t for i, lang_, t in ds.captions if i == item and lang_ == lang]


# ---------------------------------------------------------------------------------------- _io

@pytest.mark.parametrize("content", [b"a\nb\n", b"a\nb", b"a\r\nb\r\n", b"a\r\nb", b"a\n\nb\n\n"])
def test_read_lines_endings(tmp_path, content):
    p = tmp_path / "ids.txt"
    p.write_bytes(content)
    assert read_lines(p) == ["a", "b"]
    gz = tmp_path / "ids.txt.gz"
    gz.write_bytes(gzip.compress(content))
    assert read_lines(gz) == ["a", "b"]


def test_read_lines_keeps_empty_for_alignment(tmp_path):
    p = tmp_path / "s.txt"
    p.write_bytes(b"x\n\ny")
    assert read_lines(p, skip_empty=False) == ["x", "", "y"]


def test_read_id_list_rejects_duplicates(tmp_path):
    p = tmp_path / "l.txt"
    p.write_text("v1\nv2\nv1")
    with pytest.raises(DatasetError, match="repeated"):
        read_id_list(p)


def test_caption_file_and_video_id(tmp_path):
    p = tmp_path / "c.txt"
    p.write_text("video1.mp4#enc2zh#0 两个 人\nvideo2#enc#3 a b c\n", encoding="utf-8")
    pairs = read_caption_file(p)
    assert pairs == [("video1.mp4#enc2zh#0", "两个 人"), ("video2#enc#3", "a b c")]
    assert [video_id_from_cap_id(c) for c, _ in pairs] == ["video1", "video2"]
    # the LECCR `strip(".jpg")` bug would eat trailing g/j/p/. characters; a suffix strip does not
    assert video_id_from_cap_id("img_pgj.jpg#enc#0") == "img_pgj"
    p.write_text("no_caption_here\n")
    with pytest.raises(DatasetError, match="line 1"):
        read_caption_file(p)


def test_missing_annotation_file(tmp_path):
    with pytest.raises(DatasetError, match="MSRVTT_JSFUSION_test.csv"):
        load("msrvtt-1ka", tmp_path)


def test_unknown_option_and_split():
    with pytest.raises(ConfigError, match="bogus"):
        load("msrvtt-1ka", FIX / "msrvtt", bogus=1)
    with pytest.raises(ConfigError, match="val"):
        load("msrvtt-9k", FIX / "msrvtt", split="val")


# ------------------------------------------------------------------------------------ MSR-VTT

def test_msrvtt_1ka_test():
    ds = load("msrvtt-1ka", FIX / "msrvtt")
    assert len(ds) == 40 and len(ds.captions) == 40
    assert ds.items[:3] == ["video9770", "video9771", "video7020"]  # CSV order, not sorted
    assert ds.captions[0] == (0, "en", "a person is connecting something to system")
    assert ds.captions[1] == (1, "en", "a little girl does gymnastics")
    assert ds.media_path(0) == FIX / "msrvtt" / "video9770.mp4"


def test_msrvtt_9k_and_7k_train():
    ds9 = load("msrvtt-9k", FIX / "msrvtt", split="train")
    assert ds9.items[0] == "video0" and ds9.items[-1] == "video39" and len(ds9) == 40
    assert len(ds9.captions) == 3 * 40  # every caption of every training video
    assert texts(ds9, 0) == [f"fixture sentence {k} for video0" for k in range(3)]
    ds7 = load("msrvtt-7k", FIX / "msrvtt", split="train")
    assert len(ds7) == 80 and ds7.items[40] == "video6513"
    assert load("msrvtt-7k", FIX / "msrvtt").items == load("msrvtt-1ka", FIX / "msrvtt").items


def test_msrvtt_train_video_without_sentence(tmp_path):
    shutil.copy(FIX / "msrvtt" / "MSRVTT_data.json", tmp_path)
    (tmp_path / "MSRVTT_train.9k.csv").write_text("video_id\nvideo0\nvideo123456\n")
    with pytest.raises(DatasetError, match="1 of 2 training videos"):
        load("msrvtt-9k", tmp_path, split="train")


def test_check_media(tmp_path):
    media = tmp_path / "videos"
    media.mkdir()
    ds = load("msrvtt-1ka", FIX / "msrvtt", media_root=media)  # check_media defaults to False
    for vid in ds.items[2:]:
        (media / f"{vid}.mp4").touch()
    with pytest.raises(MissingMediaError, match="2 of 40") as err:
        load("msrvtt-1ka", FIX / "msrvtt", media_root=media, check_media=True)
    assert err.value.missing == [str(media / "video9770.mp4"), str(media / "video9771.mp4")]
    (media / "video9770.mp4").touch()
    (media / "video9771.mp4").touch()
    load("msrvtt-1ka", FIX / "msrvtt", media_root=media, check_media=True)
    ds = load("msrvtt-1ka", FIX / "msrvtt", media_root=media, media_pattern="{id}.webm")
    assert ds.media_path(0) == media / "video9770.webm"


def test_msrvtt_conventional_media_subfolder(tmp_path):
    shutil.copy(FIX / "msrvtt" / "MSRVTT_JSFUSION_test.csv", tmp_path)
    (tmp_path / "videos" / "all").mkdir(parents=True)
    assert load("msrvtt-1ka", tmp_path).media_path(0) == tmp_path / "videos/all/video9770.mp4"


def test_msrvtt_multilingual():
    ds = load("msrvtt-multilingual", FIX / "msrvtt")
    assert ds.items == ["video9770", "video9771", "video7020"]  # `.mp4` removed from the keys
    assert ds.languages == ["en", "de", "zh"]
    assert texts(ds, 2) == ["a woman creating a fondant baby and flower"]  # [0] only
    assert texts(ds, 1, "de") == ["ein kleines mädchen turnt"]
    assert texts(ds, 0, "zh") == ["一个人正在把东西连接到系统上"]
    ds = load("msrvtt-multilingual", FIX / "msrvtt", languages="en", all_captions=True)
    assert len(texts(ds, 0)) == 2 and ds.languages == ["en"]
    with pytest.raises(DatasetError, match="fr"):
        load("msrvtt-multilingual", FIX / "msrvtt", languages=["en", "fr"])
    with pytest.raises(ConfigError, match="xx"):
        load("msrvtt-multilingual", FIX / "msrvtt", languages="en,xx")


def test_msrvtt_cn(tmp_path):
    ds = load("msrvtt-cn", FIX / "msrvtt-cn")  # CRLF, no final newline, `.mp4` in one cap_id
    assert ds.items == ["video9770", "video9771", "video7020"]
    assert ds.captions[0] == (0, "zh", "一个人正在把东西 连接到系统上")  # split at the FIRST space
    tr = load("msrvtt-cn", FIX / "msrvtt-cn", split="train")
    assert tr.items == ["video0", "video1"] and tr.info["machine_translated_captions"] == 3
    assert texts(tr, 0, "en") == ["a car is shown", "a red car drives down a road"]
    assert texts(tr, 1, "zh") == ["一个男人在谈论一个游戏"]
    tr = load("msrvtt-cn", FIX / "msrvtt-cn", split="train", machine_translated=False)
    assert tr.languages == ["en"]
    # LECCR prefix, files directly in root
    for f in (FIX / "msrvtt-cn" / "TextData").iterdir():
        shutil.copy(f, tmp_path / f.name.replace("msrvttcn", "msrvtt10kcn"))
    assert load("msrvtt-cn", tmp_path).captions == ds.captions
    with pytest.raises(DatasetError, match="val"):
        load("msrvtt-cn", tmp_path, split="val")


# --------------------------------------------------------------------------------------- MSVD

def test_msvd(tmp_path):
    for f in ("train_list.txt", "test_list.txt"):
        shutil.copy(FIX / "msvd" / f, tmp_path)
    ids = read_id_list(tmp_path / "test_list.txt") + read_id_list(tmp_path / "train_list.txt")
    raw = {vid: [["a", "man", "is", "playing", str(k)] for k in range(n % 3 + 1)]
           for n, vid in enumerate(ids)}
    with open(tmp_path / "raw-captions.pkl", "wb") as f:
        pickle.dump(raw, f)
    ds = load("msvd", tmp_path, split="train")
    assert ds.items[0] == "-4wsuPCjDBc_5_15"  # leading '-', kept whole
    assert ds.items[1] == "-7KMZQEsJW4_205_208"
    test = load("msvd", tmp_path)
    assert test.items[:2] == ["eyhzdC936uk_15_27", "f-24IxG9ijw_25_40"]
    assert len(test.captions) == sum(n % 3 + 1 for n in range(40))  # every caption is a query
    assert texts(test, 1) == ["a man is playing 0", "a man is playing 1"]
    assert test.media_path(0) == tmp_path / "eyhzdC936uk_15_27.avi"
    del raw["f-24IxG9ijw_25_40"]
    with open(tmp_path / "raw-captions.pkl", "wb") as f:
        pickle.dump(raw, f)
    with pytest.raises(DatasetError, match="1 of 40"):
        load("msvd", tmp_path)


# ------------------------------------------------------------------------------------- DiDeMo

def test_didemo_test_paragraphs():
    ds = load("didemo", FIX / "didemo")
    assert len(ds) == 9 and len(ds.captions) == 9  # one paragraph per video
    assert ds.items[0] == "10218698@N06_2860643088_cc3a272282.mp4"  # JSON first-appearance order
    assert ds.items[5] == "10052357@N03_7585070382_5762149bfc."  # extensionless name kept
    assert ds.captions[0] == (0, "en", ("lights turn green light go from green to orange as camera "
                              "pans left. the lights turn from green to orange and red the lights "
                              "change from blue to green"))
    assert ds.extra[0]["times"][0] == [[2, 4], [2, 3], [2, 2], [2, 4]]
    assert (ds.extra[0]["start"], ds.extra[0]["end"]) == (0.0, 31.0)
    assert ds.info["excluded_videos_not_in_list"] == 0
    assert ds.info["list_videos_without_records"] == 31  # the list excerpt has 40 lines


def test_didemo_excludes_videos_missing_from_list(tmp_path):
    shutil.copy(FIX / "didemo" / "test_data.json", tmp_path)
    lines = read_lines(FIX / "didemo" / "test_list.txt")
    dropped = "10287726@N02_3667079013_2d2f614d2f.mov"
    # no newline after the last line, as in the collaborative-experts lists
    (tmp_path / "test_list.txt").write_text("\n".join(x for x in lines if x != dropped))
    ds = load("didemo", tmp_path)
    assert dropped not in ds.items and len(ds) == 8
    assert ds.info["excluded_videos_not_in_list"] == 1
    records = json.loads((tmp_path / "test_data.json").read_text())
    assert ds.info["excluded_records_not_in_list"] == sum(r["video"] == dropped for r in records)


def test_didemo_media_resolution(tmp_path):
    (tmp_path / "10052357@N03_7585070382_5762149bfc.mp4").touch()  # re-encoded extensionless one
    (tmp_path / "10218698@N06_2860643088_cc3a272282.mp4").touch()
    ds = load("didemo", FIX / "didemo", media_root=tmp_path)
    assert ds.media_path(0) == tmp_path / "10218698@N06_2860643088_cc3a272282.mp4"
    assert ds.media_path(5) == tmp_path / "10052357@N03_7585070382_5762149bfc.mp4"
    assert ds.media_path(1) == tmp_path / "10149286@N00_5135045216_643d0b0a92.mov"  # absent
    with pytest.raises(MissingMediaError, match="7 of 9"):
        ds.check_media()


# ----------------------------------------------------------------------------------- Charades

def test_charades_crlf_and_empty_fields():
    ds = load("charades", FIX / "charades", split="train")
    assert len(ds) == 40
    assert ds.items[:3] == ["46GP8", "N11GT", "0IH69"]
    assert ds.captions[0] == (0, "en", ("A person cooking on a stove while watching something out a "
                              "window."))
    # quoted script with commas; no trailing \r anywhere
    assert ds.captions[1][2] == ("One person opens up a folded blanket, then sneezes and leaves "
                                 "the stairs with a broom.")
    assert ds.extra[0]["actions"] == [("c092", 11.9, 21.2), ("c147", 0.0, 12.6)]
    assert ds.extra[0]["objects"] == ["food", "stove", "window"]
    assert ds.extra[0]["length"] == 24.83
    assert ds.extra[2]["actions"] == []  # 0IH69: empty actions
    mcqo5 = ds.items.index("MCQO5")  # empty relevance does not disturb the row
    assert ds.captions[mcqo5][2].startswith("A person is undressing in the closet.")
    assert not any(t.endswith("\r") for _, _, t in ds.captions)
    rows = read_csv_rows(FIX / "charades" / "Charades_v1_train.csv")
    assert rows[0]["length"] == "24.83"
    assert rows[mcqo5]["id"] == "MCQO5" and rows[mcqo5]["relevance"] == ""
    assert rows[0]["length"] == "24.83" and not any(k.endswith("\r") for k in rows[0])
    test = load("charades", FIX / "charades")
    assert test.items[0] == "YSKX3" and len(test) == 40
    assert test.captions[0][2] == "A person fixes the bed then throws pillow on it."


# -------------------------------------------------------------------------------------- VATEX

def test_vatex_official_and_ccr():
    ds = load("vatex", FIX / "vatex", split="train")
    assert ds.items == ["Ptf_2VRj-V0_000122_000132", "-abcDEF_123_000010_000020"]
    assert ds.languages == ["en", "zh"] and len(texts(ds, 0, "zh")) == 10
    assert texts(ds, 0)[0] == "fixture english caption 0 of Ptf_2VRj-V0_000122_000132"
    test = load("vatex", FIX / "vatex")
    assert test.languages == ["en"] and len(test.captions) == 20  # public test: no chCap
    with pytest.raises(DatasetError, match="chCap"):
        load("vatex", FIX / "vatex", languages=["zh"])
    ccr_val = load("vatex", FIX / "vatex", split="val", protocol="ccr")
    assert ccr_val.items == ["ccccccccccc_000030_000040", "aaaaaaaaaaa_000001_000011"]
    ccr_test = load("vatex", FIX / "vatex", protocol="ccr", languages="zh")
    assert ccr_test.items == ["bbbbbbbbbbb_000005_000015", "ddddddddddd_000000_000010"]
    assert len(ccr_test.captions) == 20 and ccr_test.languages == ["zh"]


def test_vatex_ccr_needs_id_list(tmp_path):
    shutil.copy(FIX / "vatex" / "vatex_validation_v1.0.json", tmp_path)
    with pytest.raises(DatasetError, match="test_id.txt"):
        load("vatex", tmp_path, protocol="ccr")
    ids = tmp_path / "mine.txt"
    ids.write_text("aaaaaaaaaaa_000001_000011\nnot_there_000000_000001\n")
    with pytest.raises(DatasetError, match="1 ids"):
        load("vatex", tmp_path, protocol="ccr", ids_file=ids)


# ---------------------------------------------------------------------------- Flickr30k, M30K

def test_flickr30k_karpathy_and_blip():
    ds = load("flickr30k", FIX / "flickr30k")
    assert ds.items == ["1007129816", "1009434119", "101362133"]
    assert len(ds.captions) == 15 and ds.media_type(0) == "image"
    assert "A man in an orange hat starring at something." in texts(ds, 0)
    assert ds.media_path(0) == FIX / "flickr30k" / "1007129816.jpg"
    train = load("flickr30k", FIX / "flickr30k", split="train")
    assert train.captions == [(0, "en", ("Two young guys with shaggy hair look at their hands while "
                               "hanging out in the yard."))]
    blip = load("flickr30k", FIX / "flickr30k-blip")
    assert blip.items == ds.items and blip.captions == ds.captions
    assert blip.media_path(0) == FIX / "flickr30k-blip" / "flickr30k-images" / "1007129816.jpg"
    blip_train = load("flickr30k", FIX / "flickr30k-blip", split="train")  # one entry per caption
    assert blip_train.items == ["1000092795"] and len(blip_train.captions) == 2


def test_multi30k_task1_alignment():
    ds = load("multi30k", FIX / "multi30k")
    assert len(ds) == 40 and ds.items[0] == "1007129816"
    assert ds.languages == ["en", "cs", "de", "fr"] and len(ds.captions) == 160
    assert texts(ds, 0) == ["A man in an orange hat starring at something."]
    assert texts(ds, 0, "de") == ["Ein Mann mit einem orangefarbenen Hut, der etwas anstarrt."]
    assert texts(ds, 0, "fr") == ["Un homme avec un chapeau orange regardant quelque chose."]
    assert texts(ds, 0, "cs") == ["Muž v oranžovém klobouku na něco zírá."]
    assert ds.media_path(0) == FIX / "multi30k" / "1007129816.jpg"
    val = load("multi30k", FIX / "multi30k", split="val", languages="en")
    assert val.items[:2] == ["1018148011", "1029450589"]
    assert texts(val, 0) == ["A group of men are loading cotton onto a truck"]


def test_multi30k_task2_and_misalignment(tmp_path):
    ds = load("multi30k", FIX / "multi30k", task=2)
    assert ds.languages == ["en", "de"] and len(ds.captions) == 40 * 5 * 2
    assert texts(ds, 0, "de")[0] == "Der Mann trägt eine orange Wollmütze."
    assert len(texts(ds, 0)) == 5 and "A man in an orange hat starring at something." in texts(ds, 0)
    shutil.copytree(FIX / "multi30k" / "data" / "task1", tmp_path / "task1")
    split = tmp_path / "task1" / "image_splits" / "test_2016_flickr.txt"
    split.write_text(split.read_text() + "extra.jpg\n")
    with pytest.raises(DatasetError, match="40 sentences for 41 images"):
        load("multi30k", tmp_path, languages="en")


# ------------------------------------------------------------------------------------- MSCOCO

def test_mscoco_karpathy():
    ds = load("mscoco", FIX / "mscoco")
    assert ds.items == ["COCO_val2014_000000391895", "COCO_val2014_000000522418"]
    assert ds.captions[0] == (0, "en", "A man with a red helmet on a small moped on a dirt road.")
    assert ds.media_path(0) == FIX / "mscoco" / "val2014" / "COCO_val2014_000000391895.jpg"
    assert len(load("mscoco", FIX / "mscoco", split="train")) == 3  # restval merged
    assert len(load("mscoco", FIX / "mscoco", split="train", restval=False)) == 2
    ja = load("mscoco", FIX / "mscoco", languages="en,ja")
    assert texts(ja, 0, "ja") == ["赤いヘルメットの男性が原付に乗っている", "土の道をバイクで走る男性"]
    assert ja.info["items_without"] == {"en": 0, "ja": 1}


def test_mscoco_1k_folds(tmp_path):
    images = [{"filepath": "val2014", "filename": f"COCO_val2014_{i:012d}.jpg", "cocoid": i,
               "split": "test", "sentences": [{"raw": f"caption {i}"}]} for i in range(5000)]
    (tmp_path / "dataset_coco.json").write_text(json.dumps({"images": images}))
    ds = load("mscoco", tmp_path, fold=3)
    assert len(ds) == 1000 and ds.items[0] == "COCO_val2014_000000003000"
    assert ds.captions[0] == (0, "en", "caption 3000") and ds.captions[-1][0] == 999
    assert len(load("mscoco", tmp_path)) == 5000
    with pytest.raises(ConfigError, match="fold"):
        load("mscoco", tmp_path, fold=5)


def test_mscoco_coco_cn_and_leakage():
    from mumur.data.benchmarks.mscoco import coco_cn_karpathy_overlap

    ds = load("mscoco", FIX / "mscoco", languages="zh")
    assert ds.info["image_split"] == "coco-cn" and len(ds) == 40
    assert ds.items[0] == "COCO_train2014_000000503310"
    assert ds.media_path(0) == FIX / "mscoco" / "train2014" / "COCO_train2014_000000503310.jpg"
    # TAB-separated human captions, ordered by k (the file lists #1 before #0)
    assert texts(ds, 1, "zh") == ["沙发上有一只狗", "一只狗躺在沙发上睡觉"]
    leaked = ["COCO_train2014_000000503310", "COCO_train2014_000000374042"]
    assert ds.info["karpathy_train_overlap"] == leaked  # one in train, one in restval
    assert "2 of 40" in ds.info["warnings"][0]
    assert coco_cn_karpathy_overlap(ds.items, FIX / "mscoco" / "dataset_coco.json",
                                    splits=("train",)) == leaked[:1]
    tr = load("mscoco", FIX / "mscoco", languages="zh", zh_source="translated")
    # SPACE-separated `#zhm#k` lines, stored out of order, come back in k order
    assert texts(tr, 0, "zh")[3] == "机舱内有蓝色和黑色相间的条纹座椅。"
    assert texts(tr, 0, "zh")[0] == "飞机内部有条纹座椅。" and len(texts(tr, 0, "zh")) == 5
    # coco-cn_val.txt has no final newline
    val = load("mscoco", FIX / "mscoco", split="val", languages="zh")
    assert len(val) == 40 and val.items[-1] == "COCO_val2014_000000093154"
    assert val.media_path(39) == FIX / "mscoco" / "val2014" / "COCO_val2014_000000093154.jpg"
    assert val.info["karpathy_train_overlap"] == []
    en = load("mscoco", FIX / "mscoco", languages="en,zh")
    assert texts(en, 0) == ["The inside of a plane with striped seats."]


# --------------------------------------------------------------------------------- registry

def test_all_adapters_registered():
    assert set(NAMES) <= set(BENCHMARKS.names())


def test_list_benchmarks_includes_all():
    pytest.importorskip("mumur.data.synthetic.dataset",
                        reason="the synthetic adapter (another slice) is not written yet")
    from mumur.data import list_benchmarks

    assert set(NAMES) <= set(list_benchmarks())
