"""The shell of patrol-dispatch: Kafka, PostgreSQL, Prometheus and the command line around the pure core."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("patrol-dispatch")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0"
