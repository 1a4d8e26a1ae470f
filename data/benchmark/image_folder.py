"""The Python half of //data/benchmark:image_folder_benchmark: one epoch of
torchvision's ImageFolder + DataLoader over a folder, with torchvision's
training recipe (RandomResizedCrop(224), RandomHorizontalFlip, to float,
Normalize), batch 64, shuffled, `workers` worker processes (prefetch_factor
2, PyTorch's default).

    python image_folder.py ROOT/train WORKERS

Prints one line: images=N seconds=S peak_rss_mib=M (the main process's
peak plus the largest worker's peak, from getrusage).
"""
import resource
import sys
import time

import torch
from torchvision import datasets
from torchvision.transforms import v2


def main():
    root, workers = sys.argv[1], int(sys.argv[2])
    torch.set_num_threads(1)
    recipe = v2.Compose([
        v2.RandomResizedCrop(224, antialias=True),
        v2.RandomHorizontalFlip(),
        v2.PILToTensor(),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
    ])
    ds = datasets.ImageFolder(root, transform=recipe)
    loader = torch.utils.data.DataLoader(ds, batch_size=64, shuffle=True, num_workers=workers,
                                         generator=torch.Generator().manual_seed(0))
    n = 0
    start = time.perf_counter()
    for images, labels in loader:
        n += images.shape[0]
    seconds = time.perf_counter() - start
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"images={n} seconds={seconds:.3f} peak_rss_mib={own + children:.1f}", flush=True)


if __name__ == "__main__":
    main()
