"""Training of the world evaluator (the adherence judge) on fresh renders of both splits."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from imagineer.world.evaluate import (
    ACCURACY_BAR,
    EVALUATOR_JSON,
    AttributeValidation,
    EvaluatorConfig,
    EvaluatorNet,
    resize_to_input,
    save_evaluator,
    to_tensor,
)
from imagineer.world.render import render
from imagineer.world.scene import ATTRIBUTE_NAMES, ATTRIBUTES, Scene, sample_scene

# The base sizes the text-to-image model samples at; each render is resized to 32x32.
SIZES = ((32, 32), (40, 24), (24, 40))
NO_LABEL = -1  # masked out of the loss and of validation
LOG_EVERY = 10_000  # renders between progress lines


@dataclass(frozen=True)
class RenderSet:
    """Rendered scenes resized to the judge's input, with a label per attribute."""

    images: np.ndarray  # (N, 32, 32, 3) uint8
    labels: np.ndarray  # (N, n_attributes) int64, NO_LABEL where the image shows no true value


@dataclass(frozen=True)
class EvaluatorTrainConfig:
    """What to render and how to fit the judge; the defaults made the shipped weights."""

    out: Path  # the weights file to write (a json with the figures goes beside it)
    data: Path = Path("data/evaluator")  # cache of the rendered sets
    count: int = 80_000  # training renders
    test_fraction: float = 0.3  # share of training scenes from the held-out split
    val_count: int = 2_000  # fresh renders per validation set (held-out and train splits)
    epochs: int = 10
    batch: int = 128
    lr: float = 2e-3  # peak of a one-cycle schedule
    weight_decay: float = 1e-4
    noise: float = 0.03  # max std of pixel noise added in training, so grain does not fool it
    seed: int = 0
    threads: int = 1  # torch CPU threads: the other core belongs to the image model's training
    net: EvaluatorConfig = field(default_factory=EvaluatorConfig)

    def __post_init__(self) -> None:
        if self.count < 1 or self.val_count < 1 or self.epochs < 1 or self.batch < 1:
            raise ValueError("count, val_count, epochs and batch must all be at least 1")
        if not 0.0 <= self.test_fraction <= 1.0:
            raise ValueError(f"test_fraction={self.test_fraction}: use 0..1")


@dataclass(frozen=True)
class EvaluatorTrainResult:
    """Where the weights went and how the judge did on fresh renders."""

    path: Path
    held_out: tuple[AttributeValidation, ...]  # 2,000 renders of held-out combinations
    train_split: tuple[AttributeValidation, ...]  # 2,000 renders of the training split
    scored: tuple[str, ...]  # attributes at or above the bar on both sets
    seconds: float


def scene_labels(scene: Scene) -> tuple[int, ...]:
    """Value index per attribute; NO_LABEL where the image cannot show it."""
    labels = [NO_LABEL if v is None else v for v in scene.labels()]
    if scene.style == "noir":
        labels[ATTRIBUTE_NAMES.index("object_colour")] = NO_LABEL
    return tuple(labels)


def render_set(
    count: int, seed: int, test_fraction: float, log: Callable[[str], None] = print
) -> RenderSet:
    """Render `count` fresh scenes at a random base size each, resized to 32x32."""
    rng = np.random.default_rng(seed)
    images = np.empty((count, 32, 32, 3), np.uint8)
    labels = np.empty((count, len(ATTRIBUTES)), np.int64)
    start = time.perf_counter()
    for i in range(count):
        split = "test" if rng.random() < test_fraction else "train"
        scene = sample_scene(rng, split=split)
        width, height = SIZES[rng.integers(len(SIZES))]
        images[i] = resize_to_input(render(scene, width, height))
        labels[i] = scene_labels(scene)
        if (i + 1) % LOG_EVERY == 0:
            log(f"rendered {i + 1}/{count} ({time.perf_counter() - start:.0f} s)")
    return RenderSet(images, labels)


def cached_set(
    folder: Path, count: int, seed: int, test_fraction: float, log: Callable[[str], None] = print
) -> RenderSet:
    """render_set, kept as an .npz in `folder` so a second run skips the rendering."""
    path = folder / f"renders-{count}-{seed}-{test_fraction:g}.npz"
    if path.exists():
        with np.load(path) as f:
            return RenderSet(f["images"], f["labels"])
    data = render_set(count, seed, test_fraction, log)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, images=data.images, labels=data.labels)
    tmp.replace(path)
    return data


def masked_loss(logits: list[torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
    """Sum over attributes of the cross-entropy on the images that have a true label."""
    total = logits[0].new_zeros(())
    for i, head in enumerate(logits):
        y = labels[:, i]  # (B,)
        if bool((y != NO_LABEL).any()):
            total = total + F.cross_entropy(head, y, ignore_index=NO_LABEL)
    return total


@torch.no_grad()
def validate(
    net: EvaluatorNet, data: RenderSet, batch: int = 500
) -> tuple[AttributeValidation, ...]:
    """Accuracy per attribute over images with a true label, and the majority-class chance."""
    net.eval()
    preds: list[list[np.ndarray]] = [[] for _ in ATTRIBUTES]
    for start in range(0, len(data.images), batch):
        logits = net(to_tensor(data.images[start : start + batch]))
        for i, head in enumerate(logits):
            preds[i].append(head.argmax(-1).numpy())
    out = []
    for i, attr in enumerate(ATTRIBUTES):
        y = data.labels[:, i]
        valid = y != NO_LABEL
        p = np.concatenate(preds[i])[valid]
        n = int(valid.sum())
        majority = np.bincount(y[valid], minlength=len(attr.values)).max() if n else 0
        acc = float((p == y[valid]).mean()) if n else 0.0
        out.append(AttributeValidation(attr.name, acc, float(majority / max(n, 1)), n))
    return tuple(out)


def _fit(
    net: EvaluatorNet,
    data: RenderSet,
    watch: RenderSet,
    cfg: EvaluatorTrainConfig,
    log: Callable[[str], None],
) -> None:
    """One-cycle AdamW over `epochs` shuffled passes, with light pixel noise."""
    steps_per_epoch = len(data.images) // cfg.batch
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=cfg.lr, total_steps=cfg.epochs * steps_per_epoch
    )
    rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    labels = torch.from_numpy(data.labels)
    start = time.perf_counter()
    for epoch in range(cfg.epochs):
        net.train()
        order = rng.permutation(len(data.images))
        losses = []
        for step in range(steps_per_epoch):
            idx = np.sort(order[step * cfg.batch : (step + 1) * cfg.batch])
            x = to_tensor(data.images[idx])  # (B, 3, 32, 32)
            sigma = torch.rand(len(idx), 1, 1, 1, generator=gen) * cfg.noise
            x = x + sigma * torch.randn(x.shape, generator=gen)
            loss = masked_loss(net(x), labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
        elapsed = time.perf_counter() - start
        worst = min(validate(net, watch), key=lambda v: v.accuracy)
        log(
            f"epoch {epoch + 1}/{cfg.epochs}: loss {np.mean(losses):.4f}, weakest on held-out "
            f"{worst.attribute} {worst.accuracy:.3f} ({elapsed:.0f} s)"
        )


def _summary(name: str, figures: tuple[AttributeValidation, ...]) -> str:
    cells = [f"{v.attribute} {v.accuracy:.3f} (chance {v.chance:.2f})" for v in figures]
    return f"{name}: " + ", ".join(cells)


def train_evaluator(
    cfg: EvaluatorTrainConfig, log: Callable[[str], None] = print
) -> EvaluatorTrainResult:
    """Render (or reuse) the sets, fit the judge, validate, and write weights plus figures."""
    # 1. set up: one thread, seeded
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    start = time.perf_counter()
    # 2. data: training renders from both splits; two fresh validation sets on other seeds
    train = cached_set(cfg.data, cfg.count, cfg.seed, cfg.test_fraction, log)
    held = cached_set(cfg.data, cfg.val_count, cfg.seed + 1_000_001, 1.0, log)
    rest = cached_set(cfg.data, cfg.val_count, cfg.seed + 2_000_003, 0.0, log)
    data_seconds = time.perf_counter() - start
    log(f"data ready ({data_seconds:.0f} s)")
    # 3. fit
    net = EvaluatorNet(cfg.net)
    _fit(net, train, held, cfg, log)
    fit_seconds = time.perf_counter() - start - data_seconds
    # 4. validate: an attribute is scored only if it clears the bar on both sets
    held_figs, rest_figs = validate(net, held), validate(net, rest)
    log(_summary("held-out split", held_figs))
    log(_summary("train split", rest_figs))
    scored = tuple(
        h.attribute
        for h, r in zip(held_figs, rest_figs, strict=True)
        if h.accuracy >= ACCURACY_BAR and r.accuracy >= ACCURACY_BAR
    )
    # 5. export
    seconds = time.perf_counter() - start
    info = {
        # paths are left out: they name folders of the machine it was trained on
        "train": {k: v for k, v in asdict(cfg).items() if not isinstance(v, Path)},
        "parameters": sum(p.numel() for p in net.parameters()),
        "data_seconds": round(data_seconds, 1),  # rendering, or reading the cache
        "fit_seconds": round(fit_seconds, 1),
    }
    path = save_evaluator(net, cfg.out, scored=scored, validation=held_figs, extra=info)
    _write_json(cfg, path, scored, held_figs, rest_figs, info)
    return EvaluatorTrainResult(path, held_figs, rest_figs, scored, seconds)


def _write_json(
    cfg: EvaluatorTrainConfig,
    path: Path,
    scored: tuple[str, ...],
    held: tuple[AttributeValidation, ...],
    rest: tuple[AttributeValidation, ...],
    info: dict[str, object],
) -> None:
    dropped = [a for a in ATTRIBUTE_NAMES if a not in scored]
    doc = {
        "config": cfg.net.to_dict(),
        "accuracy_bar": ACCURACY_BAR,
        "scored": list(scored),
        "dropped": dropped,
        "validation_held_out": [asdict(v) for v in held],
        "validation_train_split": [asdict(v) for v in rest],
        "weights_bytes": path.stat().st_size,
        **info,
    }
    (path.parent / EVALUATOR_JSON).write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
