"""LexVLA models: towers, objective, evaluation, ONNX export and the runtime bundle.

Import map (torch is only needed by the training side):
- ``models.sparse``     numpy: top-k, normalisation, quantisation -- where a word's weight is finalised.
- ``models.vocab``      the lexical dimensions: token ids kept as words, id -> word.
- ``models.preprocess`` image decoding/resizing and prompt tokenisation shared by training and serving.
- ``models.bundle``     loads an exported bundle and encodes with onnxruntime (no torch).
- ``models.towers``, ``models.losses``, ``models.train``, ``models.evaluate``, ``models.export``: torch side.
"""
