"""The record's name for evalkit's atomic writes (``evalkit.files``, their one home, on the ground floor so
that ``media/`` and ``config/`` write atomically too without importing the record)."""

from evalkit.files import (atomic_output, temporary_path, write_bytes_atomic,  # noqa: F401 (re-exported)
                           write_json_atomic, write_text_atomic)
