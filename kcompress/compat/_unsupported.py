"""Named errors for the TFMOT symbols kcompress does not provide."""

__all__ = ["module_getattr"]


def module_getattr(module_name, unsupported):
    """A module `__getattr__` that explains, for each TFMOT symbol in
    `unsupported` (`{name: what to use instead}`), why it is missing."""

    def __getattr__(name):
        if name in unsupported:
            raise AttributeError(
                f"{module_name}.{name} is not supported by kcompress: "
                f"{unsupported[name]}")
        raise AttributeError(
            f"module {module_name!r} has no attribute {name!r}. It is not "
            "part of TFMOT's public API either.")

    return __getattr__
