"""The security server's proxies: client proxy (8080/8443), server proxy (5500), OCSP download
service (5577), and the SS↔SS transport security they share (protocols.md §4, §10)."""
