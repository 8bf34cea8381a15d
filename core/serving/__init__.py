"""``conceptlab serve``: trained models behind an HTTP API (``api``), with tokens (``tokens``), training
jobs (``jobs``), dynamic batching (``batching``), request limits (``limits``) and reading requests
(``requests``); ``server`` starts it.
"""

from core.serving.api import ServerConfig, create_app
from core.serving.server import serve
from core.serving.tokens import TokenRecord, TokenStore

__all__ = ["ServerConfig", "TokenRecord", "TokenStore", "create_app", "serve"]
