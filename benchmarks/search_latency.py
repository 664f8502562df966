"""Search latency of the index: exact vs two-stage, 10k and 100k videos.

Synthetic index: N videos x 12 frames x 512-d frame features (a per-video topic vector plus
per-frame noise), passed through a real head (`--head mumur-dcm` or `leccr`, random init from
`create_model`; LECCR gets 6 random description units per video) to get the stored arrays
(`head.pooled` + `head.index_state`), exactly as `mumur index` stores them.
Queries are noisy copies of random videos' pooled vectors (a query that has a match). Timed: one
`SearchEngine.search` call per query (stage 1 + stage 2 + calibration; text encoding excluded, it
does not depend on N). Also: recall@10 agreement of two-stage vs exact, and memory per indexed
video for float32 and float16 storage.

Two-stage search is timed without and with the per-frame-maximum candidate source (`--frames`,
default 32 items; `head.frame_vectors` scanned as float16 codes, what `mumur.Index` does for
`mumur-dcm` by default), interleaved query by query.

Two exact scorers are timed on the same arrays, interleaved query by query so that load on a
shared machine hits both alike: the reference (`head.score_index_state` on float32 copies of the
stored keys and values, chunked: what `SearchEngine` does without a scorer) and the one-pass
`BlockScorer` over `head.compact_index_state` (heads/dcm_fast.py: keys read once, in the stored
dtype), which `mumur.Index` uses. Reported: both p50s, their ratio, the largest score difference
and the recall@10 agreement of the two rankings.

The agreement of two-stage with exact printed here is NOT a quality measurement: the head has
random weights and the queries are noisy copies of stored vectors. benchmarks/two_stage_agreement.py
measures it with a trained head and real text queries.

Usage: python benchmarks/search_latency.py [--sizes 10000 100000] [--dtype float16]
       [--head leccr]
Prints a table, then one JSON line with the figures (last line).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from mumur.index.scoring import BlockScorer
from mumur.index.search import SearchEngine
from mumur.index.store import StoredArrays
from mumur.model import create_model

T, DV, D = 12, 512, 512


def build_arrays(head, n: int, dtype: str, seed: int = 0, chunk: int = 4096) -> StoredArrays:
    """Synthetic frame features -> head.contextualize -> pooled + index_state, chunked."""
    rng = np.random.default_rng(seed)
    keys = None
    pooled = np.empty((n, D), np.float32)
    state = None
    mask = np.ones((n, T), bool)
    with torch.no_grad():
        for start in range(0, n, chunk):
            b = min(chunk, n - start)
            topic = rng.standard_normal((b, 1, DV)).astype(np.float32)
            frames = topic + 0.7 * rng.standard_normal((b, T, DV)).astype(np.float32)  # (b,T,Dv)
            f, m = torch.from_numpy(frames), torch.ones(b, T, dtype=torch.bool)
            extra = {}
            if head.item_inputs:  # LECCR: description units near the video's topic
                units = topic[:, :, :D] + rng.standard_normal((b, 6, D)).astype(np.float32)
                extra = {"description_features": torch.from_numpy(units),
                         "description_mask": torch.ones(b, 6, dtype=torch.bool)}
            ctx = head.contextualize(f, m, extra)  # (b, T', d)
            m = head.state_mask(m)
            pooled[start:start + b] = head.pooled(ctx, m, "ml").numpy()  # uniform-attention DCM
            st = head.index_state(ctx, m, "ml")
            keys = keys or [(k, st[k].shape[-1]) for k in sorted(st)]
            packed = torch.cat([st[k] for k, _ in keys], dim=-1).numpy()  # (b, T, Ds)
            if state is None:
                state = np.empty((n, T, packed.shape[-1]), dtype=dtype)
            state[start:start + b] = packed
    return StoredArrays(
        ids=np.arange(1, n + 1, dtype=np.int64), paths=[""] * n,
        media_types=np.ones(n, np.int8), pooled=pooled, state=state, mask=mask,
        timestamps=np.tile(np.arange(T, dtype=np.float32) + 0.5, (n, 1)), generation=1,
    ), keys


def make_score_fn(head, keys):
    def score(q, s, m):
        widths = [w for _, w in keys]
        parts = dict(zip([k for k, _ in keys],
                         torch.from_numpy(np.ascontiguousarray(s)).split(widths, dim=-1)))
        with torch.no_grad():
            out = head.score_index_state(torch.from_numpy(q), parts, torch.from_numpy(m), "ml")
        return out[0].numpy(), out[1].numpy()

    return score


def block_scorer(head, arrays: StoredArrays, keys: list[tuple[str, int]], block_items: int,
                 threads: int) -> BlockScorer:
    """The one-pass scorer `mumur.Index` builds, over the benchmark's packed state."""
    widths = [w for _, w in keys]
    parts = dict(zip([k for k, _ in keys],  # strided views
                     torch.from_numpy(arrays.state).split(widths, dim=-1)))
    with torch.no_grad():
        compact = head.compact_index_state(parts, "ml")
    return BlockScorer(compact, arrays.mask, lambda q: head.compact_scorer(q, "ml"),
                       block_items=block_items, threads=threads)


def frame_vectors(head, arrays: StoredArrays, keys: list[tuple[str, int]]) -> np.ndarray:
    """`head.frame_vectors` of the benchmark's packed state (the keys' dtype)."""
    widths = [w for _, w in keys]
    parts = dict(zip([k for k, _ in keys], torch.from_numpy(arrays.state).split(widths, dim=-1)))
    with torch.no_grad():
        return head.frame_vectors(parts, "ml").numpy()


def bytes_per_video(arrays: StoredArrays, dtype: str) -> int:
    """Memory per video of the in-memory search arrays when the state is stored as `dtype`
    (pooled vectors are float32 in memory whatever the storage dtype)."""
    n = len(arrays.ids)
    state = arrays.state[0].size * np.dtype(dtype).itemsize
    pooled = arrays.pooled[0].nbytes
    return int(state + pooled + arrays.mask.nbytes / n + arrays.timestamps.nbytes / n
               + arrays.ids.nbytes / n + arrays.media_types.nbytes / n)


def percentiles(times: list[float]) -> tuple[float, float]:
    ms = np.asarray(times) * 1e3
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 95))


def run(sizes: list[int], dtype: str, queries: int, exact_queries: int, shortlist: int,
        threads: int, head_name: str = "mumur-dcm", block_items: int = 4096,
        reference: bool = True, frame_shortlist: int = 32) -> dict:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    options = {"num_heads": 8} if head_name == "leccr" else {}
    head = create_model(head_name, frame_dim=DV, embed_dim=D, text_dim_en=D,
                        text_dim_ml=D, **options).eval().head
    figures = {"head": head_name, "threads": threads, "dtype": dtype, "frames": T, "dim": D,
               "shortlist": shortlist, "sizes": {}}
    for n in sizes:
        t0 = time.perf_counter()
        arrays, keys = build_arrays(head, n, dtype)
        build_s = time.perf_counter() - t0
        reference_engine = SearchEngine(arrays, make_score_fn(head, keys), shortlist=shortlist)
        t0 = time.perf_counter()
        scorer = block_scorer(head, arrays, keys, block_items, threads)
        compact_s = time.perf_counter() - t0
        engine = SearchEngine(arrays, None, shortlist=shortlist, scorer=scorer)
        stage1_bytes = engine.stage1_bytes()
        frames = frame_vectors(head, arrays, keys) if frame_shortlist else None
        framed = (SearchEngine(arrays, None, shortlist=shortlist, scorer=scorer, frames=frames,
                               frame_shortlist=frame_shortlist) if frames is not None else None)
        rng = np.random.default_rng(1)
        qs = arrays.pooled[rng.integers(0, n, queries)] + 0.05 * rng.standard_normal(
            (queries, D)).astype(np.float32)
        qs /= np.linalg.norm(qs, axis=1, keepdims=True)
        engine.search(qs[0], k=10)  # warm up
        fast_times, fast_top, framed_times = [], [], []
        for q in qs:
            start = time.perf_counter()
            results, _ = engine.search(q, k=10)
            fast_times.append(time.perf_counter() - start)
            fast_top.append([r.id for r in results])
            if framed is not None:
                start = time.perf_counter()
                framed.search(q, k=10)
                framed_times.append(time.perf_counter() - start)
        exact_times, ref_times, agreement, ref_agreement, max_diff = [], [], [], [], 0.0
        for i, q in enumerate(qs[:exact_queries]):
            start = time.perf_counter()
            results, _ = engine.search(q, k=10, exact=True)
            exact_times.append(time.perf_counter() - start)
            agreement.append(len({r.id for r in results} & set(fast_top[i])) / 10)
            if reference:
                start = time.perf_counter()
                ref, _ = reference_engine.search(q, k=10, exact=True)
                ref_times.append(time.perf_counter() - start)
                ref_agreement.append(len({r.id for r in results} & {r.id for r in ref}) / 10)
                s_new = scorer(q[None], np.arange(n))[0]
                s_ref = reference_engine._score_rows(q, np.arange(n))[0]
                max_diff = max(max_diff, float(np.abs(s_new - s_ref).max()))
        fp50, fp95 = percentiles(fast_times)
        ep50, ep95 = percentiles(exact_times)
        rp50 = percentiles(ref_times)[0] if ref_times else float("nan")
        wp50, wp95 = percentiles(framed_times) if framed_times else (float("nan"),) * 2
        figures["sizes"][str(n)] = {
            "two_stage_p50_ms": round(fp50, 2), "two_stage_p95_ms": round(fp95, 2),
            "two_stage_frames_p50_ms": round(wp50, 2), "two_stage_frames_p95_ms": round(wp95, 2),
            "frame_shortlist": frame_shortlist,
            "frame_vector_bytes_per_video": (frames[0].nbytes if frames is not None else 0),
            "exact_p50_ms": round(ep50, 1), "exact_p95_ms": round(ep95, 1),
            "recall10_agreement": round(float(np.mean(agreement)), 4),
            "exact_reference_p50_ms": round(rp50, 1),
            "exact_speedup_vs_reference": round(rp50 / ep50, 2) if ref_times else None,
            "exact_vs_reference_recall10": (round(float(np.mean(ref_agreement)), 4)
                                            if ref_times else None),
            "exact_vs_reference_max_abs_score_diff": max_diff if ref_times else None,
            "compact_bytes_per_video": scorer.nbytes() // n,
            "compact_build_seconds": round(compact_s, 1),
            "queries": queries, "exact_queries": len(exact_times),
            "bytes_per_video_fp32": bytes_per_video(arrays, "float32") + stage1_bytes // n,
            "bytes_per_video_fp16": bytes_per_video(arrays, "float16") + stage1_bytes // n,
            "build_seconds": round(build_s, 1),
        }
        print(f"N={n:>7,d}  two-stage p50 {fp50:7.2f} ms  p95 {fp95:7.2f} ms (+{frame_shortlist} "
              f"by frames: p50 {wp50:7.2f} ms) | exact p50 "
              f"{ep50:8.1f} ms  p95 {ep95:8.1f} ms (reference {rp50:8.1f} ms) | two-stage/exact "
              f"recall@10 agreement "
              f"{np.mean(agreement):.4f} | bytes/video fp32 "
              f"{figures['sizes'][str(n)]['bytes_per_video_fp32']:,d} fp16 "
              f"{figures['sizes'][str(n)]['bytes_per_video_fp16']:,d}", flush=True)
        del engine, reference_engine, scorer, arrays, framed, frames
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--dtype", choices=["float32", "float16"], default="float16",
                        help="stored state dtype (float16 keeps 100k videos in ~2.5 GB)")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--exact-queries", type=int, default=20)
    parser.add_argument("--shortlist", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads and exact-pass block threads")
    parser.add_argument("--head", choices=["mumur-dcm", "leccr"], default="mumur-dcm")
    parser.add_argument("--block-items", type=int, default=4096)
    parser.add_argument("--no-reference", action="store_true",
                        help="skip the reference exact scorer (slow at 100k)")
    parser.add_argument("--frames", type=int, default=32,
                        help="per-frame-maximum candidates added to two-stage (0: off)")
    args = parser.parse_args()
    figures = run(args.sizes, args.dtype, args.queries, args.exact_queries, args.shortlist,
                  args.threads, args.head, args.block_items, not args.no_reference, args.frames)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
