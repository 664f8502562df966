"""ANN first stage (FAISS, `mumur.index.ann`) at up to a million items: p50 latency and recall
against exact inner-product search.

Synthetic data, not a model's embeddings: N unit vectors in d = 512 drawn as
normalise(topic + sigma * noise) around `--topics` random topics (clustered, as real embedding
collections are); queries are fresh draws of the same kind (not copies of stored vectors). Exact
top-k comes from a float32 flat scan. For each spec (`AnnSpec`, the same code path as
`mumur index --ann`): build seconds, memory (serialised index), p50 / p95 of one query at a
time on one thread, recall@10 (exact top-10 found in the ANN's top 10) and recall@10 in the
ANN's top-128 shortlist (what two-stage search re-scores exactly).

Usage: python benchmarks/ann_recall.py [--n 1000000] [--queries 200]
       [--spec 'HNSW32,Flat|efSearch=128' ...]
Prints a table, then one JSON line (last line).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from mumur.index.ann import AnnSpec, build_ann

D = 512
DEFAULT_SPECS = ["IVF1024,PQ64x4fs,RFlat|nprobe=16,k_factor_rf=16",
                 "IVF1024,PQ64x4fs,RFlat|nprobe=32,k_factor_rf=16",
                 "HNSW32,Flat|efSearch=128"]


def clustered(n: int, topics: np.ndarray, sigma: float, rng, chunk: int = 65536) -> np.ndarray:
    out = np.empty((n, topics.shape[1]), np.float32)
    for start in range(0, n, chunk):
        b = min(chunk, n - start)
        x = topics[rng.integers(0, len(topics), b)] + sigma * rng.standard_normal(
            (b, topics.shape[1])).astype(np.float32)
        out[start:start + b] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def exact_topk(base: np.ndarray, queries: np.ndarray, k: int, chunk: int = 131072) -> np.ndarray:
    best_s = np.full((len(queries), k), -np.inf, np.float32)
    best_i = np.zeros((len(queries), k), np.int64)
    for start in range(0, len(base), chunk):
        s = queries @ base[start:start + chunk].T  # (Q, c)
        s_all = np.concatenate([best_s, s], axis=1)
        i_all = np.concatenate([best_i, np.arange(start, start + s.shape[1])[None].repeat(
            len(queries), 0)], axis=1)
        top = np.argpartition(-s_all, k - 1, axis=1)[:, :k]
        best_s, best_i = np.take_along_axis(s_all, top, 1), np.take_along_axis(i_all, top, 1)
    return best_i


def run(n: int, n_queries: int, specs: list[str], topics: int, sigma: float,
        shortlist: int = 128) -> dict:
    import faiss

    faiss.omp_set_num_threads(1)
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((topics, D)).astype(np.float32) / np.sqrt(D)
    t0 = time.perf_counter()
    base = clustered(n, centres, sigma, rng)
    queries = clustered(n_queries, centres, sigma, rng)
    truth = exact_topk(base, queries, 10)
    figures = {"n": n, "dim": D, "queries": n_queries, "topics": topics, "sigma": sigma,
               "data_seconds": round(time.perf_counter() - t0, 1), "threads": 1, "specs": {}}
    flat_times = []
    for q in queries[:50]:
        start = time.perf_counter()
        np.argpartition(-(base @ q), 10)[:10]
        flat_times.append(time.perf_counter() - start)
    figures["exact_flat_fp32_p50_ms"] = round(float(np.median(flat_times)) * 1e3, 2)
    for text in specs:
        factory, _, params = text.partition("|")
        spec = AnnSpec(factory, params)
        t0 = time.perf_counter()
        index = build_ann(base, spec)
        build_s = time.perf_counter() - t0
        times, hit10, hit_short = [], [], []
        for q, want in zip(queries, truth):
            start = time.perf_counter()
            _, found = index.search(q[None], 10)
            times.append(time.perf_counter() - start)
            hit10.append(len(set(found[0]) & set(want)) / 10)
            _, cand = index.search(q[None], shortlist)
            hit_short.append(len(set(cand[0]) & set(want)) / 10)
        ms = np.asarray(times) * 1e3
        row = {"factory": factory, "params": params, "build_seconds": round(build_s, 1),
               "bytes": int(faiss.serialize_index(index).nbytes),
               "p50_ms": round(float(np.percentile(ms, 50)), 2),
               "p95_ms": round(float(np.percentile(ms, 95)), 2),
               "recall_at_10": round(float(np.mean(hit10)), 4),
               f"recall10_in_top{shortlist}": round(float(np.mean(hit_short)), 4)}
        figures["specs"][text] = row
        print(f"{text:50s} build {build_s:7.1f} s  p50 {row['p50_ms']:7.2f} ms  p95 "
              f"{row['p95_ms']:7.2f} ms  recall@10 {row['recall_at_10']:.4f}  in top-{shortlist} "
              f"{row[f'recall10_in_top{shortlist}']:.4f}  {row['bytes'] / 2**20:,.0f} MiB",
              flush=True)
        del index
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--topics", type=int, default=2000)
    parser.add_argument("--sigma", type=float, default=0.05,
                        help="per-coordinate noise around a topic (topics have norm ~1)")
    parser.add_argument("--spec", action="append", default=None,
                        help="'FACTORY|PARAMS' (repeatable); default: IVF-PQ and HNSW specs")
    args = parser.parse_args()
    figures = run(args.n, args.queries, args.spec or DEFAULT_SPECS, args.topics, args.sigma)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
