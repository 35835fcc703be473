"""Write a 64×64 demo photo (scikit-image's astronaut if installed, else a drawn test pattern) for tiny-model runs."""
from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image, ImageDraw


def demo_image(size: int = 64) -> Image.Image:
    try:
        from skimage import data  # optional: ships real sample photos
        return Image.fromarray(data.astronaut()).resize((size, size), Image.BICUBIC)
    except Exception:
        img = Image.new("RGB", (size, size), (40, 90, 160))
        d = ImageDraw.Draw(img)
        d.ellipse([size // 4, size // 4, 3 * size // 4, 3 * size // 4], fill=(230, 200, 60))
        d.rectangle([0, 3 * size // 4, size, size], fill=(60, 140, 60))
        return img


if __name__ == "__main__":
    out = Path(sys.argv[1])
    out.parent.mkdir(parents=True, exist_ok=True)
    demo_image().save(out)
    print(out)
