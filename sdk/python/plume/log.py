"""Log lines, attributed to the plugin by the host (a plugin has no stdout)."""

from wit_world.imports import log as wit


def trace(message: str) -> None:
    wit.log(wit.Level.TRACE, message)


def debug(message: str) -> None:
    wit.log(wit.Level.DEBUG, message)


def info(message: str) -> None:
    wit.log(wit.Level.INFO, message)


def warn(message: str) -> None:
    wit.log(wit.Level.WARN, message)


def error(message: str) -> None:
    wit.log(wit.Level.ERROR, message)
