"""The item-item co-occurrence matrix on Dask, written as an anndata CSR group.

1. The interactions are shuffled by collection id, so each partition holds whole
   collections; each partition emits and sums its pairs (:mod:`.pairs`).
2. The summed pairs are shuffled by row block (``row // block_rows``): every
   block lands in one partition, and one task sums it (COO -> CSR) and saves its
   ``indices`` / ``data`` as two ``.npy`` parts in a scratch folder beside the run
   store (a local folder or object storage: workers need no shared disk); it returns the block's row lengths and diagonal.
3. The client turns the row lengths into ``indptr``; then each chunk of the final
   ``data`` / ``indices`` arrays is written by exactly one task, which reads the
   parts overlapping it. Writers never share a chunk, so no write is unaligned.

Nothing N x N is ever formed: memory per task is bounded by a partition's distinct
pairs (step 1) or a row block's non-zeros (step 2).
"""

from __future__ import annotations

import logging
import math
import io
from operator import getitem

import numpy as np
import pandas as pd
import scipy.sparse as sp
import zarr
from fsspec import AbstractFileSystem

from ..arrays import write_array
from ..errors import StoreError
from ..storage import empty_folder, remove_folder
from .pairs import PAIR_META, PairSpec, partition_pairs, prepare_collections

logger = logging.getLogger("tsne_dist")

CHUNK_VALUES = 4 * 2**20  # entries per chunk of the final data / indices arrays
MAX_BLOCK_ROWS = 50_000


def choose_block_rows(n_items: int, n_partitions: int = 1) -> int:
    """Rows per output block: at least 8 blocks and 2 per input partition, at most 50,000 rows.

    Tying the block count to the input partitions keeps a block's pairs about the size
    of one partition's, so a reduction task's memory does not grow with the log.
    """
    return int(max(256, min(MAX_BLOCK_ROWS, math.ceil(n_items / max(8, 2 * n_partitions)))))


_WHOLE_COLLECTIONS: set[str] = set()  # names of frames whose partitions already hold whole collections


def by_collection(frame):
    """The interactions shuffled so that each collection lies in one partition."""
    if frame.npartitions == 1 or frame._name in _WHOLE_COLLECTIONS:
        return frame
    return frame.shuffle(on="collection", npartitions=frame.npartitions)


def read_spilled(folder: AbstractFileSystem, meta: pd.DataFrame):
    """The cleaned log that :func:`tsne_dist.cooccurrence.vocabulary.item_counts` spilled, one
    partition per part (each holds whole collections, so later passes need no shuffle).

    Parameters
    ----------
    folder : fsspec.AbstractFileSystem
        The filesystem rooted at the spill's scratch folder.
    meta : pandas.DataFrame
        The cleaned log's columns and dtypes.

    Returns None when the folder holds no complete spill.
    """
    import dask.dataframe as dd
    from dask import delayed

    folder.invalidate_cache()
    if not folder.exists("_complete"):
        return None
    files = sorted(name for name in folder.ls("", detail=False) if name.endswith(".parquet"))
    if int(folder.cat_file("_complete").decode().strip() or -1) != len(files):
        return None
    frame = dd.from_delayed([delayed(_read_part)(folder, name) for name in files], meta=meta, verify_meta=False)
    _WHOLE_COLLECTIONS.add(frame._name)
    return frame


def _read_part(folder: AbstractFileSystem, name: str) -> pd.DataFrame:
    with folder.open(name, "rb") as handle:
        return pd.read_parquet(handle)


def collection_stats(frame, vocabulary: pd.Index, spec: PairSpec) -> dict:
    """Collections before and after the filters, without emitting pairs (one Dask pass)."""
    import dask
    from dask import delayed

    parts = by_collection(frame).to_delayed()
    vocab = delayed(vocabulary, pure=True)  # one task holds it; partitions depend on it
    stats = dask.compute(*[delayed(_stats_only)(part, vocab, spec) for part in parts])
    return _sum_stats(stats)


def _stats_only(part: pd.DataFrame, vocabulary: pd.Index, spec: PairSpec) -> dict:
    collections = prepare_collections(part, vocabulary, spec)
    stats = dict(collections.stats)
    sizes = np.diff(collections.offsets)
    stats["pairs"] = int((sizes * (sizes - 1)).sum())
    return stats


def _sum_stats(parts) -> dict:
    total: dict[str, int] = {}
    for stats in parts:
        for key, value in stats.items():
            total[key] = total.get(key, 0) + int(value)
    return total


def build_cooccurrence(client, frame, vocabulary: pd.Index, spec: PairSpec, group: zarr.Group,
                       scratch: AbstractFileSystem, *, block_rows: int | None = None) -> dict:
    """Compute the co-occurrence matrix on the cluster and write it into ``group``.

    Parameters
    ----------
    client : distributed.Client
        The cluster (its workers must reach ``scratch`` and the store: a shared folder or object storage).
    frame : dask.dataframe.DataFrame
        Normalised interactions (:func:`tsne_dist.io.interactions.read_interactions`).
    vocabulary : pandas.Index
        Item ids in index order.
    spec : PairSpec
        Pair weighting and caps.
    group : zarr.Group
        Empty group of a Zarr v3 store its workers can reach; receives the anndata CSR encoding
        plus a ``diagonal`` array (each item's collection count).
    scratch : fsspec.AbstractFileSystem
        A filesystem rooted at the folder for the per-block parts (emptied first, removed
        when done), e.g. a ``DirFileSystem`` beside the run store: on object storage
        workers need only its storage options, no shared disk.
    block_rows : int, optional
        Rows per output block (default :func:`choose_block_rows`).

    Returns
    -------
    dict
        ``collections``, ``kept``, ``capped``, ``interactions``, ``pairs`` (ordered
        pairs emitted), ``nnz``, ``n_blocks``.
    """
    import dask
    import dask.dataframe as dd
    from dask import delayed

    n_items = len(vocabulary)
    block_rows = block_rows or choose_block_rows(n_items, frame.npartitions)
    n_blocks = math.ceil(n_items / block_rows)
    empty_folder(scratch)
    vocab = delayed(vocabulary, pure=True)  # in the graph (not scattered): a restarted worker can rebuild it
    results = [delayed(partition_pairs, pure=True)(part, vocab, spec, n_items, block_rows)
               for part in by_collection(frame).to_delayed()]
    pairs = dd.from_delayed([delayed(getitem)(result, 0) for result in results], meta=PAIR_META,
                            verify_meta=False)
    stats = [delayed(getitem)(result, 1) for result in results]
    if pairs.npartitions > 1:
        pairs = pairs.shuffle(on="block", npartitions=max(1, min(n_blocks, 4 * max(pairs.npartitions, 1))))
    written = [delayed(write_blocks)(part, scratch, block_rows, n_items) for part in pairs.to_delayed()]
    blocks, stats = dask.compute(written, stats)
    totals = _sum_stats(stats)
    found = {block: (lengths, diagonal) for part in blocks for block, lengths, diagonal in part}
    lengths = np.zeros(n_items, dtype=np.int64)
    diagonal = np.zeros(n_items, dtype=np.float64)
    for block, (block_lengths, block_diagonal) in found.items():
        start = block * block_rows
        lengths[start:start + len(block_lengths)] = block_lengths
        diagonal[start:start + len(block_diagonal)] = block_diagonal
    indptr = np.zeros(n_items + 1, dtype=np.int64)
    np.cumsum(lengths, out=indptr[1:])
    nnz = int(indptr[-1])
    group.attrs.update({"encoding-type": "csr_matrix", "encoding-version": "0.1.0", "shape": [n_items, n_items]})
    write_array(group, "indptr", indptr)
    write_array(group, "diagonal", diagonal.astype(np.float32))
    chunk = min(CHUNK_VALUES, max(nnz, 1))
    data = group.create_array("data", shape=(nnz,), chunks=(chunk,), dtype=np.float32)
    indices = group.create_array("indices", shape=(nnz,), chunks=(chunk,), dtype=np.int32)
    spans = {block: (int(indptr[block * block_rows]), int(indptr[min((block + 1) * block_rows, n_items)]))
             for block in found}
    # the arrays travel to the workers by reference to their store (zarr arrays pickle as store + path)
    futures = client.map(write_chunk, range(math.ceil(nnz / chunk)), data=data, indices=indices, chunk=chunk,
                         nnz=nnz, spans=spans, scratch=scratch, pure=False)
    client.gather(futures)
    for array in (data, indices):  # a chunk a worker wrote where this process cannot see would read as 0
        if array.nchunks_initialized != array.nchunks:
            raise StoreError(f"the Dask workers wrote the co-occurrence matrix where this process cannot read it "
                             f"({array.nchunks_initialized} of {array.nchunks} chunks of {array.store})",
                             "give the workers and this process the same output location: a shared folder, "
                             "or object storage (an fsspec URL as `out`)")
    remove_folder(scratch)
    totals.update({"nnz": nnz, "n_blocks": n_blocks, "block_rows": block_rows})
    group.attrs["n_collections"] = totals.get("kept", 0)
    return totals


def write_blocks(part: pd.DataFrame, scratch: AbstractFileSystem, block_rows: int, n_items: int) -> list:
    """Sum each row block of a shuffled partition and save it as .npy parts in ``scratch``.

    Returns
    -------
    list of (block, row lengths, diagonal)
    """
    out = []
    for block, rows in part.groupby("block", sort=True):
        block = int(block)
        start = block * block_rows
        n_rows = min(block_rows, n_items - start)
        matrix = sp.coo_matrix((rows["value"].to_numpy(np.float64),
                                (rows["row"].to_numpy(np.int64) - start, rows["col"].to_numpy(np.int32))),
                               shape=(n_rows, n_items)).tocsr()
        matrix.sum_duplicates()
        matrix.sort_indices()
        _save(scratch, f"{block}.indices.npy", matrix.indices.astype(np.int32))
        _save(scratch, f"{block}.data.npy", matrix.data.astype(np.float32))
        diagonal = matrix.diagonal(k=start).astype(np.float64) if n_rows else np.zeros(0)
        out.append((block, np.diff(matrix.indptr).astype(np.int64), diagonal))
    return out


def _save(scratch: AbstractFileSystem, name: str, array: np.ndarray) -> None:
    payload = io.BytesIO()
    np.save(payload, array)
    scratch.pipe_file(name, payload.getvalue())


def _load_range(scratch: AbstractFileSystem, name: str, start: int, stop: int) -> np.ndarray:
    """Entries ``start:stop`` of the 1-D ``.npy`` part ``name``, read without the rest of it
    (a ranged read on object storage).

    Raises
    ------
    StoreError
        When the part is not there: the worker that wrote it saw another folder.
    """
    try:
        with scratch.open(name, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            if version == (1, 0):
                _, _, dtype = np.lib.format.read_array_header_1_0(handle)
            else:
                _, _, dtype = np.lib.format.read_array_header_2_0(handle)
            handle.seek(handle.tell() + start * dtype.itemsize)
            return np.frombuffer(handle.read((stop - start) * dtype.itemsize), dtype=dtype)
    except FileNotFoundError:
        raise StoreError(f"a Dask worker cannot read the co-occurrence part {name} another worker wrote",
                         "give the workers the run's output location: a shared folder, or object storage "
                         "(an fsspec URL as `out`)") from None


def write_chunk(index: int, *, data: zarr.Array, indices: zarr.Array, chunk: int, nnz: int,
                spans: dict[int, tuple[int, int]], scratch: AbstractFileSystem) -> int:
    """Write chunk ``index`` of the ``data`` and ``indices`` arrays from the block parts overlapping it
    (``spans``: block -> its first and past-last position in those arrays)."""
    lo, hi = index * chunk, min((index + 1) * chunk, nnz)
    values = np.empty(hi - lo, dtype=np.float32)
    columns = np.empty(hi - lo, dtype=np.int32)
    for block, (start, stop) in spans.items():
        if stop <= lo or start >= hi or stop == start:
            continue
        a, b = max(lo, start), min(hi, stop)
        columns[a - lo:b - lo] = _load_range(scratch, f"{block}.indices.npy", a - start, b - start)
        values[a - lo:b - lo] = _load_range(scratch, f"{block}.data.npy", a - start, b - start)
    data[lo:hi] = values
    indices[lo:hi] = columns
    return hi - lo
