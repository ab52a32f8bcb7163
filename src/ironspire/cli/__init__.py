"""The `ironspire` command's entry point.

``ironspire --version`` is answered here, before Typer, Rich and the sub-apps load (most of the
command's start-up time); everything else goes to the Typer app in ``ironspire.cli.app``.
"""

from __future__ import annotations

import sys


def main() -> None:
    if sys.argv[1:] == ["--version"]:
        from ironspire import __version__

        sys.stdout.write(f"ironspire {__version__}\n")
        return
    from ironspire.cli.app import main as run

    run()
