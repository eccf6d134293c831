"""The shape of a JSON value: every leaf's path and type, to compare files with SUMMIT's published ones."""


def leaf_paths(value, path=""):
    """``(path, type)`` of every leaf of a JSON value; list entries share the path ``[]``."""
    if isinstance(value, dict):
        return {p for k, v in value.items() for p in leaf_paths(v, f"{path}.{k}")}
    if isinstance(value, list):
        return {p for v in value for p in leaf_paths(v, f"{path}[]")} or {(f"{path}[]", "empty")}
    return {(path, type(value).__name__)}
