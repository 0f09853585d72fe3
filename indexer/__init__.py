"""Batch indexing of images into a Lucene impact index, and the searcher that reads it."""
