"""HTTP search service: text and image queries against a published Lucene impact index, with explanations."""
