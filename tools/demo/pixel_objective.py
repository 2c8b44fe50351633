"""The transformer's pixel objective (issue 18): regress the pixels of the next block's cells, pick the code that looks most
like the prediction.

`nbp-run eval` measures pixels, and the cross-entropy and latent objectives only reach pixels through the encoder's
codes, which are hard to foresee where an object moves across a cell (and the decoder need not turn the mean of
codes into the mean picture). Here each position predicts the true pixels of the cell its next-block token stands for
(the 8x8 pixels of 4 frames: one latent cell of latent frames 1-4), by mean squared error, so it learns their
conditional mean; the token it emits is the code c whose picture d_c is nearest to that prediction, where d_c is the
mean of the true cell pixels wherever the encoder chose c in the training clips (cells of latent frames 1-4; codes
never chosen there have no picture and are never emitted).

Still MODEL.md's model, exactly as in latent_objective.py: the embedding table is a function of each code's FSQ values
and its picture;
the nearest picture to mu = P·h is the argmax of d_c·mu - |d_c|²/2, linear in h with LN_f's last channel held at 1.
"""
import numpy as np
import torch

import clips
from latent_objective import LatentCodes, code_values, with_constant_channel

FRAMES_PER_LATENT = 4
NEVER = -60000.0  # the head's logit for codes without a picture: below any picture's, and an fp16 value


def cell_pictures(video, side):
    """uint8 clips [N, 17, R, R, 3] -> float [N, 4·side², 3·4·(R/side)²]: for latent frames 1-4 in token order
    (frame, row, column) the cell's pixels over its 4 frames, in [0, 1]."""
    n, _, r, _, _ = video.shape
    cell = r // side
    x = torch.from_numpy(video[:, 1:]).float() / 255  # [N, 16, R, R, 3]: frames 2-17 are latent frames 1-4
    x = x.reshape(n, 4, FRAMES_PER_LATENT, side, cell, side, cell, 3)
    return x.permute(0, 1, 3, 5, 2, 4, 6, 7).reshape(n, 4 * side * side, -1)


def code_pictures(codes, seed, resolution, vocab, chunk=500):
    """(pictures [V, P] float32, seen [V] bool): each code's mean cell picture over the clips whose codes are given
    ([N, 5·side²], clip i of the seed), from latent frames 1-4."""
    side = resolution // 8
    given = side * side  # latent frame 0 (one video frame) is not a 4-frame cell
    sums, counts = None, torch.zeros(vocab, dtype=torch.float64)
    for start in range(0, len(codes), chunk):
        video = np.stack([clips.clip(seed, i, resolution) for i in range(start, min(len(codes), start + chunk))])
        pictures = cell_pictures(video, side).double()
        index = codes[start:start + len(video), given:].reshape(-1)
        if sums is None:
            sums = torch.zeros(vocab, pictures.shape[-1], dtype=torch.float64)
        sums.index_add_(0, index, pictures.reshape(-1, pictures.shape[-1]))
        counts.index_add_(0, index, torch.ones(len(index), dtype=torch.float64))
    seen = counts > 0
    return (sums / counts.clamp(min=1).unsqueeze(1)).float(), seen


def make_pixel(model, tokenizer, pictures, seen):
    """Turns a freshly built train_nbp.Transformer into a pixel-objective one (as latent_objective.make_latent), its
    prediction P·h the size of a cell picture; the pictures ride along as buffers for saving the head."""
    codes = LatentCodes(model.ln_f.normalized_shape[0], code_values(tokenizer), outputs=pictures.shape[1])
    codes.register_buffer("pictures", pictures)
    codes.register_buffer("seen", seen)
    # a code's embedding also sees its picture (zero for codes without one): the transformer reads where and how an
    # object moves within a cell from pixels, not only from the encoder's 6 values
    codes.look = torch.nn.Linear(pictures.shape[1], model.ln_f.normalized_shape[0])
    model.tok_emb = codes
    del model.head
    return model


def pixel_error(model, hidden, targets):
    """Mean squared error per value between the predicted and the true cell pictures; hidden [B, T, C] predicts the
    cells targets [B, T', P] of its last T' positions."""
    predicted = model.tok_emb.predict(with_constant_channel(hidden[:, -targets.shape[1]:]))
    return ((predicted - targets) ** 2).mean()


def pixel_head(model, spread):
    """The head [V, C] (argmax = the code whose picture is nearest to the prediction) and the tensors it needs."""
    codes = model.tok_emb
    with torch.no_grad():
        head = codes.pictures @ codes.predict.weight
        head[:, -1] -= 0.5 * (codes.pictures ** 2).sum(dim=1)
        head /= spread
        head[~codes.seen] = 0
        head[~codes.seen, -1] = NEVER
    return head
