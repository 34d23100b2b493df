"""Payload codecs: bytes-to-bytes transforms applied after the serializer.

A codec (:class:`PayloadCodec`) has ``encode(bytes) -> bytes`` and ``decode(bytes) ->
bytes``. ``Queue(codec=c or [c1, c2])`` wraps the queue's serializer in a
:class:`CodecSerializer`, so the chain covers arguments and results; ``Queue(codecs={"name":
c})`` plus ``@queue.task(codecs=["name"])`` adds codecs to one task's arguments only. A chain
encodes in list order and decodes in reverse.

Bytes that fail to verify (:class:`HmacCodec`) or to decrypt (:class:`AesGcmCodec`) raise
:class:`~taskito.exceptions.CryptoError` before anything reads them.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import zlib
from typing import Any, Protocol, runtime_checkable

from taskito.exceptions import CryptoError, SerializationError
from taskito.payload.checks import check_codec as check_codec  # still importable from here
from taskito.payload.checks import check_key, check_serializer, codec_list, optional_module

__all__ = ["PayloadCodec", "GzipCodec", "HmacCodec", "AesGcmCodec", "CodecSerializer"]

MAC_BYTES = 32
# The first byte of a signed payload: the format whose MAC covers a context and the body.
HMAC_FORMAT = b"\xa2"
HMAC_DOMAIN = b"taskito.hmac.v2\x00"
NONCE_BYTES = 12
TAG_BYTES = 16
DEFAULT_MAX_DECOMPRESSED = 64 * 1024 * 1024


@runtime_checkable
class PayloadCodec(Protocol):
    """Anything with ``encode(data: bytes) -> bytes`` and ``decode(data: bytes) -> bytes``."""

    def encode(self, data: bytes) -> bytes: ...

    def decode(self, data: bytes) -> bytes: ...


class GzipCodec:
    """gzip. Decoding stops with :class:`~taskito.exceptions.SerializationError` once the
    output would pass ``max_decompressed_bytes`` (64 MiB by default), so a small hostile
    payload cannot inflate into gigabytes."""

    def __init__(self, max_decompressed_bytes: int = DEFAULT_MAX_DECOMPRESSED) -> None:
        if isinstance(max_decompressed_bytes, bool) or not isinstance(max_decompressed_bytes, int):
            raise ValueError(f"max_decompressed_bytes must be an integer, got {max_decompressed_bytes!r}")
        if max_decompressed_bytes < 1:
            raise ValueError(f"max_decompressed_bytes must be >= 1, got {max_decompressed_bytes!r}")
        self.max_decompressed_bytes = max_decompressed_bytes

    def encode(self, data: bytes) -> bytes:
        c = zlib.compressobj(6, zlib.DEFLATED, 31)  # wbits 31: a gzip member
        return c.compress(data) + c.flush()

    def decode(self, data: bytes) -> bytes:
        d = zlib.decompressobj(31)
        try:
            out = d.decompress(data, self.max_decompressed_bytes + 1)
        except zlib.error as exc:
            raise SerializationError(f"not gzip data: {exc}") from None
        if len(out) > self.max_decompressed_bytes:
            raise SerializationError(
                f"gzip payload decompresses past max_decompressed_bytes={self.max_decompressed_bytes}"
            )
        if not d.eof:
            raise SerializationError("gzip payload is truncated")
        return out

    def __repr__(self) -> str:
        return f"GzipCodec(max_decompressed_bytes={self.max_decompressed_bytes})"


class HmacCodec:
    """``[format byte][32-byte HMAC-SHA256][body]``. The MAC covers a context (what the bytes
    are and where they belong: a task's arguments, a job's result) and the body, so bytes
    moved to another row do not verify. Decoding checks it in constant time and raises
    :class:`~taskito.exceptions.CryptoError` when it does not verify. ``key`` may be a list:
    the first key signs, any of them verifies (key rotation)."""

    def __init__(self, key: Any) -> None:
        from taskito._signing import key_list

        if isinstance(key, (list, tuple)):
            self._keys = tuple(key_list("key", key))
        else:
            self._keys = (check_key("key", key),)

    def _mac(self, key: bytes, context: bytes, body: bytes) -> bytes:
        mac = hmac.new(key, HMAC_DOMAIN, hashlib.sha256)
        mac.update(len(context).to_bytes(4, "big"))
        mac.update(context)
        mac.update(body)
        return mac.digest()

    def encode(self, data: bytes) -> bytes:
        return self.encode_bound(data, b"")

    def decode(self, data: bytes) -> bytes:
        return self.decode_bound(data, b"")

    def encode_bound(self, data: bytes, context: bytes) -> bytes:
        return HMAC_FORMAT + self._mac(self._keys[0], context, data) + data

    def decode_bound(self, data: bytes, context: bytes) -> bytes:
        if len(data) < 1 + MAC_BYTES:
            raise CryptoError("the signature did not verify: the payload is too short to be signed")
        body = data[1 + MAC_BYTES :]
        if data[:1] == HMAC_FORMAT:
            mac = data[1 : 1 + MAC_BYTES]
            for key in self._keys:
                if hmac.compare_digest(mac, self._mac(key, context, body)):
                    return body
        if self._is_unbound(data):
            raise CryptoError(
                "the signature did not verify: the payload was signed in the older format "
                "that does not say which task or job it belongs to, and is refused "
                "(enqueue the job again)"
            )
        raise CryptoError(
            "the signature did not verify: the payload was altered, moved from another job "
            "or task, not signed, or signed with another key"
        )

    def _is_unbound(self, data: bytes) -> bool:
        # The format before context binding: [MAC of the body][body], no format byte.
        body = data[MAC_BYTES:]
        return any(
            hmac.compare_digest(data[:MAC_BYTES], hmac.digest(k, body, hashlib.sha256)) for k in self._keys
        )

    def __repr__(self) -> str:
        return f"HmacCodec(keys=<{len(self._keys)} hidden>)"


class AesGcmCodec:
    """AES-GCM: ``[12-byte nonce][ciphertext + 16-byte tag]`` with a fresh random nonce per
    payload; a 16, 24 or 32-byte key gives AES-128, -192 or -256. Needs ``cryptography``
    (``taskito[crypto]``)."""

    def __init__(self, key: bytes) -> None:
        key = check_key("key", key)
        if len(key) not in (16, 24, 32):
            raise ValueError(f"key must be 16, 24 or 32 bytes for AES-GCM, got {len(key)}")
        aead = optional_module("cryptography.hazmat.primitives.ciphers.aead", "crypto")
        self._aead = aead.AESGCM(key)
        self._invalid_tag = optional_module("cryptography.exceptions", "crypto").InvalidTag
        self.key_bits = len(key) * 8

    def encode(self, data: bytes) -> bytes:
        return self.encode_bound(data, b"")

    def decode(self, data: bytes) -> bytes:
        return self.decode_bound(data, b"")

    def encode_bound(self, data: bytes, context: bytes) -> bytes:
        """Encrypts with ``context`` as associated data: the tag covers where the bytes belong."""
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, data, context or None)

    def decode_bound(self, data: bytes, context: bytes) -> bytes:
        if len(data) < NONCE_BYTES + TAG_BYTES:
            raise CryptoError("the payload did not decrypt: too short to be AES-GCM")
        try:
            return self._aead.decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:], context or None)
        except self._invalid_tag:
            pass
        if context:
            try:
                self._aead.decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:], None)
            except self._invalid_tag:
                pass
            else:
                raise CryptoError(
                    "the payload did not decrypt: it was encrypted in the older format that "
                    "does not say which task or job it belongs to, and is refused "
                    "(enqueue the job again)"
                )
        raise CryptoError(
            "the payload did not decrypt: it was altered, moved from another job or task, "
            "or encrypted with another key"
        )

    def __repr__(self) -> str:
        return f"AesGcmCodec(AES-{self.key_bits})"


class CodecSerializer:
    """A serializer whose bytes go through ``codecs``: ``dumps`` encodes in list order,
    ``loads`` decodes in reverse before ``delegate.loads`` sees the bytes."""

    def __init__(self, delegate: Any, codecs: Any) -> None:
        self.delegate = check_serializer("delegate", delegate)
        self.codecs = tuple(codec_list("codecs", codecs))
        self._decoders = tuple(reversed(self.codecs))

    def dumps(self, obj: Any) -> bytes:
        data = self.delegate.dumps(obj)
        for codec in self.codecs:
            data = codec.encode(data)
        return data

    def loads(self, data: bytes) -> Any:
        for codec in self._decoders:
            data = codec.decode(data)
        return self.delegate.loads(data)

    def __repr__(self) -> str:
        return f"CodecSerializer({self.delegate!r}, {list(self.codecs)!r})"
