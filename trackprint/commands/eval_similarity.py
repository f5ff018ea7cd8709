"""``trackprint eval-similarity``: see :mod:`trackprint.benchmarks.evaluation` for what is measured and how."""

from __future__ import annotations

import argparse

from trackprint.argtypes import positive_int


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "eval-similarity",
        help="retrieval benchmark: mAP, 1-NN, 5-NN of the distance variants and baselines on a labelled corpus")
    parser.add_argument("corpus", nargs="?", default="corpus-eval", metavar="CORPUS",
                        help="the labelled corpus folder, built there from Debian's music packages when missing, "
                             "reused after (default corpus-eval)")
    parser.add_argument("--engine", choices=("auto", "rust", "python"), default="auto",
                        help="the engine computing trackprint's numbers (default: rust when its server is built)")
    parser.add_argument("--jobs", type=positive_int, default=2, help="files analysed at once (default 2)")
    parser.add_argument("--baselines", default="mfcc,bliss",
                        help="comma-separated baselines to compute: mfcc, bliss (default both; '' for none)")
    parser.add_argument("--rounds", type=positive_int, default=1000, help="bootstrap rounds (default 1000)")
    parser.add_argument("--no-tempo", action="store_true", help="skip the tempo agreement with Essentia")
    parser.add_argument("--tempo-limit", type=int, default=0,
                        help="tempo agreement on at most N tracks spread over the corpus (default 0: all)")
    parser.add_argument("--no-ablation", action="store_true",
                        help="skip the default distance's leave-one-dimension-out scores")
    parser.add_argument("--no-codecs", action="store_true",
                        help="skip the codec identity and per-dimension codec sensitivity (re-encoded variants)")
    parser.add_argument("--codec-tracks", type=positive_int, default=12,
                        help="tracks re-encoded for the codec part, spread over the labels (default 12)")
    parser.add_argument("--codec-variants", default="",
                        help="comma-separated variant kinds for the codec part (default all: mp3_320, mp3_v5, "
                             "aac_128, opus_96, vorbis_q3, r48k, mono, minus6db, cut20s)")
    parser.add_argument("--against", default=None, metavar="FILE",
                        help="an earlier run's JSON (--out; e.g. of the previous fingerprint version): the paired mAP "
                             "difference of this run's default against each of its trackprint scores, on the "
                             "queries both have")
    parser.add_argument("--out", default=None, help="also write the figures as JSON to this file")
    parser.add_argument("--json", action="store_true", help="also print the figures as one JSON object")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from trackprint.benchmarks.evaluation.runner import run as run_evaluation

    return run_evaluation(args)
