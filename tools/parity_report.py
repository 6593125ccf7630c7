"""Writes docs/parity.md from the parity test results (`make parity`).

usage: python tools/parity_report.py RESULTS.jsonl OUT.md FIXTURES_DIR [--status N]

RESULTS.jsonl holds one JSON object per checked row, appended by Tests/ParityTests when
ZOO_PARITY_RESULTS is set, once every check of the row has run: the global error, the per-channel
error of feature maps (with the tap's per-channel tolerance) and, for torchvision fp32 logits, the
torchvision round trip. A row passes only when the test said so AND every recorded check agrees
(error within the tolerance, per-channel error within its tolerance, round trip "OK"); a torchvision
fp32 logits row without a recorded round trip fails. Every case of every parity manifest
(FIXTURES_DIR/parity_*/cases.json) appears in the table; a check without a result is listed as "not
run" (and counts as a failure). Parity groups whose generator exists (tools/fixtures/gen_parity_*.py)
but whose manifest is missing are named as not generated: the report then says it covers a partial
run. `--status N` is the exit status of the test run; a non-zero status is stated at the top and the
run is not reported as passing whatever the rows say.
"""
import datetime
import glob
import json
import os
import platform
import subprocess
import sys

TOL = 1e-4


def kinds_of(case):
    """The rows a case yields (Tests/ParityTests/ParityTests.swift)."""
    if "features" in case and "logits" in case:
        return ["logits", "features 0-4", "negative: low channel"]
    if "features" in case:
        return ["features 0-4", "negative: module before each tap", "negative: low channel"]
    return ["logits"]


def verdict(r):
    """(passed, why not): the test's own verdict, cross-checked against every recorded figure."""
    why = []
    if not r.get("passed"):
        why.append("test failed")
    kind = r["kind"]
    e, ce, ct = r.get("max_rel_err"), r.get("max_channel_rel_err"), r.get("channel_tolerance")
    negative = kind.startswith("negative")
    if not negative and isinstance(e, (int, float)) and not e <= TOL:
        why.append(f"error {e:.2e} > {TOL:g}")
    if kind.startswith("negative: low channel") and isinstance(ce, (int, float)) and isinstance(ct, (int, float)) and not ce > ct:
        why.append("per-channel control not caught")
    if not negative and isinstance(ce, (int, float)) and isinstance(ct, (int, float)) and not ce <= ct:
        why.append(f"per channel {ce:.2e} > {ct:.2e}")
    if kind == "features 0-4" and r.get("note") != "not run" and ce is None:
        why.append("per-channel check not recorded")
    rt = r.get("round_trip")
    if kind == "logits" and r["source"] == "torchvision" and r["dtype"] == "f32" and r.get("note") != "not run":
        if rt is None:
            why.append("round trip not recorded")
        elif rt != "OK":
            why.append(f"round trip: {rt}")
    return not why, why


def main():
    args = sys.argv[1:]
    status = None
    if "--status" in args:
        i = args.index("--status")
        try:
            status = int(args[i + 1])
        except (IndexError, ValueError):
            sys.exit(__doc__)
        del args[i:i + 2]
    if len(args) != 3:
        sys.exit(__doc__)
    results_path, out_path, fixtures = args
    results = []
    if os.path.exists(results_path):
        with open(results_path) as f:
            results = [json.loads(l) for l in f if l.strip()]
    manifests = {}
    for p in sorted(glob.glob(os.path.join(fixtures, "parity_*", "cases.json"))):
        with open(p) as f:
            doc = json.load(f)
        manifests[doc["group"]] = doc["cases"]
    here = os.path.dirname(os.path.abspath(__file__))
    expected_groups = sorted(os.path.basename(g)[len("gen_"):-len(".py")]
                             for g in glob.glob(os.path.join(here, "fixtures", "gen_parity_*.py")))
    missing_groups = [g for g in expected_groups if g not in manifests]
    seen = {(r["id"], r["kind"]) for r in results}
    for group, cases in manifests.items():
        for c in cases:
            for kind in kinds_of(c):
                if (c["id"], kind) not in seen:
                    results.append({"id": c["id"], "group": group, "arch": c["arch"], "source": c["source"],
                                     "dtype": c["dtype"], "kind": kind, "max_rel_err": None, "passed": False,
                                     "note": "not run"})
    run_groups = sorted({r["group"] for r in results if r.get("note") != "not run"})
    idle_groups = sorted(g for g in manifests if g not in run_groups)

    def order(r):
        return (r["kind"].startswith("negative"), r["kind"].startswith("threads"), r["source"], r["arch"], r["id"],
                r["kind"])

    results.sort(key=order)
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = "?"
    verdicts = [verdict(r) for r in results]
    passed = sum(1 for ok, _ in verdicts if ok)
    partial = bool(missing_groups or idle_groups)
    lines = [
        "# Parity with PyTorch (torchvision) and Keras",
        "",
        "Generated by `make parity` (tools/parity_report.py) from the test run's results; do not edit by hand.",
        "",
        f"- date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}, commit `{commit}`,"
        f" {platform.machine()}, {os.cpu_count()} CPUs",
        f"- groups run: {', '.join(run_groups) or 'none'}",
    ]
    if status is not None:
        lines.append(f"- exit status of the test run: {status}" + (" (**the run failed**)" if status != 0 else ""))
    if missing_groups:
        lines.append(f"- **partial run**: not generated, so not run: {', '.join(missing_groups)}"
                     " (their cases are not in the table)")
    if idle_groups:
        lines.append(f"- **partial run**: generated but not run: {', '.join(idle_groups)} (listed as \"not run\")")
    lines += [
        f"- metric: max |ours - reference| / max |reference| over the logits (or each feature map) of a random"
        f" batch of 2; tolerance {TOL:g}",
        "- per channel (feature maps): for each channel, max |ours - reference| / max(the channel's max |reference|,"
        " 1e-2 x the map's max |reference|), the worst channel of the worst tap; its tolerance is 1e-4, or 3x the"
        " framework's own float32 round-off per channel (against float64) where that is larger (a channel a ReLU has"
        " almost switched off keeps its pre-activation's round-off); the column shows the tap closest to its"
        " tolerance, as error / tolerance",
        "- chain: framework checkpoint -> `zoo convert --arch NAME` -> `zoo run` (float32 compute); references from"
        " the framework itself (tools/fixtures/gen_parity_*.py): random weights with calibrated, perturbed BatchNorm"
        " statistics; F16/BF16 files are compared with the framework running the same rounded weights",
        "- round trip (every torchvision fp32 logits row, its own column): the converted file loads into torchvision"
        " with `load_state_dict(strict=True)` and every tensor equals the source checkpoint's; a row passes only if"
        " both its parity check and its round trip pass",
        "- feature taps (index 0...4, strides 2...32): torchvision's `create_feature_extractor` at the nodes"
        " torchvision's convention gives (the last trunk module at each stride, docs/models.md), or the Keras"
        " layers ending the same blocks; the zoo must also name torchvision's nodes",
        "- `*_arch` groups: one small case (64x64) per catalogue architecture and flavour, run by `make test`",
        "- negative controls (a Keras ResNet run with torchvision's v1.5 stride, a Keras MobileNetV2 with"
        " symmetric padding, each feature tap against the module just before it, e.g. MobileNetV2's"
        " 320-channel `features.17` = timm's tap 4) pass when their error EXCEEDS the tolerance (or the shapes"
        " differ); `negative: low channel` (each feature case) moves one element of a low-magnitude channel of"
        " the zoo's map so that the global check passes it and the per-channel check must fail it",
    ]
    if os.environ.get("PARITY_NOTE"):
        lines.append(f"- note: {os.environ['PARITY_NOTE']}")
    summary = f"**{passed} of {len(results)} checks pass"
    if partial:
        summary += " (partial run: see above)"
    if status not in (None, 0):
        summary += f"; the test run exited {status}"
    lines += [
        "",
        summary + ".**",
        "",
        "| architecture | source | dtype | check | max rel error | per channel / tolerance | round trip | result | case |",
        "|---|---|---|---|---|---|---|---|---|",
    ]

    def fmt(e):
        return "-" if e is None else (e if isinstance(e, str) else f"{e:.2e}")

    for r, (ok, why) in zip(results, verdicts):
        ce, ct = r.get("max_channel_rel_err"), r.get("channel_tolerance")
        channel = "-" if ce is None else f"{fmt(ce)} / {fmt(ct)}"
        rt = r.get("round_trip")
        trip = "-" if rt is None else ("OK" if rt == "OK" else "**FAIL**")
        text = "pass" if ok else "**FAIL**"
        note = r.get("note") or ""
        detail = "; ".join(w for w in why if w != "test failed")
        if not ok and note:
            detail = "; ".join(x for x in (detail, note.splitlines()[0]) if x)
        elif ok and note and r["kind"].startswith("negative"):
            detail = note.splitlines()[0]
        if detail:
            text += f" ({detail[:400]})".replace("|", "/")
        lines.append(f"| {r['arch']} | {r['source']} | {r['dtype']} | {r['kind']} | {fmt(r['max_rel_err'])} | {channel}"
                     f" | {trip} | {text} | `{r['id']}` |")
    with open(out_path, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"parity: {passed}/{len(results)} checks pass{' (partial run)' if partial else ''}; wrote {out_path}")
    # The report never turns a failed run into a passing one.
    if passed != len(results) or status not in (None, 0):
        sys.exit(1)


if __name__ == "__main__":
    main()
