"""`python -m research promote BUNDLE [--reason TEXT]`: verify and install a bundle as the production model."""

from __future__ import annotations

import argparse
import sys

from cryptobot.ml import BundleError
from research.promote import promote


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m research promote",
        description="Verify BUNDLE, copy it to MODELS/production (atomically), archive the previous production "
                    "bundle to MODELS/archive/<id>/ and append who/when/why to MODELS/promotions.jsonl.",
    )
    parser.add_argument("bundle", help="bundle directory (e.g. runs/train/bundle)")
    parser.add_argument("--models", default="models", help="models directory (default: models)")
    parser.add_argument("--reason", default="", help="why this bundle is promoted (recorded)")
    args = parser.parse_args(argv)
    try:
        record = promote(args.bundle, args.models, args.reason)
    except BundleError as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 2
    print(f"promoted bundle {record['bundle_id']} (previous: {record['previous']}) to {args.models}/production")
    return 0
