"""Torch-free image processing: I/O, MATLAB-compatible resize, colour, metrics, tiling, datasets.

Nothing in this package imports torch; only numpy and OpenCV (``cv2``).
"""
