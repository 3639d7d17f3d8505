"""One rank of the distributed-training test, started by torchrun.

Trains with the params file given, then writes this rank's final weights and history, so the
test can check that the ranks trained one model together.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from catdog.params import load_section
from catdog.training.loop import Trainer
from catdog.training.params import TrainParams


def main() -> None:
    params = load_section(Path(sys.argv[1]), "train", TrainParams)
    out = Path(sys.argv[2])
    trainer = Trainer(params)
    result = trainer.run()
    rank = dist.get_rank()
    torch.save(trainer.model.state_dict(), out / f"rank{rank}.pt")
    report = {
        "rank": rank,
        "world_size": dist.get_world_size(),
        "history": result.history,
        "run_id": result.run_id,
        "threads": torch.get_num_threads(),
    }
    (out / f"rank{rank}.json").write_text(json.dumps(report))
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
