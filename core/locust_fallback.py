"""``import locust`` in any Python process of an environment where lcore is installed.

lcore's installation puts one line in site-packages (``lcore-locust-alias.pth``) that calls
``install()`` when Python starts. It appends lcore's alias finder at the *end* of
``sys.meta_path``: it is asked only when no installed package answers, so a real Locust,
when installed, wins untouched; otherwise ``locust`` and its submodules resolve to lcore's
(``python locustfile.py``, library use, pytest files that import locust). Nothing is imported
but this module and ``lcore.compat`` — no gevent, no patching — until ``locust`` is imported.

Turn it off with ``LCORE_NO_LOCUST_ALIAS=1`` in the environment. Inside lcore's own
processes ``lcore.compat.install()`` moves the finder to the front, so there lcore wins.
"""

from __future__ import annotations

import os
import sys

DISABLE_VARIABLE = "LCORE_NO_LOCUST_ALIAS"


def install() -> None:
    if os.environ.get(DISABLE_VARIABLE, "").strip().lower() not in ("", "0", "false", "no"):
        return
    from . import compat

    if compat._finder not in sys.meta_path:
        sys.meta_path.append(compat._finder)
