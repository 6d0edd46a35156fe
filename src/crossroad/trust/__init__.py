"""Trust services for development, tests and pilots: test CA, OCSP responder, TSA."""
