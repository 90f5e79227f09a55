"""Nightly summarization of a folder of documents: see README.md in this folder."""
