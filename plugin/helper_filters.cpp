// See helper_filters.h.
#include "helper_filters.h"

#include <cstdint>

#include "properties.h"
#include "pybridge.h"

namespace vfi {

const VSFrame *VS_CC differenceGetFrame(int n, int activationReason, void *instanceData, void **,
                                         VSFrameContext *ctx, VSCore *core, const VSAPI *vsapi) {
    DifferenceData *d = static_cast<DifferenceData *>(instanceData);
    if (activationReason == arInitial) {
        if (n > 0)
            vsapi->requestFrameFilter(n - 1, d->node, ctx);
        vsapi->requestFrameFilter(n, d->node, ctx);
        return nullptr;
    }
    if (activationReason != arAllFramesReady)
        return nullptr;
    const VSFrame *f1 = vsapi->getFrameFilter(n, d->node, ctx);
    if (n == 0)
        return f1;
    const VSFrame *f0 = vsapi->getFrameFilter(n - 1, d->node, ctx);
    Plane in0[3], in1[3];
    for (int i = 0; i < 3; i++) {
        int h = vsapi->getFrameHeight(f1, i);
        in0[i] = Plane{const_cast<uint8_t *>(vsapi->getReadPtr(f0, i)), vsapi->getStride(f0, i), h};
        in1[i] = Plane{const_cast<uint8_t *>(vsapi->getReadPtr(f1, i)), vsapi->getStride(f1, i), h};
    }
    std::string err;
    double value = 0.0;
    InterpResult result = difference(d->engine.get(), in0, in1, n - 1, n, &value, err);
    if (result == InterpResult::BufferKept) {
        vsapi->setFilterError((d->prefix + err).c_str(), ctx);
        return nullptr;
    }
    vsapi->freeFrame(f0);
    if (result != InterpResult::Interpolated) {
        vsapi->freeFrame(f1);
        vsapi->setFilterError((d->prefix + err).c_str(), ctx);
        return nullptr;
    }
    VSFrame *dst = vsapi->copyFrame(f1, core);
    vsapi->freeFrame(f1);
    vsapi->mapSetFloat(vsapi->getFramePropertiesRW(dst), kDifferenceProp, value, maReplace);
    return dst;
}

void VS_CC differenceFree(void *instanceData, VSCore *, const VSAPI *vsapi) {
    DifferenceData *d = static_cast<DifferenceData *>(instanceData);
    vsapi->freeNode(d->node);
    delete d;
}

const VSFrame *VS_CC selectGetFrame(int n, int activationReason, void *instanceData, void **frameData,
                                     VSFrameContext *ctx, VSCore *core, const VSAPI *vsapi) {
    SelectData *d = static_cast<SelectData *>(instanceData);
    Position p = mapFrame(n, d->rate, d->srcVi.numFrames);
    const bool askInterpolated = p.inference || d->dedup;
    if (activationReason == arInitial) {
        // Frame a is also an input of the interpolation, so asking for it here costs a cache lookup.
        vsapi->requestFrameFilter(p.a, d->src, ctx);
        if (askInterpolated)
            vsapi->requestFrameFilter(n, d->interpolated, ctx);
        return nullptr;
    }
    if (activationReason != arAllFramesReady)
        return nullptr;
    if (*frameData) { // second stage: the source frame the interpolating filter named
        int number = static_cast<int>(reinterpret_cast<intptr_t>(*frameData)) - 1;
        *frameData = nullptr;
        return copyWithDuration(vsapi->getFrameFilter(number, d->src, ctx), d->rate, d->srcVi, core, vsapi);
    }
    if (!askInterpolated)
        return copyWithDuration(vsapi->getFrameFilter(p.a, d->src, ctx), d->rate, d->srcVi, core, vsapi);
    const VSFrame *result = vsapi->getFrameFilter(n, d->interpolated, ctx);
    int err = 0;
    int64_t number = vsapi->mapGetInt(vsapi->getFramePropertiesRO(result), kSourceMarker, 0, &err);
    if (!err) {
        vsapi->freeFrame(result);
        if (number == p.a)
            return copyWithDuration(vsapi->getFrameFilter(p.a, d->src, ctx), d->rate, d->srcVi, core, vsapi);
        *frameData = reinterpret_cast<void *>(static_cast<intptr_t>(number) + 1);
        vsapi->requestFrameFilter(static_cast<int>(number), d->src, ctx);
        return nullptr;
    }
    const VSFrame *source = vsapi->getFrameFilter(p.a, d->src, ctx);
    VSFrame *dst = vsapi->copyFrame(result, core);
    vsapi->freeFrame(result);
    const VSMap *from = vsapi->getFramePropertiesRO(source);
    VSMap *to = vsapi->getFramePropertiesRW(dst);
    for (const char *key : kColourProps) {
        int missing = 0;
        int64_t value = vsapi->mapGetInt(from, key, 0, &missing);
        if (missing)
            vsapi->mapDeleteKey(to, key);
        else
            vsapi->mapSetInt(to, key, value, maReplace);
    }
    vsapi->freeFrame(source);
    return dst;
}

void VS_CC selectFree(void *instanceData, VSCore *, const VSAPI *vsapi) {
    SelectData *d = static_cast<SelectData *>(instanceData);
    vsapi->freeNode(d->src);
    vsapi->freeNode(d->interpolated);
    delete d;
}

///////////////////////////////////////////////////////////////////////////////////////////////////
// Conversion to and from RGBS with the core's resize
} // namespace vfi
