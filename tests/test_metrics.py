"""Known-answer and brute-force checks of the retrieval metrics contract (DESIGN.md)."""

import numpy as np
import pytest

from mumur.eval.metrics import (
    BlockSimilarity,
    retrieval_metrics,
    retrieval_ranks,
    sum_r,
    t2v_metrics,
    t2v_ranks,
    v2t_metrics,
    v2t_ranks,
)


def brute_t2v(sim, caption_item):
    return np.array([(sim[i] >= sim[i, caption_item[i]]).sum() for i in range(len(sim))])


def brute_v2t_caption(sim, caption_item):
    # best own caption, ranked among the OTHER items' captions (an item's own captions never
    # count against it, issue 8 fault e)
    ranks = []
    for v in range(sim.shape[1]):
        own = [c for c in range(len(sim)) if caption_item[c] == v]
        others = [c for c in range(len(sim)) if caption_item[c] != v]
        if own:
            best = max(sim[c, v] for c in own)
            ranks.append(1 + sum(sim[c, v] >= best for c in others))
    return np.array(ranks)


def brute_v2t_group(sim, caption_item):
    items = sorted(set(caption_item))
    ranks = []
    for v in items:
        group_score = {g: max(sim[c, v] for c in range(len(sim)) if caption_item[c] == g)
                       for g in items}
        ranks.append(sum(s >= group_score[v] for s in group_score.values()))
    return np.array(ranks)


def test_perfect_diagonal():
    sim = np.eye(4)
    m = t2v_metrics(sim, [0, 1, 2, 3])
    assert m["R1"] == 100.0 and m["MdR"] == 1.0 and m["MnR"] == 1.0
    assert m["n_queries"] == 4 and m["n_candidates"] == 4


def test_known_answer_ranks():
    # caption 0 -> item 0 ranked 2nd, caption 1 -> item 1 ranked 3rd, caption 2 -> item 2 first.
    sim = np.array([[0.5, 0.9, 0.1],
                    [0.8, 0.2, 0.7],
                    [0.0, 0.1, 0.3]])
    assert t2v_ranks(sim, [0, 1, 2]).tolist() == [2, 3, 1]
    m = t2v_metrics(sim, [0, 1, 2])
    assert m["R1"] == pytest.approx(100 / 3)
    assert m["R5"] == 100.0
    assert m["MdR"] == 2.0 and m["MnR"] == 2.0


def test_ties_are_pessimistic():
    sim = np.ones((5, 5))  # a constant scorer must get the worst rank
    m = t2v_metrics(sim, list(range(5)))
    assert m["R1"] == 0.0 and m["MdR"] == 5.0
    assert v2t_metrics(sim, list(range(5)))["MdR"] == 5.0
    # a tie between gt and one other candidate: rank 2, not 1
    assert t2v_ranks(np.array([[0.3, 0.3, 0.1]]), [0]).tolist() == [2]


def test_nan_scores_count_as_worst():
    sim = np.array([[np.nan, 0.2], [0.1, 0.5]])
    assert t2v_ranks(sim, [0, 1]).tolist() == [2, 1]


def test_median_averages_even_count():
    sim = np.array([[1.0, 0.0, 0, 0], [1.0, 0.5, 0, 0]])  # ranks 1 and 2
    assert t2v_metrics(sim, [0, 1])["MdR"] == 1.5


def test_several_captions_per_item_caption_protocol():
    # items: 0 has captions 0,1; item 1 has caption 2; item 2 has no caption (skipped in v2t)
    sim = np.array([[0.1, 0.9, 0.0],
                    [0.8, 0.2, 0.0],
                    [0.5, 0.4, 0.0]])
    caption_item = [0, 0, 1]
    # item 0: column 0 = [0.1, 0.8, 0.5]; best own caption (1) has 0.8 -> rank 1
    # item 1: column 1 = [0.9, 0.2, 0.4]; own caption 2 has 0.4 -> rank 2
    assert v2t_ranks(sim, caption_item).tolist() == [1, 2]
    m = v2t_metrics(sim, caption_item)
    assert m["n_queries"] == 2 and m["n_candidates"] == 3 and m["R1"] == 50.0


def test_v2t_caption_protocol_own_captions_tying_do_not_count():
    # item 0's two captions tie for best (0.9): rank 1, not 2; item 1 is tied by one other
    # item's caption (0.6 >= 0.6): rank 2, while its own second caption (0.6) never counts.
    sim = np.array([[0.9, 0.6],
                    [0.9, 0.1],
                    [0.5, 0.6],
                    [0.2, 0.6]])
    caption_item = [0, 0, 1, 1]
    assert v2t_ranks(sim, caption_item).tolist() == [1, 2]
    assert v2t_metrics(sim, caption_item)["R1"] == 50.0
    # a constant scorer: the other items' captions all tie with the best own caption
    assert v2t_ranks(np.ones((4, 2)), caption_item).tolist() == [3, 3]


def test_group_protocol_known_answer():
    sim = np.array([[0.1, 0.9],
                    [0.8, 0.88],
                    [0.5, 0.85]])
    caption_item = [0, 0, 1]
    # item 0: group0 max(0.1, 0.8)=0.8, group1 0.5 -> rank 1
    # item 1: group0 max(0.9, 0.88)=0.9 beats group1 0.85 -> rank 2; per caption it is 3rd
    assert v2t_ranks(sim, caption_item, protocol="group").tolist() == [1, 2]
    assert v2t_ranks(sim, caption_item, protocol="caption").tolist() == [1, 3]
    assert v2t_metrics(sim, caption_item, protocol="group")["n_candidates"] == 2


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_brute_force_with_ties_and_chunks(seed):
    rng = np.random.default_rng(seed)
    n_items, n_captions = 13, 29
    sim = rng.integers(0, 4, size=(n_captions, n_items)).astype(float)  # many ties
    caption_item = rng.integers(0, n_items, size=n_captions)
    for chunk in (1, 4, 1000):
        assert (t2v_ranks(sim, caption_item, chunk) == brute_t2v(sim, caption_item)).all()
        assert (v2t_ranks(sim, caption_item, "caption", chunk)
                == brute_v2t_caption(sim, caption_item)).all()
        assert (v2t_ranks(sim, caption_item, "group", chunk)
                == brute_v2t_group(sim, caption_item)).all()


def test_block_similarity_never_needs_full_matrix():
    rng = np.random.default_rng(0)
    text, items = rng.normal(size=(50, 8)), rng.normal(size=(40, 8))
    caption_item = rng.integers(0, 40, size=50)
    seen = []

    def block(rows, cols):
        seen.append((rows.stop - rows.start) * (cols.stop - cols.start))
        return text[rows] @ items[cols].T

    lazy = BlockSimilarity((50, 40), block)
    full = text @ items.T
    assert t2v_metrics(lazy, caption_item, 8) == t2v_metrics(full, caption_item)
    assert v2t_metrics(lazy, caption_item, chunk_size=8) == v2t_metrics(full, caption_item)
    assert (v2t_metrics(lazy, caption_item, "group", 8)
            == v2t_metrics(full, caption_item, "group"))
    assert max(seen) <= 8 * 40


@pytest.mark.parametrize("protocol", ["caption", "group"])
def test_one_pass_reads_each_score_once_in_bounded_blocks(protocol):
    rng = np.random.default_rng(3)
    n_captions, n_items = 37, 23
    sim = rng.integers(0, 5, size=(n_captions, n_items)).astype(float)  # many ties
    caption_item = rng.integers(0, n_items - 3, size=n_captions)  # unsorted; 3+ items uncaptioned
    reads = np.zeros(sim.shape, dtype=int)
    shapes = []

    def block(rows, cols):
        reads[rows, cols] += 1
        shapes.append((rows.stop - rows.start, cols.stop - cols.start))
        return sim[rows, cols]

    lazy = BlockSimilarity(sim.shape, block)
    ranks = retrieval_ranks(lazy, caption_item, protocol, caption_block=5, item_block=4)
    assert (reads == 1).all()  # every score computed exactly once, for both directions
    assert max(r for r, _ in shapes) <= 5 and max(c for _, c in shapes) <= 4
    brute_v2t = brute_v2t_caption if protocol == "caption" else brute_v2t_group
    assert (ranks.t2v == brute_t2v(sim, caption_item)).all()
    assert (ranks.v2t == brute_v2t(sim, caption_item)).all()
    for caption_block, item_block in ((1, 1), (3, 7), (100, 100)):
        t2v, v2t = retrieval_metrics(sim, caption_item, protocol, caption_block, item_block)
        assert t2v == t2v_metrics(sim, caption_item)
        assert v2t == v2t_metrics(sim, caption_item, protocol)


def test_sum_r_and_bad_inputs():
    m = {"R1": 10.0, "R5": 20.0, "R10": 30.0}
    assert sum_r(m, m) == 120.0
    with pytest.raises(ValueError, match="caption_item"):
        t2v_metrics(np.eye(3), [0, 1])
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        t2v_metrics(np.eye(3), [0, 1, 3])
    with pytest.raises(ValueError, match="protocol"):
        v2t_metrics(np.eye(3), [0, 1, 2], protocol="best")
