"""Rendering methods. One folder per method; ``base.py`` is the interface every one keeps."""
