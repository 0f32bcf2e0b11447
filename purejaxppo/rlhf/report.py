"""Host shell: what an RLHF run leaves in its folder — `summary.json`, `metrics.csv` (one row
per member and iteration) and two plots: `overoptimisation.png` (gold and proxy reward
against sqrt(KL to the reference), Gao et al. 2022's axes) and `training.png`.

Arrays come in with a leading member axis `[M, ...]` (`RLMetrics` `[M, iterations]`,
`Evaluation` `[M]`).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np

from purejaxppo.rlhf import analysis
from purejaxppo.rlhf.config import Member, RLHFConfig, hparams_dict
from purejaxppo.rlhf.pipeline import Evaluation, Prepared
from purejaxppo.rlhf.trainer import RLMetrics
from purejaxppo.run.rundir import atomic_write_text, device_description, versions, write_summary

FINAL_FIELDS = {  # summary key -> Evaluation field
    "gold_reward_final": "gold_reward",
    "gold_reward_reference": "gold_reward_reference",
    "proxy_reward_final": "proxy_reward",
    "proxy_reward_reference": "proxy_reward_reference",
    "kl_to_reference_final": "kl_to_reference",
    "win_rate_vs_reference": "win_rate_vs_reference",
    "length_final": "length",
}


LENGTH_KEYS = (  # per-member scalars of `length_controlled`, averaged at the top level
    "content_length_final",
    "content_length_reference",
    "gold_gain_within_length",
    "gold_length_matched",
    "gold_length_matched_reference",
    "length_matched_coverage",
    "win_rate_same_length",
)
MIN_COUNT = 5  # a length enters the length-matched gold when the policy has this many there


def length_controlled(evaluation: Evaluation, i: int, max_length: int) -> dict[str, Any]:
    """Member `i`'s gold read at equal completion lengths (`purejaxppo.rlhf.analysis`):
    mean content lengths; `gold_gain_within_length`, the policy's gold minus the reference's
    at equal lengths (the length-dummy regression's method term); `gold_length_matched`,
    the policy's gold re-weighted to the reference's length distribution over the lengths
    where the policy has `MIN_COUNT` completions (`length_matched_coverage`: the share of
    the reference's completions at those lengths), and the reference's own on the same
    lengths; the win rate over the prompts whose two completions have equal length; and the
    table `gold_by_length` (length -> count and mean gold, policy and reference)."""
    get = {k: np.asarray(getattr(evaluation, k))[i] for k in Evaluation._fields}
    lengths, gold = get["content_length"], get["gold_per_prompt"]
    ref_lengths, ref_gold = get["content_length_reference"], get["gold_per_prompt_reference"]
    ours = analysis.length_table(lengths, gold, max_length)
    ref = analysis.length_table(ref_lengths, ref_gold, max_length)
    weights = np.where(ours.counts >= MIN_COUNT, ref.counts, 0).astype(np.float64)
    gain = analysis.within_length_difference(lengths, gold, ref_lengths, ref_gold, max_length)
    win, pairs = analysis.same_length_win_rate(gold, ref_gold, lengths, ref_lengths)
    table = {
        str(n): {
            "count": int(ours.counts[n]),
            "gold": _finite(ours.means[n]),
            "count_reference": int(ref.counts[n]),
            "gold_reference": _finite(ref.means[n]),
        }
        for n in range(max_length + 1)
        if ours.counts[n] or ref.counts[n]
    }
    return {
        "content_length_final": float(np.mean(lengths)),
        "content_length_reference": float(np.mean(ref_lengths)),
        "gold_gain_within_length": _finite(gain.value),
        "gold_length_matched": _finite(analysis.standardised_gold(lengths, gold, weights)),
        "gold_length_matched_reference": _finite(
            analysis.standardised_gold(ref_lengths, ref_gold, weights)
        ),
        "length_matched_coverage": float(weights.sum() / max(ref.counts.sum(), 1)),
        "win_rate_same_length": _finite(win),
        "same_length_pairs": pairs,
        "gold_by_length": table,
    }


def _finite(x: float) -> float | None:
    """`x` as a float, None (JSON null) when it is NaN."""
    return float(x) if np.isfinite(x) else None


def pooled_length_table(evaluation: Evaluation, max_length: int) -> dict[str, Any]:
    """Length -> count and mean gold of every member's completions pooled, and of the
    reference's (the same prompts and key for every member, so member 0's)."""
    ours = analysis.length_table(
        np.asarray(evaluation.content_length).ravel(),
        np.asarray(evaluation.gold_per_prompt).ravel(),
        max_length,
    )
    ref = analysis.length_table(
        np.asarray(evaluation.content_length_reference)[0],
        np.asarray(evaluation.gold_per_prompt_reference)[0],
        max_length,
    )
    return {
        str(n): {
            "count": int(ours.counts[n]),
            "gold": _finite(ours.means[n]),
            "count_reference": int(ref.counts[n]),
            "gold_reference": _finite(ref.means[n]),
        }
        for n in range(max_length + 1)
        if ours.counts[n] or ref.counts[n]
    }


def member_rows(
    members: list[Member], metrics: RLMetrics, evaluation: Evaluation, max_length: int
) -> list[dict[str, Any]]:
    """One summary dict per member (final evaluation, KL coefficient, sampled tokens)."""
    rows = []
    for i, member in enumerate(members):
        row: dict[str, Any] = {"label": member.label, "seed": member.seed}
        row["hparams"] = {k: float(v) for k, v in hparams_dict(member.hparams).items()}
        for key, field in FINAL_FIELDS.items():
            row[key] = float(np.asarray(getattr(evaluation, field))[i])
        row["kl_coef_final"] = float(np.asarray(metrics.kl_coef)[i, -1])
        row["sampled_tokens"] = int(np.asarray(metrics.tokens)[i].sum())
        row["length_controlled"] = length_controlled(evaluation, i, max_length)
        rows.append(row)
    return rows


def build_summary(
    cfg: RLHFConfig,
    members: list[Member],
    prepared: Prepared,
    metrics: RLMetrics,
    evaluation: Evaluation,
    timings: dict[str, float],
) -> dict[str, Any]:
    """`summary.json`: the issue's fields at the top level (the mean over members when a
    population ran; each member's own values under `members`)."""
    max_length = cfg.language.max_completion_len
    rows = member_rows(members, metrics, evaluation, max_length)
    summary: dict[str, Any] = {
        "algorithm": cfg.rl.algorithm,
        "group_size": cfg.rl.group_size,
        "gold": cfg.language.gold,
        "num_members": len(members),
        "reward_model_accuracy": float(prepared.reward_model_accuracy),
        "reward_model_train_accuracy": float(prepared.reward_model_train_accuracy),
        "length_rule_accuracy": float(prepared.length_rule_accuracy),
        "preference_ties": float(prepared.preference_ties),
        "sft_loss_final": float(np.mean(np.asarray(prepared.sft_losses)[-20:])),
    }
    for key in (*FINAL_FIELDS, "kl_coef_final", "sampled_tokens"):
        values = [row[key] for row in rows]
        summary[key] = float(np.mean(values)) if key != "sampled_tokens" else int(values[0])
    for key in LENGTH_KEYS:
        values = [row["length_controlled"][key] for row in rows]
        finite = [v for v in values if v is not None]
        summary[key] = float(np.mean(finite)) if finite else None
    summary["gold_by_length"] = pooled_length_table(evaluation, max_length)
    summary["members"] = rows
    summary["timings_s"] = {k: round(v, 2) for k, v in timings.items()}
    summary["versions"] = versions()
    summary["device"] = device_description()
    return summary


def metrics_csv(members: list[Member], metrics: RLMetrics) -> str:
    """`metrics.csv` text: member, label, iteration, then every `RLMetrics` field."""
    arrays = {name: np.asarray(value) for name, value in metrics._asdict().items()}
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["member", "label", "iteration", *arrays])
    for i, member in enumerate(members):
        for it in range(arrays["kl"].shape[1]):
            values = [repr(float(arrays[name][i, it])) for name in arrays]
            writer.writerow([i, member.label, it, *values])
    return out.getvalue()


def read_metrics_csv(path: str | Path) -> dict[str, np.ndarray]:
    """`metrics.csv` back as `{column: [M, iterations]}` (labels dropped)."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    num_members = max(int(r["member"]) for r in rows) + 1
    names = [k for k in rows[0] if k not in ("member", "label", "iteration")]
    return {n: np.array([float(r[n]) for r in rows]).reshape(num_members, -1) for n in names}


def _smooth(x: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over `window` iterations (shorter at the start)."""
    cumsum = np.cumsum(np.insert(x, 0, 0.0))
    idx = np.arange(1, len(x) + 1)
    start = np.maximum(idx - window, 0)
    return (cumsum[idx] - cumsum[start]) / (idx - start)


SMOOTH_ITERATIONS = 10  # overoptimisation.png: trailing mean over this many iterations


def _full_windows(x: np.ndarray, window: int) -> np.ndarray:
    """Trailing means `[I - w + 1]` over `w = min(window, I)` iterations, full windows only:
    every value averages the same number of training batches."""
    w = max(1, min(window, len(x)))
    return _smooth(x, w)[w - 1 :]


def overoptimisation_figure(members: list[Member], metrics: RLMetrics, evaluation: Evaluation):
    """The `overoptimisation.png` figure (see `plot_overoptimisation`)."""
    from matplotlib.figure import Figure

    kl = np.maximum(np.asarray(metrics.kl), 0.0)
    fig = Figure(figsize=(10, 4.4), constrained_layout=True)
    axes = fig.subplots(1, 2)
    colours = _colours(len(members))
    for ax, name in ((axes[0], "gold_reward"), (axes[1], "proxy_reward")):
        values = np.asarray(getattr(metrics, name))
        for i, member in enumerate(members):
            x = np.sqrt(_full_windows(kl[i], SMOOTH_ITERATIONS))
            y = _full_windows(values[i], SMOOTH_ITERATIONS)
            ax.plot(x, y, color=colours[i], lw=1.2, label=member.label)
            x_final = np.sqrt(max(float(np.asarray(evaluation.kl_to_reference)[i]), 0.0))
            ax.plot(x_final, float(np.asarray(getattr(evaluation, name))[i]), "o", color=colours[i])
        reference = float(np.asarray(getattr(evaluation, name + "_reference"))[0])
        ax.axhline(reference, color="grey", ls="--", lw=0.8)
        ax.plot(0.0, reference, "s", color="grey", label="reference policy (evaluation)")
        ax.set_xlim(left=-0.05 * max(1.0, ax.get_xlim()[1]))
        ax.set_xlabel("sqrt(KL(pi || pi_ref)) [sqrt(nats)]")
        ax.set_ylabel(name.replace("_", " "))
        ax.grid(alpha=0.3)
    axes[0].set_title("gold reward (the hidden preference)", fontsize=10)
    axes[1].set_title("proxy reward (the learnt reward model)", fontsize=10)
    axes[1].legend(fontsize=7, loc="best")
    fig.suptitle(
        f"lines: training batches, trailing mean over {SMOOTH_ITERATIONS} iterations, drawn from "
        "the first full window (one batch alone is too noisy)\n"
        "dots: each final policy; square and dashed line: the reference policy (KL 0); "
        "both evaluated on the same fresh prompts",
        fontsize=8,
    )
    return fig


def _colours(count: int) -> np.ndarray:
    """One viridis colour per member, `[count, 4]` RGBA."""
    from matplotlib import colormaps

    return colormaps["viridis"](np.linspace(0, 0.9, count))


def plot_overoptimisation(
    path: Path, members: list[Member], metrics: RLMetrics, evaluation: Evaluation
) -> None:
    """Gold (left) and proxy (right) reward against sqrt(KL) over training, one line per member,
    the final evaluation as dots and the reference's at KL 0.

    Each line point is a trailing mean over `SMOOTH_ITERATIONS` training batches, drawn from
    the first full window: a single batch (64 completions in the shipped configs) is noisy, so
    a line that began with iteration 0 alone started at KL 0 up to ~0.5 away from the
    reference's value, which is measured on the evaluation's fresh prompts (512) — sampling
    noise, not a difference between the two policies, which are the same at KL 0.
    """
    fig = overoptimisation_figure(members, metrics, evaluation)
    fig.savefig(path, dpi=110)


def plot_training(path: Path, members: list[Member], metrics: RLMetrics) -> None:
    """Gold reward, proxy reward, KL and beta against iteration, one line per member."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = ("gold_reward", "proxy_reward", "kl", "kl_coef")
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.5), constrained_layout=True)
    colours = plt.get_cmap("viridis")(np.linspace(0, 0.9, len(members)))
    for ax, name in zip(axes, names, strict=True):
        values = np.asarray(getattr(metrics, name))
        for i, member in enumerate(members):
            ax.plot(_smooth(values[i], 5), color=colours[i], lw=1.0, label=member.label)
        ax.set_xlabel("iteration")
        ax.set_title(name)
        ax.grid(alpha=0.3)
    axes[-1].legend(fontsize=7)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_run_folder(
    folder: Path,
    cfg_yaml: str,
    summary: dict[str, Any],
    members: list[Member],
    metrics: RLMetrics,
    evaluation: Evaluation,
) -> None:
    """Write every file of a finished run into `folder` (which exists)."""
    atomic_write_text(folder / "rlhf.yaml", cfg_yaml)
    atomic_write_text(folder / "metrics.csv", metrics_csv(members, metrics))
    plot_overoptimisation(folder / "overoptimisation.png", members, metrics, evaluation)
    plot_training(folder / "training.png", members, metrics)
    write_summary(folder / "summary.json", summary)
