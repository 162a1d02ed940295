"""User data for evaluation, calibration and recovery (image folders, tensor files, text)."""
