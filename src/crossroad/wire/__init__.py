"""Wire formats of the data path (sans-I/O core): bytes in, values and events out.

* :mod:`~crossroad.wire.soap` — SOAP 4.0 messages of information systems (§2.1–2.2);
* :mod:`~crossroad.wire.soap_header` — the X-Road header fields as values (§2.2, §12.3);
* :mod:`~crossroad.wire.soap_response` — response checks and ``requestHash`` (§2.2, §2.4);
* :mod:`~crossroad.wire.faults` — SOAP faults and REST error responses (§2.5, §3.3);
* :mod:`~crossroad.wire.mime` — content types, incremental multipart parser and writer;
* :mod:`~crossroad.wire.swa` — SwA/MTOM packages of information systems (§2.3);
* :mod:`~crossroad.wire.rest` — REST r1 requests/responses and their header parts (§3, §4.5);
* :mod:`~crossroad.wire.transport` — reading the message between security servers (§4.3–4.6);
* :mod:`~crossroad.wire.transport_encoder` — writing it, part by part.

Nothing here reads the clock, opens sockets or files, or draws random numbers: boundaries,
message ids and fault details come from the caller.
"""
