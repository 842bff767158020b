"""When and how an index gets an approximate nearest-neighbour (ANN) vector index.

Below `EXACT_BELOW` rows a query scans every vector: exact, and LanceDB's scan costs about 4 us
a row on 2 cores (35 ms at 10^4 rows), so it stays under the 50 ms target. From there on the table
gets an IVF index of 8-bit scalar-quantised vectors (IVF_SQ: 1 byte a dimension; product
quantisation (IVF_PQ) was smaller but lost recall that re-ranking could not win back, and took
10x longer to build), probed in enough partitions, its candidates re-ranked on the full vectors
(`refine_factor`), so recall@10 stays near or above 0.95 (`clipaction bench --search` measures
it). Vectors are normalised, so the dot product is the cosine and LanceDB's distance 1 - cosine.
"""

from __future__ import annotations

import math
from typing import Any

#: Rows below which queries are exact and no ANN index is built (see `clipaction bench --search`).
EXACT_BELOW = 10_000
#: The ANN index is rebuilt when the rows it does not cover pass this share of the table
#: (LanceDB scans unindexed rows exactly, so results stay complete meanwhile, only slower).
REBUILD_SHARE = 0.2
METRIC = "dot"


def index_params(rows: int, dim: int) -> dict[str, Any]:
    """IVF_SQ settings for a table of `rows` vectors of `dim`: about sqrt(rows) partitions of
    about sqrt(rows) rows each."""
    partitions = max(16, min(4096, int(round(math.sqrt(rows)))))
    return {"index_type": "IVF_SQ", "num_partitions": partitions, "metric": METRIC}


def query_params(params: dict[str, Any]) -> dict[str, int]:
    """Partitions probed and re-ranking for an index built with `params`. Measured on clustered
    512-d vectors (`clipaction bench --search`, AMD EPYC, 2 busy cores): recall@10 rises with the
    partitions probed (10^6 rows, 1,000 partitions: 31 -> 0.939, 62 -> 0.951, 124 -> 0.957) and
    not with more re-ranking (8-bit vectors already order the candidates well), so 1/16 of the
    partitions, at least 40 (10^5 rows: 19 gave 0.945, 38 0.950), and a light re-rank."""
    return {"nprobes": max(40, params["num_partitions"] // 16), "refine_factor": 10}


def build_vector_index(table: Any, rows: int, dim: int) -> dict[str, Any]:
    """(Re)build the table's IVF_SQ index; returns what the manifest records."""
    import time

    from lancedb.index import IvfSq

    params = index_params(rows, dim)
    start = time.perf_counter()
    table.create_index(
        "vector", config=IvfSq(distance_type=params["metric"], num_partitions=params["num_partitions"]), replace=True
    )
    return {**params, "rows": rows, "seconds": round(time.perf_counter() - start, 3)}


def wants_rebuild(current: dict[str, Any] | None, rows: int) -> bool:
    """Whether a table of `rows` should get a (new) ANN index, given the one it has."""
    if rows < EXACT_BELOW:
        return False
    if current is None:
        return True
    return rows - current.get("rows", 0) > REBUILD_SHARE * rows
