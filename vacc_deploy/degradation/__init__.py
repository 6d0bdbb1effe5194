"""BSRGAN practical degradation model (Zhang et al., ICCV 2021, arXiv 2103.14006), numpy + OpenCV.

Public API: :func:`degrade_bsrgan`, :func:`degrade_bicubic`, :func:`degrade_blur` and the single
degradations in :mod:`.ops` and kernels in :mod:`.kernels`. No torch, no scipy.

Simplified versus the paper: camera sensor noise is a Poisson-Gaussian model in a gamma-2.2 linear
space, not the reverse-forward ISP (no mosaicking/demosaicking, CCM or tone curve); the random
resizes use OpenCV interpolation, not MATLAB ``imresize``.
"""

from .kernels import (anisotropic_gaussian_kernel, isotropic_gaussian_kernel, motion_blur_kernel,
                      random_gaussian_kernel, random_motion_kernel, shifted_gaussian_kernel)
from .ops import (add_blur, add_correlated_noise, add_gaussian_noise, add_gray_noise, add_jpeg,
                  add_random_gaussian_noise, add_random_jpeg, add_random_sensor_noise,
                  add_sensor_noise, apply_kernel, downsample, nearest_downsample_shifted,
                  random_noise_covariance, resize)
from .pipeline import (as_rng, degrade_bicubic, degrade_blur, degrade_bsrgan, mod_crop,
                       random_aligned_crop)

__all__ = [
    "add_blur", "add_correlated_noise", "add_gaussian_noise", "add_gray_noise", "add_jpeg",
    "add_random_gaussian_noise", "add_random_jpeg", "add_random_sensor_noise", "add_sensor_noise",
    "anisotropic_gaussian_kernel", "apply_kernel", "as_rng", "degrade_bicubic", "degrade_blur",
    "degrade_bsrgan", "downsample", "isotropic_gaussian_kernel", "mod_crop", "motion_blur_kernel",
    "nearest_downsample_shifted", "random_aligned_crop", "random_gaussian_kernel",
    "random_motion_kernel", "random_noise_covariance", "resize", "shifted_gaussian_kernel",
]
