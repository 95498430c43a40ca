"""Signing identity, C2PA manifests and IPTC/XMP labels: sign, read back, validate, tamper."""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
from pathlib import Path

import numpy as np
import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from imagineer.provenance import c2pa as pc
from imagineer.provenance import iptc
from imagineer.provenance.keys import (
    SigningIdentity,
    SigningIdentityError,
    ensure_signing_identity,
    load_signing_identity,
)
from imagineer.provenance.watermark import payload_for_recipe

RECIPE = json.dumps({"prompt": "a red fox at dawn --ar 1:1", "kind": "imagine", "seed": 7})
MODEL_HASH = "ab" * 32
SUFFIXES = {"png": ".png", "jpeg": ".jpg", "webp": ".webp"}


@pytest.fixture(scope="session")
def identity(tmp_path_factory: pytest.TempPathFactory) -> SigningIdentity:
    return ensure_signing_identity(tmp_path_factory.mktemp("data"))


def picture(seed: int = 0, size: int = 64) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray((rng.random((size, size, 3)) * 255).astype(np.uint8))


def write(image: Image.Image, path: Path, xmp: bytes | None = None) -> Path:
    if path.suffix == ".png":
        info = PngInfo()
        if xmp is not None:
            info.add_itxt("XML:com.adobe.xmp", xmp.decode("utf-8"))
        image.save(path, pnginfo=info)
    elif xmp is not None:
        image.save(path, xmp=xmp)
    else:
        image.save(path)
    return path


def sign_created(src: Path, identity: SigningIdentity, **kwargs: object) -> Path:
    dst = src.with_name("signed_" + src.name)
    options: dict[str, object] = {
        "action": "created",
        "recipe_json": RECIPE,
        "model": "embedded-v1",
        "model_hash": MODEL_HASH,
    }
    options.update(kwargs)
    return pc.sign_file(src, dst, identity=identity, **options)  # type: ignore[arg-type]


def flip_pixel_byte(path: Path) -> None:
    """Change one byte inside the compressed pixels (not the manifest's own bytes)."""
    data = bytearray(path.read_bytes())
    markers = {".png": b"IDAT", ".jpg": b"\xff\xda", ".webp": b"VP8", ".mp4": b"mdat"}
    start = data.rfind(markers[path.suffix]) if path.suffix == ".jpg" else None
    offset = (start if start is not None else data.find(markers[path.suffix])) + 24
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


# keys


def test_generated_identity_has_the_extensions_c2pa_needs(identity: SigningIdentity) -> None:
    end_entity, ca = x509.load_pem_x509_certificates(identity.cert_chain_pem)
    basic = end_entity.extensions.get_extension_for_class(x509.BasicConstraints)
    usage = end_entity.extensions.get_extension_for_class(x509.KeyUsage)
    eku = end_entity.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert basic.critical and not basic.value.ca
    assert usage.critical and usage.value.digital_signature
    assert ExtendedKeyUsageOID.EMAIL_PROTECTION in eku
    ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    aki = end_entity.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    assert end_entity.issuer == ca.subject
    assert identity.algorithm == "es256" and identity.self_signed
    assert identity.trust_anchor_pem is not None


def test_generated_keys_are_private_and_reused(identity: SigningIdentity) -> None:
    for key_file in identity.key_path.parent.glob("*.key"):
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    again = ensure_signing_identity(identity.key_path.parent.parent)
    assert again.cert_chain_pem == identity.cert_chain_pem


def test_operator_identity_loads_and_mismatched_key_is_refused(
    identity: SigningIdentity, tmp_path: Path
) -> None:
    chain = Path(shutil.copy(identity.chain_path, tmp_path / "chain.pem"))
    key = Path(shutil.copy(identity.key_path, tmp_path / "key.pem"))
    own = ensure_signing_identity(tmp_path / "unused", cert_chain_path=chain, key_path=key)
    assert not own.self_signed and own.algorithm == "es256"
    assert not (tmp_path / "unused").exists()
    ca_key = identity.key_path.parent / "ca.key"
    with pytest.raises(SigningIdentityError, match="does not match"):
        load_signing_identity(chain, ca_key)
    with pytest.raises(SigningIdentityError, match="give both"):
        ensure_signing_identity(tmp_path, cert_chain_path=chain)


def test_half_written_identity_folder_is_reported(tmp_path: Path) -> None:
    (tmp_path / "signing").mkdir()
    (tmp_path / "signing" / "signer.key").write_bytes(b"x")
    with pytest.raises(SigningIdentityError, match="lacks"):
        ensure_signing_identity(tmp_path)


# manifests


@pytest.mark.parametrize("fmt", sorted(SUFFIXES))
def test_sign_and_read_each_image_format(
    fmt: str, identity: SigningIdentity, tmp_path: Path
) -> None:
    src = write(picture(), tmp_path / f"out{SUFFIXES[fmt]}")
    report = pc.read_manifest(sign_created(src, identity))
    assert report.present and report.validation_state == "Valid"
    assert report.untrusted_signer
    assert report.actions == ("c2pa.created",)
    assert report.digital_source_type == iptc.TRAINED_ALGORITHMIC_MEDIA
    assert report.recipe_json is not None
    assert json.loads(report.recipe_json) == json.loads(RECIPE)
    assert (report.model, report.model_hash) == ("embedded-v1", MODEL_HASH)
    assert report.watermarked is True
    assert report.watermark_payload == payload_for_recipe(RECIPE)
    assert report.claim_generator.startswith("imagineer ")
    assert not pc.read_manifest(src).present


def test_signing_bytes_in_memory_equals_signing_the_file(
    identity: SigningIdentity, tmp_path: Path
) -> None:
    src = write(picture(), tmp_path / "a.png")

    def sign(path: Path) -> bytes:
        return pc.sign_bytes(
            src.read_bytes(),
            path,
            identity=identity,
            action="created",
            recipe_json=RECIPE,
            model="embedded-v1",
            model_hash=MODEL_HASH,
        )

    (tmp_path / "b.png").write_bytes(sign(tmp_path / "b.png"))
    from_memory = pc.read_manifest(tmp_path / "b.png")
    from_file = pc.read_manifest(sign_created(src, identity))
    assert from_memory.validation_state == "Valid"
    assert (from_memory.actions, from_memory.recipe_json, from_memory.watermark_payload) == (
        from_file.actions,
        from_file.recipe_json,
        from_file.watermark_payload,
    )
    flip_pixel_byte(tmp_path / "b.png")
    assert pc.read_manifest(tmp_path / "b.png").content_changed
    with pytest.raises(pc.ProvenanceError, match="WebM"):
        sign(tmp_path / "c.webm")


def test_trust_anchor_makes_it_trusted(identity: SigningIdentity, tmp_path: Path) -> None:
    signed = sign_created(write(picture(), tmp_path / "a.png"), identity)
    report = pc.read_manifest(signed, trust_anchors=identity.trust_anchor_pem)
    assert report.validation_state == "Trusted" and not report.untrusted_signer


def test_thumbnail_is_off(identity: SigningIdentity, tmp_path: Path) -> None:
    src = write(picture(size=256), tmp_path / "a.png")
    growth = sign_created(src, identity).stat().st_size - src.stat().st_size
    assert growth < 20_000  # a JPEG thumbnail of a noisy 256 px picture alone is larger


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp"])
def test_one_changed_pixel_byte_is_invalid(
    suffix: str, identity: SigningIdentity, tmp_path: Path
) -> None:
    signed = sign_created(write(picture(size=128), tmp_path / f"a{suffix}"), identity)
    flip_pixel_byte(signed)
    report = pc.read_manifest(signed)
    assert report.present and report.validation_state == "Invalid"
    assert report.content_changed, report.failure_codes


def test_edit_records_its_parent_as_ingredient(identity: SigningIdentity, tmp_path: Path) -> None:
    parent = sign_created(write(picture(1), tmp_path / "parent.png"), identity)
    user_photo = write(picture(2), tmp_path / "photo.jpg")
    child = write(picture(3, size=128), tmp_path / "upscaled.png")
    pc.sign_file(
        child,
        child,
        identity=identity,
        action="edited",
        recipe_json=RECIPE,
        model="upscaler",
        model_hash="",
        parents=[parent, user_photo],
        mixes_user_media=True,
        watermarked=False,
    )
    report = pc.read_manifest(child)
    assert report.validation_state == "Valid"
    assert report.actions == ("c2pa.opened", "c2pa.edited")
    assert report.digital_source_type == iptc.COMPOSITE_WITH_TRAINED
    assert [(i.title, i.relationship) for i in report.ingredients] == [
        ("signed_parent.png", "parentOf"),
        ("photo.jpg", "componentOf"),
    ]
    assert report.ingredients[0].active_manifest is not None  # the parent's own manifest
    assert report.ingredients[1].active_manifest is None
    assert report.watermarked is False and report.watermark_payload is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"action": "deleted"}, "action="),
        ({"parents": ["x.png"]}, "takes no parents"),
        ({"action": "edited"}, "needs parents"),
        ({"recipe_json": "[1, 2]"}, "JSON object"),
        ({"recipe_json": "{oops"}, "not JSON"),
    ],
)
def test_bad_sign_arguments_are_refused(
    kwargs: dict[str, object], message: str, identity: SigningIdentity, tmp_path: Path
) -> None:
    src = write(picture(), tmp_path / "a.png")
    with pytest.raises(pc.ProvenanceError, match=message):
        sign_created(src, identity, **kwargs)


def test_webm_cannot_be_signed(identity: SigningIdentity, tmp_path: Path) -> None:
    clip = tmp_path / "clip.webm"
    clip.write_bytes(b"\x1a\x45\xdf\xa3")
    with pytest.raises(pc.ProvenanceError, match="WebM"):
        sign_created(clip, identity)


def test_mp4_signs_and_validates(identity: SigningIdentity, tmp_path: Path) -> None:
    av = pytest.importorskip("av")
    clip = tmp_path / "clip.mp4"
    with av.open(str(clip), "w") as container:
        stream = container.add_stream("libx264", rate=8)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for i in range(8):
            frame = av.VideoFrame.from_ndarray(np.asarray(picture(i)), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    clip.chmod(0o644)
    signed = sign_created(clip, identity)
    assert signed.stat().st_mode & 0o777 == 0o644  # the signed file is as readable as the clip
    report = pc.read_manifest(signed)
    assert report.validation_state == "Valid" and report.actions == ("c2pa.created",)
    data = bytearray(signed.read_bytes())
    data[data.find(b"mdat") + 200] ^= 0x01
    signed.write_bytes(bytes(data))
    assert pc.read_manifest(signed).validation_state == "Invalid"


# IPTC / XMP


def test_xmp_round_trip_escapes_text() -> None:
    tags = iptc.tags_for(model="embedded-v1", prompt='a "cat" <on> a mat & co')
    parsed = iptc.parse_xmp(iptc.build_xmp(tags))
    assert parsed == tags
    assert parsed.credit == "Made with AI" and parsed.software.startswith("imagineer ")
    assert iptc.parse_xmp(b"<x:xmpmeta xmlns:x='adobe:ns:meta/'></x:xmpmeta>") is None


def test_xmp_refuses_a_source_type_that_is_not_a_newscode() -> None:
    with pytest.raises(ValueError, match="NewsCode"):
        iptc.IptcTags(digital_source_type="trainedAlgorithmicMedia")


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp"])
def test_xmp_survives_signing_and_agrees_with_the_manifest(
    suffix: str, identity: SigningIdentity, tmp_path: Path
) -> None:
    tags = iptc.tags_for(model="embedded-v1")
    src = write(picture(), tmp_path / f"a{suffix}", xmp=iptc.build_xmp(tags))
    assert iptc.read_xmp(src) == tags
    signed = sign_created(src, identity)
    assert iptc.read_xmp(signed) == tags
    report = pc.read_manifest(signed)
    assert report.validation_state == "Valid"
    assert report.digital_source_type == tags.digital_source_type


def test_compressed_png_xmp_is_read(tmp_path: Path) -> None:
    tags = iptc.tags_for(model="m", mixes_user_media=True)
    info = PngInfo()
    info.add_itxt("XML:com.adobe.xmp", iptc.build_xmp(tags).decode("utf-8"), zip=True)
    path = tmp_path / "z.png"
    picture().save(path, pnginfo=info)
    assert b"DigitalSourceType" not in path.read_bytes()
    assert iptc.read_xmp(path) == tags


def test_no_xmp_reads_none(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    picture().save(buffer, format="PNG")
    path = tmp_path / "plain.png"
    path.write_bytes(buffer.getvalue())
    assert iptc.read_xmp(path) is None
    assert os.path.getsize(path) > 0


def test_a_damaged_manifest_is_present_but_invalid(
    identity: SigningIdentity, tmp_path: Path
) -> None:
    signed = sign_created(write(picture(), tmp_path / "a.png"), identity)
    data = bytearray(signed.read_bytes())
    start = data.find(b"c2pa.signature")
    data[start + 60 : start + 80] = bytes(20)  # inside the COSE signature box
    signed.write_bytes(bytes(data))
    report = pc.read_manifest(signed)
    assert report.present and not report.valid


def test_a_file_that_is_no_image_has_no_manifest(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.png"
    bogus.write_bytes(b"not a picture at all")
    report = pc.read_manifest(bogus)
    assert not report.present
