// Fused glue of the RIFE 4.x loop on the CPU: the memory-bound steps between the convolutions, one pass each.
//
// vsrife/kernels/reference.py defines every function here in plain PyTorch; tests/test_kernels.py compares them.
// Plain C ABI (called through ctypes with tensors' data pointers and strides), no libtorch, no OpenMP: the caller
// passes the thread count and rows are split between std::threads. Work is done a row at a time in flat arrays so
// that the compiler vectorizes it (gathers included). The hot loops (loops.h) are built for AVX-512, AVX2 and plain
// x86-64; vfi_select_isa picks the build every call uses (the best one the CPU has, or a lower one asked for).

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <thread>
#include <utility>
#include <vector>

namespace {

enum DType : int32_t { F32 = 0, BF16 = 1 };
enum PartKind : int32_t { PLAIN = 0, WARPED = 1, CONSTANT = 2 };

constexpr int32_t MAX_CHANNELS = 512;
constexpr int32_t CHUNK = 256;  // sample points handled together (stack arrays)

// A tensor of N x C x H x W elements, strides in elements (any memory format unless a function says otherwise).
struct View {
    void *data;
    int32_t dtype;
    int32_t channels;
    int64_t stride[4];
};

// One group of channels of a block's input, in the order they are concatenated.
struct Part {
    int32_t kind;          // PLAIN: view's channels times gain; WARPED: view warped by the flow; CONSTANT: values
    int32_t flow_channel;  // WARPED: first of the two flow channels (x, y) that move this view
    float gain;            // PLAIN: factor applied after resampling (the flow's 1/scale)
    const float *values;   // CONSTANT: one value per batch item (a CONSTANT is one channel)
    View view;
};

inline float bf16_to_float(uint16_t bits) {
    uint32_t word = static_cast<uint32_t>(bits) << 16;
    float value;
    std::memcpy(&value, &word, sizeof value);
    return value;
}

// Round to nearest even, as torch's float -> bfloat16 conversion does.
inline uint16_t float_to_bf16(float value) {
    uint32_t word;
    std::memcpy(&word, &value, sizeof word);
    if ((word & 0x7fffffffu) > 0x7f800000u)
        return static_cast<uint16_t>((word >> 16) | 0x40u);  // quiet NaN
    word += 0x7fffu + ((word >> 16) & 1u);
    return static_cast<uint16_t>(word >> 16);
}

inline const float *floats(const View &v) { return static_cast<const float *>(v.data); }

// Linear-interpolation taps of PyTorch's bilinear resize (align_corners=False, explicit scale factor): source
// position ratio * (dst + 0.5) - 0.5, clamped at 0; the second tap is the last sample at the far edge.
struct Taps {
    std::vector<int32_t> first, second;
    std::vector<float> weight_first, weight_second;
};

Taps resize_taps(int32_t out_size, int32_t in_size, float ratio) {
    Taps taps;
    for (int32_t i = 0; i < out_size; ++i) {
        float source = ratio == 1.0f ? static_cast<float>(i) : std::max(ratio * (i + 0.5f) - 0.5f, 0.0f);
        int32_t first = std::min(static_cast<int32_t>(std::floor(source)), in_size - 1);
        float weight = std::min(std::max(source - first, 0.0f), 1.0f);
        taps.first.push_back(first);
        taps.second.push_back(first + (first < in_size - 1 ? 1 : 0));
        taps.weight_first.push_back(1.0f - weight);
        taps.weight_second.push_back(weight);
    }
    return taps;
}

// The hot loops once per instruction set, each build in its own namespace; ISA numbers them (vfi_select_isa).
#if defined(__x86_64__) && defined(__GNUC__)
#define VFI_MULTI_ISA 1
#define VFI_TARGET __attribute__((target("avx512f")))
namespace avx512f {
#include "loops.h"
}  // namespace avx512f
#undef VFI_TARGET
#define VFI_TARGET __attribute__((target("avx2")))
namespace avx2 {
#include "loops.h"
}  // namespace avx2
#undef VFI_TARGET
#else
#define VFI_MULTI_ISA 0
#endif
#define VFI_TARGET
namespace generic {
#include "loops.h"
}  // namespace generic
#undef VFI_TARGET

enum Isa : int32_t { GENERIC = 0, AVX2 = 1, AVX512F = 2 };

struct Loops {
    decltype(&generic::warp_points) warp_points;
    decltype(&generic::gather_points) gather_points;
    decltype(&generic::accumulate) accumulate;
    decltype(&generic::write_row) write_row;
    decltype(&generic::interpolate_row) interpolate_row;
    decltype(&generic::blend_rows) blend_rows;
    decltype(&generic::add_step) add_step;
    decltype(&generic::blend) blend;
};

#define VFI_LOOPS(isa)                                                                                             \
    Loops { isa::warp_points, isa::gather_points, isa::accumulate, isa::write_row, isa::interpolate_row,          \
            isa::blend_rows, isa::add_step, isa::blend }
#if VFI_MULTI_ISA
const Loops LOOPS[] = {VFI_LOOPS(generic), VFI_LOOPS(avx2), VFI_LOOPS(avx512f)};
#else
const Loops LOOPS[] = {VFI_LOOPS(generic)};
#endif
#undef VFI_LOOPS

std::atomic<int32_t> active_isa{GENERIC};  // set by vfi_select_isa before the first kernel call

// The build of the hot loops every kernel uses.
inline const Loops &loops() { return LOOPS[active_isa.load(std::memory_order_relaxed)]; }

// The best build at most `highest` that this CPU can run.
Isa best_isa(int32_t highest) {
#if VFI_MULTI_ISA
    __builtin_cpu_init();
    if (highest >= AVX512F && __builtin_cpu_supports("avx512f"))
        return AVX512F;
    if (highest >= AVX2 && __builtin_cpu_supports("avx2"))
        return AVX2;
#else
    (void)highest;
#endif
    return GENERIC;
}

// Runs body(begin, end) over [0, count) split into contiguous ranges, one per thread.
template <typename Body>
void parallel_ranges(int64_t count, int32_t threads, Body body) {
    const int64_t workers = std::max<int64_t>(1, std::min<int64_t>(threads, count));
    if (workers == 1) {
        body(int64_t{0}, count);
        return;
    }
    std::vector<std::thread> pool;
    pool.reserve(static_cast<size_t>(workers - 1));
    for (int64_t w = 1; w < workers; ++w)
        pool.emplace_back(body, count * w / workers, count * (w + 1) / workers);
    body(int64_t{0}, count / workers);
    for (auto &t : pool)
        t.join();
}

// The parts' values at the sample points (row y; columns xs) into out: channels x count.
void sample_parts(const Part *parts, int32_t part_count, const View *flow, int32_t b, int32_t y, int32_t height,
                  int32_t width, const int32_t *xs, int32_t count, float *out) {
    const Loops &hot = loops();
    for (int32_t p = 0; p < part_count; ++p) {
        const Part &part = parts[p];
        const View &v = part.view;
        if (part.kind == CONSTANT) {
            std::fill(out, out + count, part.values[b]);
            out += count;
            continue;
        }
        const float *base = floats(v) + b * v.stride[0];
        if (part.kind == WARPED) {
            const float *fx = floats(*flow) + b * flow->stride[0] + part.flow_channel * flow->stride[1] +
                              y * flow->stride[2];
            hot.warp_points(base, v.stride[1], v.stride[2], v.channels, height, width, xs, count, fx,
                        fx + flow->stride[1], static_cast<float>(y), out, count);
        } else {
            hot.gather_points(base + y * v.stride[2], v.stride[1], v.channels, xs, count, part.gain, out, count);
        }
        out += int64_t{v.channels} * count;
    }
}

void block_input(int32_t batch, int32_t height, int32_t width, const Part *parts, int32_t part_count,
                 const View *flow, const View &out, int32_t out_height, int32_t out_width, float ratio, int32_t total,
                 int32_t threads) {
    const Loops &hot = loops();
    const Taps rows = resize_taps(out_height, height, ratio), cols = resize_taps(out_width, width, ratio);
    const bool exact = ratio == 1.0f;  // one sample per output pixel
    parallel_ranges(int64_t{batch} * out_height, threads, [&](int64_t begin, int64_t end) {
        std::vector<float> first(static_cast<size_t>(total) * out_width), second(first.size()), acc(first.size());
        for (int64_t r = begin; r < end; ++r) {
            const int32_t b = static_cast<int32_t>(r / out_height), oy = static_cast<int32_t>(r % out_height);
            void *row = static_cast<char *>(out.data) +
                        (b * out.stride[0] + oy * out.stride[2]) * (out.dtype == F32 ? 4 : 2);
            if (exact) {
                sample_parts(parts, part_count, flow, b, oy, height, width, cols.first.data(), out_width, acc.data());
                hot.write_row(acc.data(), total, out_width, out, row);
                continue;
            }
            std::fill(acc.begin(), acc.end(), 0.0f);
            const int32_t sample_rows[2] = {rows.first[oy], rows.second[oy]};
            const float row_weights[2] = {rows.weight_first[oy], rows.weight_second[oy]};
            for (int32_t i = 0; i < 2; ++i) {
                if (row_weights[i] == 0.0f)
                    continue;
                sample_parts(parts, part_count, flow, b, sample_rows[i], height, width, cols.first.data(), out_width,
                             first.data());
                sample_parts(parts, part_count, flow, b, sample_rows[i], height, width, cols.second.data(),
                             out_width, second.data());
                hot.accumulate(acc.data(), first.data(), second.data(), cols.weight_first.data(),
                           cols.weight_second.data(), row_weights[i], total, out_width);
            }
            hot.write_row(acc.data(), total, out_width, out, row);
        }
    });
}

// One source row of one channel as float32: out[i] = row[offsets[i]] for i < count.
template <typename Src>
void read_row(const Src *row, const int64_t *offsets, int32_t count, float *out) {
    for (int32_t i = 0; i < count; ++i) {
        if constexpr (sizeof(Src) == 4)
            out[i] = row[offsets[i]];
        else
            out[i] = bf16_to_float(row[offsets[i]]);
    }
}


// Where sample (y or x) of the head lies in src when the head is src pixel-shuffled by 2, `shuffles` times: the
// src row or column, and what the position adds to the src channel (rows: `row` true). Shuffle j (1 = the last one
// applied) takes bit j-1 of the position: channel = channel * 4 + 2 * row bit + column bit.
inline std::pair<int64_t, int64_t> unshuffled(int32_t position, int32_t shuffles, bool row) {
    int64_t channel = 0;
    for (int32_t j = 1; j <= shuffles; ++j)
        channel += ((position >> (j - 1)) & 1) * (row ? 2 : 1) * (int64_t{1} << (2 * (shuffles - j)));
    return {position >> shuffles, channel};
}

void block_output(int32_t batch, int32_t height, int32_t width, const View &src, int32_t shuffles,
                  int32_t src_height, int32_t src_width, float ratio, float gain, const float *flow_in,
                  float *flow_out, const float *mask_in, float *mask_out, int32_t extra_channels, float *extra_out,
                  float *peaks, int32_t threads) {
    const Loops &hot = loops();
    // separable: each source row is read and interpolated horizontally once (kept while output rows use it), then
    // output rows blend two of those
    const Taps rows = resize_taps(height, src_height, ratio), cols = resize_taps(width, src_width, ratio);
    const int32_t used = 5 + extra_channels;
    // element offset of each head column within a src row, and of each head row within a batch item
    std::vector<int64_t> column_at(static_cast<size_t>(src_width)), row_at(static_cast<size_t>(src_height));
    for (int32_t x = 0; x < src_width; ++x) {
        const auto [at, channel] = unshuffled(x, shuffles, false);
        column_at[x] = at * src.stride[3] + channel * src.stride[1];
    }
    for (int32_t y = 0; y < src_height; ++y) {
        const auto [at, channel] = unshuffled(y, shuffles, true);
        row_at[y] = at * src.stride[2] + channel * src.stride[1];
    }
    const int64_t channel_step = (int64_t{1} << (2 * shuffles)) * src.stride[1];
    const int64_t plane = int64_t{height} * width, count = int64_t{batch} * height;
    // peaks per worker, merged afterwards: no shared writes between threads
    const int32_t workers = static_cast<int32_t>(std::max<int64_t>(1, std::min<int64_t>(threads, count)));
    std::vector<float> worker_peaks(static_cast<size_t>(2 * workers), 0.0f);
    parallel_ranges(workers, workers, [&](int64_t first_worker, int64_t last_worker) {
        std::vector<float> source(static_cast<size_t>(src_width)), value(static_cast<size_t>(width));
        // two slots of horizontally interpolated source rows: used channels x width each, and whose row they hold
        std::vector<float> slots[2] = {std::vector<float>(static_cast<size_t>(used) * width),
                                       std::vector<float>(static_cast<size_t>(used) * width)};
        int64_t held[2] = {-1, -1};
        auto horizontal = [&](int32_t b, int32_t row) -> const float * {
            const int64_t key = int64_t{b} * src_height + row;
            for (int32_t i = 0; i < 2; ++i)
                if (held[i] == key)
                    return slots[i].data();
            // replace the slot the current output row does not need: the one holding the lower row
            const int32_t i = held[0] < held[1] ? 0 : 1;
            for (int32_t c = 0; c < used; ++c) {
                const int64_t at = b * src.stride[0] + row_at[row] + c * channel_step;
                if (src.dtype == F32)
                    read_row(floats(src) + at, column_at.data(), src_width, source.data());
                else
                    read_row(static_cast<const uint16_t *>(src.data) + at, column_at.data(), src_width,
                             source.data());
                hot.interpolate_row(source.data(), cols.first.data(), cols.second.data(), cols.weight_first.data(),
                                cols.weight_second.data(), width, slots[i].data() + int64_t{c} * width);
            }
            held[i] = key;
            return slots[i].data();
        };
        for (int64_t w = first_worker; w < last_worker; ++w) {
            float peak[2] = {0.0f, 0.0f};
            for (int64_t r = count * w / workers; r < count * (w + 1) / workers; ++r) {
                const int32_t b = static_cast<int32_t>(r / height), y = static_cast<int32_t>(r % height);
                const float *top = horizontal(b, rows.first[y]);
                const float *low = horizontal(b, rows.second[y]);
                top = horizontal(b, rows.first[y]);  // the second call may have replaced the first row's slot
                const int64_t at = int64_t{y} * width;
                for (int32_t c = 0; c < used; ++c) {
                    hot.blend_rows(top + int64_t{c} * width, low + int64_t{c} * width, rows.weight_first[y],
                               rows.weight_second[y], width, value.data());
                    if (c < 4) {
                        const int64_t o = (b * 4 + c) * plane + at;
                        peak[c / 2] = std::max(peak[c / 2], hot.add_step(flow_in ? flow_in + o : nullptr, value.data(),
                                                                      gain, width, flow_out + o));
                    } else if (c == 4) {
                        const int64_t o = b * plane + at;
                        hot.add_step(mask_in ? mask_in + o : nullptr, value.data(), 1.0f, width, mask_out + o);
                    } else {
                        std::copy(value.begin(), value.end(), extra_out + (b * extra_channels + c - 5) * plane + at);
                    }
                }
            }
            worker_peaks[2 * w] = peak[0];
            worker_peaks[2 * w + 1] = peak[1];
        }
    });
    if (peaks) {
        peaks[0] = peaks[1] = 0.0f;
        for (int32_t w = 0; w < workers; ++w) {
            peaks[0] = std::max(peaks[0], worker_peaks[2 * w]);
            peaks[1] = std::max(peaks[1], worker_peaks[2 * w + 1]);
        }
    }
}


void warp_blend(int32_t batch, int32_t height, int32_t width, const View &img0, const View &img1, const View &flow,
                const View &mask, const View &out, int32_t threads) {
    const Loops &hot = loops();
    const int32_t channels = img0.channels;
    std::vector<int32_t> columns(static_cast<size_t>(width));
    for (int32_t x = 0; x < width; ++x)
        columns[x] = x;
    parallel_ranges(int64_t{batch} * height, threads, [&](int64_t begin, int64_t end) {
        std::vector<float> warped0(static_cast<size_t>(channels) * width), warped1(warped0.size()),
            blended(warped0.size()), weight(static_cast<size_t>(width));
        for (int64_t r = begin; r < end; ++r) {
            const int32_t b = static_cast<int32_t>(r / height), y = static_cast<int32_t>(r % height);
            const float *f = floats(flow) + b * flow.stride[0] + y * flow.stride[2];
            hot.warp_points(floats(img0) + b * img0.stride[0], img0.stride[1], img0.stride[2], channels, height, width,
                        columns.data(), width, f, f + flow.stride[1], static_cast<float>(y), warped0.data(), width);
            hot.warp_points(floats(img1) + b * img1.stride[0], img1.stride[1], img1.stride[2], channels, height, width,
                        columns.data(), width, f + 2 * flow.stride[1], f + 3 * flow.stride[1],
                        static_cast<float>(y), warped1.data(), width);
            hot.blend(warped0.data(), warped1.data(), floats(mask) + b * mask.stride[0] + y * mask.stride[2], channels,
                  width, weight.data(), blended.data());
            void *row = static_cast<char *>(out.data) +
                        (b * out.stride[0] + y * out.stride[2]) * (out.dtype == F32 ? 4 : 2);
            hot.write_row(blended.data(), channels, width, out, row);
        }
    });
}

}  // namespace

extern "C" {

#define VFI_EXPORT __attribute__((visibility("default")))

// The input of a flow block: the parts concatenated along channels, WARPED ones sampled by `flow` (N x 4 x H x W,
// full size), all resized from height x width to out's size with ratio (1: no resize), written to out (float32 or
// bfloat16, any strides). Every view but out is float32 with rows of stride 1. Returns 0, or -1 when the channels
// do not add up.
VFI_EXPORT int vfi_block_input(int32_t batch, int32_t height, int32_t width, const Part *parts, int32_t part_count,
                               const View *flow, View out, int32_t out_height, int32_t out_width, float ratio,
                               int32_t threads) {
    int32_t total = 0;
    for (int32_t p = 0; p < part_count; ++p)
        total += parts[p].kind == CONSTANT ? 1 : parts[p].view.channels;
    if (total > MAX_CHANNELS || total != out.channels)
        return -1;
    block_input(batch, height, width, parts, part_count, flow, out, out_height, out_width, ratio, total, threads);
    return 0;
}

// What a flow block's head adds to the state at height x width. The head (N x C x src_height x src_width, C >= 5)
// is src (float32 or bfloat16, any strides) pixel-shuffled by 2 `shuffles` times, read in place, resized by 1/ratio:
// flow_out = flow_in + gain * channels 0-3 (flow_in may be null), mask_out = mask_in (null: 0) + channel 4,
// extra_out = channels 5 .. 5 + extra_channels - 1. All outputs and flow_in/mask_in are contiguous float32. peaks
// (may be null) receives the largest |gain * channel| of channels 0-1 and of 2-3. Returns 0, or -1 when src has too
// few channels.
VFI_EXPORT int vfi_block_output(int32_t batch, int32_t height, int32_t width, View src, int32_t shuffles,
                                int32_t src_height, int32_t src_width, float ratio, float gain, const float *flow_in,
                                float *flow_out, const float *mask_in, float *mask_out, int32_t extra_channels,
                                float *extra_out, float *peaks, int32_t threads) {
    if (shuffles < 0 || shuffles > 4 || src.channels < (5 + extra_channels) << (2 * shuffles))
        return -1;
    block_output(batch, height, width, src, shuffles, src_height, src_width, ratio, gain, flow_in, flow_out, mask_in,
                 mask_out, extra_channels, extra_out, peaks, threads);
    return 0;
}

// The frame at the end of the loop: img0 warped by flow channels 0-1 and img1 by 2-3, blended with sigmoid(mask)
// as the weight of img0, written to out (float32 or bfloat16, any strides). The inputs are float32 with rows of
// stride 1.
VFI_EXPORT int vfi_warp_blend(int32_t batch, int32_t height, int32_t width, View img0, View img1, View flow, View mask,
                              View out, int32_t threads) {
    if (img0.channels > MAX_CHANNELS || img1.channels != img0.channels || out.channels != img0.channels)
        return -1;
    warp_blend(batch, height, width, img0, img1, flow, mask, out, threads);
    return 0;
}

// Chooses the build of the hot loops that every later call uses: the best one this CPU runs that is at most
// `highest` (0: generic, 1: AVX2, 2: AVX-512F). Returns the number of the build chosen.
VFI_EXPORT int vfi_select_isa(int32_t highest) {
    const Isa isa = best_isa(highest);
    active_isa.store(isa, std::memory_order_relaxed);
    return isa;
}

}  // extern "C"
