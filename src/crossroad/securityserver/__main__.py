"""``python -m crossroad.securityserver init|run|status``: the ``crossroad security-server``
commands without the rest of the command tree (what the demo starts)."""

from crossroad.cli.security_server import security_server_app

if __name__ == "__main__":
    security_server_app(prog_name="crossroad security-server")
