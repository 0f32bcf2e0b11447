"""Orbax checkpoints of the full multi-seed `TrainState` (host side).

A checkpoint holds, for every seed: params, optimizer state (the learning-rate
schedule position is `update_step` plus the optimizer's step count), the
observation and return normaliser statistics, env states and last
observations, the running episode accumulators, the PRNG key and the update
counter; plus a JSON record (`CheckpointMeta`) of the run config and progress.

Writes are atomic: orbax writes into a temporary directory and renames it on
commit, so a crash mid-write leaves the previous checkpoint intact. The last
`keep` checkpoints are kept, so there is always a previous good one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from pathlib import Path
from typing import Any

import jax
import numpy as np

from purejaxppo.train import TrainState


class CheckpointError(ValueError):
    """A checkpoint folder is missing, empty, unreadable or does not match the run."""


@dataclasses.dataclass(frozen=True)
class CheckpointMeta:
    """JSON record saved next to the arrays.

    Attributes:
      update: updates done when the checkpoint was written (0 = freshly initialised).
      num_updates: updates in the whole run.
      seeds: the integer seed of each member of the seed axis.
      train_time_s: training wall time so far (compilation excluded).
      key_impl: PRNG implementation of `TrainState.key` (saved as raw key data).
      config: the run config as `run_config_to_dict` gives it.
      state_layout: fingerprint of the state's tree structure, shapes and dtypes
        (`state_layout`); a checkpoint only restores into the same layout.
      version: the purejaxppo version that wrote it.
      chunk: updates per chunk of the run (a resume keeps it, so it compiles the same code).
      members_per_device: seeds vmapped together on one device (a resume keeps it, so every
        device runs the same program; 0: not recorded, the platform's default).
      state_sha256: SHA-256 of every stored array's bytes, shape and dtype in tree order
        (`state_digest`), checked on restore ("": written before the check existed).
    """

    update: int
    num_updates: int
    seeds: list[int]
    train_time_s: float
    config: dict[str, Any]
    key_impl: str = ""
    state_layout: str = ""
    version: str = ""
    chunk: int = 0
    members_per_device: int = 0
    state_sha256: str = ""

    @classmethod
    def from_json(cls, data: Any) -> CheckpointMeta:
        """Parse and check the JSON record (`CheckpointError` if malformed)."""
        fields = dataclasses.fields(cls)
        required = [f.name for f in fields if f.default is dataclasses.MISSING]
        if not isinstance(data, dict) or any(n not in data for n in required):
            raise CheckpointError(f"checkpoint record is malformed (expected keys {required})")
        return cls(**{f.name: data[f.name] for f in fields if f.name in data})


def _to_storable(state: TrainState) -> TrainState:
    """Typed PRNG keys become raw `uint32` key data (orbax stores plain arrays)."""
    return state.replace(key=jax.random.key_data(state.key))


def _from_storable(state: TrainState, key_impl: str) -> TrainState:
    return state.replace(key=jax.random.wrap_key_data(state.key, impl=key_impl))


def abstract_state(state_shapes: TrainState) -> TrainState:
    """The storable abstract tree (`jax.ShapeDtypeStruct` leaves) for `restore`."""
    return jax.eval_shape(_to_storable, state_shapes)


def _placed(target: TrainState, like: TrainState) -> TrainState:
    """`target` with every leaf's sharding taken from `like`, or the default device.

    Orbax restores to the sharding saved with the checkpoint unless told
    otherwise, which fails on a different device count (a run trained with its
    seeds split over 2 host devices, evaluated in a 1-device process); naming
    the placement makes a checkpoint restorable anywhere.
    """
    default = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])

    def leaf(x: Any, ref: Any) -> jax.ShapeDtypeStruct:
        sharding = getattr(ref, "sharding", None) or default
        return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding)

    return jax.tree.map(leaf, target, like)


def state_digest(storable: Any) -> str:
    """SHA-256 of a storable state's arrays (bytes, shape, dtype, in tree order)."""
    digest = hashlib.sha256()
    for leaf in jax.tree.leaves(jax.device_get(storable)):
        array = np.ascontiguousarray(leaf)
        digest.update(f"{array.shape}{array.dtype};".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def state_layout(state: TrainState) -> str:
    """Short fingerprint of the storable state's paths, shapes and dtypes."""
    leaves = jax.tree_util.tree_leaves_with_path(abstract_state(state))
    text = ";".join(f"{jax.tree_util.keystr(p)}:{x.shape}:{x.dtype}" for p, x in leaves)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class Checkpointer:
    """Save and restore `TrainState`s under `directory/<update>/` with orbax.

    Args:
      directory: the run's `checkpoint/` folder.
      keep: how many of the latest checkpoints to keep (>= 2 keeps a previous good one).
      read_only: open an existing folder without writing (eval).
    """

    def __init__(self, directory: str | Path, keep: int = 2, read_only: bool = False) -> None:
        import orbax.checkpoint as ocp

        self.directory = Path(directory).absolute()
        if read_only and not self.directory.is_dir():
            raise CheckpointError(f"{directory}: no checkpoint folder")
        self._ocp = ocp
        options = ocp.CheckpointManagerOptions(
            max_to_keep=None if read_only else keep,
            save_interval_steps=0 if read_only else 1,
            create=not read_only,
            read_only=read_only,
            enable_async_checkpointing=False,
        )
        absl = logging.getLogger("absl")
        level = absl.level
        if read_only:  # orbax logs "Given directory is read only" for what was asked for
            absl.setLevel(max(level, logging.ERROR))
        try:
            self._manager = ocp.CheckpointManager(self.directory, options=options)
        finally:
            absl.setLevel(level)

    def save(self, state: TrainState, meta: CheckpointMeta) -> None:
        """Write `state` as checkpoint `meta.update` (blocks until committed)."""
        ocp = self._ocp
        from purejaxppo import __version__

        storable = jax.device_get(_to_storable(state))
        meta = dataclasses.replace(
            meta,
            key_impl=str(jax.random.key_impl(state.key)),
            state_layout=state_layout(state),
            version=__version__,
            state_sha256=state_digest(storable),
        )
        args = ocp.args.Composite(
            state=ocp.args.StandardSave(storable),
            meta=ocp.args.JsonSave(dataclasses.asdict(meta)),
        )
        self._manager.save(meta.update, args=args, force=True)
        self._manager.wait_until_finished()
        self._write_file_list(meta.update)

    def _write_file_list(self, update: int) -> None:
        """Record every file of committed checkpoint `update` with its size and SHA-256
        (`FILE_LIST`), so `verify_files` finds a lost or changed file before orbax reads."""
        import json

        from purejaxppo.run.rundir import atomic_write_text

        step = self.directory / str(update)
        listing = {str(p.relative_to(step)): _file_record(p) for p in _files(step)}
        atomic_write_text(step / FILE_LIST, json.dumps(listing, indent=0, sort_keys=True))

    def verify_files(self, update: int) -> None:
        """`CheckpointError` when a file of checkpoint `update` recorded at save time is
        missing or changed (checkpoints written without a list are not checked here)."""
        import json

        step = self.directory / str(update)
        try:
            listing = json.loads((step / FILE_LIST).read_text())
        except FileNotFoundError:
            return
        except (OSError, ValueError) as err:
            raise CheckpointError(
                f"{step}: damaged, its {FILE_LIST} is unreadable ({err})"
            ) from None
        for name, record in sorted(listing.items()):
            path = step / name
            if not path.is_file():
                raise CheckpointError(f"{step}: damaged, {name} is missing")
            if _file_record(path) != record:
                raise CheckpointError(f"{step}: damaged, {name} changed after it was written")

    def latest_update(self) -> int | None:
        """The update number of the newest committed checkpoint, or None."""
        self._manager.reload()
        return self._manager.latest_step()

    def all_updates(self) -> list[int]:
        """Update numbers of all committed checkpoints, oldest first."""
        self._manager.reload()
        return sorted(self._manager.all_steps())

    def read_meta(self, update: int) -> CheckpointMeta:
        """The JSON record of checkpoint `update` (its files verified first)."""
        ocp = self._ocp
        self.verify_files(update)
        try:
            restored = self._manager.restore(
                update, args=ocp.args.Composite(meta=ocp.args.JsonRestore())
            )
        except Exception as err:  # orbax raises many types for damaged folders
            raise CheckpointError(
                f"{self.directory / str(update)}: checkpoint record is unreadable "
                f"({type(err).__name__}: {_first_line(err)})"
            ) from None
        return CheckpointMeta.from_json(restored.meta)

    def restore(self, update: int, like: TrainState) -> tuple[TrainState, CheckpointMeta]:
        """Read checkpoint `update` into the structure, shapes and dtypes of `like`.

        Args:
          update: which checkpoint.
          like: a `TrainState` of arrays or `ShapeDtypeStruct`s (e.g. from
            `jax.eval_shape` of the vmapped init) with typed PRNG keys.
        """
        ocp = self._ocp
        meta = self.read_meta(update)
        if meta.state_layout != state_layout(like):
            raise CheckpointError(
                f"{self.directory / str(update)}: the checkpoint's state layout differs from "
                f"this run's (written by purejaxppo {meta.version or '?'} for seeds "
                f"{meta.seeds}); it cannot be restored here"
            )
        target = _placed(abstract_state(like), like)
        try:
            restored = self._manager.restore(
                update,
                args=ocp.args.Composite(state=ocp.args.StandardRestore(target)),
            )
            state = restored.state
            expected = jax.tree.map(lambda x: (x.shape, x.dtype), target)
            got = jax.tree.map(lambda x: (x.shape, x.dtype), state)
            if jax.tree.structure(state) != jax.tree.structure(target) or expected != got:
                raise CheckpointError("arrays do not match the run's state layout")
            if meta.state_sha256 and state_digest(state) != meta.state_sha256:
                raise CheckpointError(
                    "damaged, its arrays do not match the checksum written with them"
                )
            state = _from_storable(state, meta.key_impl)
        except CheckpointError as err:
            raise CheckpointError(f"{self.directory / str(update)}: {err}") from None
        except Exception as err:  # orbax raises many types for damaged folders
            raise CheckpointError(
                f"{self.directory / str(update)}: checkpoint is unreadable "
                f"({type(err).__name__}: {_first_line(err)})"
            ) from None
        return state, meta

    def set_aside(self, update: int) -> Path:
        """Rename checkpoint `update` (a damaged one) to `.damaged-<update>` in the same
        folder, out of orbax's sight, so the update can be saved again; returns the path."""
        aside = self.directory / f".damaged-{update}"
        n = 1
        while aside.exists():
            n += 1
            aside = self.directory / f".damaged-{update}-{n}"
        (self.directory / str(update)).rename(aside)
        self._manager.reload()
        return aside

    def restore_newest_intact(
        self, like: TrainState
    ) -> tuple[TrainState, CheckpointMeta, list[tuple[int, str]]]:
        """Restore the newest checkpoint that reads back intact (`restore`), trying older
        ones when it is damaged. Returns `(state, meta, [(skipped update, reason)])`;
        `CheckpointError` when none is intact, naming the newest one's damage."""
        updates = self.all_updates()
        if not updates:
            raise CheckpointError(f"{self.directory}: no complete checkpoint")
        skipped: list[tuple[int, str]] = []
        for update in reversed(updates):
            try:
                state, meta = self.restore(update, like)
            except CheckpointError as err:
                reason = str(err).removeprefix(f"{self.directory / str(update)}: ")
                skipped.append((update, reason))
                continue
            return state, meta, skipped
        update, reason = skipped[0]
        raise CheckpointError(
            f"{self.directory / str(update)}: {reason}"
            + (f" (and the {len(skipped) - 1} older ones)" if len(skipped) > 1 else "")
        )

    def close(self) -> None:
        """Release orbax resources."""
        self._manager.close()


FILE_LIST = "purejaxppo-files.json"  # in each checkpoint folder: file -> [size, sha256]


def _files(step: Path) -> list[Path]:
    return sorted(p for p in step.rglob("*") if p.is_file() and p.name != FILE_LIST)


def _file_record(path: Path) -> list[Any]:
    data = path.read_bytes()
    return [len(data), hashlib.sha256(data).hexdigest()]


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    line = text.splitlines()[0] if text else ""
    return line[:200]
