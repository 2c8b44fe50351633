"""PyTorch reference of the NBP transformer, written from ../../../shared/spec/MODEL.md.

It is deliberately what users of the published minGPT-style code get: a KV cache kept as a list
of per-step K/V tensors concatenated every step, masks built as tensors, and a sampler that
filters each row with topk + a full sort. Used for the C# engine's fixtures and as the PyTorch
side of bench/cpu_vs_torch.py.
"""
import math

import torch
import torch.nn.functional as F


class Config:
    def __init__(self, n_layer, n_head, n_embd, vocab, positions, block):
        self.n_layer, self.n_head, self.n_embd = n_layer, n_head, n_embd
        self.vocab, self.positions, self.block = vocab, positions, block


def load_state(tensors, n_head, block):
    """Config from a flat state dict (numpy or torch), keys as in MODEL.md §2."""
    v, c = tensors["transformer.tok_emb.weight"].shape
    p = tensors["transformer.pos_emb"].shape[1]
    n_layer = 0
    while f"transformer.blocks.{n_layer}.ln1.weight" in tensors:
        n_layer += 1
    return Config(n_layer, n_head, c, v, p, block)


class NbpTransformer:
    """Forward pass of MODEL.md §1 over a dict of float tensors."""

    def __init__(self, cfg, tensors, dtype=torch.float32):
        self.cfg = cfg
        self.w = {k: torch.as_tensor(v).to(dtype) for k, v in tensors.items() if k.startswith("transformer.")}
        self.dtype = dtype

    def _lin(self, x, name, bias=True):
        y = x @ self.w[name + ".weight"].T
        return y + self.w[name + ".bias"] if bias else y

    def forward(self, ids, start, mask, past, uncond_rows=0):
        """ids: [T] long; start: first position; mask: [T, start+T] bool or None; past: list per layer of (k, v) lists.
        uncond_rows: the first rows embed transformer.uncond_embedding rows in place of their tokens (the released code
        prepends uncond_embedding to the token embeddings of [bov, ...] for classifier-free guidance's unconditional stream).
        Returns final hidden states [T, C] (before ln_f)."""
        cfg, w = self.cfg, self.w
        t = ids.shape[0]
        tokens = w["transformer.tok_emb.weight"][ids]
        if uncond_rows:
            tokens = torch.cat([w["transformer.uncond_embedding"][:uncond_rows], tokens[uncond_rows:]])
        x = tokens + w["transformer.pos_emb"][0, start:start + t]
        hd = cfg.n_embd // cfg.n_head
        for i in range(cfg.n_layer):
            b = f"transformer.blocks.{i}."
            a = F.layer_norm(x, (cfg.n_embd,), w[b + "ln1.weight"], w[b + "ln1.bias"], 1e-5)
            q = self._lin(a, b + "attn.query").view(t, cfg.n_head, hd).transpose(0, 1)
            k = self._lin(a, b + "attn.key").view(t, cfg.n_head, hd).transpose(0, 1)
            v = self._lin(a, b + "attn.value").view(t, cfg.n_head, hd).transpose(0, 1)
            # the published sampler's cache: a list of per-step tensors, concatenated every step
            past[i][0].append(k)
            past[i][1].append(v)
            keys = torch.cat(past[i][0], dim=1)
            values = torch.cat(past[i][1], dim=1)
            att = (q @ keys.transpose(-2, -1)) * (1.0 / math.sqrt(hd))
            if mask is not None:
                att = att.masked_fill(~mask, float("-inf"))
            att = F.softmax(att, dim=-1)
            y = (att @ values).transpose(0, 1).reshape(t, cfg.n_embd)
            x = x + self._lin(y, b + "attn.proj")
            m = F.layer_norm(x, (cfg.n_embd,), w[b + "ln2.weight"], w[b + "ln2.bias"], 1e-5)
            x = x + self._lin(F.gelu(self._lin(m, b + "mlp.0")), b + "mlp.2")
        return x

    def logits(self, hidden):
        w = self.w
        h = F.layer_norm(hidden, (self.cfg.n_embd,), w["transformer.ln_f.weight"], w["transformer.ln_f.bias"], 1e-5)
        return h @ w["transformer.head.weight"].T

    def new_cache(self):
        return [([], []) for _ in range(self.cfg.n_layer)]


def allowed_block_causal(t, prefix, block):
    """MODEL.md §4, frame prediction / conditional non-hybrid."""
    i = torch.arange(t).view(-1, 1)
    j = torch.arange(t).view(1, -1)
    blocks = torch.div(j - prefix, block, rounding_mode="floor") <= torch.div(i - prefix, block, rounding_mode="floor")
    return (j < prefix) | ((i >= prefix) & (j >= prefix) & blocks)


def allowed_hybrid(t, prefix, block):
    """MODEL.md §4, hybrid: (j < L) or (j <= i) or (i >= S and j >= S and same-or-earlier block)."""
    s = prefix + block
    i = torch.arange(t).view(-1, 1)
    j = torch.arange(t).view(1, -1)
    blocks = torch.div(j - s, block, rounding_mode="floor") <= torch.div(i - s, block, rounding_mode="floor")
    return (j < prefix) | (j <= i) | ((i >= s) & (j >= s) & blocks)


def filter_logits(logits, temperature, top_k, top_p):
    """MODEL.md §6 steps 1-3 on [rows, V]: temperature, top-k (ties kept), top-p with the shift; full sort."""
    logits = logits / temperature
    if top_k and top_k > 0:
        v, _ = torch.topk(logits, top_k)
        logits = logits.masked_fill(logits < v[:, [-1]], float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, sorted_idx = torch.sort(logits, descending=True)
        cum = torch.cumsum(F.softmax(sorted_logits, dim=-1), dim=-1)
        remove = cum > top_p
        remove[:, 1:] = remove[:, :-1].clone()
        remove[:, 0] = False
        remove = remove.scatter(1, sorted_idx, remove)
        logits = logits.masked_fill(remove, float("-inf"))
    return logits


def sample_rows(logits, greedy, temperature=1.0, top_k=0, top_p=1.0, generator=None):
    if greedy:
        return torch.argmax(logits, dim=-1)
    probs = F.softmax(filter_logits(logits, temperature, top_k, top_p), dim=-1)
    return torch.multinomial(probs, 1, generator=generator).view(-1)


def generate(model, prompt, mode, block, steps, cond_len=0, greedy=True, temperature=1.0, top_k=0, top_p=1.0,
             generator=None, on_step=None):
    """MODEL.md §5. Returns (generated ids, step-0 logits). on_step(step) is called after each step."""
    ids = torch.as_tensor(prompt, dtype=torch.long)
    t = ids.shape[0]
    past = model.new_cache()
    out, logits0 = [], None
    if mode == "frame":
        mask = allowed_block_causal(t, cond_len, block)
        hidden = model.forward(ids, 0, mask, past)
        pos = t
        for step in range(steps):
            if step > 0:
                hidden = model.forward(fed, pos, None, past)
                pos += block
            logits = model.logits(hidden[-block:])
            if step == 0:
                logits0 = logits.clone()
            fed = sample_rows(logits, greedy, temperature, top_k, top_p, generator)
            out.extend(fed.tolist())
            if on_step:
                on_step(step)
    else:
        mask = allowed_hybrid(t, cond_len, block)
        hidden = model.forward(ids, 0, mask, past)
        pos = t
        for step in range(steps):
            if 0 < step < block:
                hidden = model.forward(fed, pos, None, past)
                pos += 1
            elif step == block:
                fed = torch.cat([fed, torch.arange(1, block, dtype=torch.long)])
                hidden = model.forward(fed, pos, None, past)
                pos += block
            elif step > block:
                hidden = model.forward(fed, pos, None, past)
                pos += block
            rows = 1 if step < block else block
            logits = model.logits(hidden[-rows:])
            if step == 0:
                logits0 = logits.clone()
            fed = sample_rows(logits, greedy, temperature, top_k, top_p, generator)
            out.extend(fed.tolist())
            if on_step:
                on_step(step)
    return out, logits0


def guidance_at(scale, schedule, step):
    """The released hybrid_sample_with_past_cfg: t = cfg_ratio, or cfg_ratio * n with scale_cfg (the linear schedule)."""
    return scale * step if schedule == "linear" else scale


def generate_hybrid_cfg(model, prompt, block, steps, cond_len, scale, schedule="constant", greedy=True, temperature=1.0,
                        top_k=0, top_p=1.0, generator=None):
    """Hybrid generation with classifier-free guidance (MODEL.md §5 + the released CFG, made to run): a conditional and an
    unconditional stream (condition embeddings replaced by uncond_embedding), the same tokens fed to both; each step
    samples from (1+t)·cond − t·uncond. Returns (generated ids, step-0 blended logits)."""
    ids = torch.as_tensor(prompt, dtype=torch.long)
    t = ids.shape[0]
    past, past_u = model.new_cache(), model.new_cache()
    mask = allowed_hybrid(t, cond_len, block)
    hidden = model.forward(ids, 0, mask, past)
    hidden_u = model.forward(ids, 0, mask, past_u, uncond_rows=cond_len)
    pos, out, logits0 = t, [], None
    for step in range(steps):
        if step > 0:
            if step == block:
                fed = torch.cat([fed, torch.arange(1, block, dtype=torch.long)])
            hidden = model.forward(fed, pos, None, past)
            hidden_u = model.forward(fed, pos, None, past_u)
            pos += fed.shape[0]
        rows = 1 if step < block else block
        cond, uncond = model.logits(hidden[-rows:]), model.logits(hidden_u[-rows:])
        g = guidance_at(scale, schedule, step)
        # (1+g)·cond − g·uncond in the working dtype: two products and a difference, each rounded (the engine's rounding)
        logits = (1 + g) * cond - g * uncond
        if step == 0:
            logits0 = logits.clone()
        fed = sample_rows(logits, greedy, temperature, top_k, top_p, generator)
        out.extend(fed.tolist())
    return out, logits0
