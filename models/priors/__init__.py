"""Class -> vocabulary-word priors for classifier backbones (see ``imagenet.py``)."""
