"""Defaults of ``plip demo``, importable without torch (``plip demo --help`` shows them)."""

DEFAULT_MODEL = "plip-tiny-synth"
#: Seed of the generated gallery. Training runs of this project use other seeds, so the
#: gallery's persons are unseen by the embedded model.
DEFAULT_SEED = 2026
DEFAULT_IDENTITIES = 100
DEFAULT_IMAGES_PER_ID = 4
DEFAULT_QUERIES = 8
