#!/usr/bin/env python3
"""Count the parameters and multiply-accumulates of DSN-VGG-Face and plain VGG-Face.

An independent check of the C++ layer table (nets/summary.h): the layer list below is written
from the authors' Caffe definition (DSN-VGG-FACE/train_val.prototxt in the DSN release) and
from the `paper` preset's rules, not from the C++ code. Plain Python, no dependencies.

Counting rules, the same as the C++ table:
- convolution: MACs = N * K * P * Q * C * R * S, parameters K * C * R * S + K (bias);
- transposed convolution (frozen bilinear upsampling, one channel, no bias): the MACs of the
  convolution whose backward-data pass it is, H_in * W_in * (2f)^2, and (2f)^2 parameters;
- fully connected: MACs = in * out, parameters in * out + out;
- pooling, ReLU, crop and element-wise sums: 0 MACs.
N = 1 (one image).

Usage: python3 tools/count_dsn_vgg.py
"""

import math


def pooled_size(size, kernel, stride, pad):
    """Output size of Caffe pooling: ceil rounding, and a last window that would start in
    the bottom or right padding is dropped."""
    out = int(math.ceil((size + 2 * pad - kernel) / stride)) + 1
    if out > 1 and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def conv_size(size, kernel, stride, pad):
    return (size + 2 * pad - kernel) // stride + 1


class Counter:
    def __init__(self):
        self.parameters = 0
        self.trainable = 0
        self.macs = 0

    def conv(self, size, c_in, c_out, kernel, pad):
        out = conv_size(size, kernel, 1, pad)
        self.parameters += c_out * c_in * kernel * kernel + c_out
        self.trainable += c_out * c_in * kernel * kernel + c_out
        self.macs += c_out * out * out * c_in * kernel * kernel
        return out

    def upsample(self, size, factor):
        kernel = 2 * factor
        self.parameters += kernel * kernel  # frozen, not trainable
        self.macs += size * size * kernel * kernel
        return (size - 1) * factor + kernel

    def fc(self, n_in, n_out):
        self.parameters += n_in * n_out + n_out
        self.trainable += n_in * n_out + n_out
        self.macs += n_in * n_out


def count_dsn_vgg_face(input_size, widths, side_width, classes):
    """DSN-VGG-Face, `paper` preset: returns (backbone Counter, heads Counter)."""
    backbone = Counter()
    # (convolutions in the block, pooling after the block as (kernel, stride, pad)).
    blocks = [(2, (2, 2, 0)), (2, (2, 2, 0)), (3, (2, 2, 0)), (3, (3, 2, 1)), (3, (3, 2, 1))]
    size = input_size
    channels = 3
    tap_sizes = {}
    tap_channels = {}
    for block, ((convs, pool), width) in enumerate(zip(blocks, widths), start=1):
        for i in range(convs):
            pad = 5 if (block, i) == (1, 0) else 1  # conv1_1 has pad 5 (DSS)
            size = backbone.conv(size, channels, width, 3, pad)
            channels = width
        tap_sizes[block] = size  # sides 1..5 tap conv{block}_last
        tap_channels[block] = channels
        size = pooled_size(size, *pool)
    size = pooled_size(size, 3, 1, 1)  # pool5a, average 3x3 s1 p1
    tap_sizes[6] = size
    tap_channels[6] = channels

    heads = Counter()
    # Supervision blocks: side -> (kernel, pad, width).
    c = side_width
    blocks_by_side = {6: (7, 3, c), 5: (5, 2, c), 4: (5, 2, c // 2), 3: (5, 2, c // 2),
                      2: (3, 1, c // 4), 1: (3, 1, c // 4)}
    feeders = {6: [], 5: [], 4: [6, 5], 3: [6, 5], 2: [6, 5, 4, 3], 1: [6, 5, 4, 3]}
    # Side m has stride 2^(m-1) relative to conv1's output.
    stride = {m: 2 ** (m - 1) for m in range(1, 7)}
    for side in [6, 5, 4, 3, 2, 1]:
        kernel, pad, width = blocks_by_side[side]
        size = heads.conv(tap_sizes[side], tap_channels[side], width, kernel, pad)
        size = heads.conv(size, width, 1, 1, 0)  # 1x1 score conv to one channel
        for source in feeders[side]:
            up = heads.upsample(tap_sizes[source], stride[source] // stride[side])
            assert up >= size, "an upsampled map must cover its target"
        heads.fc(size * size, classes)
    for source in [6, 5, 4, 3, 2]:
        up = heads.upsample(tap_sizes[source], stride[source])
        assert up >= input_size
    assert tap_sizes[1] >= input_size
    heads.fc(input_size * input_size, classes)
    return backbone, heads


def count_vgg_face(input_size, widths, fc_width, classes):
    """Plain VGG-16 as in VGG-Face: pad 1, 2x2 max pools, fc6, fc7, fc8 to `classes`."""
    counter = Counter()
    size = input_size
    channels = 3
    for convs, width in zip([2, 2, 3, 3, 3], widths):
        for _ in range(convs):
            size = counter.conv(size, channels, width, 3, 1)
            channels = width
        size = pooled_size(size, 2, 2, 0)
    conv_parameters = counter.parameters
    conv_macs = counter.macs
    counter.fc(channels * size * size, fc_width)
    counter.fc(fc_width, fc_width)
    counter.fc(fc_width, classes)
    return counter, conv_parameters, conv_macs


def report_dsn(title, input_size, widths, side_width, classes):
    backbone, heads = count_dsn_vgg_face(input_size, widths, side_width, classes)
    print(title)
    print(f"  backbone parameters {backbone.parameters}")
    print(f"  heads parameters    {heads.parameters}")
    print(f"  total parameters    {backbone.parameters + heads.parameters}")
    print(f"  trainable           {backbone.trainable + heads.trainable}")
    print(f"  backbone MACs       {backbone.macs}")
    print(f"  heads MACs          {heads.macs}")
    print(f"  total MACs          {backbone.macs + heads.macs}")


def main():
    vgg16 = [64, 128, 256, 512, 512]
    report_dsn("dsn_vgg_face 224, C = 256, 7 classes", 224, vgg16, 256, 7)
    report_dsn("dsn_vgg_face_small 64, C = 8, widths 4 8 8 16 16, 7 classes", 64,
               [4, 8, 8, 16, 16], 8, 7)
    vgg, conv_parameters, conv_macs = count_vgg_face(224, vgg16, 4096, 7)
    print("vgg_face 224, fc 4096, 7 classes")
    print(f"  conv parameters     {conv_parameters}")
    print(f"  total parameters    {vgg.parameters}")
    print(f"  conv MACs           {conv_macs}")
    print(f"  total MACs          {vgg.macs}")


if __name__ == "__main__":
    main()
