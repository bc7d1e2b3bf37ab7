"""The ``plip`` command line."""
