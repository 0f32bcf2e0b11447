"""GIFs of a trained policy: `eval RUN --gif out.gif`, `train --gif` (host side).

Episodes of one seed's policy are rolled out in a `lax.scan` (the run's observation
normalisation applied), cut at their ends, and drawn frame by frame with gymnax's
`Visualizer` (at most `MAX_FRAMES`: longer, every k-th step) into a GIF that Pillow writes
with one shared palette. The GIF is written to a temporary file beside the target and
renamed, so an existing file is replaced whole or not at all.

gymnax draws the classic-control envs with gymnasium's renderer, which needs pygame
(`pip install -e '.[gif]'`); MinAtar, Catch, the mazes and PointRobot need only
matplotlib. Other envs (bsuite chains, bandits, Brax, custom) have no visualiser: asking
for their GIF is a one-line error, as is a recurrent (GRU) policy.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np

from purejaxppo.run.errors import UsageError

CLASSIC_CONTROL = (
    "CartPole-v1",
    "Acrobot-v1",
    "Pendulum-v1",
    "MountainCar-v0",
    "MountainCarContinuous-v0",
)
# gymnax 1.0.1's Visualizer: the envs its `init`/`update` draw.
GIF_ENVS = (
    *CLASSIC_CONTROL,
    "Asterix-MinAtar",
    "Breakout-MinAtar",
    "Freeway-MinAtar",
    "Seaquest-MinAtar",
    "SpaceInvaders-MinAtar",
    "Catch-bsuite",
    "FourRooms-misc",
    "MetaMaze-misc",
    "PointRobot-misc",
    "Pong-misc",
)
GIF_DPI = 60  # gymnax's 6 x 5 inch figure: 360 x 300 pixels
MAX_FRAMES = 300  # longer episodes: every k-th step (the title keeps the true step)


def check_gif_env(env_name: str, gru_size: int, flag: str = "--gif") -> None:
    """Before anything runs: the env has a visualiser, its renderer is installed, and the
    policy is feed-forward; else `UsageError` (one line)."""
    if env_name not in GIF_ENVS:
        raise UsageError(
            f"{flag}: {env_name} has no gymnax visualiser; GIFs are drawn for {', '.join(GIF_ENVS)}"
        )
    if gru_size:
        raise UsageError(
            f"{flag}: this run's policy is recurrent (ppo.gru_size > 0); GIFs are rendered "
            "for feed-forward policies only"
        )
    if env_name in CLASSIC_CONTROL:
        _quiet_sdl()
        try:
            import pygame  # noqa: F401
        except ImportError:
            raise UsageError(
                f"{flag}: drawing {env_name} needs pygame (gymnasium's renderer); "
                "pip install -e '.[gif]'"
            ) from None


def check_gif_path(path: str | Path, flag: str = "--gif") -> Path:
    """An output path ending in `.gif` whose folder exists (`UsageError` otherwise)."""
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{flag} {path}: is a folder; expected a .gif file name")
    if path.suffix.lower() != ".gif":
        raise UsageError(f"{flag} {path}: expected a file name ending in .gif")
    if not path.parent.is_dir():
        raise UsageError(f"{flag} {path}: no such folder {path.parent}")
    from purejaxppo.run.outdir import check_writable

    check_writable(path.parent, flag)  # before anything compiles
    return path


def _quiet_sdl() -> None:
    """No window, no sound device, no greeting: SDL and pygame set before pygame loads."""
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")


class Episodes(NamedTuple):
    """Rolled-out episodes: `states[e]` the env states before each step (a list of pytrees
    of numpy leaves), `rewards[e]` `[T_e]` float."""

    states: list[list[Any]]
    rewards: list[np.ndarray]

    @property
    def returns(self) -> list[float]:
        return [float(np.sum(r)) for r in self.rewards]


class _Carry(NamedTuple):
    env_state: Any
    obs: jax.Array
    key: jax.Array


def _scan_step(trainer: Any, params: Any, obs_stats: Any, deterministic: bool, carry: _Carry, _):
    """One step of E episodes; emits the state it acted in, the reward and whether it ended."""
    from purejaxppo.run.evaluate import policy_step

    out = policy_step(
        trainer, params, obs_stats, deterministic, carry.env_state, carry.obs, carry.key
    )
    return _Carry(out.env_state, out.obs, out.key), (carry.env_state, out.reward, out.done)


def _rollout(trainer: Any, num: int, det: bool, params: Any, obs_stats: Any, key: jax.Array):
    """`(states [T, E, ...], rewards [T, E], dones [T, E])` for T = the env's time limit."""
    from purejaxppo.run.evaluate import max_episode_steps, reset_episodes

    state, obs, run_key = reset_episodes(trainer, key, num)
    step = functools.partial(_scan_step, trainer, params, obs_stats, det)
    _, out = jax.lax.scan(step, _Carry(state, obs, run_key), None, max_episode_steps(trainer))
    return out


def rollout_episodes(
    trainer: Any,
    params: Any,
    obs_stats: Any,
    key: jax.Array,
    num_episodes: int,
    deterministic: bool = False,
) -> Episodes:
    """`num_episodes` fresh episodes of a feed-forward policy, each cut where it ended."""
    run = jax.jit(functools.partial(_rollout, trainer, num_episodes, deterministic))
    states, rewards, dones = jax.device_get(run(params, obs_stats, key))
    horizon = rewards.shape[0]
    out_states, out_rewards = [], []
    for e in range(num_episodes):
        ended = np.flatnonzero(dones[:, e])
        length = int(ended[0]) + 1 if ended.size else horizon
        out_states.append(
            [jax.tree.map(lambda x, t=t, e=e: x[t, e], states) for t in range(length)]
        )
        out_rewards.append(np.asarray(rewards[:length, e], np.float64))
    return Episodes(out_states, out_rewards)


def _frame_plan(episodes: Episodes, max_frames: int) -> tuple[list[Any], list[str], int]:
    """`(states, titles, every)`: every `every`-th step of the episodes back to back (at most
    `max_frames`; each episode's last step kept), each titled with its true step and return."""
    total = sum(len(e) for e in episodes.states)
    every = max(1, math.ceil(total / max_frames))
    states, titles = [], []
    for e, (episode, rewards) in enumerate(zip(episodes.states, episodes.rewards, strict=True)):
        returns = np.cumsum(rewards)
        for t in sorted({*range(0, len(episode), every), len(episode) - 1}):
            states.append(episode[t])
            titles.append(f"episode {e + 1}, step {t + 1}, return {returns[t]:.1f}")
    return states, titles, every


def _paletted(frames: Sequence[np.ndarray]) -> list[Any]:
    """The frames as Pillow images sharing one palette (made from up to 16 of them), so the
    GIF stores only what changes from frame to frame (about half the size)."""
    from PIL import Image

    sample = np.concatenate(list(frames[:: max(1, len(frames) // 16)]), axis=0)
    palette = Image.fromarray(sample).convert("P", palette=Image.Palette.ADAPTIVE)
    return [Image.fromarray(f).quantize(palette=palette, dither=Image.Dither.NONE) for f in frames]


@contextlib.contextmanager
def _one_gym_env() -> Iterator[None]:
    """gymnax draws each classic-control frame with a new gymnasium env (about 50 ms);
    within this block one env per name is made and reused (a few ms per frame)."""
    from gymnax.visualize import vis_gym

    original = vis_gym.render_gym_frame
    made: dict[str, Any] = {}

    def render(env_name: str, state: Any, params: Any) -> np.ndarray:
        import gymnasium

        if env_name not in made:
            made[env_name] = gymnasium.make(env_name, render_mode="rgb_array")
            made[env_name].reset(seed=0)
        gym_env = made[env_name]
        unwrapped = gym_env.unwrapped
        vis_gym.set_gym_params(unwrapped, env_name, params)
        unwrapped.state = vis_gym.get_gym_state(state, env_name)
        if env_name == "Pendulum-v1":
            unwrapped.last_u = np.asarray(state.last_u, dtype=np.float64)
        return gym_env.render()

    vis_gym.render_gym_frame = render
    try:
        yield
    finally:
        vis_gym.render_gym_frame = original
        for gym_env in made.values():
            gym_env.close()


def write_gif(
    path: Path,
    env: Any,
    env_params: Any,
    episodes: Episodes,
    dpi: int = GIF_DPI,
    max_frames: int = MAX_FRAMES,
) -> int:
    """Draw `episodes` back to back with gymnax's Visualizer into the GIF `path`
    (temporary file, then rename) at gymnax's frame rate (Pillow writes it); longer than
    `max_frames` steps, every k-th step is drawn. Returns the number of frames."""
    _quiet_sdl()
    import matplotlib

    matplotlib.use("Agg")  # no display: draw into memory
    import matplotlib.pyplot as plt
    from gymnax.visualize import Visualizer

    states, titles, _ = _frame_plan(episodes, max_frames)
    vis = Visualizer(env, env_params, states)
    vis.fig.set_dpi(dpi)
    rgb = []
    try:
        with _one_gym_env():
            vis.init()
            for i, title in enumerate(titles):  # one draw per frame
                vis.update(i)
                vis.ax.set_title(f"{env.name}: {title}", fontsize=11)
                vis.fig.canvas.draw()
                rgb.append(np.asarray(vis.fig.canvas.buffer_rgba())[..., :3].copy())
    finally:
        plt.close(vis.fig)
    images = _paletted(rgb)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp.gif")
    os.close(fd)
    try:
        images[0].save(
            tmp,
            format="GIF",
            save_all=True,
            append_images=images[1:],
            duration=vis.interval,
            loop=0,
        )
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return len(states)


def render_run_gif(
    run: Any,
    path: Path,
    num_episodes: int = 1,
    seed_index: int = 0,
    key: jax.Array | None = None,
    deterministic: bool = False,
) -> str:
    """Roll out and draw `num_episodes` of a loaded run's (`load_run`) seed into `path`;
    returns a one-line report."""
    rc = run.config
    check_gif_env(rc.ppo.env_name, rc.ppo.gru_size)
    t0 = time.perf_counter()
    key = jax.random.key(0) if key is None else key
    episodes = rollout_episodes(
        run.trainer,
        run.params(seed_index),
        run.obs_stats(seed_index),
        key,
        num_episodes,
        deterministic,
    )
    frames = write_gif(path, run.trainer.env, run.trainer.env_params, episodes)
    returns = ", ".join(f"{r:.1f}" for r in episodes.returns)
    size = path.stat().st_size / 1024
    return (
        f"wrote {path}: seed {run.seeds[seed_index]}, {num_episodes} episode"
        f"{'s' if num_episodes != 1 else ''} (return {returns}), {frames} frames, "
        f"{size:.0f} KiB in {time.perf_counter() - t0:.1f} s"
    )


POLICY_GIF = "policy.gif"


def eval_gif(
    run_dir: str | Path, out: str | Path, num_episodes: int, seed: int, deterministic: bool
) -> str:
    """`purejaxppo eval RUN --gif OUT`: check the path, load the run, draw its first seed."""
    from purejaxppo.run.load import load_run

    path = check_gif_path(out)
    run = load_run(run_dir)
    key = jax.random.key(seed)
    return render_run_gif(run, path, num_episodes, key=key, deterministic=deterministic)


def write_policy_gif(run_dir: str | Path) -> str:
    """`train --gif`: one episode of the finished run's first seed into `RUN/policy.gif`."""
    from purejaxppo.run.load import load_run

    run = load_run(run_dir)
    return render_run_gif(run, Path(run_dir) / POLICY_GIF)
