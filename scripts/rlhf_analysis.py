"""Read the RLHF experiments' results (scripts/rlhf_experiments.py) again, without training:

    .venv/bin/python scripts/rlhf_analysis.py critic [--data docs/rlhf] [--out docs/rlhf]
    .venv/bin/python scripts/rlhf_analysis.py gao [--data docs/rlhf] [--out docs/rlhf]
    .venv/bin/python scripts/rlhf_analysis.py g2 [--data docs/rlhf] [--out docs/rlhf]
    .venv/bin/python scripts/rlhf_analysis.py dpo [--data docs/rlhf] [--out docs/rlhf]
    .venv/bin/python scripts/rlhf_analysis.py long [--data docs/rlhf] [--out docs/rlhf]
    .venv/bin/python scripts/rlhf_analysis.py placement [--data docs/rlhf] [--out docs/rlhf]

`critic` (from `critic.json`): the gold of every variant at equal completion lengths — the
ascending gold can only grow with content length, so a raw gold gap between PPO and GRPO can
be length alone. Writes `critic_lengths.md` and `critic_lengths.json`: the length table
(length -> count and mean gold, each variant pooled over seeds, and the reference); per
variant the raw gold, the content length, the gold standardised to one shared length
distribution (the pooled lengths of every member and the reference, at the lengths where
each of them has >= 5 completions), the gold at content length 7 and the gold gain over the
reference at equal lengths, as IQMs with 95% stratified-bootstrap intervals over seeds
(`purejaxppo.run.stats`); and PPO minus each GRPO variant, raw and length-matched (mean
difference with a bootstrap interval, and the probability of improvement).

`g2` (from `g2.json`): the same reading of the G = 2 head-on comparison, per budget (equal
prompts, equal completions per iteration): per arm the raw gold, the content length, the gold
standardised to the shared length distribution (every member of every arm and the
reference, lengths where each has >= 5 completions) and the gain over the reference at
equal lengths; PPO minus each G = 2 arm, raw and length-matched, with P(PPO better) at equal
length; and GRPO minus Dr. GRPO (the std) in each budget. Writes `g2.md` and
`g2_lengths.json`.

`dpo` (from `dpo.json`): the same reading of DPO against PPO (same reference, same pairs):
the beta tuning rows, then per arm the raw gold, KL, content length, the gold standardised to
the shared length distribution, the gold at content length 7 and the gain over the reference
at equal lengths; PPO minus DPO, raw and at equal length, with P(PPO better). Writes `dpo.md`
and `dpo_lengths.json`.

`long` (from `long.json`): the `long` experiment (the `ascending_fraction` gold, completions
of up to 32 tokens, several prepare seeds). Scores are `[RL seeds, prepare seeds]`: IQMs
with 95% bootstrap intervals stratified by prepare seed (`iqm_ci` with the prepare seeds as
tasks: RL seeds resampled within each reference / reward model, the prepare seeds fixed),
PPO minus each arm as a difference of means resampled the same way
(`analysis.stratified_mean_difference_ci`) and P(PPO better) over seed pairs within each
prepare seed, averaged over them. Per arm: raw gold, KL, content length, win rate, and the
gold gain over the reference at equal lengths (each member against its own prepare seed's
reference, `within_length_difference`). Writes `long.md` and `long_lengths.json`.

`placement` (from `placement.json`): PPO and GRPO G = 4, each with the KL where it has it and
swapped (`rl.kl_placement`). Per arm the raw gold, KL, content length, the gold standardised
to the shared length distribution, the gold at content length 7 and the gain over the
reference at equal lengths; then two sets of contrasts (difference of means [95% bootstrap
interval], P(improvement) at equal length): the placement within each algorithm (KL in the
reward minus KL in the loss) and the critic at each placement (PPO minus GRPO, the KL in the
same place). Writes `placement.md` and `placement_lengths.json`.

`gao` (from `overopt.json`): Gao et al. (2022)'s RL form `gold - gold_ref = d (alpha - beta
log d)`, `d = sqrt(KL(pi || pi_ref))` in nats (KL of the final policy on the evaluation
prompts, k1 estimate), least squares over every run (seed) of the KL targets the controller
reached (a target whose runs' KL is within 5% of the previous target's, seed by seed, is the
same run and is dropped), per reward model, with seed-bootstrap intervals. Where
`overopt.json` keeps the per-prompt gold and lengths (runs since 2026-12-06), the same form is
also fitted to the length-controlled gain (each run's gold minus the reference's at equal
content lengths, `within_length_difference`), and each target's mean content length is
listed. Writes `gao_fit.md`, `gao_fit.json` and `gao_fit.png`.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from purejaxppo.rlhf import analysis
from purejaxppo.run.stats import iqm_ci, probability_of_improvement

ROOT = Path(__file__).resolve().parent.parent
MAX_LENGTH = 8  # configs/rlhf/ppo.yaml: language.max_completion_len
MIN_COUNT = 5
FIXED_LENGTH = 7
PPO = "PPO + GAE (token-level critic)"


def _est(x: np.ndarray) -> str:
    e = iqm_ci(np.asarray(x, float))
    return f"{e.point:.2f} [{e.low:.2f}, {e.high:.2f}]"


def member_stats(
    v: dict[str, np.ndarray], ref: dict[str, np.ndarray], weights: np.ndarray
) -> dict[str, np.ndarray]:
    """Per member (seed) of one variant (`v`: `gold`, `length` `[seeds, E]`): raw gold,
    content length, gold standardised to `weights`, gold at `FIXED_LENGTH`, the gold gain over
    the reference at equal lengths and the share of its completions at the weighted lengths."""
    used = np.flatnonzero(weights)
    rows = []
    for lengths, gold in zip(v["length"], v["gold"], strict=True):
        table = analysis.length_table(lengths, gold, MAX_LENGTH)
        gain = analysis.within_length_difference(
            lengths, gold, ref["length"], ref["gold"], MAX_LENGTH
        )
        rows.append(
            (
                gold.mean(),
                lengths.mean(),
                analysis.standardised_gold(lengths, gold, weights),
                table.means[FIXED_LENGTH],
                gain.value,
                np.mean(np.isin(lengths, used)),
            )
        )
    cols = np.asarray(rows, float).T
    keys = ("raw", "length", "matched", "fixed", "gain", "share")
    return dict(zip(keys, cols, strict=True))


class ArmsReading(NamedTuple):
    """Every arm of a `g2` / `dpo` / `placement` JSON read at equal lengths."""

    ref: dict[str, np.ndarray]  # the reference's per-prompt `gold` and `length` [E]
    arms: dict[str, dict[str, np.ndarray]]  # per arm: `gold`, `length` [seeds, E]
    weights: np.ndarray  # the shared length distribution (`analysis.common_weights`)
    used: list[int]  # the lengths it weighs
    ref_matched: float  # the reference's gold standardised to `weights`
    per_member: dict[str, dict[str, np.ndarray]]  # per arm: `member_stats`


def read_arms(res: dict[str, Any]) -> ArmsReading:
    """The per-prompt data of `res["arms"]` and its reference, the length distribution they
    share (lengths where every member and the reference have >= `MIN_COUNT` answers) and
    each member's statistics under it."""
    ref = {k: np.asarray(v) for k, v in res["reference_per_prompt"].items()}
    arms = {
        name: {k: np.asarray(v) for k, v in row["per_prompt"].items()}
        for name, row in res["arms"].items()
    }
    sets = [ref["length"], *[m for v in arms.values() for m in v["length"]]]
    weights = analysis.common_weights(sets, MAX_LENGTH, MIN_COUNT)
    used = [int(n) for n in np.flatnonzero(weights)]
    ref_matched = analysis.standardised_gold(ref["length"], ref["gold"], weights)
    per_member = {name: member_stats(v, ref, weights) for name, v in arms.items()}
    return ArmsReading(ref, arms, weights, used, ref_matched, per_member)


def critic(data: Path, out: Path) -> None:
    res = json.loads((data / "critic.json").read_text())
    ref = {k: np.asarray(v) for k, v in res["reference_per_prompt"].items()}
    variants = {
        name: {k: np.asarray(v) for k, v in row["per_prompt"].items()}
        for name, row in res["variants"].items()
    }
    sets = [ref["length"], *[m for v in variants.values() for m in v["length"]]]
    weights = analysis.common_weights(sets, MAX_LENGTH, MIN_COUNT)
    used = [int(n) for n in np.flatnonzero(weights)]
    ref_matched = analysis.standardised_gold(ref["length"], ref["gold"], weights)
    ref_fixed = analysis.length_table(ref["length"], ref["gold"], MAX_LENGTH).means[FIXED_LENGTH]
    per_member = {name: member_stats(v, ref, weights) for name, v in variants.items()}
    lines = [
        "# Gold at equal completion lengths (`scripts/rlhf_analysis.py critic`)",
        "",
        f"From `critic.json`: {res['seeds']} seeds per variant, KL target {res['kl_target']}, "
        "gold judged on the same 512 evaluation prompts. IQM over seeds [95% stratified "
        "bootstrap interval].",
        "",
        f"Shared length distribution: content lengths {used} (every member and the reference "
        f"have >= {MIN_COUNT} completions there), weights "
        + ", ".join(f"{n}: {weights[n]:.2f}" for n in used)
        + ".",
        "",
        "| variant | gold (raw) | content length | gold, length-matched | share of completions "
        f"at matched lengths | gold at length {FIXED_LENGTH} | gold gain over reference at "
        "equal lengths |",
        "|---|---|---|---|---|---|---|",
        f"| reference (SFT) | {ref['gold'].mean():.2f} | {ref['length'].mean():.2f} | "
        f"{ref_matched:.2f} | {np.mean(np.isin(ref['length'], used)):.2f} | {ref_fixed:.2f} "
        "| 0 |",
    ]
    for name, m in per_member.items():
        lines.append(
            f"| {name} | {_est(m['raw'])} | {_est(m['length'])} | {_est(m['matched'])} | "
            f"{m['share'].mean():.2f} | {_est(m['fixed'])} | {_est(m['gain'])} |"
        )
    lines += [
        "",
        "PPO minus each GRPO variant (mean difference over seeds [95% bootstrap interval]; "
        "P(PPO > variant) over seed pairs [interval]):",
        "",
        "| variant | raw gold gap | length-matched gap | gap at length "
        f"{FIXED_LENGTH} | P(PPO better), length-matched |",
        "|---|---|---|---|---|",
    ]
    gaps: dict[str, Any] = {}
    for name, m in per_member.items():
        if name == PPO:
            continue
        p = per_member[PPO]
        row = {k: analysis.mean_difference_ci(p[k], m[k]) for k in ("raw", "matched", "fixed")}
        poi = probability_of_improvement(p["matched"], m["matched"])
        row["p_improvement"] = tuple(poi)
        gaps[name] = row
        cells = [
            f"{row[k][0]:+.2f} [{row[k][1]:+.2f}, {row[k][2]:+.2f}]"
            for k in row
            if k != "p_improvement"
        ]
        lines.append(
            f"| {name} | "
            + " | ".join(cells)
            + f" | {poi.point:.2f} [{poi.low:.2f}, {poi.high:.2f}] |"
        )
    lines += ["", *length_table_lines(ref, variants)]
    (out / "critic_lengths.md").write_text("\n".join(lines) + "\n")
    summary = {
        "weights": weights,
        "lengths_used": used,
        "reference": {"raw": ref["gold"].mean(), "matched": ref_matched, "fixed": ref_fixed},
        "per_member": per_member,
        "ppo_minus": gaps,
    }
    (out / "critic_lengths.json").write_text(json.dumps(_jsonable(summary)) + "\n")
    print("\n".join(lines))


G2_BUDGETS = (("prompts", "equal prompts per iteration"), ("completions", "equal completions"))


def g2(data: Path, out: Path) -> None:
    res = json.loads((data / "g2.json").read_text())
    ref, arms, weights, used, ref_matched, per_member = read_arms(res)
    ppo = next(n for n, row in res["arms"].items() if row["algorithm"] == "ppo")
    n_seeds = res["seeds"]
    lines = [
        "# G = 2 head-on (`scripts/rlhf_analysis.py g2`)",
        "",
        f"From `g2.json`: {n_seeds} seeds per arm, {res['iterations']} iterations, KL target "
        f"{res['kl_target']}, reward model held-out accuracy {res['reward_model_accuracy']:.3f}; "
        "gold judged on the same 512 evaluation prompts. IQM over seeds [95% stratified "
        "bootstrap interval]; differences: mean over seeds [95% bootstrap interval]; P(PPO "
        "better): probability of improvement over seed pairs [interval].",
        "",
        f"Equal length: the gold re-weighted to one shared length distribution, content lengths "
        f"{used} (every member of every arm and the reference have >= {MIN_COUNT} completions "
        "there), weights " + ", ".join(f"{n}: {weights[n]:.2f}" for n in used) + ".",
        "",
        "| budget | arm | prompts / completions per iteration | raw gold | content length | "
        "gold at equal length | gain over reference at equal lengths | PPO − arm, raw | "
        "PPO − arm, at equal length | P(PPO better), at equal length |",
        "|---|---|---|---|---|---|---|---|---|---|",
        f"| | reference (SFT) | | {ref['gold'].mean():.2f} | {ref['length'].mean():.2f} | "
        f"{ref_matched:.2f} | 0 | | | |",
    ]
    gaps: dict[str, Any] = {}
    for budget, title in G2_BUDGETS:
        for name, row in res["arms"].items():
            if row["budget"] not in (budget, "both"):
                continue
            m = per_member[name]
            cells = [
                title,
                name,
                f"{row['prompts_per_iteration']} / {row['completions_per_iteration']}",
                _est(m["raw"]),
                _est(m["length"]),
                _est(m["matched"]),
                _est(m["gain"]),
            ]
            if name == ppo:
                cells += ["", "", ""]
            else:
                p = per_member[ppo]
                gap = {k: analysis.mean_difference_ci(p[k], m[k]) for k in ("raw", "matched")}
                poi = probability_of_improvement(p["matched"], m["matched"])
                gap["p_improvement"] = tuple(poi)
                gaps[name] = gap
                cells += [
                    f"{gap[k][0]:+.2f} [{gap[k][1]:+.2f}, {gap[k][2]:+.2f}]"
                    for k in ("raw", "matched")
                ]
                cells.append(f"{poi.point:.2f} [{poi.low:.2f}, {poi.high:.2f}]")
            lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "The std (GRPO minus Dr. GRPO, same budget) and the budget (equal prompts minus equal "
        "completions, same normalisation):",
        "",
        "| comparison | raw gold | gold at equal length | content length |",
        "|---|---|---|---|",
    ]
    contrasts = {}
    grpo = {
        (row["budget"], row["group_normalize"]): name
        for name, row in res["arms"].items()
        if row["algorithm"] == "grpo"
    }
    pairs = [
        (f"std − no std, {title}", grpo[(b, True)], grpo[(b, False)]) for b, title in G2_BUDGETS
    ]
    pairs += [
        (
            f"equal prompts − equal completions, {norm}",
            grpo[("prompts", s)],
            grpo[("completions", s)],
        )
        for s, norm in ((True, "GRPO (std)"), (False, "Dr. GRPO (no std)"))
    ]
    for label, a, b in pairs:
        row = {
            k: analysis.mean_difference_ci(per_member[a][k], per_member[b][k])
            for k in ("raw", "matched", "length")
        }
        contrasts[label] = row
        lines.append(
            f"| {label} | "
            + " | ".join(f"{row[k][0]:+.2f} [{row[k][1]:+.2f}, {row[k][2]:+.2f}]" for k in row)
            + " |"
        )
    lines += ["", *length_table_lines(ref, arms)]
    (out / "g2.md").write_text("\n".join(lines) + "\n")
    summary = {
        "weights": weights,
        "lengths_used": used,
        "reference": {"raw": ref["gold"].mean(), "matched": ref_matched},
        "per_member": per_member,
        "ppo_minus": gaps,
        "contrasts": contrasts,
    }
    (out / "g2_lengths.json").write_text(json.dumps(_jsonable(summary)) + "\n")
    print("\n".join(lines))


LONG_FIELDS = (  # (key, column title, per-seed evaluation field)
    ("gold", "gold", "gold_reward"),
    ("kl", "KL to reference (nats)", "kl_to_reference"),
    ("length", "content length", None),
    ("win", "win rate vs reference", "win_rate_vs_reference"),
    ("gain", "gain over reference at equal lengths", None),
)


def long_scores(res: dict[str, Any]) -> dict[str, dict[str, np.ndarray]]:
    """Per arm, per field of `LONG_FIELDS`: `[RL seeds, prepare seeds]` scores."""
    c = res["max_completion_len"]
    out: dict[str, dict[str, np.ndarray]] = {}
    for name, row in res["arms"].items():
        cols: dict[str, list[np.ndarray]] = {k: [] for k, _, _ in LONG_FIELDS}
        for block in row["per_prepare"]:
            ref = res["prepare"][block["prepare_seed"]]["reference_per_prompt"]
            gold, lengths = (np.asarray(block["per_prompt"][k], float) for k in ("gold", "length"))
            for key, _, field in LONG_FIELDS:
                if field is not None:
                    cols[key].append(np.asarray(block["per_seed"][field], float))
            cols["length"].append(lengths.mean(axis=1))
            cols["gain"].append(
                np.array(
                    [
                        analysis.within_length_difference(
                            lg, g, np.asarray(ref["length"]), np.asarray(ref["gold"]), c
                        ).value
                        for lg, g in zip(lengths, gold, strict=True)
                    ]
                )
            )
        out[name] = {k: np.stack(v, axis=1) for k, v in cols.items()}
    return out


def _est2(x: np.ndarray, digits: int = 3) -> str:
    e = iqm_ci(np.asarray(x, float))
    return f"{e.point:.{digits}f} [{e.low:.{digits}f}, {e.high:.{digits}f}]"


def long(data: Path, out: Path) -> None:
    res = json.loads((data / "long.json").read_text())
    # an interrupted run: each arm has the prepare seeds it finished (in order), a comparison
    # uses the ones both arms have
    done = {name: len(row["per_prepare"]) for name, row in res["arms"].items()}
    res["arms"] = {name: row for name, row in res["arms"].items() if done[name]}
    n_p, n_s = max(done.values()), res["seeds"]
    res["prepare"] = res["prepare"][:n_p]
    scores = long_scores(res)
    ppo = next(n for n, row in res["arms"].items() if row["algorithm"] == "ppo")
    accs = [p["reward_model_accuracy"] for p in res["prepare"]]
    refs = [
        (np.mean(p["reference_per_prompt"]["gold"]), np.mean(p["reference_per_prompt"]["length"]))
        for p in res["prepare"]
    ]
    lines = [
        f"# Several references and reward models: `{res['gold']}`, answers of up to "
        f"{res['max_completion_len']} tokens (`scripts/rlhf_analysis.py long`)",
        "",
        f"From `long.json`: gold `{res['gold']}`, completions of up to "
        f"{res['max_completion_len']} tokens, {n_p} prepare seeds (reference + reward model) x "
        f"{n_s} RL seeds per arm (prepare seeds finished per arm: "
        + ", ".join(f"{name} {k}" for name, k in done.items())
        + f"), {res['iterations']} iterations of 64 completions, KL target "
        f"{res['kl_target']}. Reward-model held-out accuracy per prepare seed: "
        + ", ".join(f"{a:.3f}" for a in accs)
        + "; reference gold / content length per prepare seed: "
        + ", ".join(f"{g:.3f} / {ln:.1f}" for g, ln in refs)
        + ".",
        "",
        f"IQM over each arm's runs ({n_s} RL seeds x its prepare seeds) [95% bootstrap "
        "interval, RL seeds resampled within each prepare seed]; PPO − arm: difference of "
        "means (prepare seeds weighted equally, over the prepare seeds both finished) [same "
        "stratified bootstrap]; P(PPO better): over seed pairs within each prepare seed, "
        "averaged [stratified interval].",
        "",
        "| arm | prompts / completions | "
        + " | ".join(title for _, title, _ in LONG_FIELDS)
        + " | PPO − arm, gold | PPO − arm, gain at equal lengths | P(PPO better), gold |",
        "|---" * (len(LONG_FIELDS) + 5) + "|",
    ]
    gaps: dict[str, Any] = {}
    for name, row in res["arms"].items():
        sc = scores[name]
        cells = [name, f"{row['prompts_per_iteration']} / {row['completions_per_iteration']}"]
        cells += [_est2(sc[k], 2 if k in ("kl", "length") else 3) for k, _, _ in LONG_FIELDS]
        if name == ppo:
            cells += ["", "", ""]
        else:
            both = min(done[ppo], done[name])  # the prepare seeds both finished
            p = {k: v[:, :both] for k, v in scores[ppo].items()}
            sc = {k: v[:, :both] for k, v in sc.items()}
            gap = {
                k: analysis.stratified_mean_difference_ci(p[k], sc[k])
                for k in ("gold", "gain", "length", "kl")
            }
            gap["prepare_seeds"] = both
            poi = probability_of_improvement(p["gold"], sc["gold"])
            gap["p_improvement"] = tuple(poi)
            gaps[name] = gap
            cells += [
                f"{gap[k][0]:+.3f} [{gap[k][1]:+.3f}, {gap[k][2]:+.3f}]" for k in ("gold", "gain")
            ]
            cells.append(f"{poi.point:.2f} [{poi.low:.2f}, {poi.high:.2f}]")
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "Per prepare seed (mean over RL seeds): gold, content length",
        "",
        "| arm | " + " | ".join(f"prepare seed {p}" for p in range(n_p)) + " |",
        "|---" * (n_p + 1) + "|",
        "| reference | " + " | ".join(f"{g:.3f}, {ln:.1f}" for g, ln in refs) + " |",
    ]
    for name in res["arms"]:
        sc = scores[name]
        lines.append(
            f"| {name} | "
            + " | ".join(
                f"{sc['gold'][:, p].mean():.3f}, {sc['length'][:, p].mean():.1f}"
                if p < done[name]
                else "not run"
                for p in range(n_p)
            )
            + " |"
        )
    lines += ["", *long_length_lines(res)]
    (out / "long.md").write_text("\n".join(lines) + "\n")
    summary = {"scores": scores, "ppo_minus": gaps, "reward_model_accuracy": accs}
    (out / "long_lengths.json").write_text(json.dumps(_jsonable(summary)) + "\n")
    print("\n".join(lines))


LONG_BINS = ((0, 1), (2, 4), (5, 8), (9, 12), (13, 16), (17, 24), (25, 31), (32, 32))


def long_length_lines(res: dict[str, Any]) -> list[str]:
    """Content-length bins -> count and mean gold, every prepare and RL seed pooled."""
    c = res["max_completion_len"]
    sets = {
        "reference": [
            (p["reference_per_prompt"]["length"], p["reference_per_prompt"]["gold"])
            for p in res["prepare"]
        ]
    }
    for name, row in res["arms"].items():
        sets[name] = [
            (b["per_prompt"]["length"], b["per_prompt"]["gold"]) for b in row["per_prepare"]
        ]
    tables = {}
    for name, pairs in sets.items():
        lengths = np.concatenate([np.ravel(lg) for lg, _ in pairs])
        gold = np.concatenate([np.ravel(g) for _, g in pairs])
        tables[name] = analysis.length_table(lengths, gold, c)
    lines = [
        f"Gold by content length (bins; all seeds pooled; `{c}` = cut by the length limit):",
        "",
        "| content length | " + " | ".join(f"{n}: count, gold" for n in tables) + " |",
        "|---" * (len(tables) + 1) + "|",
    ]
    for lo, hi in LONG_BINS:
        cells = []
        for t in tables.values():
            n = int(t.counts[lo : hi + 1].sum())
            sums = np.nansum(t.means[lo : hi + 1] * t.counts[lo : hi + 1])
            cells.append(f"{n}, " + ("-" if n == 0 else f"{sums / n:.3f}"))
        label = f"{lo}" if lo == hi else f"{lo}–{hi}"
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def length_table_lines(ref: dict[str, np.ndarray], variants: dict[str, Any]) -> list[str]:
    """Length -> count and mean gold (pooled over seeds), the reference and every variant."""
    tables = {"reference": analysis.length_table(ref["length"], ref["gold"], MAX_LENGTH)}
    for name, v in variants.items():
        tables[name] = analysis.length_table(v["length"].ravel(), v["gold"].ravel(), MAX_LENGTH)
    head = "| content length | " + " | ".join(f"{n}: count, gold" for n in tables) + " |"
    lines = [
        "Length table (all seeds pooled; gold is the mean at that length, - where none):",
        "",
        head,
        "|---" * (len(tables) + 1) + "|",
    ]
    for n in range(MAX_LENGTH + 1):
        cells = []
        for t in tables.values():
            gold = "-" if t.counts[n] == 0 else f"{t.means[n]:.2f}"
            cells.append(f"{t.counts[n]}, {gold}")
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    return lines


def length_controlled_gain(
    rm: dict[str, Any], targets: int, seeds: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """`(gain, content length)` `[targets, seeds]` of one reward model's runs: each run's gold
    minus the reference's at equal content lengths, and its mean content length; None when
    `overopt.json` has no per-prompt data (runs before 2026-12-06)."""
    if "per_prompt" not in rm:
        return None
    gold = np.asarray(rm["per_prompt"]["gold"], float)
    lengths = np.asarray(rm["per_prompt"]["length"], int)
    ref = {k: np.asarray(v) for k, v in rm["reference_per_prompt"].items()}
    gain = [
        analysis.within_length_difference(n, g, ref["length"], ref["gold"], MAX_LENGTH).value
        for n, g in zip(lengths, gold, strict=True)
    ]
    shape = (targets, seeds)
    return np.reshape(gain, shape), lengths.mean(axis=1).reshape(shape)


def gao(data: Path, out: Path) -> None:
    res = json.loads((data / "overopt.json").read_text())
    targets, seeds = np.asarray(res["kl_targets"], float), res["seeds"]
    lines = [
        "# Gao et al. (2022)'s RL form fitted (`scripts/rlhf_analysis.py gao`)",
        "",
        "`gold - gold_ref = d (alpha - beta log d)`, `d = sqrt(KL(pi || pi_ref))` (nats; the "
        "final policy's k1 KL on the evaluation prompts); least squares over every seed's run "
        "of the distinct KL targets; [95% bootstrap interval, seeds resampled per target].",
        "",
    ]
    fits: dict[str, Any] = {}
    for name, rm in res["rm"].items():
        ev = {k: np.asarray(v, float) for k, v in rm["eval"].items()}
        kl = ev["kl_to_reference"].reshape(len(targets), seeds)
        gold = ev["gold_reward"].reshape(len(targets), seeds)
        gold_ref = float(ev["gold_reward_reference"][0])
        keep = analysis.distinct_targets(kl)
        dropped = [t for t in range(len(targets)) if t not in keep]
        fit = analysis.fit_gao_rl(kl[keep], gold[keep] - gold_ref)
        ci = analysis.bootstrap_gao(kl[keep], gold[keep] - gold_ref)
        peaks = [float(targets[keep][np.argmax(gold[keep, s])]) for s in range(seeds)]
        twins = {f"{targets[t]:g}": float(np.max(np.abs(gold[t] - gold[t - 1]))) for t in dropped}
        controlled = length_controlled_gain(rm, len(targets), seeds)
        fits[name] = {
            "reward_model_accuracy": rm["reward_model_accuracy"],
            "alpha": fit.alpha,
            "beta": fit.beta,
            "rmse": fit.rmse,
            "points": fit.points,
            "peak_kl": fit.peak_kl,
            "ci": ci,
            "targets_kept": targets[keep],
            "kept_index": keep,
            "targets_dropped": targets[dropped],
            "twin_max_gold_difference": twins,
            "best_target_per_seed": peaks,
            "gold_reference": gold_ref,
            "kl": kl,
            "gold": gold,
        }
        if controlled is not None:
            gain_len, content = controlled
            fit_len = analysis.fit_gao_rl(kl[keep], gain_len[keep])
            ci_len = analysis.bootstrap_gao(kl[keep], gain_len[keep])
            fits[name]["length_controlled"] = {
                "alpha": fit_len.alpha,
                "beta": fit_len.beta,
                "rmse": fit_len.rmse,
                "peak_kl": fit_len.peak_kl,
                "ci": ci_len,
                "gain": gain_len,
                "content_length": content,
            }
        lines += [
            f"## {name} reward model (held-out accuracy {rm['reward_model_accuracy']:.2f})",
            "",
            f"- alpha = {fit.alpha:.3f} [{ci['alpha'][0]:.3f}, {ci['alpha'][1]:.3f}], beta = "
            f"{fit.beta:.3f} [{ci['beta'][0]:.3f}, {ci['beta'][1]:.3f}]; fitted peak at KL = "
            f"{fit.peak_kl:.1f} nats [{ci['peak_kl'][0]:.1f}, {ci['peak_kl'][1]:.1f}]; "
            f"RMSE {fit.rmse:.3f} over {fit.points} runs",
            f"- targets kept: {', '.join(f'{t:g}' for t in targets[keep])}; dropped (same "
            f"runs as the target below): {', '.join(f'{t:g}' for t in targets[dropped]) or '-'}"
            + (
                "; largest gold difference between such twins: "
                + ", ".join(f"{k}: {v:.2f}" for k, v in twins.items())
                if twins
                else ""
            ),
            f"- best kept target per seed: {', '.join(f'{p:g}' for p in peaks)}",
        ]
        if controlled is not None:
            lc = fits[name]["length_controlled"]
            ci = {k: f"[{lo:.3f}, {hi:.3f}]" for k, (lo, hi) in lc["ci"].items()}
            lines.append(
                f"- length-controlled (gain over the reference at equal content lengths): "
                f"alpha = {lc['alpha']:.3f} {ci['alpha']}, beta = {lc['beta']:.3f} "
                f"{ci['beta']}; fitted peak at KL = {lc['peak_kl']:.1f} nats {ci['peak_kl']}; "
                f"RMSE {lc['rmse']:.3f}"
            )
        lines.append("")
        if controlled is None:
            lines += [
                "| KL target | measured KL per seed | gold per seed | fit at mean KL |",
                "|---|---|---|---|",
            ]
        else:
            lines += [
                "| KL target | KL, IQM [95% CI] | gold, IQM [95% CI] | fit at mean KL | content "
                "length, mean | gain at equal lengths, IQM [95% CI] |",
                "|---|---|---|---|---|---|",
            ]
        for t in keep:
            fitted = f"{gold_ref + float(fit.predict(kl[t].mean())):.2f}"
            if controlled is None:
                lines.append(
                    f"| {targets[t]:g} | {', '.join(f'{x:.1f}' for x in kl[t])} | "
                    f"{', '.join(f'{x:.2f}' for x in gold[t])} | {fitted} |"
                )
            else:
                lines.append(
                    f"| {targets[t]:g} | {_est(kl[t])} | {_est(gold[t])} | {fitted} | "
                    f"{controlled[1][t].mean():.2f} | {_est(controlled[0][t])} |"
                )
        lines.append("")
    (out / "gao_fit.md").write_text("\n".join(lines))
    (out / "gao_fit.json").write_text(json.dumps(_jsonable(fits)) + "\n")
    plot_gao(fits, out / "gao_fit.png")
    print("\n".join(lines))


def plot_gao(fits: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4), constrained_layout=True)
    for c, (name, f) in enumerate(fits.items()):
        kl, gold = np.asarray(f["kl"]), np.asarray(f["gold"])
        kept = np.asarray(f["kept_index"], int)
        ax.scatter(np.sqrt(kl[kept]).ravel(), gold[kept].ravel(), s=14, color=f"C{c}")
        dropped = np.setdiff1d(np.arange(len(kl)), kept)
        ax.scatter(
            np.sqrt(kl[dropped]).ravel(),
            gold[dropped].ravel(),
            s=14,
            color=f"C{c}",
            marker="x",
            alpha=0.5,
        )
        fit = analysis.GaoFit(f["alpha"], f["beta"], f["rmse"], f["points"])
        d = np.linspace(0.0, np.sqrt(kl.max()) * 1.05, 200)
        ax.plot(
            d,
            f["gold_reference"] + fit.predict(d**2),
            color=f"C{c}",
            label=(
                f"{name} RM (acc {f['reward_model_accuracy']:.2f}): alpha {f['alpha']:.2f}, "
                f"beta {f['beta']:.2f}"
            ),
        )
    ax.axhline(next(iter(fits.values()))["gold_reference"], color="grey", ls=":", lw=0.8)
    ax.set_xlabel("d = sqrt(KL(pi || pi_ref)) [sqrt(nats)]")
    ax.set_ylabel("gold reward (final policy)")
    ax.set_title(
        "Gao et al. RL form, fitted per reward model; dots: runs (seeds), x: dropped twins",
        fontsize=9,
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _diff(d: tuple[float, float, float]) -> str:
    return f"{d[0]:+.2f} [{d[1]:+.2f}, {d[2]:+.2f}]"


def dpo(data: Path, out: Path) -> None:
    res = json.loads((data / "dpo.json").read_text())
    ref, arms, weights, used, ref_matched, per_member = read_arms(res)
    for name, row in res["arms"].items():
        per_member[name]["kl"] = np.asarray(row["per_seed"]["kl_to_reference"], float)
        per_member[name]["proxy"] = np.asarray(row["per_seed"]["proxy_reward"], float)
    ppo = next(n for n, row in res["arms"].items() if row["algorithm"] == "ppo")
    lines = [
        "# An offline arm: DPO (`scripts/rlhf_analysis.py dpo`)",
        "",
        f"From `dpo.json`: reward model held-out accuracy {res['reward_model_accuracy']:.3f}; "
        f"DPO's beta picked on tuning seeds {res['tuning_seeds']} by the gold of the "
        f"monitoring samples over the last {res['tuning_last_passes']} passes (fresh prompts, "
        "not the evaluation's). Gold judged on the same 512 evaluation prompts for every arm.",
        "",
        "Tuning (mean over the tuning seeds):",
        "",
        "| dpo_beta | monitoring gold (selection) | eval gold | KL | content length |",
        "|---|---|---|---|---|",
    ]
    for beta, row in res["tuning"].items():
        lengths = np.asarray(row["per_prompt"]["length"], float)
        picked = " (picked)" if float(beta) == res["dpo_beta"] else ""
        lines.append(
            f"| {beta}{picked} | {row['selection_gold']:.3f} | "
            f"{np.mean(row['per_seed']['gold_reward']):.2f} | "
            f"{np.mean(row['per_seed']['kl_to_reference']):.2f} | {lengths.mean():.2f} |"
        )
    lines += [
        "",
        f"{res['seeds']} seeds per arm. IQM over seeds [95% stratified bootstrap interval]; "
        "PPO − DPO: difference of means [95% bootstrap interval]; P(PPO better): probability "
        "of improvement over seed pairs [interval]. Equal length: the gold re-weighted to one "
        f"shared length distribution, content lengths {used} (every member of both arms and "
        f"the reference have >= {MIN_COUNT} completions there), weights "
        + ", ".join(f"{n}: {weights[n]:.2f}" for n in used)
        + f"; gold at length {FIXED_LENGTH}: the mean gold of the answers of content length "
        f"{FIXED_LENGTH}.",
        "",
        "| arm | sampled training tokens | raw gold | proxy reward | KL | content length | "
        f"gold at equal length | gold at length {FIXED_LENGTH} | gain over reference at "
        "equal lengths |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| reference (SFT) | | {ref['gold'].mean():.2f} | | 0 | {ref['length'].mean():.2f} | "
        f"{ref_matched:.2f} | "
        f"{analysis.length_table(ref['length'], ref['gold'], MAX_LENGTH).means[FIXED_LENGTH]:.2f}"
        " | 0 |",
    ]
    for name, row in res["arms"].items():
        m = per_member[name]
        cells = [name, f"{row['tokens']:.0f}"]
        cells += [_est(m[k]) for k in ("raw", "proxy", "kl", "length", "matched", "fixed", "gain")]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "| PPO − DPO | raw gold | KL | content length | gold at equal length | gold at length "
        f"{FIXED_LENGTH} | P(PPO better), raw | P(PPO better), at equal length |",
        "|---|---|---|---|---|---|---|---|",
    ]
    gaps: dict[str, Any] = {}
    for name in res["arms"]:
        if name == ppo:
            continue
        p, m = per_member[ppo], per_member[name]
        gap = {
            k: analysis.mean_difference_ci(p[k], m[k])
            for k in ("raw", "kl", "length", "matched", "fixed")
        }
        for k in ("raw", "matched"):
            gap[f"p_improvement_{k}"] = tuple(probability_of_improvement(p[k], m[k]))
        gaps[name] = gap
        poi = [gap[f"p_improvement_{k}"] for k in ("raw", "matched")]
        lines.append(
            f"| {name} | "
            + " | ".join(_diff(gap[k]) for k in ("raw", "kl", "length", "matched", "fixed"))
            + " | "
            + " | ".join(f"{x[0]:.2f} [{x[1]:.2f}, {x[2]:.2f}]" for x in poi)
            + " |"
        )
    lines += ["", *length_table_lines(ref, arms)]
    (out / "dpo.md").write_text("\n".join(lines) + "\n")
    summary = {
        "weights": weights,
        "lengths_used": used,
        "reference": {"raw": ref["gold"].mean(), "matched": ref_matched},
        "per_member": per_member,
        "ppo_minus": gaps,
    }
    (out / "dpo_lengths.json").write_text(json.dumps(_jsonable(summary)) + "\n")
    print("\n".join(lines))


PLACEMENT_KEYS = ("raw", "kl", "length", "matched", "fixed", "gain")


def placement(data: Path, out: Path) -> None:
    res = json.loads((data / "placement.json").read_text())
    ref, arms, weights, used, ref_matched, per_member = read_arms(res)
    for name, row in res["arms"].items():
        per_member[name]["kl"] = np.asarray(row["per_seed"]["kl_to_reference"], float)
    where = {  # (algorithm, KL in the reward) -> arm name
        (row["algorithm"], bool(row["kl_in_reward"])): name for name, row in res["arms"].items()
    }
    lines = [
        "# The KL placement swapped (`scripts/rlhf_analysis.py placement`)",
        "",
        f"From `placement.json`: {res['seeds']} seeds per arm, {res['iterations']} iterations, "
        f"KL target {res['kl_target']}, reward model held-out accuracy "
        f"{res['reward_model_accuracy']:.3f}; gold judged on the same 512 evaluation prompts. "
        "IQM over seeds [95% stratified bootstrap interval]. Equal length: the gold re-weighted "
        f"to one shared length distribution, content lengths {used} (every member of every arm "
        f"and the reference have >= {MIN_COUNT} completions there), weights "
        + ", ".join(f"{n}: {weights[n]:.2f}" for n in used)
        + f"; gold at length {FIXED_LENGTH}: the mean gold of the answers of that content length.",
        "",
        "| arm | sampled training tokens | raw gold | KL | content length | gold at equal "
        f"length | gold at length {FIXED_LENGTH} | gain over reference at equal lengths |",
        "|---|---|---|---|---|---|---|---|",
        f"| reference (SFT) | | {ref['gold'].mean():.2f} | 0 | {ref['length'].mean():.2f} | "
        f"{ref_matched:.2f} | "
        f"{analysis.length_table(ref['length'], ref['gold'], MAX_LENGTH).means[FIXED_LENGTH]:.2f}"
        " | 0 |",
    ]
    for name, row in res["arms"].items():
        m = per_member[name]
        cells = [name, f"{row['tokens']:.0f}"]
        cells += [_est(m[k]) for k in ("raw", "kl", "length", "matched", "fixed", "gain")]
        lines.append("| " + " | ".join(cells) + " |")
    pairs = [
        (f"{algo}: KL in the reward − KL in the loss", where[(algo, True)], where[(algo, False)])
        for algo in ("ppo", "grpo")
    ]
    pairs += [
        (f"PPO − GRPO, KL in the {place}", where[("ppo", flag)], where[("grpo", flag)])
        for flag, place in ((True, "reward"), (False, "loss"))
    ]
    lines += [
        "",
        "Contrasts: difference of means [95% bootstrap interval]; P(first better): probability "
        "of improvement over seed pairs [interval], at equal length.",
        "",
        "| contrast | raw gold | KL | content length | gold at equal length | gold at length "
        f"{FIXED_LENGTH} | gain at equal lengths | P(first better), at equal length |",
        "|---|---|---|---|---|---|---|---|",
    ]
    contrasts: dict[str, Any] = {}
    for label, a, b in pairs:
        gap = {k: analysis.mean_difference_ci(per_member[a][k], per_member[b][k])
               for k in PLACEMENT_KEYS}  # fmt: skip
        poi = probability_of_improvement(per_member[a]["matched"], per_member[b]["matched"])
        gap["p_improvement_matched"] = tuple(poi)
        contrasts[label] = gap
        lines.append(
            f"| {label} | "
            + " | ".join(_diff(gap[k]) for k in PLACEMENT_KEYS)
            + f" | {poi.point:.2f} [{poi.low:.2f}, {poi.high:.2f}] |"
        )
    lines += ["", *length_table_lines(ref, arms)]
    (out / "placement.md").write_text("\n".join(lines) + "\n")
    summary = {
        "weights": weights,
        "lengths_used": used,
        "reference": {"raw": ref["gold"].mean(), "matched": ref_matched},
        "per_member": per_member,
        "contrasts": contrasts,
    }
    (out / "placement_lengths.json").write_text(json.dumps(_jsonable(summary)) + "\n")
    print("\n".join(lines))


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, float | np.floating):
        return None if not math.isfinite(float(x)) else round(float(x), 5)
    if isinstance(x, np.integer):
        return int(x)
    return x


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("analysis", choices=("critic", "gao", "g2", "dpo", "long", "placement"))
    p.add_argument("--data", default=str(ROOT / "docs" / "rlhf"), help="folder of the JSON")
    p.add_argument("--out", default=None, help="where to write (default: --data)")
    args = p.parse_args(argv)
    data = Path(args.data)
    out = Path(args.out) if args.out else data
    out.mkdir(parents=True, exist_ok=True)
    run = {"critic": critic, "gao": gao, "g2": g2, "dpo": dpo, "long": long}
    run["placement"] = placement
    run[args.analysis](data, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
