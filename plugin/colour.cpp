// See colour.h.
#include "colour.h"

#include "common.h"
#include "pybridge.h"

namespace vfi {
namespace {

std::string describeColorimetry(const Colorimetry &c) {
    std::string text = "_Matrix=" + std::to_string(c.matrix) + (c.fullRange ? ", full range" : ", limited range");
    if (c.hasChromaloc)
        text += ", _ChromaLocation=" + std::to_string(c.chromaloc);
    return text;
}

struct FirstFrame {
    const VSAPI *vsapi;
    VSNode *node;
    const VSFrame *frame;
    char error[1024];
};

} // namespace

Colorimetry readColorimetry(const VSFrame *frame, const VSVideoFormat &format, const VSAPI *vsapi) {
    Colorimetry c;
    if (format.colorFamily == cfRGB) {
        c.fullRange = true;
        return c;
    }
    const VSMap *props = vsapi->getFramePropertiesRO(frame);
    int err = 0;
    int64_t v = vsapi->mapGetInt(props, "_Matrix", 0, &err);
    c.hasMatrix = true;
    c.matrix = (!err && v != 2) ? v : 1; // 2 = unspecified
    // Grey becomes R = G = B, which any matrix maps back to the same Y: BT.709 then, whatever _Matrix says.
    if (format.colorFamily == cfGray)
        c.matrix = 1;
    v = vsapi->mapGetInt(props, "_Range", 0, &err);
    if (!err) {
        c.fullRange = v == 1;
    } else {
        v = vsapi->mapGetInt(props, "_ColorRange", 0, &err);
        c.fullRange = !err && v == 0;
    }
    if (format.colorFamily == cfYUV) {
        v = vsapi->mapGetInt(props, "_ChromaLocation", 0, &err);
        if (!err) {
            c.hasChromaloc = true;
            c.chromaloc = v;
        }
    }
    return c;
}

const VSFrame *fetchFirstFrame(VSNode *node, std::string &err, const VSAPI *vsapi) {
    FirstFrame req{vsapi, node, nullptr, {}};
    withoutGIL(
        [](void *arg) {
            FirstFrame *r = static_cast<FirstFrame *>(arg);
            r->frame = r->vsapi->getFrame(0, r->node, r->error, sizeof(r->error));
        },
        &req);
    if (!req.frame)
        err = req.error;
    return req.frame;
}

void requireConversion(VSNode *converted, const char *what, const Colorimetry &color, const VSAPI *vsapi) {
    std::string err;
    const VSFrame *frame = fetchFirstFrame(converted, err, vsapi);
    if (!frame)
        throw ArgError(std::string("cannot ") + what + " with the colour properties of its frame 0 (" +
                       describeColorimetry(color) + "): " + err +
                       "; set valid ones upstream, e.g. std.SetFrameProps(clip, _Matrix=1)");
    vsapi->freeFrame(frame);
}

VSNode *resizeClip(VSNode *clip, uint32_t formatId, const Colorimetry &c, bool toRGB, VSCore *core,
                   const VSAPI *vsapi) {
    VSPlugin *resize = vsapi->getPluginByID("com.vapoursynth.resize", core);
    if (!resize)
        throw ArgError("the core's resize plugin (com.vapoursynth.resize) is missing; it is needed to convert "
                       "non-RGBS/RGBH clips");
    VSMap *args = vsapi->createMap();
    vsapi->mapSetNode(args, "clip", clip, maReplace);
    vsapi->mapSetInt(args, "format", formatId, maReplace);
    const char *range = c.fullRange ? "full" : "limited";
    if (c.hasMatrix)
        vsapi->mapSetInt(args, toRGB ? "matrix_in" : "matrix", c.matrix, maReplace);
    vsapi->mapSetData(args, toRGB ? "range_in_s" : "range_s", range, -1, dtUtf8, maReplace);
    if (c.hasChromaloc)
        vsapi->mapSetInt(args, toRGB ? "chromaloc_in" : "chromaloc", c.chromaloc, maReplace);
    VSMap *ret = vsapi->invoke(resize, "Bicubic", args);
    vsapi->freeMap(args);
    const char *error = vsapi->mapGetError(ret);
    if (error) {
        std::string msg = std::string("could not convert the clip ") + (toRGB ? "to RGBS" : "back from RGBS") +
                          " with resize: " + error;
        vsapi->freeMap(ret);
        throw ArgError(msg);
    }
    VSNode *node = vsapi->mapGetNode(ret, "clip", 0, nullptr);
    vsapi->freeMap(ret);
    return node;
}

} // namespace vfi
