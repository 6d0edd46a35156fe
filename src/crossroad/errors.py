"""The one error tree: every failure carries an X-Road fault code.

X-Road faults are dotted codes: an inner cause (``invalid_signature_value``), optionally
prefixed by the outer context (``signature_verification.``) and, at the boundary, by the
side that reports it (``server.clientproxy.``).  Since 7.8.0 NIIS emits lower-case snake
codes (protocols.md §12.5 item 1); older peers send CamelCase (``Server.ClientProxy.AccessDenied``).
We emit the 7.8 style and accept both: :func:`normalize_code` maps legacy to current.

Prefixes are added once, at the boundary, with :meth:`XRoadError.with_prefix`; foreign
exceptions are mapped there with ``raise XRoadError(...) from exc``.
"""

from __future__ import annotations

import re
from typing import Final


class Code:
    """X-Road fault codes (``ErrorCodes`` in NIIS), 7.8 spelling."""

    # generic
    INTERNAL_ERROR: Final = "internal_error"
    IO_ERROR: Final = "io_error"
    NETWORK_ERROR: Final = "network_error"
    HTTP_ERROR: Final = "http_error"
    INVALID_REQUEST: Final = "invalid_request"
    INVALID_XML: Final = "invalid_xml"
    INVALID_MESSAGE: Final = "invalid_message"
    INVALID_CONTENT_TYPE: Final = "invalid_content_type"
    INVALID_HTTP_METHOD: Final = "invalid_http_method"
    MALFORMED_OPTIONAL_PARTS_CONF: Final = "malformed_optional_parts_conf"
    # identifiers
    INVALID_CLIENT_IDENTIFIER: Final = "invalid_client_identifier"
    INVALID_SERVICE_IDENTIFIER: Final = "invalid_service_identifier"
    INVALID_SECURITY_SERVER: Final = "invalid_security_server"
    INVALID_IDENTIFIER: Final = "invalid_identifier"
    # signatures, certificates, OCSP
    MALFORMED_SIGNATURE: Final = "malformed_signature"
    INVALID_SIGNATURE_VALUE: Final = "invalid_signature_value"
    INCORRECT_CERTIFICATE: Final = "incorrect_certificate"
    INVALID_CERTIFICATE: Final = "invalid_certificate"  # 7.x profile providers (ErrorCode)
    CERT_VALIDATION: Final = "cert_validation"
    INVALID_CERT_PATH: Final = "invalid_cert_path"
    CANNOT_CREATE_CERT_PATH: Final = "cannot_create_cert_path"
    INCORRECT_VALIDATION_INFO: Final = "incorrect_validation_info"
    CANNOT_CREATE_SIGNATURE: Final = "cannot_create_signature"
    SIGNATURE_VERIFICATION: Final = "signature_verification"
    INVALID_REFERENCE: Final = "invalid_reference"
    # hash chains (HashChainVerifier)
    MALFORMED_HASH_CHAIN: Final = "malformed_hash_chain"
    INVALID_HASH_CHAIN: Final = "invalid_hash_chain"
    INVALID_HASH_CHAIN_REF: Final = "invalid_hash_chain_ref"
    HASHCHAIN_UNUSED_INPUTS: Final = "hashchain_unused_inputs"
    # time-stamps and message log
    TIMESTAMP_VALIDATION: Final = "timestamp_validation"
    TSP_CERTIFICATE_NOT_FOUND: Final = "mlog.tsp_certificate_not_found"
    NO_TIMESTAMPING_PROVIDER_FOUND: Final = "mlog.no_timestamping_provider_found"
    TIMESTAMP_TOKEN_SIGNER_INFO_NOT_FOUND: Final = "mlog.timestamp_token_signer_info_not_found"
    TIMESTAMP_SIGNER_VERIFICATION_FAILED: Final = "mlog.timestamp_signer_verification_failed"
    READING_TIMESTAMP_RESPONSE_FAILED: Final = "mlog.reading_timestamp_response_failed"
    TIMESTAMP_NON_GRANTED_RESPONSE: Final = "mlog.timestamp_non_granted_response"
    TIMESTAMP_RESPONSE_OBJECT_CREATION_FAILED: Final = (
        "mlog.timestamp_response_object_creation_failed"
    )
    TIMESTAMP_RESPONSE_VALIDATION_FAILED: Final = "mlog.timestamp_response_validation_failed"
    TIMESTAMPING_FAILED: Final = "timestamping_failed"
    LOGGING_FAILED: Final = "logging_failed"
    # ASiC containers and archives
    ASIC_MIME_TYPE_NOT_FOUND: Final = "asic_mime_type_not_found"
    ASIC_MESSAGE_NOT_FOUND: Final = "asic_message_not_found"
    ASIC_SIGNATURE_NOT_FOUND: Final = "asic_signature_not_found"
    ASIC_INVALID_MIME_TYPE: Final = "asic_invalid_mime_type"
    ASIC_HASH_CHAIN_RESULT_NOT_FOUND: Final = "asic_hash_chain_result_not_found"
    ASIC_HASH_CHAIN_NOT_FOUND: Final = "asic_hash_chain_not_found"
    ASIC_TIMESTAMP_NOT_FOUND: Final = "asic_timestamp_not_found"
    ASIC_MANIFEST_NOT_FOUND: Final = "asic_manifest_not_found"
    INVALID_ASIC_CONTAINER: Final = "invalid_asic_container"
    INVALID_LOG_ARCHIVE: Final = "invalid_log_archive"
    # global configuration
    GLOBAL_CONF_OUTDATED: Final = "global_conf_outdated"
    MALFORMED_GLOBALCONF: Final = "malformed_globalconf"
    MALFORMED_ANCHOR: Final = "malformed_anchor"
    # configuration directory on disk (FSGlobalConfValidator states; not NIIS fault codes)
    GLOBAL_CONF_CONFIGURATION_ERROR: Final = "global_conf_configuration_error"
    GLOBAL_CONF_MISSING_INSTANCE_IDENTIFIER: Final = "global_conf_missing_instance_identifier"
    # signed configuration directory (ConfigurationParser, ConfigurationDownloader)
    GLOBAL_CONF_PARSING_DOWNLOADED_CONF_DIRECTORY_FAILURE: Final = (
        "global_conf_parsing_downloaded_conf_directory_failure"
    )
    GLOBAL_CONF_MISSING_SIGNED_DATA: Final = "global_conf_missing_signed_data"
    GLOBAL_CONF_MISSING_SIGNED_DATA_EXPIRATION_DATE: Final = (
        "global_conf_missing_signed_data_expiration_date"
    )
    GLOBAL_CONF_HEADER_FIELD_MISSING: Final = "global_conf_header_field_missing"
    GLOBAL_CONF_HEADER_FIELD_MISSING_PARAMETER: Final = "global_conf_header_field_missing_parameter"
    GLOBAL_CONF_HEADER_FIELD_WRONG_VALUE: Final = "global_conf_header_field_wrong_value"
    GLOBAL_CONF_MISSING_VERIFICATION_CERT: Final = "global_conf_missing_verification_cert"
    GLOBAL_CONF_SIGNATURE_DECODE_FAILURE: Final = "global_conf_signature_decode_failure"
    GLOBAL_CONF_SIGNATURE_VERIFICATION_FAILURE: Final = "global_conf_signature_verification_failure"
    GLOBAL_CONF_PART_DOWNLOADED_FILE_INTEGRITY_FAILURE: Final = (
        "global_conf_part_downloaded_file_integrity_failure"
    )
    INVALID_DOWNLOAD_URL_FORMAT: Final = "conf_download.invalid_download_url_format"
    # configuration client (ConfigurationDownloader, ContentHandler, FileNameProvider)
    GLOBAL_CONF_DOWNLOAD_URL_CONNECTION_FAILURE: Final = (
        "global_conf_download_url_connection_failure"
    )
    GLOBAL_CONF_PART_DOWNLOAD_FAILURE: Final = "global_conf_part_download_failure"
    GLOBAL_CONF_PART_INVALID_INSTANCE_IDENTIFIER: Final = (
        "global_conf_part_invalid_instance_identifier"
    )
    GLOBAL_CONF_PART_INVALID_CONTENT_LOCATION: Final = "global_conf_part_invalid_content_location"
    GLOBAL_CONF_PART_DUPLICATE_TARGET: Final = "global_conf_part_duplicate_target"
    GLOBAL_CONF_PART_FILE_SAVE_FAILURE: Final = "global_conf_part_file_save_failure"
    # central server registry and management API (NIIS cs-admin ErrorMessage codes; the ones
    # marked "ours" have no NIIS counterpart)
    INVALID_CONFIGURATION: Final = "invalid_configuration"  # ours: central.toml
    INIT_ALREADY_INITIALIZED: Final = "init_already_initialized"
    INSTANCE_IDENTIFIER_NOT_SET: Final = "instance_identifier_not_set"
    CENTRAL_SERVER_ADDRESS_NOT_SET: Final = "central_server_address_not_set"  # ours
    INVALID_SYSTEM_PARAMETER: Final = "invalid_system_parameter"  # ours
    VALIDATION_FAILURE: Final = "validation_failure"
    INVALID_URL: Final = "invalid_url"
    INVALID_IP_ADDRESS: Final = "invalid_ip_address"
    MEMBER_CLASS_EXISTS: Final = "member_class_exists"
    MEMBER_CLASS_NOT_FOUND: Final = "member_class_not_found"
    MEMBER_CLASS_IS_IN_USE: Final = "member_class_is_in_use"
    MEMBER_EXISTS: Final = "member_exists"
    MEMBER_NOT_FOUND: Final = "member_not_found"
    MEMBER_REGISTERED_AND_CANNOT_BE_DELETED: Final = "member_registered_and_cannot_be_deleted"
    MEMBER_NOT_REGISTERED_TO_SECURITY_SERVER: Final = "member_not_registered_to_security_server"
    MEMBER_ALREADY_REGISTERED_TO_SECURITY_SERVER: Final = (
        "member_already_registered_to_security_server"  # ours
    )
    SUBSYSTEM_EXISTS: Final = "subsystem_exists"
    SUBSYSTEM_NOT_FOUND: Final = "subsystem_not_found"
    SUBSYSTEM_REGISTERED_AND_CANNOT_BE_DELETED: Final = "subsystem_registered_and_cannot_be_deleted"
    SUBSYSTEM_NOT_REGISTERED_TO_SECURITY_SERVER: Final = (
        "subsystem_not_registered_to_security_server"
    )
    SUBSYSTEM_ALREADY_REGISTERED_TO_SECURITY_SERVER: Final = (
        "subsystem_already_registered_to_security_server"
    )
    SECURITY_SERVER_EXISTS: Final = "security_server_exists"  # ours
    SECURITY_SERVER_NOT_FOUND: Final = "security_server_not_found"
    INVALID_SERVER_ADDRESS: Final = "invalid_server_address"  # ours
    SS_AUTH_CERTIFICATE_NOT_FOUND: Final = "ss_auth_certificate_not_found"
    CERTIFICATE_ALREADY_EXISTS: Final = "certificate_already_exists"
    MANAGEMENT_SERVICE_PROVIDER_NOT_SET: Final = "management_service_provider_not_set"
    INVALID_SERVICE_PROVIDER_ID: Final = "invalid_service_provider_id"
    GLOBAL_GROUP_EXISTS: Final = "global_group_exists"
    GLOBAL_GROUP_NOT_FOUND: Final = "global_group_not_found"
    GLOBAL_GROUP_MEMBER_EXISTS: Final = "global_group_member_exists"  # ours
    GLOBAL_GROUP_MEMBER_NOT_FOUND: Final = "global_group_member_not_found"  # ours
    OWNERS_GLOBAL_GROUP_CANNOT_BE_DELETED: Final = "owners_global_group_cannot_be_deleted"
    OWNERS_GLOBAL_GROUP_MEMBER_CANNOT_BE_DELETED: Final = (
        "owners_global_group_member_cannot_be_deleted"
    )
    CANNOT_ADD_MEMBER_TO_OWNERS_GROUP: Final = "cannot_add_member_to_owners_group"
    CERTIFICATION_SERVICE_EXISTS: Final = "certification_service_exists"  # ours
    CERTIFICATION_SERVICE_NOT_FOUND: Final = "certification_service_not_found"
    INTERMEDIATE_CA_NOT_FOUND: Final = "intermediate_ca_not_found"
    OCSP_RESPONDER_NOT_FOUND: Final = "ocsp_responder_not_found"
    TIMESTAMPING_AUTHORITY_NOT_FOUND: Final = "timestamping_authority_not_found"
    SIGNING_KEY_EXISTS: Final = "signing_key_exists"  # ours
    SIGNING_KEY_NOT_FOUND: Final = "signing_key_not_found"
    SIGNING_KEY_ACTION_NOT_POSSIBLE: Final = "signing_key_action_not_possible"
    UNKNOWN_CONFIGURATION_PART: Final = "unknown_configuration_part"
    CONFIGURATION_PART_VALIDATION_FAILED: Final = "configuration_part_validation_failed"
    TRUSTED_ANCHOR_NOT_FOUND: Final = "trusted_anchor_not_found"
    TRUSTED_ANCHOR_VERIFICATION_FAILED: Final = "trusted_anchor_verification_failed"
    API_KEY_EXISTS: Final = "api_key_exists"  # ours
    API_KEY_NOT_FOUND: Final = "api_key_not_found"
    API_KEY_INVALID: Final = "api_key_invalid"  # ours: 401
    PERMISSION_DENIED: Final = "permission_denied"  # ours: 403
    # messages on the wire: SOAP, MIME, REST, the transport message (protocols.md §2.5)
    BAD_REQUEST: Final = "bad_request"
    NOT_FOUND: Final = "not_found"
    DATABASE_ERROR: Final = "database_error"
    INVALID_SOAP: Final = "invalid_soap"
    INVALID_SOAP_ACTION: Final = "invalid_soap_action"
    MISSING_HEADER: Final = "missing_header"
    MISSING_HEADER_FIELD: Final = "missing_header_field"
    DUPLICATE_HEADER_FIELD: Final = "duplicate_header_field"
    MISSING_BODY: Final = "missing_body"
    INVALID_BODY: Final = "invalid_body"
    INCONSISTENT_HEADERS: Final = "inconsistent_headers"
    INCONSISTENT_RESPONSE: Final = "inconsistent_response"
    INVALID_PROTOCOL_VERSION: Final = "invalid_protocol_version"
    MIME_PARSING_FAILED: Final = "mime_parsing_failed"
    MISSING_SOAP: Final = "missing_soap"
    MISSING_REST: Final = "missing_rest"
    MISSING_SIGNATURE: Final = "missing_signature"
    SERVICE_FAILED: Final = "service_failed"
    # proxy
    ACCESS_DENIED: Final = "access_denied"
    UNKNOWN_MEMBER: Final = "unknown_member"
    UNKNOWN_SERVICE: Final = "unknown_service"
    SSL_AUTHENTICATION_FAILED: Final = "ssl_authentication_failed"
    SERVICE_DISABLED: Final = "service_disabled"
    SERVICE_TYPE: Final = "service_type"  # SOAP service called as REST or the reverse
    SERVICE_MISSING_URL: Final = "service_missing_url"
    SERVICE_MALFORMED_URL: Final = "service_malformed_url"
    MAINTENANCE_MODE: Final = "maintenance_mode"
    CLIENT_PROXY_VERSION_NOT_SUPPORTED: Final = "client_proxy_version_not_supported"
    UNKNOWN_HOST: Final = "unknown_host"
    # security server configuration and management API (NIIS proxy-ui-api DeviationCodes)
    CLIENT_NOT_FOUND: Final = "client_not_found"
    CLIENT_ALREADY_EXISTS: Final = "client_already_exists"
    CANNOT_DELETE_OWNER: Final = "cannot_delete_owner"
    INVALID_CONNECTION_TYPE: Final = "invalid_connection_type"
    SERVER_ALREADY_FULLY_INITIALIZED: Final = "server_already_fully_initialized"
    SERVER_NOT_INITIALIZED: Final = "server_not_initialized"  # ours
    CERTIFICATE_NOT_FOUND: Final = "certificate_not_found"
    SERVICE_DESCRIPTION_NOT_FOUND: Final = "service_description_not_found"
    WRONG_SERVICEDESCRIPTION_TYPE: Final = "wrong_servicedescription_type"
    URL_ALREADY_EXISTS: Final = "url_already_exists"
    SERVICE_ALREADY_EXISTS: Final = "service_already_exists"
    SERVICE_CODE_ALREADY_EXISTS: Final = "service_code_already_exists"
    SERVICE_CODE_RESERVED: Final = "service_code_reserved"
    SERVICE_NOT_FOUND: Final = "service_not_found"
    INVALID_SERVICE_URL: Final = "invalid_service_url"
    INVALID_WSDL: Final = "invalid_wsdl"
    OPENAPI_PARSING_ERROR: Final = "openapi_parsing_error"
    UNSUPPORTED_OPENAPI_VERSION: Final = "unsupported_openapi_version"
    MISSING_PARAMETER: Final = "missing_parameter"
    ENDPOINT_NOT_FOUND: Final = "endpoint_not_found"
    ENDPOINT_ALREADY_EXISTS: Final = "endpoint_already_exists"
    ILLEGAL_GENERATED_ENDPOINT_UPDATE: Final = "illegal_generated_endpoint_update"
    ILLEGAL_GENERATED_ENDPOINT_REMOVE: Final = "illegal_generated_endpoint_remove"
    ACCESSRIGHT_NOT_FOUND: Final = "accessright_not_found"
    DUPLICATE_ACCESSRIGHT: Final = "duplicate_accessright"
    INVALID_SERVICE_CLIENT_ID: Final = "invalid_service_client_id"
    SERVICE_CLIENT_NOT_FOUND: Final = "service_client_not_found"
    LOCAL_GROUP_NOT_FOUND: Final = "local_group_not_found"
    LOCAL_GROUP_CODE_ALREADY_EXISTS: Final = "local_group_code_already_exists"
    LOCAL_GROUP_MEMBER_ALREADY_EXISTS: Final = "local_group_member_already_exists"
    LOCAL_GROUP_MEMBER_NOT_FOUND: Final = "local_group_member_not_found"
    INVALID_ROLE: Final = "invalid_role"
    # signer (NIIS ErrorCodes "Signer Errors"; reported under the ``signer.`` prefix)
    TOKEN_NOT_FOUND: Final = "token_not_found"
    TOKEN_NOT_ACTIVE: Final = "token_not_active"
    TOKEN_NOT_INITIALIZED: Final = "token_not_initialized"
    TOKEN_NOT_AVAILABLE: Final = "token_not_available"
    TOKEN_PIN_POLICY_FAILURE: Final = "token_pin_policy_failure"
    PIN_INCORRECT: Final = "pin_incorrect"
    LOGIN_FAILED: Final = "login_failed"
    KEY_NOT_FOUND: Final = "key_not_found"
    KEY_NOT_AVAILABLE: Final = "key_not_available"
    CERT_NOT_FOUND: Final = "cert_not_found"
    CERT_EXISTS: Final = "cert_exists"
    CERT_IMPORT_FAILED: Final = "cert_import_failed"
    CSR_NOT_FOUND: Final = "csr_not_found"
    CSR_FAILED: Final = "failed_to_generate_certificate_request"
    FAILED_TO_GENERATE_PRIVATE_KEY: Final = "failed_to_generate_private_key"
    WRONG_CERT_USAGE: Final = "wrong_cert_usage"
    NO_MEMBER_ID_FROM_CERT: Final = "cannot_get_member_id_from_certificate"
    CANNOT_SIGN: Final = "cannot_sign"
    UNSUPPORTED_SIGN_ALGORITHM: Final = "unsupported_sign_algorithm"


# Side prefixes used at the proxy boundaries (protocols.md §2.5, §4.9).
PREFIX_CLIENT: Final = "client"
PREFIX_SERVER: Final = "server"
PREFIX_CLIENT_PROXY: Final = "server.clientproxy"
PREFIX_SERVER_PROXY: Final = "server.serverproxy"
PREFIX_SIGNER: Final = "signer"

# Legacy segments that are not plain CamelCase words.
_LEGACY_SEGMENTS: Final = {
    "ClientProxy": "clientproxy",
    "ServerProxy": "serverproxy",
    "Client": "client",
    "Server": "server",
}
_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def _segment_to_snake(segment: str) -> str:
    mapped = _LEGACY_SEGMENTS.get(segment)
    if mapped is not None:
        return mapped
    if segment.islower() or "_" in segment:
        return segment
    return _CAMEL_BOUNDARY.sub("_", segment).lower()


def normalize_code(code: str) -> str:
    """Map a fault code in either spelling to the 7.8 snake_case spelling.

    >>> normalize_code("Server.ClientProxy.AccessDenied")
    'server.clientproxy.access_denied'
    >>> normalize_code("signature_verification.invalid_signature_value")
    'signature_verification.invalid_signature_value'
    """
    return ".".join(_segment_to_snake(s) for s in code.strip().split(".") if s)


def legacy_code(code: str) -> str:
    """Render a 7.8 code in the pre-7.8 CamelCase spelling (for peers that expect it)."""
    inverse = {v: k for k, v in _LEGACY_SEGMENTS.items()}
    out = []
    for segment in normalize_code(code).split("."):
        out.append(inverse.get(segment) or "".join(p.capitalize() for p in segment.split("_")))
    return ".".join(out)


class XRoadError(Exception):
    """A failure with an X-Road fault code.

    ``code`` is the full dotted code in 7.8 spelling; ``detail`` is the human-readable
    fault string (``faultString`` in SOAP, ``message`` in REST error bodies).
    """

    def __init__(self, code: str, detail: str = "") -> None:
        self.code = normalize_code(code)
        self.detail = detail
        super().__init__(f"{self.code}: {detail}" if detail else self.code)

    @property
    def base_code(self) -> str:
        """The innermost cause, without prefixes."""
        return self.code.rsplit(".", 1)[-1]

    def with_prefix(self, prefix: str) -> XRoadError:
        """A copy of this error with ``prefix.`` prepended (added once, at a boundary)."""
        prefix = normalize_code(prefix)
        if self.code == prefix or self.code.startswith(prefix + "."):
            return self
        err = XRoadError(f"{prefix}.{self.code}", self.detail)
        err.__cause__ = self.__cause__ or self
        return err

    def matches(self, code: str) -> bool:
        """Whether this error is ``code`` or ends with it (either spelling)."""
        wanted = normalize_code(code)
        return self.code == wanted or self.code.endswith("." + wanted)

    def __reduce__(self) -> tuple[type[XRoadError], tuple[str, str]]:
        return (type(self), (self.code, self.detail))
