"""The embedded model: imagineer's own small text-to-image model, trained on its world."""
