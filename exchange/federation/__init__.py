"""Federation: the roster and site records (:mod:`.service`), push replication to peers
(:mod:`.sender`) and catch-up from their logs (:mod:`.puller`)."""

from .service import Federation

__all__ = ["Federation"]
