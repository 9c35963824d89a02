// The helper filters of the graph: the difference filter (dedup) and the selector (non-RGB clips).
#ifndef VFI_HELPER_FILTERS_H
#define VFI_HELPER_FILTERS_H

#include <string>

#include <VapourSynth4.h>

#include "common.h"
#include "rate.h"

namespace vfi {

// The difference filter (dedup): source frame k unchanged, with the engine's difference from frame k-1 as
// kDifferenceProp (none on frame 0). The core's cache keeps it, so each pair is measured once.
struct DifferenceData {
    std::string prefix;
    VSNode *node = nullptr;
    EnginePtr engine;
};

const VSFrame *VS_CC differenceGetFrame(int n, int activationReason, void *instanceData, void **,
                                         VSFrameContext *ctx, VSCore *core, const VSAPI *vsapi);

void VS_CC differenceFree(void *instanceData, VSCore *, const VSAPI *vsapi);

// The selector: original source frames where the interpolating filter returned one as it is (no inference needed, a
// scene change, a still), the back-converted result elsewhere, with the colour properties of its source frame a.
struct SelectData {
    VSNode *src = nullptr;
    VSNode *interpolated = nullptr; // same format and length as the output
    VSVideoInfo srcVi{};
    Rate rate;
    bool dedup = false; // which outputs are source frames depends on the frames: ask the interpolating filter
};

const VSFrame *VS_CC selectGetFrame(int n, int activationReason, void *instanceData, void **frameData,
                                     VSFrameContext *ctx, VSCore *core, const VSAPI *vsapi);

void VS_CC selectFree(void *instanceData, VSCore *, const VSAPI *vsapi);

} // namespace vfi

#endif
