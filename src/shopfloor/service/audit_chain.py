"""The audit log's tamper evidence, as pure functions: what is hashed and signed, and the
verification of an exported log against the organisation's public keys alone (no database).

- `entryHash = SHA-256(JCS(event) + prevHash)`, hex, where `event` is the entry without its
  chain fields (`prevHash`, `entryHash`, `signature`, `signingKeyId`); the first entry's
  `prevHash` is 64 zeros; `sequenceNumber` grows by exactly one per entry.
- `signature = Ed25519(SHA-256(JCS(entry without "signature")))`, base64url without padding,
  made with the organisation's key named by `signingKeyId` (its JWKS `kid`).

JCS is RFC 8785 canonical JSON."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from shopfloor.store.integration_records import AuditRecord

GENESIS_HASH = "0" * 64
CHAIN_FIELDS = ("prevHash", "entryHash", "signature", "signingKeyId")


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


_SAFE_INT = 2**53
# Below the surrogates, code-point order (Python's sort) is UTF-16 order (RFC 8785's).
_BEYOND_KEY = re.compile("[\ud800-\U0010ffff]")
_dumps = json.JSONEncoder(
    ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False
).encode


def canonical(value: Any) -> bytes:
    """RFC 8785 canonical JSON. The entries this server writes (strings, integers, null,
    booleans, objects, arrays) take the standard library's C encoder, whose output for them
    is the RFC's and costs a fraction of the pure-Python `rfc8785`; anything else (floats,
    huge integers, keys beyond the Basic Multilingual Plane's lower part) goes to `rfc8785`,
    and so does a string with a lone surrogate (which it refuses, as the RFC does)."""
    if _plain(value):
        try:
            return _dumps(value).encode()
        except UnicodeEncodeError:
            pass
    return rfc8785.dumps(value)


def _plain(value: Any) -> bool:
    kind = type(value)
    if kind is str or value is None or kind is bool:
        return True
    if kind is int:
        return bool(-_SAFE_INT < value < _SAFE_INT)
    if kind is dict:
        for k, v in value.items():
            if type(k) is not str or not (k.isascii() or _BEYOND_KEY.search(k) is None):
                return False
            if not _plain(v):
                return False
        return True
    if kind is list or kind is tuple:
        return all(_plain(v) for v in value)
    return False


def iso(ms: int) -> str:
    """Epoch ms as ISO 8601 UTC with milliseconds (the form that is hashed)."""
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def event_of(record: AuditRecord, payload: Any = None) -> dict[str, Any]:
    """The hashed part of an entry, as exported and served (`payload`: the record's payload
    already parsed, if the caller has it)."""
    return {
        "id": record.id,
        "workspaceId": record.org_id,
        "sequenceNumber": record.sequence_number,
        "eventType": record.event_type,
        "actorId": record.actor_id,
        "actorType": record.actor_type,
        "entityType": record.entity_type,
        "entityId": record.entity_id,
        "payload": json.loads(record.payload) if payload is None else payload,
        "occurredAt": iso(record.occurred_at),
    }


def entry_of(record: AuditRecord) -> dict[str, Any]:
    """An entry in full: the exported form an offline verifier reads."""
    return {
        **event_of(record),
        "prevHash": record.prev_hash,
        "entryHash": record.entry_hash,
        "signingKeyId": record.signing_key_id,
        "signature": record.signature,
    }


_string = json.encoder.encode_basestring  # RFC 8785's form of any str (the C encoder's)


def seal(row: Mapping[str, Any], key: Ed25519PrivateKey) -> tuple[str, str]:
    """The (entryHash, signature) of an entry given as its audit_events row (the columns of
    AuditRecord but the two it returns): what `entry_hash` and `sign` make of the entry's
    exported form, without building that form."""
    hashed, digest = seal_digest(row)
    return hashed, b64url(key.sign(digest))


def seal_digest(row: Mapping[str, Any]) -> tuple[str, bytes]:
    """The entryHash of an entry given as its audit_events row, and the digest its signature
    signs (`seal` without the signing). Each member is encoded once and the two
    canonical objects (the event; the entry without its signature) are written with their
    members in RFC 8785 order (sorted names, all ASCII); the row's payload is canonical
    JSON already (every writer stores it so). A lone surrogate fails to encode, as RFC 8785
    refuses it."""
    seq = row["sequence_number"]
    sequence = str(seq) if -_SAFE_INT < seq < _SAFE_INT else canonical(seq).decode()
    head = (
        f'{{"actorId":{_string(row["actor_id"])},"actorType":{_string(row["actor_type"])},'
        f'"entityId":{_string(row["entity_id"])},"entityType":{_string(row["entity_type"])},'
    )
    middle = (
        f'"eventType":{_string(row["event_type"])},"id":{_string(row["id"])},'
        f'"occurredAt":{_string(iso(row["occurred_at"]))},"payload":{row["payload"]},'
    )
    workspace = _string(row["org_id"])
    prev_hash = row["prev_hash"]
    event = f'{head}{middle}"sequenceNumber":{sequence},"workspaceId":{workspace}}}'
    hashed = hashlib.sha256((event + prev_hash).encode()).hexdigest()
    signed = (
        f'{head}"entryHash":"{hashed}",{middle}"prevHash":{_string(prev_hash)},'
        f'"sequenceNumber":{sequence},"signingKeyId":{_string(row["signing_key_id"])},'
        f'"workspaceId":{workspace}}}'
    )
    return hashed, hashlib.sha256(signed.encode()).digest()


def entry_hash(event: Mapping[str, Any], prev_hash: str) -> str:
    return hashlib.sha256(canonical(dict(event)) + prev_hash.encode()).hexdigest()


def signed_digest(entry: Mapping[str, Any]) -> bytes:
    unsigned = {k: v for k, v in entry.items() if k != "signature"}
    return hashlib.sha256(canonical(unsigned)).digest()


def sign(entry: Mapping[str, Any], key: Ed25519PrivateKey) -> str:
    return b64url(key.sign(signed_digest(entry)))


@dataclass(frozen=True)
class Broken:
    sequence_number: int | None
    entry_hash: str | None
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "sequenceNumber": self.sequence_number,
            "entryHash": self.entry_hash,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Verdict:
    valid: bool
    event_count: int
    first_sequence: int | None
    last_sequence: int | None
    broken_at: Broken | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "valid": self.valid,
            "eventCount": self.event_count,
            "firstSequence": self.first_sequence,
            "lastSequence": self.last_sequence,
            "brokenAt": None if self.broken_at is None else self.broken_at.as_dict(),
        }


def public_keys(jwks: Mapping[str, Any]) -> dict[str, Ed25519PublicKey]:
    """The Ed25519 keys of a JWKS document, by kid."""
    keys: dict[str, Ed25519PublicKey] = {}
    for jwk in jwks.get("keys", []):
        if jwk.get("kty") == "OKP" and jwk.get("crv") == "Ed25519" and "kid" in jwk:
            keys[str(jwk["kid"])] = Ed25519PublicKey.from_public_bytes(unb64url(str(jwk["x"])))
    return keys


def verify(entries: Iterable[Mapping[str, Any]], keys: Mapping[str, Ed25519PublicKey]) -> Verdict:
    """Check a log (entries in the order given) link by link: each follows its predecessor
    (sequence + 1, prevHash = its entryHash; the first entry of sequence 1 follows the
    genesis hash), hashes to its entryHash, and carries a valid signature by a key of
    `keys`. Names the first entry that fails."""
    count, first, prev_seq, prev_hash = 0, None, None, None
    for entry in entries:
        seq, hashed = entry.get("sequenceNumber"), entry.get("entryHash")
        problem = _problem(entry, prev_seq, prev_hash, keys)
        if problem is not None:
            broken = Broken(seq if isinstance(seq, int) else None, _str(hashed), problem)
            return Verdict(False, count, first, prev_seq, broken)
        count += 1
        first = seq if first is None else first
        prev_seq, prev_hash = seq, hashed
    return Verdict(True, count, first, prev_seq)


def _problem(
    entry: Mapping[str, Any],
    prev_seq: Any,
    prev_hash: Any,
    keys: Mapping[str, Ed25519PublicKey],
) -> str | None:
    seq = entry.get("sequenceNumber")
    if not isinstance(seq, int) or isinstance(seq, bool):
        return "sequenceNumber is missing"
    if prev_seq is not None and seq != prev_seq + 1:
        return f"sequenceNumber {seq} does not follow {prev_seq}"
    expected_prev = GENESIS_HASH if prev_seq is None and seq == 1 else prev_hash
    if expected_prev is not None and entry.get("prevHash") != expected_prev:
        return "prevHash is not the previous entry's entryHash"
    event = {k: v for k, v in entry.items() if k not in CHAIN_FIELDS}
    if entry_hash(event, str(entry.get("prevHash"))) != entry.get("entryHash"):
        return "entryHash does not match the entry's content"
    key = keys.get(str(entry.get("signingKeyId")))
    if key is None:
        return f"signingKeyId {entry.get('signingKeyId')} is not a key of the JWKS"
    try:
        key.verify(unb64url(str(entry.get("signature"))), signed_digest(entry))
    except (InvalidSignature, ValueError):
        return "signature does not verify"
    return None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None
