"""``python -m plip.index build|add ...``; the form to launch under torchrun:

    torchrun --nproc_per_node=4 -m plip.index build crops.index --images crops/ --model plip-rn50
"""

import sys


def _main() -> int:
    import torch.distributed as dist

    from .cli import main

    try:
        return main(sys.argv[1:])
    finally:
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(_main())
