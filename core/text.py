"""Content identity of texts: the hash that keys the embedding cache and annotators' decisions."""

from __future__ import annotations

import hashlib


def text_hash(text: str) -> str:
    """Return a stable 32-hex-digit content hash of ``text`` (SHA-256 of its UTF-8 bytes, truncated)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def document_text(title: str | None, body: str | None) -> str:
    """Join a BEIR-style title and body into the one text that is embedded, shown and exported."""
    title = (title or "").strip()
    body = (body or "").strip()
    if title and body:
        return f"{title} {body}"
    return title or body
