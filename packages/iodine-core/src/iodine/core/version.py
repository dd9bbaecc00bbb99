"""The version of iodine-core, kept in step with its pyproject.toml."""

VERSION = "0.1.0"
