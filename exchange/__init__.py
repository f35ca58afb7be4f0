"""Congress Exchange: the node, its pure core, and a small API for partners' systems.

Partners use only what this module exports: make keys, canonicalise and sign items,
verify items and log proofs — in Python, or in any language following the documented
bytes (see docs/api.md, "Signing, in any language").

Module map (read in this order):

* :mod:`exchange.core` — pure code, no I/O: ``canonical`` (strict JSON, RFC 8785),
  ``signing`` (suites, keys, context strings), ``sm2`` (the ``sm2-sm3`` suite, GB/T
  32918), ``items`` (id, signing input, sign/verify), ``trust`` (Verifier, audience
  rules), ``merkle`` (RFC 9162 proofs), ``note`` (signed notes, checkpoints,
  cosignatures), ``httpsig`` (RFC 9421 request signatures), ``plans`` (the state of a
  joint inspection plan, computed from its signed items).
* :mod:`exchange.errors` — the exception tree, registered by wire code.
* :mod:`exchange.config` — TOML + ``EXCHANGE_*`` configuration (the only env reader).
* :mod:`exchange.storage` — asyncpg stores over one pool, migrations, embedded PostgreSQL.
* :mod:`exchange.service` — ingest with group commit.
* :mod:`exchange.http` — the aiohttp app: thin route modules, auth, errors, OpenAPI.
* :mod:`exchange.node` — the composition root; :mod:`exchange.cli` — the ``exchange`` command.
* :mod:`exchange.workers` — ``node up --workers N``: a supervisor of worker processes.
* :mod:`exchange.client` — typed HTTP client for partners and adapters.
"""

from exchange.core.canonical import canonical_json
from exchange.core.items import item_id, sign_item, signing_input, verify_item
from exchange.core.merkle import leaf_hash, verify_consistency, verify_inclusion
from exchange.core.note import verify_checkpoint
from exchange.core.signing import PrivateKey, PublicKey, generate_key
from exchange.errors import ExchangeError, ProofError, VerificationError

__all__ = [
    "ExchangeError",
    "PrivateKey",
    "ProofError",
    "PublicKey",
    "VerificationError",
    "canonical_json",
    "generate_key",
    "item_id",
    "leaf_hash",
    "sign_item",
    "signing_input",
    "verify_checkpoint",
    "verify_consistency",
    "verify_inclusion",
    "verify_item",
]
