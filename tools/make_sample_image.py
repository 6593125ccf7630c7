"""Draws zoo/samples/sailboat.jpg, the sample picture `make demo` and the examples classify.

A synthetic but natural-looking scene drawn with Pillow only (no external picture, no
license question): evening sky, sun, sea with waves, a sailboat, distant hills. It is
deterministic for a given Pillow version; rerun with
    .venv/bin/python tools/make_sample_image.py zoo/samples/sailboat.jpg
The committed file was made by this script (Pillow 13.0.0); zoo/samples/README.md says so.
"""
import math
import sys

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

W, H = 640, 480
HORIZON = 300
rng = np.random.default_rng(2026)

# Sky: vertical gradient from deep blue to warm orange at the horizon.
y = np.linspace(0, 1, HORIZON)[:, None]
top, bottom = np.array([40, 80, 160]), np.array([250, 180, 120])
sky = (top * (1 - y[..., None]) + bottom * y[..., None]).repeat(W, axis=1)
img = np.zeros((H, W, 3))
img[:HORIZON] = sky

# Sea: darker blue gradient with horizontal wave streaks.
ys = np.linspace(0, 1, H - HORIZON)[:, None, None]
sea = np.array([60, 110, 150]) * (1 - ys) + np.array([10, 40, 80]) * ys
img[HORIZON:] = sea
for _ in range(900):
    wy = int(HORIZON + (H - HORIZON) * rng.random() ** 1.6)
    wx = int(rng.integers(0, W))
    length = int(5 + 40 * (wy - HORIZON) / (H - HORIZON) * rng.random())
    shade = rng.uniform(-25, 35)
    img[wy:wy + 1, max(0, wx - length):wx + length] += shade

pil = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")
d = ImageDraw.Draw(pil)

# Sun with a soft glow, and its reflection on the water.
sx, sy, r = 470, 250, 34
glow = Image.new("L", (W, H), 0)
ImageDraw.Draw(glow).ellipse([sx - 3 * r, sy - 3 * r, sx + 3 * r, sy + 3 * r], fill=110)
glow = glow.filter(ImageFilter.GaussianBlur(40))
pil = Image.composite(Image.new("RGB", (W, H), (255, 210, 150)), pil, glow)
d = ImageDraw.Draw(pil)
d.ellipse([sx - r, sy - r, sx + r, sy + r], fill=(255, 236, 190))
d.rectangle([0, HORIZON, W, H], outline=None)
for i in range(60):
    ry = HORIZON + 4 + i * 3
    half = int(r * (1 - i / 70) * (0.6 + 0.4 * math.sin(i * 1.7)))
    d.line([(sx - half, ry), (sx + half, ry)], fill=(250, 200, 140), width=2)

# Distant hills on the horizon (left).
hills = [(0, HORIZON)]
for x in range(0, 330, 10):
    hills.append((x, HORIZON - 25 - 22 * math.sin(x / 60) - 10 * math.sin(x / 17)))
hills.append((330, HORIZON))
d.polygon(hills, fill=(70, 80, 110))

# Sailboat: hull, mast, main sail and jib, with its reflection.
hx, hy = 230, 370
d.polygon([(hx - 70, hy), (hx + 80, hy), (hx + 55, hy + 24), (hx - 50, hy + 24)], fill=(120, 40, 30))
d.line([(hx - 66, hy + 4), (hx + 76, hy + 4)], fill=(235, 225, 210), width=3)
d.line([(hx, hy), (hx, hy - 190)], fill=(60, 45, 35), width=5)
d.polygon([(hx + 4, hy - 185), (hx + 4, hy - 8), (hx + 95, hy - 8)], fill=(245, 242, 232))
d.polygon([(hx - 4, hy - 170), (hx - 4, hy - 12), (hx - 80, hy - 12)], fill=(230, 226, 215))
d.line([(hx + 4, hy - 95), (hx + 50, hy - 95)], fill=(200, 195, 185), width=1)
for i in range(14):
    ry = hy + 28 + i * 4
    d.line([(hx - 40 + 3 * i, ry), (hx + 45 - 3 * i, ry)], fill=(90, 60, 60), width=2)

# Gulls.
for gx, gy in [(120, 90), (160, 70), (520, 120)]:
    d.arc([gx - 12, gy - 6, gx, gy + 6], 200, 340, fill=(40, 40, 50), width=2)
    d.arc([gx, gy - 6, gx + 12, gy + 6], 200, 340, fill=(40, 40, 50), width=2)

# Camera-like softness and sensor noise.
pil = pil.filter(ImageFilter.GaussianBlur(0.8))
a = np.asarray(pil).astype(np.int16) + rng.integers(-4, 5, (H, W, 3))
Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)).save(sys.argv[1] if len(sys.argv) > 1 else "sailboat.jpg",
                                                          quality=88, optimize=True)
