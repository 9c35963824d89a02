"""Synthetic triplets with exact ground truth: textured layers moving with affine motion, rendered at 0, t and 1.

Every frame is rendered from the source textures (never by warping another frame), so the middle frame is the true
image at time t, occlusions and disocclusions included. A layer's texture pixel q is seen on screen at time tau at

    p(tau) = c + R(angle * tau) * (1 + zoom * tau) * (q - c) + shift * tau + offset

(c the layer's centre in texture pixels); rendering inverts this per screen pixel and samples bilinearly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class LayerMotion:
    """Affine motion of one layer over the unit time interval."""

    shift_x: float
    shift_y: float
    angle: float   # radians at tau = 1
    zoom: float    # relative scale change at tau = 1
    offset_x: float = 0.0  # where texture pixel c sits on screen at tau = 0, relative to the screen centre
    offset_y: float = 0.0


@dataclass(frozen=True)
class Layer:
    texture: Tensor  # 3 x h x w in [0, 1]
    alpha: Tensor    # 1 x h x w in [0, 1]; 1 everywhere for the background
    motion: LayerMotion


def _screen_centre(motion: LayerMotion, height: int, width: int, tau: float) -> tuple[float, float]:
    """Where the layer's texture centre c is on screen at time tau."""
    return ((width - 1) / 2 + motion.offset_x + motion.shift_x * tau,
            (height - 1) / 2 + motion.offset_y + motion.shift_y * tau)


def _sample_layer(layer: Layer, height: int, width: int, tau: float) -> Tensor:
    """The layer's premultiplied RGB and its alpha on screen at time tau (4 x height x width)."""
    m = layer.motion
    _, th, tw = layer.texture.shape
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float64), torch.arange(width, dtype=torch.float64),
                            indexing="ij")
    cx, cy = (tw - 1) / 2, (th - 1) / 2
    px, py = _screen_centre(m, height, width, tau)
    angle, factor = m.angle * tau, 1.0 + m.zoom * tau
    cos, sin = math.cos(angle) / factor, math.sin(angle) / factor
    dx, dy = xs - px, ys - py
    # inverse rotation and scale: texture offset from its centre
    qx = cx + cos * dx + sin * dy
    qy = cy - sin * dx + cos * dy
    grid = torch.stack((qx * (2.0 / max(tw - 1, 1)) - 1.0, qy * (2.0 / max(th - 1, 1)) - 1.0), dim=-1)
    grid = grid.to(torch.float32).unsqueeze(0)
    rgba = torch.cat((layer.texture, layer.alpha), 0).unsqueeze(0)
    return F.grid_sample(rgba, grid, mode="bilinear", padding_mode="zeros", align_corners=True)[0]


def render(layers: list[Layer], height: int, width: int, tau: float) -> Tensor:
    """The 3 x height x width frame at time tau, layers composited back to front (first = background)."""
    frame = torch.zeros(3, height, width)
    for layer in layers:
        sampled = _sample_layer(layer, height, width, tau)
        frame = frame * (1 - sampled[3:4]) + sampled[:3]  # texture is premultiplied below (rgb * alpha)
    return frame.clamp(0, 1)


# A pixel belongs to one layer alone when that layer covers it at least this much and every layer in front of it
# at most 1 - this: soft edges mix two motions and have no single true flow.
PURE_COVERAGE = 0.99


def visible_layers(layers: list[Layer], height: int, width: int, tau: float) -> tuple[Tensor, Tensor]:
    """(index of the front-most layer covering each pixel at least half, True where that layer alone is seen)."""
    index = torch.zeros(height, width, dtype=torch.long)
    pure = torch.ones(height, width, dtype=torch.bool)
    for number, layer in enumerate(layers):
        alpha = _sample_layer(layer, height, width, tau)[3]
        covers = alpha >= 0.5
        index = torch.where(covers, number, index)
        # a layer in front that covers: purity is its own; one that only grazes the pixel spoils it
        pure = torch.where(covers, alpha >= PURE_COVERAGE, pure & (alpha <= 1 - PURE_COVERAGE))
    return index, pure


def _layer_flow(motion: LayerMotion, height: int, width: int, forward: bool) -> Tensor:
    """2 x height x width: where each screen pixel's surface point of this layer moves between tau = 0 and 1
    (forward: from 0 to 1; else from 1 to 0), in pixels, from the affine motion itself (float64)."""
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float64), torch.arange(width, dtype=torch.float64),
                            indexing="ij")
    x0, y0 = _screen_centre(motion, height, width, 0.0)
    x1, y1 = _screen_centre(motion, height, width, 1.0)
    factor = 1.0 + motion.zoom
    cos, sin = math.cos(motion.angle), math.sin(motion.angle)
    if forward:  # p1 = c(1) + factor R(angle) (p - c(0))
        dx, dy = xs - x0, ys - y0
        tx = x1 + factor * (cos * dx - sin * dy)
        ty = y1 + factor * (sin * dx + cos * dy)
    else:  # p0 = c(0) + R(-angle) (p - c(1)) / factor
        dx, dy = xs - x1, ys - y1
        tx = x0 + (cos * dx + sin * dy) / factor
        ty = y0 + (-sin * dx + cos * dy) / factor
    return torch.stack((tx - xs, ty - ys))


def scene_flows(layers: list[Layer], height: int, width: int) -> tuple[Tensor, Tensor]:
    """The exact flows of the visible surface and where they are valid.

    Returns (flow, valid): flow is 4 x H x W (F0->1 x, y, then F1->0 x, y, in pixels) and valid 2 x H x W (bool,
    for F0->1 and F1->0): False where the pixel is a soft edge, or its surface point is hidden, soft-edged or out
    of the frame at the other time (occlusion). Under valid pixels, flows are exact to float64 rounding.
    """
    index0, pure0 = visible_layers(layers, height, width, 0.0)
    index1, pure1 = visible_layers(layers, height, width, 1.0)
    flows, valids = [], []
    for index_here, pure_here, index_there, pure_there, forward in (
            (index0, pure0, index1, pure1, True), (index1, pure1, index0, pure0, False)):
        per_layer = torch.stack([_layer_flow(layer.motion, height, width, forward) for layer in layers])
        flow = per_layer.gather(0, index_here.view(1, 1, height, width).expand(1, 2, height, width))[0]
        ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float64),
                                torch.arange(width, dtype=torch.float64), indexing="ij")
        tx, ty = torch.round(xs + flow[0]), torch.round(ys + flow[1])
        inside = (tx >= 0) & (tx <= width - 1) & (ty >= 0) & (ty <= height - 1)
        tx_i = tx.clamp(0, width - 1).long()
        ty_i = ty.clamp(0, height - 1).long()
        seen = (index_there[ty_i, tx_i] == index_here) & pure_there[ty_i, tx_i]
        flows.append(flow.to(torch.float32))
        valids.append(pure_here & inside & seen)
    return torch.cat(flows), torch.stack(valids)


def _random_patch(rng: np.random.Generator, image: Tensor, height: int, width: int) -> Tensor:
    _, ih, iw = image.shape
    h, w = min(height, ih), min(width, iw)
    y = int(rng.integers(0, ih - h + 1))
    x = int(rng.integers(0, iw - w + 1))
    patch = image[:, y:y + h, x:x + w]
    if (h, w) != (height, width):
        patch = F.interpolate(patch.unsqueeze(0), size=(height, width), mode="bilinear", align_corners=False)[0]
    return patch


def _shape_mask(rng: np.random.Generator, height: int, width: int) -> Tensor:
    """An ellipse or a rectangle filling most of the patch, with a one-pixel soft edge."""
    ys = torch.linspace(-1, 1, height).view(height, 1)
    xs = torch.linspace(-1, 1, width).view(1, width)
    if rng.random() < 0.5:
        distance = torch.sqrt(xs**2 + ys**2)
    else:
        distance = torch.maximum(xs.abs(), ys.abs()).expand(height, width)
    edge = 2.0 / max(height, width)
    return ((1.0 - distance) / edge).clamp(0, 1).unsqueeze(0)


def _random_motion(rng: np.random.Generator, max_shift: float, max_angle: float, max_zoom: float,
                   offset_range: tuple[float, float] = (0.0, 0.0)) -> LayerMotion:
    return LayerMotion(
        shift_x=float(rng.uniform(-max_shift, max_shift)),
        shift_y=float(rng.uniform(-max_shift, max_shift)),
        angle=float(rng.uniform(-max_angle, max_angle)),
        zoom=float(rng.uniform(-max_zoom, max_zoom)),
        offset_x=float(rng.uniform(-offset_range[0], offset_range[0])),
        offset_y=float(rng.uniform(-offset_range[1], offset_range[1])),
    )


@dataclass(frozen=True)
class SyntheticMotion:
    """Ranges of the random scenes (pixels over the unit interval, radians, relative zoom)."""

    background_shift: float = 12.0
    foreground_shift: float = 24.0
    max_angle: float = math.radians(6)
    max_zoom: float = 0.08
    max_foreground_layers: int = 3
    # share of scenes whose background stands still (a fixed camera): fast layers beside still surroundings, where
    # a flow net that smears motion invents it (measured in the curriculum step)
    still_background: float = 0.25

    @classmethod
    def up_to(cls, max_shift: float) -> SyntheticMotion:
        """Foreground layers move up to max_shift pixels per axis over the unit interval, the background half that."""
        return cls(background_shift=max_shift / 2, foreground_shift=max_shift)


STILL = LayerMotion(0.0, 0.0, 0.0, 0.0)


DEFAULT_MOTION = SyntheticMotion()


def random_scene(rng: np.random.Generator, images: list[Tensor], height: int, width: int,
                 motion: SyntheticMotion = DEFAULT_MOTION) -> list[Layer]:
    """A background and 1..N foreground patches cut from natural images, each with its own motion."""
    margin = math.ceil(motion.background_shift + motion.max_zoom * max(height, width)) + 4
    bh, bw = height + 2 * margin, width + 2 * margin
    background = _random_patch(rng, images[int(rng.integers(len(images)))], bh, bw)
    background_motion = _random_motion(rng, motion.background_shift, motion.max_angle / 2, motion.max_zoom / 2)
    if rng.random() < motion.still_background:
        background_motion = STILL
    layers = [Layer(background, torch.ones(1, bh, bw), background_motion)]
    for _ in range(int(rng.integers(1, motion.max_foreground_layers + 1))):
        ph = int(rng.integers(max(8, height // 5), max(9, height * 3 // 5)))
        pw = int(rng.integers(max(8, width // 5), max(9, width * 3 // 5)))
        alpha = _shape_mask(rng, ph, pw)
        texture = _random_patch(rng, images[int(rng.integers(len(images)))], ph, pw) * alpha
        layers.append(Layer(texture, alpha, _random_motion(rng, motion.foreground_shift, motion.max_angle,
                                                           motion.max_zoom, (width / 2, height / 2))))
    return layers


def synthetic_triplet(rng: np.random.Generator, images: list[Tensor], height: int, width: int,
                      t: float, motion: SyntheticMotion = DEFAULT_MOTION) -> tuple[Tensor, Tensor, Tensor]:
    """(frame at 0, frame at t, frame at 1) of a random scene."""
    layers = random_scene(rng, images, height, width, motion)
    return render(layers, height, width, 0.0), render(layers, height, width, t), render(layers, height, width, 1.0)


def synthetic_pair(rng: np.random.Generator, images: list[Tensor], height: int, width: int,
                   motion: SyntheticMotion = DEFAULT_MOTION) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(frame at 0, frame at 1, their exact flows, where those are valid) of a random scene (see scene_flows)."""
    layers = random_scene(rng, images, height, width, motion)
    return (render(layers, height, width, 0.0), render(layers, height, width, 1.0),
            *scene_flows(layers, height, width))
