"""The signer: its own process and the only holder of private keys (protocols.md §10.1).

Tokens (:mod:`.tokens` software, :mod:`.pkcs11` HSMs), the key configuration
(:mod:`.keyconf`, :mod:`.csr`), OCSP for own certificates (:mod:`.ocsp`), batch signing
(:mod:`.batch`), all driven by :class:`.manager.Signer`, served on a unix socket by
:mod:`.service` and reached with :class:`.client.SignerClient`.
"""
