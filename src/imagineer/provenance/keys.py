"""The C2PA signing identity: a generated self-signed chain on first use, or the operator's own."""

from __future__ import annotations

import dataclasses
import datetime
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SIGNING_DIR_NAME = "signing"
CHAIN_FILE = "signer-chain.pem"  # end-entity first, then the CA
KEY_FILE = "signer.key"
CA_CERT_FILE = "ca.pem"
CA_KEY_FILE = "ca.key"

_CA_YEARS = 20
_SIGNER_YEARS = 5


class SigningIdentityError(ValueError):
    """A certificate chain or key that cannot be used to sign manifests."""


@dataclass(frozen=True)
class SigningIdentity:
    """What c2pa needs to sign: a PEM chain (end-entity first), its key and the algorithm."""

    cert_chain_pem: bytes
    key_pem: bytes
    algorithm: str  # "es256", "es384", "es512", "ps256" or "ed25519"
    self_signed: bool  # True when imagineer generated the chain itself
    trust_anchor_pem: bytes | None  # the root CA, when known (the generated one, or given)
    chain_path: Path
    key_path: Path

    @property
    def subject(self) -> str:
        """The end-entity's subject as an RFC 4514 string."""
        return x509.load_pem_x509_certificates(self.cert_chain_pem)[0].subject.rfc4514_string()


def ensure_signing_identity(
    data_dir: Path,
    *,
    cert_chain_path: Path | None = None,
    key_path: Path | None = None,
    trust_anchor_path: Path | None = None,
) -> SigningIdentity:
    """The operator's chain + key when given, else the one under data_dir/signing (made once)."""
    if (cert_chain_path is None) != (key_path is None):
        raise SigningIdentityError(
            f"got cert_chain_path={cert_chain_path} and key_path={key_path}: "
            "give both (the operator's chain and its private key) or neither"
        )
    if cert_chain_path is not None and key_path is not None:
        anchor = _read(trust_anchor_path, "trust anchor") if trust_anchor_path else None
        return load_signing_identity(cert_chain_path, key_path, trust_anchor_pem=anchor)
    folder = Path(data_dir) / SIGNING_DIR_NAME
    if not folder.exists():
        _generate_into(folder)
    return _load_generated(folder)


def load_signing_identity(
    chain_path: Path, key_path: Path, *, trust_anchor_pem: bytes | None = None
) -> SigningIdentity:
    """Load a PEM chain and its PEM private key, checking that they belong together."""
    chain_pem = _read(chain_path, "certificate chain")
    key_pem = _read(key_path, "private key")
    try:
        certs = x509.load_pem_x509_certificates(chain_pem)
    except ValueError as err:
        raise SigningIdentityError(f"{chain_path} holds no PEM certificates: {err}") from err
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as err:
        raise SigningIdentityError(
            f"{key_path} is not an unencrypted PEM private key: {err}"
        ) from err
    if certs[0].public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) != key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ):
        raise SigningIdentityError(
            f"the key in {key_path} does not match the first certificate in {chain_path}: "
            "put the end-entity certificate first in the chain"
        )
    return SigningIdentity(
        cert_chain_pem=chain_pem,
        key_pem=key_pem,
        algorithm=_algorithm_for(key, key_path),
        self_signed=False,
        trust_anchor_pem=trust_anchor_pem,
        chain_path=Path(chain_path),
        key_path=Path(key_path),
    )


def _load_generated(folder: Path) -> SigningIdentity:
    missing = [n for n in (CHAIN_FILE, KEY_FILE, CA_CERT_FILE) if not (folder / n).is_file()]
    if missing:
        raise SigningIdentityError(
            f"{folder} lacks {', '.join(missing)}: remove the folder to generate a new identity"
        )
    identity = load_signing_identity(
        folder / CHAIN_FILE,
        folder / KEY_FILE,
        trust_anchor_pem=(folder / CA_CERT_FILE).read_bytes(),
    )
    return dataclasses.replace(identity, self_signed=True)


def _read(path: Path, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as err:
        raise SigningIdentityError(f"cannot read the {what} at {path}: {err}") from err


def _algorithm_for(key: object, key_path: Path) -> str:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        by_curve = {"secp256r1": "es256", "secp384r1": "es384", "secp521r1": "es512"}
        if key.curve.name in by_curve:
            return by_curve[key.curve.name]
    if isinstance(key, rsa.RSAPrivateKey) and key.key_size >= 2048:
        return "ps256"
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "ed25519"
    raise SigningIdentityError(
        f"the key in {key_path} ({type(key).__name__}) is not one C2PA signs with: "
        "use EC P-256/P-384/P-521, RSA ≥ 2048 bits or Ed25519"
    )


def _generate_into(folder: Path) -> None:
    """Write a fresh CA + end-entity pair; a folder rename makes concurrent first runs safe."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".signing-", dir=folder.parent))
    try:
        ca_key, ca_cert, ee_key, ee_cert = _make_chain()
        pem = serialization.Encoding.PEM
        _write_private(staging / CA_KEY_FILE, _key_pem(ca_key))
        _write_private(staging / KEY_FILE, _key_pem(ee_key))
        (staging / CA_CERT_FILE).write_bytes(ca_cert.public_bytes(pem))
        (staging / CHAIN_FILE).write_bytes(ee_cert.public_bytes(pem) + ca_cert.public_bytes(pem))
        os.chmod(staging, 0o700)
        try:
            staging.rename(folder)
        except OSError:
            if not folder.exists():
                raise  # a real failure, not another process winning the race
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _make_chain() -> tuple[
    ec.EllipticCurvePrivateKey, x509.Certificate, ec.EllipticCurvePrivateKey, x509.Certificate
]:
    """A P-256 root CA and an end-entity with the extensions c2pa's default settings accept."""
    now = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("imagineer local signing CA")
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=365 * _CA_YEARS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ee_key = ec.generate_private_key(ec.SECP256R1())
    ee_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("imagineer content signer"))
        .issuer_name(ca_name)
        .public_key(ee_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=365 * _SIGNER_YEARS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ee_key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return ca_key, ca_cert, ee_key, ee_cert


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "imagineer (self-hosted)"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )
