"""The reading view's templates, static files and UI strings (Chinese first, English)."""
