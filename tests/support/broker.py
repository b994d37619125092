"""The tests' broker is the one the production benchmark runs (``loadtest.broker``)."""

from loadtest.broker import NOIDA, Broker, free_port

__all__ = ["NOIDA", "Broker", "free_port"]
