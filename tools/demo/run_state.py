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
    state = torch.load(state_path)
    if state["settings"] != settings:
        sys.exit(f"{state_path}: a run with {state['settings']}; this one asks {settings}: use another --out")
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    print(f"resuming at step {state['step']} of {steps}", flush=True)
    return state["step"], state["log"]


def save_run(state_path, settings, model, optimizer, step, log):
    save_atomically({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step, "log": log, "settings": settings}, state_path)


def optimise(model, optimizer, loss, lr, step, steps, log, started):
    """One step at learning rate lr; every 10th step (and the last) logged and printed. Returns the next step."""
    for group in optimizer.param_groups:
        group["lr"] = lr
    optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    step += 1
    if step % 10 == 0 or step == steps:
        log.append((step, loss.item()))
        print(f"step {step}/{steps} loss {loss.item():.4f} lr {lr:.2e} ({(time.time() - started) / 60:.1f} min)", flush=True)
    return step
