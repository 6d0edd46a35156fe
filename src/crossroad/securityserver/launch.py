"""Entry point of a security server's child processes: ``python -m crossroad.securityserver.launch
(signer|worker) ARGS...``.

The supervisor starts every child in a session of its own, so a Ctrl-C in a terminal reaches the
supervisor alone and it stops the children in order (workers, then the signer).  A child must
not outlive its supervisor either, even one killed with SIGKILL: before anything else it asks
the kernel for SIGTERM when its parent dies (``PR_SET_PDEATHSIG``), and exits at once if the
parent is already gone.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

#: The supervisor's pid, given to the children it starts.
PARENT_ENV = "CROSSROAD_SUPERVISOR_PID"
_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Have SIGTERM sent to this process when the process named in ``$CROSSROAD_SUPERVISOR_PID``
    (our parent) exits (Linux; elsewhere a no-op)."""
    expected = os.environ.get(PARENT_ENV)
    if not expected or not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    except (OSError, AttributeError):
        return
    if str(os.getppid()) != expected:  # the parent died before prctl took effect
        sys.exit(0)


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    die_with_parent()
    if not args:
        sys.exit("usage: python -m crossroad.securityserver.launch (signer|worker) ARGS...")
    what, rest = args[0], args[1:]
    if what == "signer":
        from crossroad.cli.signer import signer_app

        signer_app(rest, prog_name="crossroad signer")
    elif what == "worker":
        from crossroad.securityserver.worker import main as worker_main

        worker_main(rest)
    else:
        sys.exit(f"unknown child process kind {what!r}")


if __name__ == "__main__":
    main()
