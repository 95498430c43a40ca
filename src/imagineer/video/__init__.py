"""Video: camera paths, the zero-shot animation engine, storyboards and reels.

Nothing heavy is imported here: `imagineer.engines.base` uses the camera types, so this package
must import without torch. Import the submodules you need.
"""
