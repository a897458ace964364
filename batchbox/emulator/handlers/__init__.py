"""One module per Batch REST resource; each exposes ``routes: list[Route]`` (assembled in ``app.py``).

Handlers parse and validate the request (``resources``), read and write the ``Store``, tell the ``Runtime`` about
every change that makes something move, and shape the answer (``protocol.responses``). ``agent.py`` is the private
node-agent API.
"""

from __future__ import annotations

__all__: list[str] = []
