"""What both demo training scripts share: the run state saved atomically and resumed only by a run with the same
settings, and one optimisation step (gradient clipping at 1.0) with its progress line."""
import os
import sys
import time

import torch


def save_atomically(obj, path):
    temporary = path + ".tmp"
    torch.save(obj, temporary)
    os.replace(temporary, path)


def resume(state_path, settings, model, optimizer, steps):
    """(step, log) of the saved run in state_path, loaded into model and optimizer; (0, []) when there is none.
    A saved run with other settings stops the script: its data stream and shapes would not continue this one."""
    if not os.path.exists(state_path):
        return 0, []
    state = torch.load(state_path, map_location="cpu")  # the optimizer's state follows its parameters' device
    if state["settings"] != settings:
        sys.exit(f"{state_path}: a run with {state['settings']}; this one asks {settings}: use another --out")
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    print(f"resuming at step {state['step']} of {steps}", flush=True)
    return state["step"], state["log"]


def save_run(state_path, settings, model, optimizer, step, log):
    save_atomically({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step, "log": log, "settings": settings}, state_path)


def finite_gradients(model):
    return all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def optimise(model, optimizer, loss_of, lr, step, steps, log, started):
    """One step at learning rate lr (times a parameter group's "scale", where it has one) on the loss loss_of() computes;
    every 10th step (and the last) logged and printed. Returns the next step.

    PyTorch 1.13's oneDNN conv3d backward sometimes returns NaN for some shapes (seen on this project's tokenizer at
    [4, 32, 9, 32, 32]); a step whose gradients are not finite is recomputed once with oneDNN off (slower, same maths),
    and a step still not finite is not applied: it is printed and recorded in the log as (step, None), so a run left
    alone keeps going and its README can say how many steps it lost."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("scale", 1.0)
    optimizer.zero_grad()
    loss = loss_of()
    loss.backward()
    if not finite_gradients(model):
        print(f"step {step}: non-finite gradients, recomputing without oneDNN", flush=True)
        optimizer.zero_grad()
        with torch.backends.mkldnn.flags(enabled=False):
            loss = loss_of()
            loss.backward()
        if not finite_gradients(model):
            print(f"step {step}: non-finite gradients (loss {loss.item()}) even without oneDNN: update not applied", flush=True)
            log.append((step + 1, None))
            return step + 1
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    step += 1
    if step % 10 == 0 or step == steps:
        log.append((step, loss.item()))
        print(f"step {step}/{steps} loss {loss.item():.4f} lr {lr:.2e} ({(time.time() - started) / 60:.1f} min)", flush=True)
    return step
