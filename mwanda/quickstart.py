"""The smallest honest end-to-end job: prune the embedded model, measure every language.

``make figures`` runs this until the notebooks exist (issue 5). Through the experiment runner
(so the records land in the results cache), it evaluates the dense tiny multilingual Llama and
copies pruned at 50% with magnitude, Wanda and M-Wanda, calibrated on the 15 calibration
languages, and prints bits per byte on the test split of the embedded profile's 20 languages
(15 calibration + 5 held out). M-Wanda's alpha and beta are the provisional defaults.

    python -m mwanda.quickstart [--profile embedded] [--sparsity 0.5]
"""

from __future__ import annotations

import argparse
import time

from mwanda import experiments, results

METHODS = ("dense", "magnitude", "wanda", "mwanda")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="embedded", help="embedded (default) or smoke")
    ap.add_argument("--sparsity", type=float, default=0.5)
    ap.add_argument("--results", default=str(experiments.RESULTS_DIR))
    args = ap.parse_args(argv)
    start = time.perf_counter()
    configs = [experiments.make_config(args.profile, method=m, sparsity=args.sparsity) for m in METHODS]
    keys = [experiments.run(c, results_dir=args.results)["key"] for c in configs]
    df = results.with_dense(results.load(args.results, key=keys))
    bpb = df[df["metric"] == "bpb"].pivot_table(index="language", columns="method", values="value")
    bpb.insert(0, "dense", df[df["metric"] == "bpb"].groupby("language")["dense"].first())
    calib = set(configs[0].calib_langs)
    bpb.insert(0, "role", ["calib" if lang in calib else "heldout" for lang in bpb.index])
    print(
        f"\nBits per byte on the {configs[0].eval_split} split (lower is better), sparsity {args.sparsity}:"
    )
    print(bpb[["role", "dense", *METHODS[1:]]].round(3).to_string())
    eq = results.equity(
        df.assign(role=df["language"].map(lambda x: "calib" if x in calib else "heldout")),
        "bpb",
        by=("method", "role"),
    )
    print("\nRelative increase of bits per byte over dense:")
    print(eq.round(4).to_string(index=False))
    print(f"\nrecords in {args.results} ({time.perf_counter() - start:.0f}s in all)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
