#!/usr/bin/env python3
"""Re-pick a calibration run's parameters under a larger sparsity margin, from its own trace.

`longshot calibrate --min-sparsity defaults+X` refuses every trial below the floor
(defaults' sparsity, rescaled, + X) and keeps the lowest-error trial above it. Held-out prompts
spread by about a point of mask sparsity around the calibration prompts' (docs/calibration.md),
so a table can land below the defaults on new prompts. This tool applies a larger margin Y to a
finished version-1 run without searching again: the floor moves by Y - X and the best trial
already in the trace above it is kept (the search's own rule, on the trials it ran; a search run
with Y from the start would have explored differently). A regime with no trial above the new
floor keeps the defaults, as calibrate does.

usage: tools/reselect_calibration.py RUN.json --margin Y [--regime NAME]... --out NEW.json

--regime re-picks only the named regimes (the others keep the run's pick and margin); each
re-picked regime records its own margin as `min_sparsity_margin` beside its floor.
"""
import argparse
import json
import os
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("table", help="a version-1 table written by longshot calibrate (with its trace)")
    ap.add_argument("--margin", type=float, required=True, help="the new margin Y over the defaults' floor")
    ap.add_argument("--regime", action="append", default=[],
                    help="re-pick only this regime (repeatable; default: every regime)")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    try:
        with open(a.table) as f:
            t = json.load(f)
    except (OSError, ValueError) as e:
        sys.exit(f"reselect_calibration.py: cannot read '{a.table}': {e}")
    if t.get("format") != "longshot-calibration" or t.get("version") != 1:
        sys.exit(f"reselect_calibration.py: '{a.table}' is not a version-1 longshot calibration table")
    obj = t.get("objective", {})
    if obj.get("min_sparsity") != "defaults":
        sys.exit(f"reselect_calibration.py: '{a.table}' was not calibrated with --min-sparsity defaults[+X]")
    if not 0.0 <= a.margin <= 0.5:
        sys.exit("reselect_calibration.py: --margin must lie in [0, 0.5]")
    old = float(obj.get("min_sparsity_margin", 0.0))
    if a.margin < old:
        # Trials between a lower floor and the run's were refused (their loss says so): search again.
        sys.exit(f"reselect_calibration.py: --margin {a.margin} is below the run's {old}; only a larger one can be re-picked")
    unknown = [n for n in a.regime if n not in t["regimes"]]
    if unknown:
        sys.exit(f"reselect_calibration.py: no regime {', '.join(unknown)} in '{a.table}' "
                 f"(it has {', '.join(t['regimes'])})")
    for name, r in t["regimes"].items():
        if a.regime and name not in a.regime:
            continue
        r["min_sparsity_margin"] = a.margin
        floor = r["min_sparsity"] - old + a.margin
        ok = [x for x in r["trace"] if x["sparsity"] >= floor - 1e-12]
        r["min_sparsity"] = floor
        # The search's rule: the lowest loss (error + the target penalty, which no floor changes)
        # among trials at or above the floor; the defaults when none beats theirs.
        best = min(ok, key=lambda x: x["loss"]) if ok else None
        if best is None or best["loss"] >= r["defaults"]["loss"]:
            r.update(params=r["defaults"]["params"], loss=r["defaults"]["loss"], nmse=r["defaults"]["nmse"],
                     sparsity=r["defaults"]["sparsity"], kept_defaults=True)
            print(f"{name:6s} floor {floor:.4f}: no trial beats the defaults, keeps them")
            continue
        params = dict(r["params"])
        params.update(best["params"])
        r.update(params=params, loss=best["loss"], nmse=best["nmse"], sparsity=best["sparsity"],
                 best_trial=best["trial"], kept_defaults=False)
        print(f"{name:6s} floor {floor:.4f}: trial {best['trial']}, nmse {best['nmse']:.5f} "
              f"(defaults {r['defaults']['nmse']:.5f}), sparsity {best['sparsity']:.4f}")
    which = f"regime(s) {', '.join(a.regime)}" if a.regime else "every regime"
    if not a.regime:
        obj["min_sparsity_margin"] = a.margin
    obj["reselected"] = (f"from {a.table.split('/')[-1]}: {which} at margin {a.margin} (the run's {old}), "
                         "tools/reselect_calibration.py")
    with open(a.out + ".tmp", "w") as f:
        json.dump(t, f, indent=2)
    os.replace(a.out + ".tmp", a.out)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
