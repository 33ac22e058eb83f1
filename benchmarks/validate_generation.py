"""Validate a generated dataset: yields table and m_coll / lepton-pT plots per process.

Applies the e-mu selection of arXiv:2401.09530 Sec. III A through
``symnplm.physics`` (exactly one electron and one muon, pT ≥ 15 GeV, |η| ≤ 2.3,
relative isolation < 0.15 (e) / 0.25 (μ), opposite charge) to every dataset of a
fileset, scales the weights to a target luminosity and writes

* ``yields.md`` / ``yields.json``: selected events per process, split into ``emu``
  (electron leads) and ``mue`` (muon leads), with the statistical uncertainty and the
  number of generated events behind each number;
* ``m_coll.png``: stacked background and the two LFV signals in ``emu`` and ``mue``;
* ``m_coll_shapes.png``, ``lepton_pt.png``: unit-normalised shapes per process.

Usage (from the repository root)::

    python benchmarks/validate_generation.py --fileset datasets/demo/fileset.json \\
        --luminosity 20 --output benchmarks/output/generation

This is a validation script, not a unit test: it reads every file of the fileset.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import awkward as ak
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import mplhep as hep
import numpy as np
import uproot

from symnplm.io.files import write_json
from symnplm.io.filesets import load_fileset
from symnplm.io.provenance import provenance
from symnplm.physics.kinematics import emu_features
from symnplm.physics.selection import select_emu

LEPTON_FIELDS = ("pt", "eta", "phi", "mass", "charge", "pfRelIso03_all")
BRANCHES = (
    [f"Electron_{f}" for f in (*LEPTON_FIELDS, "cutBased")]
    + [f"Muon_{f}" for f in (*LEPTON_FIELDS, "tightId")]
    + ["MET_pt", "MET_phi", "genWeight"]
)
M_COLL_BINS = np.linspace(0.0, 400.0, 41)
PT_BINS = np.linspace(15.0, 215.0, 41)
GROUP_ORDER = ("ttbar", "DY", "diboson", "top", "Higgs")


def selected_columns(paths: list[str]) -> dict[str, np.ndarray]:
    """Per-event columns (m_coll, lepton pT, weight) of the selected e-mu events."""
    parts = defaultdict(list)
    for path in paths:
        with uproot.open(path) as f:
            ev = f["Events"].arrays(list(BRANCHES))
        electrons = ak.zip({k: ev[f"Electron_{k}"] for k in (*LEPTON_FIELDS, "cutBased")})
        muons = ak.zip({k: ev[f"Muon_{k}"] for k in (*LEPTON_FIELDS, "tightId")})
        sel = select_emu(electrons, muons)
        cols = emu_features(sel.electron, sel.muon, ev.MET_pt[sel.mask], ev.MET_phi[sel.mask])
        for key in ("m_coll", "pt_e", "pt_mu"):
            parts[key].append(cols[key])
        parts["weight"].append(ak.to_numpy(ev.genWeight[sel.mask]).astype(np.float64))
    return {k: np.concatenate(v) for k, v in parts.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fileset", type=Path, default=Path("datasets/demo/fileset.json"))
    parser.add_argument("--luminosity", type=float, default=20.0, help="target fb^-1")
    parser.add_argument("--output", type=Path, default=Path("benchmarks/output/generation"))
    args = parser.parse_args()
    fileset = load_fileset(args.fileset)
    args.output.mkdir(parents=True, exist_ok=True)

    rows, columns = [], {}
    for name, entry in fileset.items():
        meta = entry["metadata"]
        cols = selected_columns(list(entry["files"]))
        cols["weight"] *= args.luminosity / meta["luminosity_fb"]
        emu = cols["pt_e"] > cols["pt_mu"]
        columns[name] = cols | {"emu": emu}
        row = {
            "process": name,
            "group": meta["group"],
            "is_signal": meta["is_signal"],
            "xsec_pb": meta["xsec"],
            "n_generated": meta["n_generated"],
            "n_selected_raw": len(cols["weight"]),
        }
        for cat, mask in (("emu", emu), ("mue", ~emu)):
            w = cols["weight"][mask]
            row[cat] = float(w.sum())
            row[f"{cat}_stat"] = float(np.sqrt((w**2).sum()))
        rows.append(row)

    background = [r for r in rows if not r["is_signal"]]
    totals = {cat: sum(r[cat] for r in background) for cat in ("emu", "mue")}
    stats = {
        cat: float(np.sqrt(sum(r[f"{cat}_stat"] ** 2 for r in background)))
        for cat in ("emu", "mue")
    }
    write_json(
        args.output / "yields.json",
        {
            "fileset": str(args.fileset),
            "luminosity_fb": args.luminosity,
            "selection": "1 e + 1 mu, pT >= 15 GeV, |eta| <= 2.3, iso e < 0.15, mu < 0.25, OS",
            "rows": rows,
            "background_total": totals,
            "background_total_stat": stats,
            "provenance": provenance(),
        },
    )
    lines = [
        f"Selected e-mu events at {args.luminosity:g} fb⁻¹ ({args.fileset})",
        "",
        "| process | σ·B (pb) | generated | selected (raw) | emu | mue |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['process']} | {r['xsec_pb']:.4g} | {r['n_generated']} | {r['n_selected_raw']} "
            f"| {r['emu']:.1f} ± {r['emu_stat']:.1f} | {r['mue']:.1f} ± {r['mue_stat']:.1f} |"
        )
    lines.append(
        f"| **background** | | | | {totals['emu']:.0f} ± {stats['emu']:.0f} "
        f"| {totals['mue']:.0f} ± {stats['mue']:.0f} |"
    )
    (args.output / "yields.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    plot(columns, fileset, args)


def plot(columns: dict, fileset: dict, args: argparse.Namespace) -> None:
    """m_coll stack per category, and unit-normalised shapes per process."""
    hep.style.use("ATLAS")
    groups: dict[str, list[str]] = defaultdict(list)
    for name, entry in fileset.items():
        groups[entry["metadata"]["group"]].append(name)
    fig, axes = plt.subplots(1, 2, figsize=(16, 6))
    for ax, (cat, want_emu) in zip(axes, (("emu", True), ("mue", False)), strict=True):
        stack, labels = [], []
        for group in GROUP_ORDER:
            values = [
                np.histogram(
                    c["m_coll"][c["emu"] == want_emu],
                    M_COLL_BINS,
                    weights=c["weight"][c["emu"] == want_emu],
                )[0]
                for n in groups.get(group, [])
                for c in [columns[n]]
            ]
            if values:
                stack.append(np.sum(values, axis=0))
                labels.append(group)
        hep.histplot(stack, M_COLL_BINS, ax=ax, stack=True, histtype="fill", label=labels)
        for signal, latex, color in (("htaue", r"\tau e", "red"), ("htaumu", r"\tau\mu", "blue")):
            names = [n for n in groups.get("signal", []) if n.endswith(signal)]
            sig = sum(
                np.histogram(
                    c["m_coll"][c["emu"] == want_emu],
                    M_COLL_BINS,
                    weights=c["weight"][c["emu"] == want_emu],
                )[0]
                for c in (columns[n] for n in names)
            )
            label = rf"$H\to {latex}$ (B = 1%) $\times 10$"
            hep.histplot(sig * 10, M_COLL_BINS, ax=ax, color=color, label=label)
        ax.set_xlabel(r"$m_{\mathrm{coll}}$ [GeV]")
        ax.set_ylabel("Events / 10 GeV")
        ax.set_title(
            f"{cat} ({'electron' if want_emu else 'muon'} leads), {args.luminosity:g} fb$^{{-1}}$",
            fontsize=14,
        )
        ax.legend(fontsize=11)
    fig.savefig(args.output / "m_coll.png", dpi=110, bbox_inches="tight")
    plt.close(fig)

    # Unit-normalised shapes per process group (single datasets are too noisy to compare).
    merged = {}
    for group in (*GROUP_ORDER, "htaue", "htaumu"):
        names = groups.get(group, []) or [n for n in groups.get("signal", []) if n.endswith(group)]
        if names:
            merged[group] = {
                k: np.concatenate([columns[n][k] for n in names])
                for k in ("m_coll", "pt_e", "pt_mu", "weight")
            }
    labels = {"htaue": r"$H\to\tau e$", "htaumu": r"$H\to\tau\mu$"}
    for keys, bins, filename in (
        (("m_coll",), M_COLL_BINS, "m_coll_shapes.png"),
        (("pt_e", "pt_mu"), PT_BINS, "lepton_pt.png"),
    ):
        fig, axes = plt.subplots(1, len(keys), figsize=(8 * len(keys), 6), squeeze=False)
        for ax, key in zip(axes[0], keys, strict=True):
            for group, cols in merged.items():
                h, _ = np.histogram(cols[key], bins, weights=cols["weight"])
                style = "--" if group in labels else "-"
                hep.histplot(
                    h / h.sum(), bins, ax=ax, label=labels.get(group, group), linestyle=style
                )
            ax.set_xlabel(
                {
                    "m_coll": r"$m_{\mathrm{coll}}$ [GeV]",
                    "pt_e": r"electron $p_T$ [GeV]",
                    "pt_mu": r"muon $p_T$ [GeV]",
                }[key]
            )
            ax.set_ylabel("fraction / bin")
            ax.legend(fontsize=11)
        fig.savefig(args.output / filename, dpi=110, bbox_inches="tight")
        plt.close(fig)


if __name__ == "__main__":
    main()
