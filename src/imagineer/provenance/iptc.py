"""IPTC/XMP labels of AI-made outputs: build the XMP packet written before signing, read it back.

The packet says what the C2PA manifest says, in the vocabulary photo tools already show:
Iptc4xmpExt:DigitalSourceType (trainedAlgorithmicMedia or compositeWithTrainedAlgorithmicMedia),
photoshop:Credit "Made with AI", xmp:CreatorTool (the software) and IPTC 2025's AI fields
(Iptc4xmpExt:AISystemUsed, and the prompt only when the caller chooses to publish it).
`imagineer.media.images.save_image(..., xmp=build_xmp(tags))` puts it in PNG (iTXt
XML:com.adobe.xmp), JPEG (APP1) and WebP (XMP chunk); `append_mp4_xmp` adds it to an MP4 as the
top-level `uuid` box Adobe's XMP specification defines for ISO media files.
"""

from __future__ import annotations

import re
import struct
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from xml.sax.saxutils import escape, quoteattr

from PIL import Image, UnidentifiedImageError

IPTC_SOURCE_TYPES: Final = "http://cv.iptc.org/newscodes/digitalsourcetype/"
TRAINED_ALGORITHMIC_MEDIA: Final = IPTC_SOURCE_TYPES + "trainedAlgorithmicMedia"
COMPOSITE_WITH_TRAINED: Final = IPTC_SOURCE_TYPES + "compositeWithTrainedAlgorithmicMedia"
CREDIT_LINE: Final = "Made with AI"
NS: Final = {
    "x": "adobe:ns:meta/",
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "Iptc4xmpExt": "http://iptc.org/std/Iptc4xmpExt/2008-02-29/",
    "photoshop": "http://ns.adobe.com/photoshop/1.0/",
    "xmp": "http://ns.adobe.com/xap/1.0/",
    "dc": "http://purl.org/dc/elements/1.1/",
}
_PACKET: Final = re.compile(rb"<x:xmpmeta\b.*?</x:xmpmeta>", re.DOTALL)
_SOURCE_TYPES: Final = (TRAINED_ALGORITHMIC_MEDIA, COMPOSITE_WITH_TRAINED)
_MAX_SCAN_BYTES: Final = 64 * 1024 * 1024  # XMP sits in headers; do not read huge videos whole
MP4_XMP_UUID: Final = bytes.fromhex("BE7ACFCB97A942E89C71999491E3AFAC")  # XMP spec part 3
_MP4_SUFFIXES: Final = frozenset({".mp4", ".m4v", ".mov"})


@dataclass(frozen=True)
class IptcTags:
    """The AI labels of one output."""

    digital_source_type: str = TRAINED_ALGORITHMIC_MEDIA
    credit: str = CREDIT_LINE
    software: str = ""  # e.g. "imagineer 0.1.0"
    ai_system: str = ""  # the model that made it, e.g. "embedded-v1"
    prompt: str | None = None  # published only when the caller opts in

    def __post_init__(self) -> None:
        if not self.digital_source_type.startswith("http://cv.iptc.org/newscodes/"):
            raise ValueError(
                f"digital_source_type={self.digital_source_type!r}: use an IPTC NewsCode URI, "
                f"e.g. {TRAINED_ALGORITHMIC_MEDIA}"
            )

    @property
    def ai_generated(self) -> bool:
        return self.digital_source_type in _SOURCE_TYPES


def tags_for(*, model: str, mixes_user_media: bool = False, prompt: str | None = None) -> IptcTags:
    """The tags of an imagineer output, with the same source type its manifest will carry."""
    from imagineer import __version__

    return IptcTags(
        digital_source_type=COMPOSITE_WITH_TRAINED
        if mixes_user_media
        else TRAINED_ALGORITHMIC_MEDIA,
        software=f"imagineer {__version__}",
        ai_system=model,
        prompt=prompt,
    )


def build_xmp(tags: IptcTags) -> bytes:
    """An XMP packet (UTF-8) holding `tags`."""
    attributes = {
        "Iptc4xmpExt:DigitalSourceType": tags.digital_source_type,
        "photoshop:Credit": tags.credit,
        "xmp:CreatorTool": tags.software,
        "Iptc4xmpExt:AISystemUsed": tags.ai_system,
    }
    attrs = "".join(f"\n    {k}={quoteattr(v)}" for k, v in attributes.items() if v)
    namespaces = "".join(
        f'\n    xmlns:{prefix}="{uri}"' for prefix, uri in NS.items() if prefix not in ("x", "rdf")
    )
    prompt = ""
    if tags.prompt is not None:
        element = "Iptc4xmpExt:AIPromptInformation"
        prompt = f"\n   <{element}>{escape(tags.prompt)}</{element}>"
    text = (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        f'<x:xmpmeta xmlns:x="{NS["x"]}">\n'
        f' <rdf:RDF xmlns:rdf="{NS["rdf"]}">\n'
        f'  <rdf:Description rdf:about=""{namespaces}{attrs}>{prompt}\n'
        "  </rdf:Description>\n"
        " </rdf:RDF>\n"
        "</x:xmpmeta>\n"
        '<?xpacket end="w"?>'
    )
    return text.encode("utf-8")


def parse_xmp(packet: bytes) -> IptcTags | None:
    """The tags in an XMP packet, or None when it has no IPTC digital source type."""
    match = _PACKET.search(packet)
    if match is None:
        return None
    try:
        root = ET.fromstring(match.group(0))
    except ET.ParseError:
        return None
    for description in root.iter(f"{{{NS['rdf']}}}Description"):
        source = _field(description, "Iptc4xmpExt", "DigitalSourceType")
        if source and source.startswith("http://cv.iptc.org/newscodes/"):
            return IptcTags(
                digital_source_type=source,
                credit=_field(description, "photoshop", "Credit") or "",
                software=_field(description, "xmp", "CreatorTool") or "",
                ai_system=_field(description, "Iptc4xmpExt", "AISystemUsed") or "",
                prompt=_field(description, "Iptc4xmpExt", "AIPromptInformation"),
            )
    return None


def read_xmp(path: Path) -> IptcTags | None:
    """The AI tags of a file (any format: the XMP packet is found by scanning), or None."""
    path = Path(path)
    if path.suffix.lower() in _MP4_SUFFIXES:
        packet = _read_mp4_xmp(path)
        if packet is not None:
            return parse_xmp(packet)
    with path.open("rb") as handle:
        data = handle.read(_MAX_SCAN_BYTES)
    for match in _PACKET.finditer(data):
        tags = parse_xmp(match.group(0))
        if tags is not None:
            return tags
    return _read_compressed_png_xmp(path)


def append_mp4_xmp(path: Path, packet: bytes) -> None:
    """Append `packet` to an MP4 as a top-level XMP `uuid` box (sign afterwards, not before).

    Appending moves no other box, so the sample offsets in `moov` stay right.
    """
    path = Path(path)
    if _mp4_boxes(path) is None:
        raise ValueError(f"{path.name} is not an MP4 (no ftyp box first): cannot add XMP")
    if _read_mp4_xmp(path) is not None:
        raise ValueError(f"{path.name} already holds an XMP box")
    with path.open("ab") as handle:
        handle.write(struct.pack(">I4s", 8 + 16 + len(packet), b"uuid") + MP4_XMP_UUID + packet)


def _mp4_boxes(path: Path) -> list[tuple[bytes, int, int]] | None:
    """The top-level boxes of an MP4 as (type, payload offset, payload size); None if no MP4."""
    boxes: list[tuple[bytes, int, int]] = []
    total = path.stat().st_size
    with path.open("rb") as handle:
        offset = 0
        while offset + 8 <= total:
            handle.seek(offset)
            size, kind = struct.unpack(">I4s", handle.read(8))
            header = 8
            if size == 1:  # a 64-bit size follows the type
                size, header = struct.unpack(">Q", handle.read(8))[0], 16
            elif size == 0:  # the box runs to the end of the file
                size = total - offset
            if size < header or (not boxes and kind != b"ftyp"):
                break
            boxes.append((kind, offset + header, size - header))
            offset += size
    return boxes or None


def _read_mp4_xmp(path: Path) -> bytes | None:
    """The packet in the MP4's top-level XMP `uuid` box, or None."""
    with path.open("rb") as handle:
        for kind, offset, size in _mp4_boxes(path) or ():
            if kind != b"uuid" or size < 16:
                continue
            handle.seek(offset)
            if handle.read(16) == MP4_XMP_UUID:
                return handle.read(min(size - 16, _MAX_SCAN_BYTES))
    return None


def _read_compressed_png_xmp(path: Path) -> IptcTags | None:
    """A PNG may hold its XMP zlib-compressed, where no byte scan sees it: ask Pillow."""
    try:
        with Image.open(path) as image:
            text = (
                getattr(image, "text", {}).get("XML:com.adobe.xmp")
                if image.format == "PNG"
                else None
            )
    except (UnidentifiedImageError, OSError):
        return None
    return parse_xmp(text.encode("utf-8")) if isinstance(text, str) else None


def _field(description: ET.Element, prefix: str, name: str) -> str | None:
    """A property written either as an attribute or as a child element."""
    qualified = f"{{{NS[prefix]}}}{name}"
    if qualified in description.attrib:
        return description.attrib[qualified]
    child = description.find(qualified)
    if child is None:
        return None
    return "".join(child.itertext()).strip()
