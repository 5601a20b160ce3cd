"""tlcore: transfer learning and fine-tuning of image classifiers with Keras, without a UI.

The modules, one concept each (see docs/architecture.md): `datasets` (safe zip ingestion),
`backbones` (the registry of pretrained networks), `models` (base + head, strategies, the layer
table), `spec` (what a run is), `pipeline` (tf.data input), `training` (the trainer process),
`runs` (run folders: start, queue, stop, list), `cli` (`python -m tlcore`).
"""

__version__ = "0.1.0"
