"""Start the API under uvicorn: loopback by default, and never on a network without tokens."""

from __future__ import annotations

import logging

from core.errors import ConceptlabError
from core.network import is_loopback
from core.serving.api import ServerConfig, create_app
from core.serving.tokens import TokenStore

logger = logging.getLogger(__name__)


def serve(host: str = "127.0.0.1", port: int = 8000, config: ServerConfig = ServerConfig(), tokens: TokenStore | None = None) -> None:
    """Serve until interrupted.

    Raises:
        ConceptlabError: ``host`` is not loopback and no token exists (anyone on the network could use every project).
    """
    import uvicorn  # here: only this command needs the server stack

    tokens = tokens or TokenStore()
    if not tokens.list_tokens() and not is_loopback(host):
        raise ConceptlabError(
            f"refusing to serve on {host} without tokens: anyone on the network could use every project. "
            "Create one first (conceptlab tokens create NAME), or serve on 127.0.0.1"
        )
    if not tokens.list_tokens():
        logger.warning("no tokens exist: serving without authentication, on %s only", host)
    uvicorn.run(create_app(config, tokens), host=host, port=port, log_level="warning", access_log=False)
