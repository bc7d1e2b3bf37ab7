"""The top layer: the ``plip`` command (:mod:`plip.app.cli`), the demo and the pictures of results.

Only this package may import every other layer; nothing else imports it.
"""
