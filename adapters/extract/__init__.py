"""Pure helpers that turn documents into item fields (no I/O, no network).

Modules:

* :mod:`adapters.extract.fields` — flat document fields → an item: kinds chosen by
  rules, kind-specific bodies from sectioned Chinese text (一、主要做法 …), dates.
* :mod:`adapters.extract.mail` — an RFC 5322 message → subject, date, text (plain or
  HTML), attachments.
* :mod:`adapters.extract.readable` — a received item → readable plain text (mail
  bodies, digests).

Other adapters add their own modules here (docx, xlsx, HTML pages).
"""

__all__: list[str] = []
