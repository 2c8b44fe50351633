"""The transformer's latent objective (issue 18): regress the next block's FSQ values instead of classifying its codes.

With cross-entropy over 64000 codes the greedy argmax picks the likeliest code; where the model is unsure (an object's
sub-cell position, which of several near-equal codes the encoder chose) that is often a code far from the truth, and
its patch decodes to the wrong colour. Here the model predicts the 6 values the decoder reads (tokenizer_model.codes),
trained by mean squared error, so it predicts their conditional mean, and the token is the code nearest to it.

That is still MODEL.md's model, exactly: a code's embedding row may be any function of the code, so the table is a
small MLP of its 6 values, evaluated for every code; and the nearest code to mu = P·h is the argmax of
q_c·mu - |q_c|²/2 over codes c, which is linear in h once h has a channel that is always 1: LN_f's last channel, with
weight 0 and bias 1 (held at 1 while training). The head row of code c is then (q_c·P - |q_c|²/2 on that channel) / s²,
where s² is the held-out error per value, so sampling draws codes as a Gaussian of that spread around mu would.
"""
import math

import torch
import torch.nn as nn


class LatentCodes(nn.Module):
    """Token ids -> embeddings as a function of the code's FSQ values; the hidden state -> the predicted values."""

    def __init__(self, width, values, outputs=None):
        super().__init__()
        self.register_buffer("values", values)  # [V, 6]: what the decoder reads for each code
        self.embed = nn.Sequential(nn.Linear(values.shape[1], 4 * width), nn.GELU(), nn.Linear(4 * width, width))
        self.predict = nn.Linear(width, outputs or values.shape[1], bias=False)  # what the objective predicts

    def forward(self, ids):
        embedding = self.embed(self.values[ids])
        if hasattr(self, "look"):  # a pixel-objective model's codes also see their pictures (pixel_objective.make_pixel)
            embedding = embedding + self.look(self.pictures[ids])
        return embedding


def code_values(tokenizer):
    """[V, 6]: the FSQ values the decoder reads for each code."""
    vocab = math.prod(tokenizer.levels)
    return tokenizer.codes(torch.arange(vocab).view(1, 1, 1, -1)).reshape(len(tokenizer.levels), vocab).t().contiguous()


def make_latent(model, tokenizer):
    """Turns a freshly built train_nbp.Transformer into a latent-objective one: its embedding table becomes LatentCodes
    and its head goes (standard_state makes both again when the model is saved)."""
    model.tok_emb = LatentCodes(model.ln_f.normalized_shape[0], code_values(tokenizer))
    del model.head
    return model


def with_constant_channel(hidden):
    """LN_f's output with its last channel 1, as the exported LN_f (weight 0, bias 1 there) computes it."""
    return torch.cat([hidden[..., :-1], torch.ones_like(hidden[..., -1:])], dim=-1)


def latent_error(model, hidden, targets):
    """Mean squared error per value between the predicted and the target codes' FSQ values."""
    codes = model.tok_emb
    return ((codes.predict(with_constant_channel(hidden)) - codes.values[targets]) ** 2).mean()


def nearest_codes(levels, predicted):
    """predicted values [..., 6] -> the index of the nearest code (per value, the nearest level; index as in
    tokenizer_model.encode)."""
    index, basis = torch.zeros(predicted.shape[:-1], dtype=torch.long), 1
    for d, level in enumerate(levels):
        half = level // 2
        index += torch.clamp(torch.round(predicted[..., d] * half) + half, 0, level - 1).long() * basis
        basis *= level
    return index


def nearest_code_head(values, predict, spread):
    """The head [V, C] whose argmax is the code nearest to the values predict [6, C] makes of LN_f's output (its last
    channel constant 1): values [V, 6] are each code's; spread is s², the error per value."""
    with torch.no_grad():
        head = values @ predict
        head[:, -1] -= 0.5 * (values ** 2).sum(dim=1)
    return head / spread


def latent_head(model, spread):
    """The head [V, C]: argmax = the code nearest to the predicted values; spread is s², the error per value."""
    return nearest_code_head(model.tok_emb.values, model.tok_emb.predict.weight, spread)


def standard_state(model, head):
    """A latent- or pixel-objective model as MODEL.md's tensors (no transformer. prefix): the embedding table over
    every code, the given head, LN_f's last channel constant 1."""
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("tok_emb.")}
    codes = model.tok_emb
    with torch.no_grad():
        state["tok_emb.weight"] = codes(torch.arange(len(codes.values), device=codes.values.device))
    return constant_channel_state(state, head)


def constant_channel_state(state, head):
    """MODEL.md's tensors (no prefix) with this head and LN_f's last channel constant 1 (weight 0, bias 1): the
    channel the nearest-code and nearest-picture heads read as 1. LN_f's tensors are copied, not changed in place."""
    state = dict(state, **{"head.weight": head, "ln_f.weight": state["ln_f.weight"].clone(), "ln_f.bias": state["ln_f.bias"].clone()})
    state["ln_f.weight"][-1] = 0
    state["ln_f.bias"][-1] = 1
    return state
