"""Readers for vectors, ids and metadata from local paths or fsspec URLs."""
