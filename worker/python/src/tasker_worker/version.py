"""The SDK's version, as installed, for announcements."""

from __future__ import annotations

from importlib import metadata

try:
    SDK_VERSION = metadata.version("tasker-worker")
except metadata.PackageNotFoundError:  # run from a source tree, not installed
    SDK_VERSION = "0.0.0"
