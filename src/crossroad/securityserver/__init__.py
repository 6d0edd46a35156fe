"""One security server, one command (``crossroad security-server init|run``).

:mod:`.settings` owns the state directory layout and ``security-server.toml``; :mod:`.state`
creates a state directory; :mod:`.supervisor` runs the signer, the configuration client, the
proxy workers (:mod:`.worker`), the OCSP download service and the management API, and stops them
cleanly; :mod:`.children` and :mod:`.launch` start and watch the child processes.
"""
