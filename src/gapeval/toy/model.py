"""One decoder-only transformer over words and image codes, and its two decoding rules.

Understanding: ``<bos> [<img> c1..c9 </img>] prompt <ans>`` then greedy words until ``<eos>``.
Generation: ``<bos> <gen> prompt <img>`` (or ``<bos> <img> c1..c9 </img> <edit> prompt <img>`` for an
edit) then 9 image codes, each sampled at temperature 1 from the code tokens only, with a per-request
generator so that a request's image depends on its seed, not on its batch.

Three architectures (``ModelConfig.arch``), to test how sharing parameters shapes the gap:

- ``shared``: every token through the same weights (the shipped model);
- ``mot``: a mixture of transformers: the image-generation tokens (the output ``<img>`` of a generation
  or edit request and the codes after it) use their own layer norms, attention projections and MLPs in
  every layer, every other token (text, question and input images) the understanding side's; attention
  runs over the whole sequence, so generation reads the understanding side's states of its prompt, as
  in BAGEL;
- ``towers``: two stacks sharing only the embeddings (and the tied head): understanding requests run
  through one, generation and edit requests through the other.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from gapeval.toy.vocab import ANS, BOS, EDIT, ENDIMG, EOS, GEN, IMG, Vocab

#: The architectures (see the module's docstring).
ARCHS = ("shared", "mot", "towers")


@dataclass(frozen=True)
class ModelConfig:
    """Size and architecture of the network.

    Attributes:
        vocab_size: Tokens (words, image codes, specials).
        d_model: Width.
        n_layers: Blocks (per tower for ``towers``).
        n_heads: Attention heads.
        max_len: Longest sequence.
        dropout: Unused (kept for old checkpoints).
        arch: ``shared``, ``mot`` or ``towers`` (checkpoints without it are ``shared``).

    """

    vocab_size: int
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    max_len: int = 72
    dropout: float = 0.0
    arch: str = "shared"

    def to_dict(self) -> dict[str, int | float]:
        """As plain data for checkpoints."""
        return asdict(self)


def _attend(qkv: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Causal multi-head attention over (B, T, 3D) projections -> (B, T, D)."""
    b, t, d3 = qkv.shape
    d = d3 // 3
    q, k, v = torch.split(qkv, d, dim=2)
    shape = (b, t, n_heads, d // n_heads)
    att = F.scaled_dot_product_attention(
        q.view(shape).transpose(1, 2),
        k.view(shape).transpose(1, 2),
        v.view(shape).transpose(1, 2),
        is_causal=True,
    )
    return att.transpose(1, 2).reshape(b, t, d)


class Block(nn.Module):
    """Pre-norm transformer block."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.mlp = nn.Sequential(
            nn.Linear(cfg.d_model, 4 * cfg.d_model), nn.GELU(), nn.Linear(4 * cfg.d_model, cfg.d_model)
        )
        self.n_heads = cfg.n_heads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Causal self-attention, then the MLP, each with a residual."""
        x = x + self.proj(_attend(self.qkv(self.ln1(x)), self.n_heads))
        out: torch.Tensor = x + self.mlp(self.ln2(x))
        return out


class MoTBlock(nn.Module):
    """A block whose norms, projections and MLP are per side (``und``, ``gen``); attention is shared."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.und = Block(cfg)
        self.gen = Block(cfg)
        self.n_heads = cfg.n_heads

    @staticmethod
    def _routed(
        und: Callable[[torch.Tensor], torch.Tensor],
        gen: Callable[[torch.Tensor], torch.Tensor],
        x: torch.Tensor,
        route: Route,
    ) -> torch.Tensor:
        """``und`` on the understanding-side tokens, ``gen`` on the generation-side ones."""
        if route.gen is None:
            return und(x)
        flat = x.reshape(-1, x.shape[-1])
        first = und(flat.index_select(0, route.und))
        out = flat.new_empty((flat.shape[0], first.shape[-1]))
        out.index_copy_(0, route.und, first)
        out.index_copy_(0, route.gen, gen(flat.index_select(0, route.gen)))
        return out.view(*x.shape[:-1], first.shape[-1])

    def forward(self, x: torch.Tensor, route: Route) -> torch.Tensor:
        """``route``: which flattened positions are on which side."""
        u, g = self.und, self.gen
        qkv = self._routed(lambda h: u.qkv(u.ln1(h)), lambda h: g.qkv(g.ln1(h)), x, route)
        x = x + self._routed(u.proj, g.proj, _attend(qkv, self.n_heads), route)
        return x + self._routed(lambda h: u.mlp(u.ln2(h)), lambda h: g.mlp(g.ln2(h)), x, route)


@dataclass(frozen=True)
class Route:
    """Flattened (B*T) positions of each side, found once per forward pass and used by every layer."""

    und: torch.Tensor
    gen: torch.Tensor | None

    @classmethod
    def of(cls, side: torch.Tensor) -> Route:
        """From a (B, T) bool mask of the generation side."""
        flat = side.reshape(-1)
        gen = torch.nonzero(flat).squeeze(1)
        return cls(torch.nonzero(~flat).squeeze(1), gen if len(gen) else None)


def generation_rows(ids: torch.Tensor) -> torch.Tensor:
    """(B,) bool: which sequences are generation or edit requests."""
    out: torch.Tensor = ((ids == GEN) | (ids == EDIT)).any(dim=1)
    return out


def generation_side(ids: torch.Tensor) -> torch.Tensor:
    """(B, T) bool: the image-generation tokens of each sequence.

    In a generation or edit request, the output ``<img>`` (its last ``<img>``) and everything after it;
    nothing in an understanding request.
    """
    t = ids.shape[1]
    at = torch.arange(t, device=ids.device)
    last_img = torch.where(ids == IMG, at[None], torch.full_like(ids, -1)).max(dim=1).values
    out: torch.Tensor = (
        generation_rows(ids)[:, None] & (at[None] >= last_img[:, None]) & (last_img[:, None] >= 0)
    )
    return out


class UnifiedTransformer(nn.Module):
    """Token + position embeddings, blocks, a tied output head."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        if cfg.arch not in ARCHS:
            raise ValueError(f"unknown architecture {cfg.arch!r}; known: {', '.join(ARCHS)}")
        self.cfg = cfg
        self.tok = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.pos = nn.Embedding(cfg.max_len, cfg.d_model)
        kind = MoTBlock if cfg.arch == "mot" else Block
        self.blocks = nn.ModuleList(kind(cfg) for _ in range(cfg.n_layers))
        self.ln = nn.LayerNorm(cfg.d_model)
        if cfg.arch == "towers":
            # The generation tower: its own blocks and final norm; embeddings and head stay shared.
            self.gen_blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
            self.gen_ln = nn.LayerNorm(cfg.d_model)
        self.apply(self._init)

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def hidden(self, ids: torch.Tensor) -> torch.Tensor:
        """(B, T) ids -> (B, T, D) final hidden states."""
        return self._run(ids, collect=False)[-1]

    def layer_states(self, ids: torch.Tensor) -> list[torch.Tensor]:
        """Each layer's states of every request, on its own path (for probes).

        Returns:
            ``n_layers + 2`` tensors of (B, T, D): the residual stream after the embeddings and after
            each block, then the final normalised states.

        """
        return self._run(ids, collect=True)

    def _run(self, ids: torch.Tensor, collect: bool) -> list[torch.Tensor]:
        pos = torch.arange(ids.shape[1], device=ids.device)
        x = self.tok(ids) + self.pos(pos)[None]
        states = [x] if collect else []
        if self.cfg.arch == "towers":
            rows = generation_rows(ids)
            n = len(self.blocks) + 1 if collect else 1
            per = [x.new_empty(x.shape) for _ in range(n)]
            for keep, blocks, norm in ((~rows, self.blocks, self.ln), (rows, self.gen_blocks, self.gen_ln)):
                if bool(keep.any()):
                    h = x[keep]
                    for i, block in enumerate(blocks):
                        h = block(h)
                        if collect:
                            per[i][keep] = h
                    per[-1][keep] = norm(h)
            return [*states, *per]
        route = Route.of(generation_side(ids)) if self.cfg.arch == "mot" else None
        for block in self.blocks:
            x = block(x, route) if route is not None else block(x)
            if collect:
                states.append(x)
        return [*states, self.ln(x)]

    def side_of(self, name: str) -> str:
        """Which side a parameter serves: ``und``, ``gen`` or ``shared`` (by its name in the state)."""
        if self.cfg.arch == "mot" and name.startswith("blocks."):
            return name.split(".")[2]
        if self.cfg.arch == "towers" and name.startswith(("blocks.", "ln.")):
            return "und"
        if self.cfg.arch == "towers" and name.startswith(("gen_blocks.", "gen_ln.")):
            return "gen"
        return "shared"

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Hidden states (..., D) -> logits (..., V) through the tied head."""
        out: torch.Tensor = hidden @ self.tok.weight.T
        return out

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """(B, T) ids -> (B, T, V) logits."""
        return self.logits(self.hidden(ids))

    def n_params(self) -> int:
        """Number of parameters."""
        return sum(p.numel() for p in self.parameters())


def states_at(
    model: UnifiedTransformer, prefixes: Sequence[Sequence[int]], where: Sequence[int]
) -> list[torch.Tensor]:
    """Every layer's state of each request at one position (requests of one length run as one batch).

    Gradients flow (wrap the call in ``torch.no_grad()`` to read only).

    Args:
        model: The model.
        prefixes: Token ids of each request.
        where: The position to read in each (negative counts from its end).

    Returns:
        ``n_layers + 2`` tensors of (N, D), in the order of :meth:`UnifiedTransformer.layer_states`.

    """
    picked: list[list[torch.Tensor]] = []
    order: list[int] = []
    for rows in _by_length(prefixes):
        states = model.layer_states(torch.tensor([list(prefixes[i]) for i in rows]))
        at = torch.tensor([where[i] for i in rows])
        picked.append([s[torch.arange(len(rows)), at] for s in states])
        order += rows
    back = torch.argsort(torch.tensor(order))
    return [torch.cat([p[k] for p in picked])[back] for k in range(len(picked[0]))]


def grow_vocabulary(model: UnifiedTransformer, vocab: Vocab, words: Sequence[str]) -> Vocab:
    """Give ``words`` their own tokens: new embedding rows (the tied head grows with them).

    Each new row starts at the mean embedding of the known words (a common initialisation that keeps
    the new tokens' logits in the range of the old ones); every old row is kept as it was.
    """
    grown = vocab.with_words(words)
    added = grown.size - vocab.size
    if added == 0:
        return vocab
    old = model.tok.weight.data
    mean = old[vocab.word_ids()].mean(dim=0, keepdim=True)
    table = nn.Embedding(grown.size, model.cfg.d_model)
    table.weight.data = torch.cat([old, mean.repeat(added, 1)])
    model.tok = table
    model.cfg = replace(model.cfg, vocab_size=grown.size)
    return grown


def und_prefix(vocab: Vocab, prompt: str, image_codes: Sequence[int] | None) -> list[int]:
    """Tokens an understanding request starts with."""
    ids = [BOS]
    if image_codes is not None:
        ids += [IMG, *vocab.codes(image_codes), ENDIMG]
    return [*ids, *vocab.encode_text(prompt), ANS]


def gen_prefix(vocab: Vocab, prompt: str, input_codes: Sequence[int] | None) -> list[int]:
    """Tokens a generation (or edit) request starts with, up to the output ``<img>``."""
    if input_codes is None:
        return [BOS, GEN, *vocab.encode_text(prompt), IMG]
    return [BOS, IMG, *vocab.codes(input_codes), ENDIMG, EDIT, *vocab.encode_text(prompt), IMG]


def _by_length(prefixes: Sequence[Sequence[int]]) -> list[list[int]]:
    """Indices grouped by prefix length: each group runs as one dense batch, with no padding at all."""
    groups: dict[int, list[int]] = {}
    for i, p in enumerate(prefixes):
        groups.setdefault(len(p), []).append(i)
    return list(groups.values())


@torch.no_grad()
def answer(
    model: UnifiedTransformer, vocab: Vocab, prefixes: Sequence[Sequence[int]], max_new: int = 24
) -> list[str]:
    """Greedy answers (words only) for a batch of understanding prefixes.

    ``max_new`` leaves room for the longest worked answer the model is trained on (six numbered cells
    and the total, 19 words): a shorter cap cuts counts of four or more off before the total.
    """
    model.eval()
    word_mask = torch.full((vocab.size,), float("-inf"))
    word_mask[vocab.word_ids()] = 0.0
    word_mask[EOS] = 0.0
    out: list[list[int]] = [[] for _ in prefixes]
    for group in _by_length(prefixes):
        ids = torch.tensor([list(prefixes[i]) for i in group], dtype=torch.long)
        done = torch.zeros(len(group), dtype=torch.bool)
        for _ in range(max_new):
            if ids.shape[1] >= model.cfg.max_len:
                break
            nxt = (model(ids)[:, -1] + word_mask).argmax(dim=-1)
            for row, tok in enumerate(nxt.tolist()):
                if not done[row]:
                    if tok == EOS:
                        done[row] = True
                    else:
                        out[group[row]].append(tok)
            if bool(done.all()):
                break
            ids = torch.cat([ids, nxt[:, None]], dim=1)
    return [vocab.decode_text(o) for o in out]


@torch.no_grad()
def draw(
    model: UnifiedTransformer,
    vocab: Vocab,
    prefixes: Sequence[Sequence[int]],
    seeds: Sequence[int],
    n_cells: int = 9,
    temperature: float = 1.0,
) -> list[list[int]]:
    """Sample image codes for a batch of generation prefixes, one generator per request."""
    model.eval()
    codes: list[list[int]] = [[] for _ in prefixes]
    lo, hi = vocab.code_base, vocab.code_base + vocab.n_codes
    for group in _by_length(prefixes):
        ids = torch.tensor([list(prefixes[i]) for i in group], dtype=torch.long)
        gens = [torch.Generator().manual_seed(int(seeds[i])) for i in group]
        for _ in range(n_cells):
            probs = torch.softmax(model(ids)[:, -1, lo:hi] / temperature, dim=-1)
            nxt = torch.stack(
                [torch.multinomial(probs[r], 1, generator=gens[r])[0] for r in range(len(group))]
            )
            for row, c in enumerate(nxt.tolist()):
                codes[group[row]].append(c)
            ids = torch.cat([ids, (nxt + lo)[:, None]], dim=1)
    return codes
