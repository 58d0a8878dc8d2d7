"""Questions the dock widgets ask before they replace files."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from qtpy.QtWidgets import QMessageBox


def confirm_replace(parent, paths: Iterable, what: str = "files") -> bool:
    """Ask before replacing files; True if none exists or the user agrees.

    Parameters
    ----------
    parent : QWidget
        The dialog's parent.
    paths : iterable of str or Path
        Files about to be written; only those that exist are named.
    what : str
        What the files are, for the title ("Replace the existing model?").

    Returns
    -------
    bool
        True when nothing would be replaced, or the user chose Yes. No is the
        default button, so a stray Enter never overwrites work.
    """
    existing = [str(p) for p in paths if Path(p).exists()]
    if not existing:
        return True
    buttons = QMessageBox.StandardButton
    answer = QMessageBox.question(
        parent,
        f"Replace {what}?",
        "These files exist and would be replaced:\n" + "\n".join(existing),
        buttons.Yes | buttons.No,
        buttons.No,
    )
    return answer == buttons.Yes
