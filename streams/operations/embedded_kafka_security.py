"""The secured embedded Kafka's parts: a throwaway CA and broker certificate, the broker's SASL_SSL settings
(SCRAM-SHA-512, StandardAuthorizer), the SCRAM users to format its storage with, and the ACLs of streams/operations/access.py.

For development and tests only: the CA's key lies next to the broker's data and both are removed with it, and the
passwords are new on every run. Certificates are made with the `cryptography` library; nothing here is cryptography
of our own.
"""

from __future__ import annotations

import datetime
import ipaddress
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pydantic import SecretStr

from streams.operations.access import ADMIN, Acl

MECHANISM = "SCRAM-SHA-512"
LISTENER = "SASL_SSL"
# a CA and certificate of a run that lasts at most a day; a little back-dated, for clocks that differ a little
VALIDITY = datetime.timedelta(days=2)
BACKDATE = datetime.timedelta(minutes=5)

# Kafka's wire codes (org.apache.kafka.common.resource.ResourceType and PatternType,
# org.apache.kafka.common.acl.AclOperation and AclPermissionType): aiokafka has the requests, not the enums
RESOURCE_TYPES = {"TOPIC": 2, "GROUP": 3, "CLUSTER": 4, "TRANSACTIONAL_ID": 5}
PATTERN_TYPES = {"LITERAL": 3, "PREFIXED": 4}
OPERATIONS = {"READ": 3, "WRITE": 4, "CREATE": 5, "DELETE": 6, "ALTER": 7, "DESCRIBE": 8, "CLUSTER_ACTION": 9,
              "DESCRIBE_CONFIGS": 10, "ALTER_CONFIGS": 11, "IDEMPOTENT_WRITE": 12}
ALLOW = 3
ANY = 1


@dataclass(frozen=True)
class CertificateAuthority:
    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    def pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def throwaway_ca(common_name: str) -> CertificateAuthority:
    """A new self-signed CA (P-256) that may sign certificates only."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name)).issuer_name(_name(common_name))
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE).not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return CertificateAuthority(certificate, key)


def broker_keystore(ca: CertificateAuthority, host: str = "127.0.0.1") -> bytes:
    """A PEM keystore as Kafka reads one (ssl.keystore.type=PEM): the broker's key (PKCS#8), then its certificate,
    which the CA signs for the address `host` (clients check it) and for TLS servers only."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_name("patrol-embedded-kafka")).issuer_name(ca.certificate.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE).not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()) + certificate.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True)
class BrokerSecurity:
    """A secured broker's CA (what clients trust), its keystore, and a password per principal (ADMIN's too)."""

    ca_file: Path
    keystore: Path
    passwords: dict[str, str]

    @classmethod
    def create(cls, directory: Path, principals: list[str]) -> "BrokerSecurity":
        """A new CA and broker certificate in `directory`, and a new random password for each principal."""
        ca = throwaway_ca("patrol-embedded-kafka-ca")
        ca_file, keystore = directory / "ca.pem", directory / "broker-keystore.pem"
        ca_file.write_bytes(ca.pem())
        keystore.touch(mode=0o600)
        keystore.write_bytes(broker_keystore(ca))
        passwords = {name: secrets.token_urlsafe(24) for name in [ADMIN, *principals]}
        return cls(ca_file, keystore, passwords)

    def server_properties(self) -> list[str]:
        """The broker's settings for its SASL_SSL listener (the caller names the listener and its port)."""
        jaas = (f'org.apache.kafka.common.security.scram.ScramLoginModule required username="{ADMIN}" '
                f'password="{self.passwords[ADMIN]}";')
        return [
            f"sasl.enabled.mechanisms={MECHANISM}",
            # the broker's own connections to its listener (inter-broker) log in as the set-up principal
            f"sasl.mechanism.inter.broker.protocol={MECHANISM}",
            f"listener.name.{LISTENER.lower()}.{MECHANISM.lower()}.sasl.jaas.config={jaas}",
            "ssl.keystore.type=PEM",
            f"ssl.keystore.location={self.keystore}",
            "ssl.truststore.type=PEM",
            f"ssl.truststore.location={self.ca_file}",
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "allow.everyone.if.no.acl.found=false",
            # ANONYMOUS is whoever comes in on the controller listener, which stays PLAINTEXT on loopback: the node's
            # own broker registering with its controller, which the authorizer checks too. The SASL_SSL listener never
            # yields ANONYMOUS (it authenticates every connection).
            f"super.users=User:{ADMIN};User:ANONYMOUS",
        ]

    def scram_arguments(self) -> list[str]:
        """`kafka-storage format` arguments that create each principal's SCRAM credential with the metadata.

        The passwords are on that command line for the second it runs: they are this run's, on this machine only."""
        arguments = []
        for name, password in self.passwords.items():
            arguments += ["--add-scram", f"{MECHANISM}=[name={name},password={password}]"]
        return arguments

    def client_options(self, principal: str) -> dict:
        """Settings fields that connect a client to the broker as `principal`, typed as Settings holds them (so that
        Settings.with_overrides, which does not validate, may take them)."""
        return dict(kafka_security_protocol=LISTENER, kafka_sasl_mechanism=MECHANISM, kafka_sasl_username=principal,
                    kafka_sasl_password=SecretStr(self.passwords[principal]), kafka_ssl_cafile=self.ca_file)


def acl_bindings(table: dict[str, tuple[Acl, ...]]) -> set[tuple]:
    """The table as Kafka's ACL bindings: (resource type, name, pattern type, principal, host, operation, allow)."""
    return {(RESOURCE_TYPES[acl.resource_type], acl.name, PATTERN_TYPES[acl.pattern_type], f"User:{name}", "*",
             OPERATIONS[operation], ALLOW)
            for name, acls in table.items() for acl in acls for operation in acl.operations}


async def create_acls(admin, bindings: set[tuple]) -> None:
    """Create ACL `bindings` (acl_bindings' form) through `admin` (a started AIOKafkaAdminClient of a super user).

    aiokafka 0.14 has the CreateAcls request but no admin method for it, and Kafka's own AclCommand is a JVM per
    call (and a jar more to fetch), so the request is sent as aiokafka sends its own admin requests."""
    from aiokafka.protocol.admin import CreateAclsRequest

    for binding in sorted(bindings):
        response = await admin._send_request(CreateAclsRequest(*binding))
        for code, message in response.creation_responses:
            if code:
                raise RuntimeError(f"the broker refused the ACL {binding}: error {code} {message}")


async def described_acls(admin) -> set[tuple]:
    """Every ACL binding the broker's authorizer holds, in acl_bindings' form."""
    from aiokafka.protocol.admin import DescribeAclsRequest

    response = await admin._send_request(DescribeAclsRequest(ANY, None, ANY, None, None, ANY, ANY))
    if response.error_code:
        raise RuntimeError(f"the broker refused to describe its ACLs: error {response.error_code} "
                           f"{response.error_message}")
    return {(resource_type, name, pattern_type, principal, host, operation, permission)
            for resource_type, name, pattern_type, acls in response.resources
            for principal, host, operation, permission in acls}
