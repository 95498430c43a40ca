"""Still-image output: recipe round trips through PNG/JPEG/WebP, sidecars, atomic writes, grids."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import ExifTags, Image
from PIL.PngImagePlugin import PngInfo

from imagineer.media.images import (
    PNG_RECIPE_KEY,
    array_to_image,
    image_to_array,
    make_grid,
    read_recipe,
    save_image,
    sidecar_path,
    split_grid,
)
from imagineer.provenance.recipe import Recipe, RecipeError, Versions, content_hash

FORMATS = [("png", ".png"), ("jpeg", ".jpg"), ("webp", ".webp")]


@pytest.fixture
def recipe() -> Recipe:
    return Recipe(
        prompt="a red fox in snow, café lights --ar 1:1 --no blur",
        positive_prompt="a red fox in snow, café lights",
        negative_prompt="blur",
        request={"prompt": "a red fox in snow", "no": ["blur"]},
        kind="imagine",
        engine="embedded",
        model="imagineer-embedded-v1",
        model_hash=content_hash(b"weights"),
        seed=7,
        steps=20,
        guidance=5.0,
        width=32,
        height=24,
        extras={"sampler_shift": 3.0},
        versions=Versions(imagineer="0.1.0", python="3.11.7", torch="2.13.0"),
        created_at="2026-11-23T12:00:00+00:00",
    )


@pytest.fixture
def picture() -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8))


@pytest.mark.parametrize(("fmt", "suffix"), FORMATS)
def test_embedded_recipe_round_trips(
    tmp_path: Path, recipe: Recipe, picture: Image.Image, fmt: str, suffix: str
) -> None:
    path = save_image(picture, tmp_path / f"out{suffix}", recipe=recipe)
    assert path == tmp_path / f"out{suffix}"
    sidecar_path(path).unlink()  # prove the recipe comes from inside the file
    assert read_recipe(path) == recipe
    with Image.open(path) as again:
        assert again.format == fmt.upper()
        assert again.size == picture.size


@pytest.mark.parametrize(("fmt", "suffix"), FORMATS)
def test_sidecar_beside_every_output(
    tmp_path: Path, recipe: Recipe, picture: Image.Image, fmt: str, suffix: str
) -> None:
    path = save_image(picture, tmp_path / "out", recipe=recipe, fmt=fmt)
    assert path.name == f"out{suffix}"
    side = sidecar_path(path)
    assert side.name == f"out{suffix}.json"
    assert Recipe.from_json(side.read_text()) == recipe
    picture.save(path, format=fmt.upper())  # overwrite with a file that carries no metadata
    assert read_recipe(path) == recipe  # now it can only come from the sidecar


def test_png_carries_parameters_and_software(
    tmp_path: Path, recipe: Recipe, picture: Image.Image
) -> None:
    path = save_image(picture, tmp_path / "a.png", recipe=recipe)
    with Image.open(path) as png:
        text = png.text  # type: ignore[attr-defined]
    assert text["parameters"] == recipe.a1111_parameters()
    assert "Seed: 7" in text["parameters"] and "Size: 32x24" in text["parameters"]
    assert text["Software"] == "imagineer 0.1.0"
    assert json.loads(text[PNG_RECIPE_KEY])["seed"] == 7


@pytest.mark.parametrize("suffix", [".jpg", ".webp"])
def test_exif_user_comment_holds_readable_json(
    tmp_path: Path, recipe: Recipe, picture: Image.Image, suffix: str
) -> None:
    path = save_image(picture, tmp_path / f"a{suffix}", recipe=recipe, quality=80)
    with Image.open(path) as image:
        exif = image.getexif()
    comment = exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.UserComment]
    assert comment.startswith(b"ASCII\0\0\0")
    assert Recipe.from_json(comment[8:]) == recipe
    assert exif[ExifTags.Base.Software] == "imagineer 0.1.0"


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp"])
def test_xmp_packet_is_embedded(
    tmp_path: Path, recipe: Recipe, picture: Image.Image, suffix: str
) -> None:
    packet = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF/></x:xmpmeta>'
    path = save_image(picture, tmp_path / f"a{suffix}", recipe=recipe, xmp=packet)
    with Image.open(path) as image:
        found = image.info.get("xmp")
    assert found is not None and packet.decode() in (
        found.decode() if isinstance(found, bytes) else found
    )


def test_without_recipe_no_sidecar_and_stale_one_removed(
    tmp_path: Path, recipe: Recipe, picture: Image.Image
) -> None:
    path = save_image(picture, tmp_path / "a.png", recipe=recipe)
    assert sidecar_path(path).exists()
    save_image(picture, path, recipe=None)
    assert not sidecar_path(path).exists()
    assert read_recipe(path) is None


def test_foreign_user_comment_is_not_a_recipe(tmp_path: Path, picture: Image.Image) -> None:
    exif = Image.Exif()
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.UserComment] = b"ASCII\0\0\0Steps: 20, Seed: 1"
    path = tmp_path / "other.jpg"
    picture.save(path, exif=exif.tobytes())
    assert read_recipe(path) is None


def test_damaged_embedded_recipe_raises(tmp_path: Path, picture: Image.Image) -> None:
    info = PngInfo()
    info.add_itxt(PNG_RECIPE_KEY, json.dumps({"schema": "imagineer.recipe/1", "seed": 1}))
    path = tmp_path / "bad.png"
    picture.save(path, pnginfo=info)
    with pytest.raises(RecipeError, match="recipe lacks"):
        read_recipe(path)


def test_read_recipe_of_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_recipe(tmp_path / "nope.png")


@pytest.mark.parametrize(
    ("name", "fmt", "needle"),
    [
        ("a.bmp", None, "unknown image format '.bmp': use one of png, jpeg, webp"),
        ("a.png", "tiff", "unknown image format 'tiff': use one of png, jpeg, webp"),
        ("a", None, "has no suffix"),
        ("a.png", "jpeg", "ends in .png but fmt='jpeg'"),
    ],
)
def test_bad_format_names(
    tmp_path: Path, picture: Image.Image, name: str, fmt: str | None, needle: str
) -> None:
    with pytest.raises(ValueError) as err:
        save_image(picture, tmp_path / name, recipe=None, fmt=fmt)
    assert needle in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_bad_modes_and_quality(tmp_path: Path, picture: Image.Image) -> None:
    with pytest.raises(ValueError, match="jpeg cannot hold mode 'RGBA'"):
        save_image(picture.convert("RGBA"), tmp_path / "a.jpg", recipe=None)
    with pytest.raises(ValueError, match="quality=0"):
        save_image(picture, tmp_path / "a.jpg", recipe=None, quality=0)
    with pytest.raises(ValueError, match=r"PIL\.Image\.Image"):
        save_image(np.zeros((4, 4, 3), np.uint8), tmp_path / "a.png", recipe=None)  # type: ignore[arg-type]


def test_failed_write_leaves_old_file_and_no_temp(
    tmp_path: Path, recipe: Recipe, picture: Image.Image, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = save_image(picture, tmp_path / "a.png", recipe=recipe)
    before = path.read_bytes()
    real_save = Image.Image.save

    def crash_midway(self: Image.Image, fp: io.BytesIO, *args: object, **kwargs: object) -> None:
        fp.write(b"\x89PNG half")
        raise OSError("disk full")

    def seal_fails(data: bytes, final: Path) -> bytes:
        raise ValueError("cannot sign")

    flipped = picture.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    with pytest.raises(ValueError, match="cannot sign"):
        save_image(flipped, path, recipe=recipe, seal=seal_fails)
    monkeypatch.setattr(Image.Image, "save", crash_midway)
    with pytest.raises(OSError, match="disk full"):
        save_image(flipped, path, recipe=recipe)
    monkeypatch.setattr(Image.Image, "save", real_save)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "a.png.json"]


def test_seal_changes_the_bytes_written_once(
    tmp_path: Path, recipe: Recipe, picture: Image.Image
) -> None:
    seen: list[tuple[bytes, Path]] = []

    def seal(data: bytes, final: Path) -> bytes:
        seen.append((data, final))
        return data + b"sealed"

    path = save_image(picture, tmp_path / "a", fmt="png", recipe=recipe, seal=seal)
    ((data, final),) = seen
    assert final == path == tmp_path / "a.png"
    assert data.startswith(b"\x89PNG") and path.read_bytes() == data + b"sealed"
    assert read_recipe(path) == recipe


def test_creates_missing_folders(tmp_path: Path, picture: Image.Image) -> None:
    path = save_image(picture, tmp_path / "x" / "y" / "a.webp", recipe=None)
    assert path.is_file()


def _solid(colour: tuple[int, int, int], size: tuple[int, int] = (8, 6)) -> Image.Image:
    return Image.new("RGB", size, colour)


@pytest.mark.parametrize(
    ("count", "cols", "gap", "size"),
    [
        (4, 2, 0, (16, 12)),
        (3, 2, 0, (16, 12)),
        (5, 2, 4, (20, 26)),
        (1, 2, 0, (8, 6)),
        (6, 3, 1, (26, 13)),
    ],
)
def test_grid_sizes(count: int, cols: int, gap: int, size: tuple[int, int]) -> None:
    images = [_solid((i * 40, 0, 0)) for i in range(count)]
    assert make_grid(images, cols=cols, gap=gap).size == size


def test_grid_places_images_row_by_row_and_pads() -> None:
    images = [_solid((200, 0, 0)), _solid((0, 200, 0)), _solid((0, 0, 200))]
    grid = make_grid(images, cols=2, gap=2, background=(9, 9, 9))
    assert grid.getpixel((0, 0)) == (200, 0, 0)
    assert grid.getpixel((10, 0)) == (0, 200, 0)
    assert grid.getpixel((0, 8)) == (0, 0, 200)
    assert grid.getpixel((12, 10)) == (9, 9, 9)  # empty fourth cell
    assert grid.getpixel((8, 0)) == (9, 9, 9)  # the gap


def test_split_grid_inverts_make_grid() -> None:
    rng = np.random.default_rng(1)
    cells = [Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)) for _ in range(6)]
    parts = split_grid(make_grid(cells, cols=3, gap=3), cols=3, rows=2, gap=3)
    assert [np.array(p).tolist() for p in parts] == [np.array(c).tolist() for c in cells]


def test_grid_errors_are_clear() -> None:
    with pytest.raises(ValueError, match="image 0 is 8x6 but image 2 is 9x6"):
        make_grid([_solid((0, 0, 0)), _solid((1, 1, 1)), _solid((2, 2, 2), (9, 6))])
    with pytest.raises(ValueError, match="at least one image"):
        make_grid([])
    with pytest.raises(ValueError, match="cols=0"):
        make_grid([_solid((0, 0, 0))], cols=0)
    with pytest.raises(ValueError, match="does not split into 3x2"):
        split_grid(_solid((0, 0, 0), (16, 12)), cols=3, rows=2)


def test_array_helpers_round_trip_and_refuse_bad_arrays() -> None:
    array = np.random.default_rng(2).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    image = array_to_image(array)
    assert image.mode == "RGB" and image.size == (7, 5)
    back = image_to_array(image)
    assert back.shape == (5, 7, 3) and back.dtype == np.uint8 and back.flags.writeable
    assert np.array_equal(back, array)
    assert image_to_array(image.convert("RGBA")).shape == (5, 7, 3)
    assert array_to_image(np.zeros((5, 7, 4), np.uint8)).mode == "RGBA"
    with pytest.raises(ValueError, match="uint8"):
        array_to_image(array.astype(np.float32))
    with pytest.raises(ValueError, match=r"shape \(5, 7, 2\)"):
        array_to_image(np.zeros((5, 7, 2), np.uint8))
