"""Space versions of a stored campaign: what a new version may change."""

from __future__ import annotations

from layoutopt.model.space import LayoutSpace

__all__ = ["check_extension"]


def check_extension(old: LayoutSpace, new: LayoutSpace) -> None:
    """New space versions may only append variants, so stored codes keep their meaning.

    Raises:
        ValueError: for changed components, or an existing variant that moved.
    """
    if tuple(new.components) != tuple(old.components):
        raise ValueError(
            f"update_space: components {list(new.components)} differ from the campaign's "
            f"{list(old.components)}; a campaign keeps its components (start a new campaign "
            "to change them)"
        )
    for comp, before, after in zip(old.components, old.variants, new.variants, strict=True):
        if tuple(after[: len(before)]) != tuple(before):
            raise ValueError(
                f"update_space: component {comp!r} lists {list(after)}, but its existing "
                f"variants {list(before)} must keep their positions (stored data refer to "
                "them by position); append new variants at the end"
            )
