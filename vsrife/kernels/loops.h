// The hot loops of glue.cpp: included once per instruction set, inside a namespace named after it, with VFI_TARGET
// set to that set's target attribute (empty for the generic build). Not a standalone header: glue.cpp defines the
// types (View, F32, CHUNK) and helpers these loops use, and which build runs (vfi_select_isa).

// out[c * out_step + k] = bilinear sample, border padding, of planes (x stride 1) at (xs[k] + fx[xs[k]],
// y + fy[xs[k]]) for k < count: the image warped by a flow row (fx, fy) at the columns xs of row y.
VFI_TARGET void warp_points(const float *__restrict__ planes, int64_t plane_step, int64_t row_step, int32_t channels,
                            int32_t height, int32_t width, const int32_t *__restrict__ xs, int32_t count,
                            const float *__restrict__ fx, const float *__restrict__ fy, float y,
                            float *__restrict__ out, int64_t out_step) {
    int32_t o00[CHUNK], o01[CHUNK], o10[CHUNK], o11[CHUNK];
    float w00[CHUNK], w01[CHUNK], w10[CHUNK], w11[CHUNK], gx[CHUNK], gy[CHUNK];
    const float right = static_cast<float>(width - 1), bottom = static_cast<float>(height - 1);
    for (int32_t start = 0; start < count; start += CHUNK) {
        const int32_t n = std::min(CHUNK, count - start);
        for (int32_t k = 0; k < n; ++k) {
            gx[k] = fx[xs[start + k]];
            gy[k] = fy[xs[start + k]];
        }
        for (int32_t k = 0; k < n; ++k) {
            float sx = static_cast<float>(xs[start + k]) + gx[k], sy = y + gy[k];
            // clamping first is grid_sample's padding_mode="border"; the first comparison also sends NaN to 0
            sx = sx > 0.0f ? sx : 0.0f;
            sy = sy > 0.0f ? sy : 0.0f;
            sx = sx < right ? sx : right;
            sy = sy < bottom ? sy : bottom;
            const int32_t x0 = static_cast<int32_t>(sx), y0 = static_cast<int32_t>(sy);
            const int32_t x1 = std::min(x0 + 1, width - 1), y1 = std::min(y0 + 1, height - 1);
            const float ax = sx - static_cast<float>(x0), ay = sy - static_cast<float>(y0);
            w00[k] = (1.0f - ay) * (1.0f - ax);
            w01[k] = (1.0f - ay) * ax;
            w10[k] = ay * (1.0f - ax);
            w11[k] = ay * ax;
            o00[k] = y0 * static_cast<int32_t>(row_step) + x0;
            o01[k] = y0 * static_cast<int32_t>(row_step) + x1;
            o10[k] = y1 * static_cast<int32_t>(row_step) + x0;
            o11[k] = y1 * static_cast<int32_t>(row_step) + x1;
        }
        for (int32_t c = 0; c < channels; ++c) {
            const float *__restrict__ p = planes + c * plane_step;
            float *__restrict__ o = out + c * out_step + start;
            for (int32_t k = 0; k < n; ++k)
                o[k] = w00[k] * p[o00[k]] + w01[k] * p[o01[k]] + w10[k] * p[o10[k]] + w11[k] * p[o11[k]];
        }
    }
}

// out[c * out_step + k] = gain * planes[c][xs[k]] for one row (x stride 1).
VFI_TARGET void gather_points(const float *__restrict__ row, int64_t plane_step, int32_t channels,
                              const int32_t *__restrict__ xs, int32_t count, float gain, float *__restrict__ out,
                              int64_t out_step) {
    for (int32_t c = 0; c < channels; ++c) {
        const float *__restrict__ p = row + c * plane_step;
        float *__restrict__ o = out + c * out_step;
        for (int32_t k = 0; k < count; ++k)
            o[k] = gain * p[xs[k]];
    }
}

// acc[k] += weight * (w_first[k] * first[k] + w_second[k] * second[k]) over `channels` rows of `count`.
VFI_TARGET void accumulate(float *acc, const float *first, const float *second, const float *w_first,
                           const float *w_second, float weight, int32_t channels, int32_t count) {
    for (int32_t c = 0; c < channels; ++c) {
        float *a = acc + int64_t{c} * count;
        const float *f = first + int64_t{c} * count, *s = second + int64_t{c} * count;
        for (int32_t k = 0; k < count; ++k)
            a[k] += weight * (w_first[k] * f[k] + w_second[k] * s[k]);
    }
}

// Write `channels` rows of `count` floats to out's row (channel step, pixel step), as float32 or bfloat16.
VFI_TARGET void write_row(const float *values, int32_t channels, int32_t count, const View &out, void *row) {
    const int64_t channel_step = out.stride[1], pixel_step = out.stride[3];
    for (int32_t c = 0; c < channels; ++c) {
        const float *v = values + int64_t{c} * count;
        if (out.dtype == F32) {
            float *o = static_cast<float *>(row) + c * channel_step;
            for (int32_t k = 0; k < count; ++k)
                o[k * pixel_step] = v[k];
        } else {
            uint16_t *o = static_cast<uint16_t *>(row) + c * channel_step;
            for (int32_t k = 0; k < count; ++k)
                o[k * pixel_step] = float_to_bf16(v[k]);
        }
    }
}

// Horizontal linear interpolation: out[x] = w_first[x] * in[first[x]] + w_second[x] * in[second[x]].
VFI_TARGET void interpolate_row(const float *__restrict__ in, const int32_t *__restrict__ first,
                                const int32_t *__restrict__ second, const float *__restrict__ w_first,
                                const float *__restrict__ w_second, int32_t count, float *__restrict__ out) {
    for (int32_t x = 0; x < count; ++x)
        out[x] = w_first[x] * in[first[x]] + w_second[x] * in[second[x]];
}

// Vertical linear interpolation of two rows: out[x] = w0 * a[x] + w1 * b[x].
VFI_TARGET void blend_rows(const float *__restrict__ a, const float *__restrict__ b, float w0, float w1,
                           int32_t count, float *__restrict__ out) {
    for (int32_t x = 0; x < count; ++x)
        out[x] = w0 * a[x] + w1 * b[x];
}

// state[k] = (state_in ? state_in[k] : 0) + gain * step[k]; returns max |gain * step[k]|.
VFI_TARGET float add_step(const float *state_in, const float *step, float gain, int32_t count, float *state_out) {
    float peak = 0.0f;
    for (int32_t k = 0; k < count; ++k) {
        const float delta = gain * step[k];
        peak = std::max(peak, std::fabs(delta));
        state_out[k] = (state_in ? state_in[k] : 0.0f) + delta;
    }
    return peak;
}

// out[k] = a[k] * s + b[k] * (1 - s) with s = sigmoid(mask[k]), over `channels` rows of `count`.
VFI_TARGET void blend(const float *__restrict__ a, const float *__restrict__ b, const float *__restrict__ mask,
                      int32_t channels, int32_t count, float *__restrict__ weight, float *__restrict__ out) {
    for (int32_t k = 0; k < count; ++k)
        weight[k] = 1.0f / (1.0f + std::exp(-mask[k]));
    for (int32_t c = 0; c < channels; ++c) {
        const int64_t row = int64_t{c} * count;
        for (int32_t k = 0; k < count; ++k)
            out[row + k] = a[row + k] * weight[k] + b[row + k] * (1.0f - weight[k]);
    }
}
