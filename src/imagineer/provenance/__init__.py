"""Provenance of every output: its recipe, C2PA manifest, IPTC/XMP tags and watermark."""
