"""Media output: still images, grids and recipes on disk here; clips in `imagineer.media.video`."""

from imagineer.media.images import (
    SUPPORTED_IMAGE_FORMATS,
    array_to_image,
    image_to_array,
    make_grid,
    read_recipe,
    save_image,
    sidecar_path,
    split_grid,
)

__all__ = [
    "SUPPORTED_IMAGE_FORMATS",
    "array_to_image",
    "image_to_array",
    "make_grid",
    "read_recipe",
    "save_image",
    "sidecar_path",
    "split_grid",
]
