"""Single-stream re-ranking: MLMM (../shared/seeds/mlmm-mclip-mla-clip4vla.md §3.1) as a
cross-encoder over the two-stream search's shortlist.

`model` (the transformer and its four pre-training heads), `objectives` (masking, ITM pairs and
the losses of eq. 1-4), `reranker` (tokenizer, feature lookup, shortlist reordering), `fusion`
(ITM score fused with the two-stream score, the weight chosen on validation captions).
"""

from __future__ import annotations

from .fusion import fuse_scores, load_fusion, save_fusion, select_fusion_weight
from .model import MLMM, MLMMConfig, MLMMOutput, load_mlmm
from .objectives import OBJECTIVES
from .reranker import (
                       Reranker,
                       TextTokenizer,
                       load_reranker,
                       rerank_order,
                       rerank_results,
                       reranked_ranks,
)

__all__ = ["MLMM", "OBJECTIVES", "MLMMConfig", "MLMMOutput", "Reranker", "TextTokenizer",
           "fuse_scores", "load_fusion", "load_mlmm", "load_reranker", "rerank_order",
           "rerank_results", "reranked_ranks", "save_fusion", "select_fusion_weight"]
