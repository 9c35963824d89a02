// The frame properties the filters read and write, and the durations of output frames.
#ifndef VFI_PROPERTIES_H
#define VFI_PROPERTIES_H

#include <VapourSynth4.h>

#include "rate.h"

namespace vfi {

constexpr const char *kSceneChangeNext = "_SceneChangeNext";
constexpr const char *kSceneChangePrev = "_SceneChangePrev";
// Set by the internal RGBS filter on a source frame it returns as it is (at a scene change, in a still, with dedup),
// to that frame's number, so that the selector returns the original source frame instead of its round trip through
// RGB.
constexpr const char *kSourceMarker = "VfiSourceFrame";
// The colour description an interpolated frame takes over from its source frame a.
constexpr const char *kColourProps[] = {"_Matrix", "_Primaries", "_Transfer", "_Range", "_ColorRange",
                                        "_ChromaLocation"};
// The difference filter's property: the engine's difference of a source frame from the frame before it.
constexpr const char *kDifferenceProp = "VfiDedupDifference";

bool intPropNonzero(const VSMap *props, const char *key, const VSAPI *vsapi);

bool hasKey(const VSMap *props, const char *key, const VSAPI *vsapi);

// Output duration = the source frame's duration (its props, else 1/fps of the clip) * den/num.
void setDuration(VSMap *props, const Rate &rate, const VSVideoInfo &src, const VSAPI *vsapi);

// A copy of a source frame (same planes, same props) with only the duration updated. Consumes f.
const VSFrame *copyWithDuration(const VSFrame *f, const Rate &rate, const VSVideoInfo &src, VSCore *core,
                                const VSAPI *vsapi);

} // namespace vfi

#endif
