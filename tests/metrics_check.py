#!/usr/bin/env python3
"""Checks a /metrics exposition with the official Python client's parsers (prometheus_client) for fedgate's tests.

  metrics_check.py text         < EXPOSITION    the Prometheus text format, version 0.0.4
  metrics_check.py openmetrics  < EXPOSITION    OpenMetrics 1.0 text (the client's strict parser)

Besides parsing, it checks that every metric family is ONE group, as both formats require: its # HELP and # TYPE
at most once each and before its samples, and all its lines together, with no line of another family in between.
The Prometheus text parser is lenient about that (a sample outside its family's group becomes an untyped family of
its own), so the grouping is checked line by line here, and the parsed result may hold no untyped family and no
family twice.

Exits 1 with the reason on stderr; else prints JSON
{family: {"type": ..., "help": ..., "samples": [[name, {label: value}, value], ...]}}.
"""
import json
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text

# The sample name suffixes each type's samples may carry after the family name.
SUFFIXES = {
    "counter": ("", "_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created", "_gsum", "_gcount"),
    "gaugehistogram": ("_bucket", "_gsum", "_gcount"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
    "stateset": ("",),
    "unknown": ("",),
    "untyped": ("",),
}


def family_of(sample, declared):
    """The declared family a sample belongs to, or the sample's own name when it fits none."""
    for family, typ in declared.items():
        for suffix in SUFFIXES.get(typ, ("",)):
            if sample == family + suffix:
                return family
    return sample


def check_groups(text):
    """Every problem with the grouping of families, in order."""
    problems = []
    declared = {}  # family -> type, from # TYPE lines
    help_seen, type_seen, has_samples = set(), set(), set()
    runs = []  # the family of each line, consecutive repeats collapsed
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) < 3 or parts[1] not in ("HELP", "TYPE", "UNIT"):
                continue  # "# EOF" or a plain comment
            kind, family = parts[1], parts[2]
            if kind == "TYPE":
                declared[family] = parts[3].strip() if len(parts) > 3 else "untyped"
            seen = {"HELP": help_seen, "TYPE": type_seen}.get(kind)
            if seen is not None:
                if family in seen:
                    problems.append(f"line {n}: a second # {kind} for {family}")
                seen.add(family)
            if family in has_samples:
                problems.append(f"line {n}: # {kind} for {family} after its samples")
        else:
            family = family_of(line.split("{", 1)[0].split(" ", 1)[0], declared)
            has_samples.add(family)
        if not runs or runs[-1][0] != family:
            runs.append((family, n))
    first = {}
    for family, n in runs:
        if family in first:
            problems.append(f"line {n}: {family} continues after other families (its group began at line {first[family]})")
        else:
            first[family] = n
    return problems


def main():
    if len(sys.argv) != 2 or sys.argv[1] not in ("text", "openmetrics"):
        sys.exit(__doc__)
    text = sys.stdin.read()
    problems = check_groups(text)
    try:
        families = list((parse_text if sys.argv[1] == "text" else parse_openmetrics)(text))
    except Exception as e:  # the parsers raise ValueError (and others) on malformed input
        families = []
        problems.append(f"the {sys.argv[1]} parser refused it: {e!r}")
    out = {}
    for f in families:
        if f.type in ("unknown", "untyped"):
            problems.append(f"{f.name} parsed as an untyped family: its samples are not in its family's group")
        elif f.name in out:
            problems.append(f"{f.name} parsed as two families")
        out[f.name] = {
            "type": f.type,
            "help": f.documentation,
            "samples": [[s.name, s.labels, s.value] for s in f.samples],
        }
    if problems:
        print("\n".join(dict.fromkeys(problems)), file=sys.stderr)
        sys.exit(1)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
