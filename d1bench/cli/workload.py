"""Placeholder: this verb module is being written."""


def register(sub) -> None:
    pass
