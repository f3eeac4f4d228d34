"""The `qosplane` command."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import yaml

from qosplane.compiler.plan import compile_plan
from qosplane.compiler.report import render_report
from qosplane.model.errors import QosplaneError
from qosplane.openstack.case import case_from_mapping

EXIT_OK = 0
EXIT_PLAN_HAS_ERRORS = 1
EXIT_INVALID_INPUT = 2


def _cmd_plan(args: argparse.Namespace) -> int:
    path = Path(args.case)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        print(f"qosplane plan: cannot read {path}: {exc.strerror}", file=sys.stderr)
        return EXIT_INVALID_INPUT
    try:
        body = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        print(f"qosplane plan: {path} is not valid YAML: {exc}", file=sys.stderr)
        return EXIT_INVALID_INPUT
    try:
        instance, facts = case_from_mapping(body)
    except QosplaneError as exc:
        print(f"qosplane plan: invalid case {path}: {exc}", file=sys.stderr)
        return EXIT_INVALID_INPUT
    plan = compile_plan(instance, facts)
    if args.json:
        json.dump(plan.to_json(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(render_report(plan))
    return EXIT_PLAN_HAS_ERRORS if plan.errors else EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qosplane", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    plan = sub.add_parser(
        "plan",
        help="compile one instance's QoS intent to every host artifact, touching nothing",
        description="Exit 0: plan compiled; 1: compiled but some limits cannot be honoured "
        "(see errors); 2: invalid input.",
    )
    plan.add_argument("case", help="the case file (YAML), see design.md section 1")
    plan.add_argument("--json", action="store_true", help="print the plan as one JSON object")
    plan.set_defaults(func=_cmd_plan)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
