// Conversion to and from RGBS with the core's resize, for clips of any other format: the colour description it
// reads from frame 0, and the checks at creation that both ways work with it.
#ifndef VFI_COLOUR_H
#define VFI_COLOUR_H

#include <cstdint>
#include <string>

#include <VapourSynth4.h>

namespace vfi {

struct Colorimetry {
    bool hasMatrix = false;
    int64_t matrix = 1;
    bool fullRange = false;
    bool hasChromaloc = false;
    int64_t chromaloc = 0;
};

// Reads _Matrix, _Range (1 = full, 0 = limited) or the older _ColorRange (0 = full, 1 = limited) and
// _ChromaLocation from a source frame. Defaults: BT.709 limited for YUV and GRAY; integer RGB is full range.
Colorimetry readColorimetry(const VSFrame *frame, const VSVideoFormat &format, const VSAPI *vsapi);

// Source frame 0, fetched with the GIL released: an upstream filter written in Python needs it.
const VSFrame *fetchFirstFrame(VSNode *node, std::string &err, const VSAPI *vsapi);

// Throws unless frame 0 of a converted node can be made: what the conversion does with frame 0's properties.
void requireConversion(VSNode *converted, const char *what, const Colorimetry &color, const VSAPI *vsapi);

// resize.Bicubic(clip, format=formatId, <colorimetry>). toRGB: c describes the input (matrix_in, ...);
// otherwise c describes the output (matrix, ...). Returns a new node or throws.
VSNode *resizeClip(VSNode *clip, uint32_t formatId, const Colorimetry &c, bool toRGB, VSCore *core,
                   const VSAPI *vsapi);

} // namespace vfi

#endif
