"""Model bundles: save, verify and load; fast ensemble inference (see `cryptobot.ml.bundle`)."""

from cryptobot.ml.bundle import Bundle, BundleError, load_bundle, save_bundle

__all__ = ["Bundle", "BundleError", "load_bundle", "save_bundle"]
