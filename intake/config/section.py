"""The strict reader of one TOML table, shared by every section's parser.

An unknown key, a missing required key or a value of the wrong kind raises
one :class:`~intake.errors.ConfigurationError` naming the key and the file.
Secrets never live in the file: ``*_env`` keys name environment variables,
read by :func:`read_secret` when the secret is needed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from intake.errors import ConfigurationError

__all__ = ["REPLY_LANGUAGES", "Section", "read_secret", "resolve_path"]

#: The languages replies are written in (mailer/templates has one folder each).
REPLY_LANGUAGES = ("en", "lv", "it")

T = TypeVar("T")


class Section:
    """Reads one TOML table with a strict key check."""

    def __init__(self, data: Any, name: str, path: Path):
        if not isinstance(data, Mapping):
            raise ConfigurationError("must be a table", key=name, path=str(path))
        # TOML operators write hyphens or underscores; both mean the same key.
        self.data = {str(k).replace("-", "_"): v for k, v in data.items()}
        self.name = name
        self.path = path
        self.used: set[str] = set()

    def key(self, k: str) -> str:
        return f"{self.name}.{k}" if self.name else k

    def error(self, k: str, message: str) -> ConfigurationError:
        return ConfigurationError(message, key=self.key(k), path=str(self.path))

    def get(self, k: str, kind: type[T] | tuple[type, ...], default: Any = ..., ) -> Any:
        self.used.add(k)
        if k not in self.data:
            if default is ...:
                raise self.error(k, "is required")
            return default
        value = self.data[k]
        # bool is an int in Python; do not accept true for a number.
        if (kind is int or kind is float or kind == (int, float)) and isinstance(value, bool):
            raise self.error(k, f"must be a number, not {value!r}")
        if kind is float and isinstance(value, int):
            value = float(value)
        if not isinstance(value, kind):
            want = kind.__name__ if isinstance(kind, type) else " or ".join(t.__name__ for t in kind)
            raise self.error(k, f"must be {want}, not {type(value).__name__} {value!r}")
        return value

    def choice(self, k: str, choices: tuple[str, ...], default: str) -> str:
        value = self.get(k, str, default)
        if value not in choices:
            raise self.error(k, f"must be one of {', '.join(choices)}; got {value!r}")
        return value

    def positive(self, k: str, kind: type, default: Any) -> Any:
        value = self.get(k, kind, default)
        if value is not None and value <= 0:
            raise self.error(k, f"must be greater than 0; got {value!r}")
        return value

    def non_negative(self, k: str, kind: type, default: Any) -> Any:
        value = self.get(k, kind, default)
        if value is not None and value < 0:
            raise self.error(k, f"must be 0 or more; got {value!r}")
        return value

    def path_value(self, k: str, default: Any = ...) -> Path | None:
        value = self.get(k, str, default)
        if value is None:
            return None
        return resolve_path(value, self.path)

    def str_list(self, k: str, default: Any = ...) -> tuple[str, ...]:
        value = self.get(k, (list, str), default)
        if isinstance(value, str):
            value = [value]
        if not all(isinstance(v, str) for v in value):
            raise self.error(k, "must be a list of strings")
        return tuple(value)

    def env_name(self, k: str) -> str | None:
        value = self.get(k, str, None)
        if value is not None and not value.replace("_", "").isalnum():
            raise self.error(k, f"must name an environment variable; got {value!r}")
        return value

    def finish(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            raise self.error(unknown[0], "is not a known key")

    def sub(self, k: str) -> Section:
        self.used.add(k)
        return Section(self.data.get(k, {}), self.key(k), self.path)


def resolve_path(value: str, config_path: Path) -> Path:
    p = Path(os.path.expanduser(value))
    return p if p.is_absolute() else (config_path.parent / p).resolve()


def read_secret(env_name: str | None, what: str) -> str | None:
    """The secret held in environment variable ``env_name`` (None if unset)."""
    if env_name is None:
        return None
    value = os.environ.get(env_name)
    if value is None:
        raise ConfigurationError(
            f"environment variable {env_name} (for {what}) is not set", key=what
        )
    return value


