// The interpolating filter: works on RGBS or RGBH frames and calls the engine. It maps each output frame to the pair
// of source frames around it (rate.h) and, with dedup, walks the held frames to the drawings around them.
#ifndef VFI_INTERPOLATE_H
#define VFI_INTERPOLATE_H

#include <string>

#include <VapourSynth4.h>

#include "common.h"
#include "rate.h"

namespace vfi {

struct InterpData {
    std::string prefix; // "vfi.RIFE: "
    VSNode *node = nullptr; // the RGB source; with dedup, the difference filter over it
    VSVideoInfo srcVi{};
    Rate rate;
    bool sc = false;
    bool markRepeats = false; // a selector downstream swaps frames returned as-is for the originals
    bool dedup = false;
    double dedupThreshold = 0.0;
    int dedupMax = 0;
    VSNode *mask = nullptr; // GRAY, the source's size; nullptr: no mask
    int maskFrames = 0;
    EnginePtr engine;
};

const VSFrame *VS_CC interpGetFrame(int n, int activationReason, void *instanceData, void **frameData,
                                     VSFrameContext *ctx, VSCore *core, const VSAPI *vsapi);

void VS_CC interpFree(void *instanceData, VSCore *, const VSAPI *vsapi);

} // namespace vfi

#endif
