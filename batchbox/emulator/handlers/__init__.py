"""One module per Batch REST resource; each exposes ``routes: list[Route]`` (assembled in ``app.py``).

Handlers parse and validate the request (``resources``), do plain property reads and writes through the ``Store``,
make ONE ``Runtime`` call per lifecycle transition (``runtime.pools`` / ``.jobs`` / ``.tasks``) and render what it
returns (``protocol.responses``). ``agent.py`` is the private node-agent API (``runtime.agents``).
"""

from __future__ import annotations

__all__: list[str] = []
