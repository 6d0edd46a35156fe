"""The demo instance: everything on 127.0.0.1, one command (``crossroad demo``)."""
